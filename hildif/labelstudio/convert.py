"""Label Studio JSON <-> hildif records, as pure functions (no SDK, no network).

* :func:`task_payload`: one (anchor, influential example) pair -> the task dict pushed to Label Studio
  (``data`` shown by the rating template, :mod:`hildif.labelstudio.template`, plus ids, ``meta`` with the ids
  again); :func:`text_task_payload` the same for a round on a team's own task (its labels, one text or a pair).
* :func:`score_from_result` / :func:`result_for_score`: an annotation's ``result`` list <-> a score 1..5.
* :func:`rating_from_annotation`: one annotation of a task -> a :class:`hildif.feedback.Rating`.

What the ratings mean (statuses, snapshots, deletions) is :mod:`hildif.feedback.ratings`'s business, not this module's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, NamedTuple, Sequence

from hildif.data.example import LABEL_NAMES, Example
from hildif.errors import HildifError
from hildif.labelstudio.template import load_label_config, rating_tags  # noqa: F401 (load_label_config: re-exported)

if TYPE_CHECKING:
    from hildif.feedback.ratings import PairKey, Rating

# The paper's five answers, in score order: "The test case and the presented sample are: ..."
SCORE_CHOICES: tuple[str, ...] = ("Very different", "Different", "Can't decide", "Similar", "Very similar")
CHOICE_SCORES: dict[str, int] = {c: i + 1 for i, c in enumerate(SCORE_CHOICES)}
_TAGS = rating_tags()  # read from the shipped template (hildif/labelstudio/templates/rating.xml)
FROM_NAME = _TAGS.from_name  # the <Choices> name
TO_NAME = _TAGS.to_name  # the <Text> it is attached to
COMMENT_NAME = _TAGS.comment_name or "comment"
TASK_SOURCE = "hildif"  # data.source of every task we push; tasks without it are not ours


class ConversionError(HildifError, ValueError):
    """A task or annotation from Label Studio does not have the shape hildif wrote; the message names it."""


def format_pair_key(anchor_id: str, example_id: str) -> str:
    """The pair key ``(anchor_id, example_id)`` (:data:`hildif.feedback.ratings.PairKey`) as the one string a task
    carries in ``data.pair_key`` (a Data Manager column; hildif reads the ids from their own fields)."""
    return f"{anchor_id}|{example_id}"


def _pair_identity(round_id: str, anchor: Example, example: Example) -> dict[str, Any]:
    """The data keys that say which round and pair a task is (read back by :func:`task_identity`)."""
    return {"source": TASK_SOURCE, "round_id": round_id, "pair_key": format_pair_key(anchor.id, example.id),
            "anchor_id": anchor.id, "example_id": example.id}


def _task(data: dict[str, Any], round_id: str, anchor: Example, example: Example, rank: int) -> dict[str, Any]:
    """A task as Label Studio imports it: ``data`` and hildif's ``meta``."""
    meta = {"round_id": round_id, "anchor_id": anchor.id, "example_id": example.id, "rank": int(rank)}
    return {"data": data, "meta": meta}


def task_payload(
    round_id: str,
    anchor: Example,
    probs: Sequence[float],
    example: Example,
    rank: int,
    score: float,
) -> dict[str, Any]:
    """The task for one pair. ``probs`` = the model's (p(non-entailment), p(entailment)) on the anchor;
    ``rank`` 1 = most helpful influential example; ``score`` its influence (negative = helpful)."""
    if len(probs) != 2:
        raise ValueError(f"anchor {anchor.id}: expected 2 class probabilities, got {len(probs)}")
    predicted = int(probs[1] >= probs[0])
    confidence = float(probs[predicted])
    gold = anchor.metadata.get("gold_label") or LABEL_NAMES[anchor.label]
    gold_binary = LABEL_NAMES[anchor.label]
    ex_gold = example.metadata.get("gold_label") or LABEL_NAMES[example.label]
    data = {
        **_pair_identity(round_id, anchor, example),
        "anchor_premise": anchor.premise,
        "anchor_hypothesis": anchor.hypothesis,
        "anchor_prediction": LABEL_NAMES[predicted],
        "anchor_confidence": f"{confidence:.2f}",
        "anchor_gold": gold_binary,
        "anchor_verdict": (
            f"Model predicts {LABEL_NAMES[predicted]} (confidence {confidence:.2f}); gold label {gold_binary}"
            + (f" ({gold})" if gold != gold_binary else "")
            + (" - the model is WRONG" if predicted != anchor.label else " - the model is right")
        ),
        "example_premise": example.premise,
        "example_hypothesis": example.hypothesis,
        "example_label": LABEL_NAMES[example.label],
        "example_verdict": (
            f"Training label {LABEL_NAMES[example.label]}" + (f" ({ex_gold})" if ex_gold != LABEL_NAMES[example.label] else "")
            + f"; influence rank {rank} (1 = most helpful)"
        ),
        "influence_rank": int(rank),
        "influence_score": float(score),
    }
    return _task(data, round_id, anchor, example, rank)


def _votes_text(example: Example) -> str:
    """The annotators' votes when they chose different labels (a unanimous task says nothing more)."""
    votes = example.metadata.get("votes")
    if not isinstance(votes, dict) or len(votes) < 2:
        return ""
    return " (annotators: " + ", ".join(f"{name} {n}" for name, n in votes.items()) + ")"


def text_task_payload(
    round_id: str,
    anchor: Example,
    probs: Sequence[float],
    example: Example,
    rank: int,
    score: float,
    labels: Sequence[str],
) -> dict[str, Any]:
    """The task for one pair of a round on a team's own task (any number of ``labels``, one text or a pair): the
    same data keys as :func:`task_payload` (the first text in ``*_premise``, a pair's second in ``*_hypothesis``,
    absent for a single text), labels named by the task, the annotators' votes in the verdict when they differ."""
    if len(probs) != len(labels):
        raise ValueError(f"anchor {anchor.id}: expected {len(labels)} class probabilities, got {len(probs)}")
    predicted = max(range(len(probs)), key=lambda i: float(probs[i]))
    confidence = float(probs[predicted])
    data: dict[str, Any] = {**_pair_identity(round_id, anchor, example), "anchor_premise": anchor.premise}
    if anchor.hypothesis is not None:
        data["anchor_hypothesis"] = anchor.hypothesis
    data.update({
        "anchor_prediction": labels[predicted],
        "anchor_confidence": f"{confidence:.2f}",
        "anchor_gold": labels[anchor.label],
        "anchor_verdict": (
            f"Model predicts {labels[predicted]} (confidence {confidence:.2f}); label {labels[anchor.label]}"
            + _votes_text(anchor)
            + (" - the model is WRONG" if predicted != anchor.label else " - the model is right")
        ),
        "example_premise": example.premise,
    })
    if example.hypothesis is not None:
        data["example_hypothesis"] = example.hypothesis
    data.update({
        "example_label": labels[example.label],
        "example_verdict": f"Training label {labels[example.label]}{_votes_text(example)}; influence rank {rank} "
                           "(1 = most helpful)",
        "influence_rank": int(rank),
        "influence_score": float(score),
    })
    return _task(data, round_id, anchor, example, rank)


class TaskIdentity(NamedTuple):
    """Which round and pair a task hildif pushed is for (read from the task's ``data``)."""

    round_id: str
    anchor_id: str
    example_id: str

    @property
    def pair(self) -> PairKey:
        return (self.anchor_id, self.example_id)


def task_identity(task: Mapping[str, Any]) -> TaskIdentity | None:
    """The :class:`TaskIdentity` of a task hildif pushed, or None for any other task."""
    data = task.get("data") or {}
    if data.get("source") != TASK_SOURCE:
        return None
    try:
        return TaskIdentity(str(data["round_id"]), str(data["anchor_id"]), str(data["example_id"]))
    except KeyError as exc:
        raise ConversionError(f"task {task.get('id')}: hildif task without data field {exc}") from None


def result_for_score(score: int, comment: str | None = None) -> list[dict[str, Any]]:
    """The ``result`` list of an annotation choosing score 1..5 (and an optional comment)."""
    if score not in CHOICE_SCORES.values():
        raise ValueError(f"score must be 1..5, got {score!r}")
    result: list[dict[str, Any]] = [{
        "from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices",
        "value": {"choices": [SCORE_CHOICES[score - 1]]},
    }]
    if comment:
        result.append({"from_name": COMMENT_NAME, "to_name": TO_NAME, "type": "textarea", "value": {"text": [comment]}})
    return result


def score_from_result(result: Sequence[Mapping[str, Any]] | None, where: str = "annotation") -> int | None:
    """The score 1..5 chosen in an annotation's ``result`` (None if it has no similarity choice)."""
    for item in result or []:
        if item.get("from_name") != FROM_NAME:
            continue
        choices = (item.get("value") or {}).get("choices") or []
        if len(choices) != 1 or choices[0] not in CHOICE_SCORES:
            raise ConversionError(f"{where}: similarity choice {choices!r} is not one of {list(SCORE_CHOICES)}")
        return CHOICE_SCORES[choices[0]]
    return None


def comment_from_result(result: Sequence[Mapping[str, Any]] | None) -> str | None:
    for item in result or []:
        if item.get("from_name") == COMMENT_NAME:
            text = (item.get("value") or {}).get("text") or []
            return "\n".join(text) if text else None
    return None


def annotator_name(annotation: Mapping[str, Any], users: Mapping[int, str]) -> str:
    """The annotator's name: the Label Studio user's email/username when known, else ``user-<id>``."""
    who = annotation.get("completed_by")
    if isinstance(who, Mapping):
        return str(who.get("email") or who.get("username") or f"user-{who.get('id')}")
    return users.get(who, f"user-{who}") if who is not None else "unknown"


def rating_from_annotation(
    anchor_id: str, example_id: str, annotation: Mapping[str, Any], users: Mapping[int, str]
) -> "Rating":
    """One annotation -> :class:`hildif.feedback.Rating` (status ``skipped`` when it was cancelled/skipped).

    ``source`` is ``labelstudio:task/<task id>/annotation/<annotation id>``, so the same annotation is recognised
    across syncs (an edit keeps its id and changes its score and ``updated_at``).
    """
    from hildif.feedback.ratings import SKIPPED, SUBMITTED, Rating

    where = f"annotation {annotation.get('id')} of task {annotation.get('task')}"
    cancelled = bool(annotation.get("was_cancelled"))
    score = None if cancelled else score_from_result(annotation.get("result"), where)
    if not cancelled and score is None:
        raise ConversionError(f"{where}: submitted without a similarity choice")
    return Rating(
        anchor_id=anchor_id,
        example_id=example_id,
        annotator=annotator_name(annotation, users),
        score=score,
        status=SKIPPED if cancelled else SUBMITTED,
        updated_at=str(annotation.get("updated_at") or annotation.get("created_at") or ""),
        source=f"labelstudio:task/{annotation.get('task')}/annotation/{annotation.get('id')}",
    )
