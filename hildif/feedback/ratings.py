"""Rating records and the normalisation of an annotation event log into the ratings that count.

A :class:`Rating` is one event: an annotator submitted, skipped, cancelled or deleted their rating of one
(anchor, influential example) pair. :func:`normalize` reduces a log of such events to at most one counted score
per (pair, annotator):

1. ``skipped`` and ``cancelled`` events are not ratings: they are dropped (counted) and neither count nor replace.
2. Of the remaining ``submitted`` and ``deleted`` events of one (pair, annotator), the latest by ``updated_at``
   wins (ties: the later one in the log). Earlier submissions are ``superseded`` (an update replaces them).
3. If the winner is ``deleted`` the annotator's rating of that pair is ``withdrawn``; a submission made after a
   deletion counts again.

Every dropped event is kept with its reason, for the audit trail.

This module is the one home of the status vocabulary (:data:`STATUSES` and the groups below) and of what successive
pulls of a round's ratings mean: :func:`reconcile` turns a pull plus the previous snapshot into the next snapshot
(deletions become ``deleted`` events), :func:`ratings_digest` says whether two snapshots say the same.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

from hildif.errors import HildifError

SUBMITTED, SKIPPED, CANCELLED, DELETED = "submitted", "skipped", "cancelled", "deleted"
STATUSES = (SUBMITTED, SKIPPED, CANCELLED, DELETED)
DECLINED_STATUSES = (SKIPPED, CANCELLED)  # the annotator declined to rate: not a rating, counted apart
ACTIVE_STATUSES = (SUBMITTED, SKIPPED, CANCELLED)  # still present where the ratings come from (not deleted)
MIN_SCORE, MAX_SCORE = 1, 5

PairKey = tuple[str, str]
"""A rated pair's identity: ``(anchor_id, example_id)`` (:attr:`Rating.pair`). Label Studio tasks carry it as the
string ``data.pair_key`` (:func:`hildif.labelstudio.convert.format_pair_key`)."""


class RatingError(HildifError, ValueError):
    """A rating record is malformed; the message names the record (source, pair, annotator) and the field."""


def parse_time(value: str) -> datetime:
    """ISO 8601 (``Z`` allowed) -> aware datetime; naive times are taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        raise ValueError(f"updated_at {value!r} is not an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Rating:
    """One annotation event.

    Attributes:
        anchor_id, example_id: the pair (an anchor and one of its influential training examples).
        annotator: who rated.
        score: 1 (very different) .. 5 (very similar); required for ``submitted``, ignored otherwise.
        status: ``submitted`` | ``skipped`` | ``cancelled`` | ``deleted``.
        updated_at: ISO 8601 time of the event.
        source: where it came from (e.g. ``labelstudio:task/12/annotation/40`` or ``simulated:alice``).
    """

    anchor_id: str
    example_id: str
    annotator: str
    score: int | None
    status: str = "submitted"
    updated_at: str = "1970-01-01T00:00:00+00:00"
    source: str = ""

    @property
    def pair(self) -> PairKey:
        return (self.anchor_id, self.example_id)

    def where(self) -> str:
        return f"rating from {self.source or '?'} (pair {self.anchor_id}/{self.example_id}, annotator {self.annotator})"

    def validate(self) -> "Rating":
        """Return self, or raise :class:`RatingError` naming the record and field."""
        for name in ("anchor_id", "example_id", "annotator"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise RatingError(f"{self.where()}: {name} must be a non-empty string, got {value!r}")
        if self.status not in STATUSES:
            raise RatingError(f"{self.where()}: status {self.status!r} not one of {', '.join(STATUSES)}")
        if self.status == SUBMITTED:
            s = self.score
            if isinstance(s, bool) or not isinstance(s, int) or not MIN_SCORE <= s <= MAX_SCORE:
                raise RatingError(f"{self.where()}: score must be an integer 1..5 for a submitted rating, got {s!r}")
        try:
            parse_time(self.updated_at)
        except ValueError as exc:
            raise RatingError(f"{self.where()}: {exc}") from None
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Rating":
        try:
            return cls(**{k: d[k] for k in ("anchor_id", "example_id", "annotator", "score")},
                       **{k: d[k] for k in ("status", "updated_at", "source") if k in d}).validate()
        except KeyError as exc:
            raise RatingError(f"rating record {d!r} lacks field {exc.args[0]!r}") from None


@dataclass
class NormalizedRatings:
    """Output of :func:`normalize`.

    ``counted``: pair -> the ratings that count (one per annotator, sorted by annotator).
    ``excluded``: pair -> ``[(event, reason)]`` with reason ``skipped`` | ``cancelled`` | ``superseded`` |
    ``withdrawn`` (the deleted event and the submissions it withdrew).
    """

    counted: dict[PairKey, list[Rating]] = field(default_factory=dict)
    excluded: dict[PairKey, list[tuple[Rating, str]]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out = {"counted": sum(len(v) for v in self.counted.values())}
        for reason in (*DECLINED_STATUSES, "superseded", "withdrawn"):
            out[reason] = sum(r == reason for v in self.excluded.values() for _, r in v)
        return out

    def pairs(self) -> list[PairKey]:
        return sorted(set(self.counted) | set(self.excluded))


def normalize(ratings: Iterable[Rating]) -> NormalizedRatings:
    """Reduce an event log to the ratings that count (see module docstring). Validates every record."""
    result = NormalizedRatings()
    latest: dict[tuple[PairKey, str], list[tuple[datetime, int, Rating]]] = {}
    for position, rating in enumerate(ratings):
        rating.validate()
        if rating.status in DECLINED_STATUSES:
            result.excluded.setdefault(rating.pair, []).append((rating, rating.status))
            continue
        latest.setdefault((rating.pair, rating.annotator), []).append(
            (parse_time(rating.updated_at), position, rating)
        )
    for (pair, _), events in sorted(latest.items()):
        events.sort(key=lambda e: (e[0], e[1]))
        winner = events[-1][2]
        earlier = [e[2] for e in events[:-1]]
        if winner.status == DELETED:
            result.excluded.setdefault(pair, []).extend((r, "withdrawn") for r in earlier + [winner])
        else:
            result.excluded.setdefault(pair, []).extend((r, "superseded") for r in earlier)
            result.counted.setdefault(pair, []).append(winner)
    for pair in result.counted:
        result.counted[pair].sort(key=lambda r: r.annotator)
    result.excluded = {k: v for k, v in result.excluded.items() if v}
    return result


# ---------------------------------------------------------------- successive pulls (snapshots)

CHANGE_COUNTS = ("new", "updated", "unchanged", "deleted", "still_deleted")


def reconcile(
    current: Sequence[Rating], previous: Sequence[Rating], detected_at: str
) -> tuple[list[Rating], dict[str, int]]:
    """Compare the ratings pulled now with the previous snapshot's (both keyed by :attr:`Rating.source`).

    Returns the ratings to snapshot (``current`` plus one ``deleted`` event per rating that disappeared from the
    source, stamped ``detected_at``; deletions seen earlier are carried forward unchanged) and counts of ``new``,
    ``updated`` (score or status changed), ``unchanged``, ``deleted`` (newly) and ``still_deleted``.
    """
    prev = {r.source: r for r in previous}
    now_sources = {r.source for r in current}
    counts = dict.fromkeys(CHANGE_COUNTS, 0)
    for r in current:
        p = prev.get(r.source)
        if p is None or p.status == DELETED:
            counts["new"] += 1
        elif (p.score, p.status) != (r.score, r.status):
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    gone: list[Rating] = []
    for source, p in sorted(prev.items()):
        if source in now_sources:
            continue
        if p.status == DELETED:
            counts["still_deleted"] += 1
            gone.append(p)
        else:
            counts["deleted"] += 1
            gone.append(Rating(anchor_id=p.anchor_id, example_id=p.example_id, annotator=p.annotator, score=p.score,
                               status=DELETED, updated_at=detected_at, source=source))
    return list(current) + gone, counts


def ratings_digest(ratings: Iterable[Rating]) -> str:
    """A digest of what the ratings say (who rated which pair how), independent of order and timestamps.

    Deleted ratings are left out: a snapshot without them says the same as one where they never existed.
    """
    rows = sorted(
        (r.anchor_id, r.example_id, r.annotator, -1 if r.score is None else int(r.score), r.status)
        for r in ratings if r.status in ACTIVE_STATUSES
    )
    return hashlib.sha256(json.dumps(rows).encode("utf-8")).hexdigest()[:16]
