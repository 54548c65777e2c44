"""Simulated annotators: rate how much an anchor and an influential example share HANS-style heuristics.

Features (:func:`heuristic_features`). Text is lower-cased, ``’`` read as ``'``, and split into words
``[a-z0-9]+`` (so "Ann's" and "Ann ’ s" both give ``ann s``); punctuation is ignored.

``lexical_overlap_rate``  share of hypothesis words (tokens) that occur in the premise, in [0, 1].
``lexical_overlap``       every hypothesis word occurs in the premise (HANS's lexical overlap; rate == 1).
``subsequence``           the hypothesis words form a contiguous run of the premise words.
``constituent``           a subsequence whose run is clause-shaped: it starts at the premise start or right after
                          a clause opener (a comma, "that", a subordinator such as "if"/"since"/"because"/
                          "case", an adverbial phrase such as "of course"/"without a doubt"/"whether or not", a
                          clause-embedding verb such as "believed"/"knew" that is not inside a relative clause
                          ("that"/"who" + verb), ", and"/", or", or a sentence-initial adverb such as
                          "maybe"/"certainly"/any "-ly" word), and ends at the
                          premise end or before a comma. An approximation of "a complete subtree" without a parser.
``negation``              "not", "no", "never", "n't", "none", "nobody", "nothing", "neither", "nor", "cannot"
                          occurs in the premise or the hypothesis ("whether or not" does not count).
``negation_mismatch``     negation in exactly one of the two sentences.
``reversed_order``        two content words (not stop words) that both sentences contain exactly once appear in
                          opposite orders ("The doctor advised the judge" / "The judge advised the doctor").
``passive``               a passive "was/were/is/are/been/be + word + by" in exactly one of the two sentences.
``length_ratio``          hypothesis words / premise words.

:class:`SimulatedAnnotator` compares the feature sets of the anchor and the example: similarity
``sim = 0.7 * J + 0.3 * (1 - |rate_a - rate_e|)`` where ``J`` is the Jaccard index of the active binary heuristics
(lexical_overlap, subsequence, constituent, negation, reversed_order, passive; 1 when both have none), and the
score is ``round(1 + 4 * sim + bias + noise)`` clipped to 1..5, ``noise ~ N(0, noise)``. The noise draw depends
only on (seed, annotator name, anchor id, example id), so a rating does not depend on the order of calls.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Sequence

import numpy as np

from hildif.data.example import Example
from hildif.feedback.augmentation.seeding import derive_seed
from hildif.feedback.ratings import Rating

_WORD = re.compile(r"[a-z0-9]+")
_NEGATION = re.compile(r"\b(?:not|no|never|none|nobody|nothing|neither|nor|nowhere|cannot)\b|n't")
_WHETHER = re.compile(r"\bwhether or not\b")  # "whether or not" is no negation
_PASSIVE = re.compile(r"\b(?:was|were|is|are|been|be|being)\s+\w+\s+by\b")
_STOP = frozenset(
    "a an the of to in on at by for with from and or but if that this these those is are was were be been it its "
    "as s t there their they he she we you i his her our your who which what not no".split()
)
_SUBORDINATORS = frozenset(
    "that if since because although though unless while whereas whether when once after before until case".split()
)
_EMBEDDING_VERBS = frozenset(
    "believed thought knew forgot learned assumed hoped said claimed suspected remembered heard mentioned "
    "realized noticed understood supposed figured decided felt proved showed admitted denied doubted".split()
)
_ADVERBIAL_PHRASES = frozenset(
    {"without a doubt", "of course", "in fact", "no doubt", "whether or not", "in case", "so that", "given that"}
)
_RELATIVIZERS = frozenset({"that", "who", "which", "whom"})
_ADVERBS = frozenset("maybe perhaps probably certainly clearly obviously hopefully supposedly definitely".split())
BINARY_HEURISTICS = ("lexical_overlap", "subsequence", "constituent", "negation", "reversed_order", "passive")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


def _find_run(needle: list[str], haystack: list[str]) -> list[int]:
    n = len(needle)
    return [i for i in range(len(haystack) - n + 1) if haystack[i : i + n] == needle] if n else []


def _clause_start(tokens: list[str], i: int) -> bool:
    """Is position ``i`` of the premise (with punctuation tokens) right after a clause opener?"""
    if i == 0:
        return True
    prev = tokens[i - 1]
    if prev == ",":
        return True
    if prev in ("and", "or") and i >= 2 and tokens[i - 2] == ",":
        return True
    if prev in _SUBORDINATORS or " ".join(tokens[max(0, i - 3) : i]) in _ADVERBIAL_PHRASES:
        return True
    if " ".join(tokens[max(0, i - 2) : i]) in _ADVERBIAL_PHRASES:
        return True
    if prev in _EMBEDDING_VERBS and (i < 2 or tokens[i - 2] not in _RELATIVIZERS):  # not inside a relative clause
        return True
    return i == 1 and (prev in _ADVERBS or prev.endswith("ly"))


def _constituent(premise: str, hyp_words: list[str]) -> bool:
    tokens = re.findall(r"[a-z0-9]+|,", premise.lower().replace("’", "'"))
    n = len(hyp_words)
    for start in _find_run(hyp_words, tokens):
        end = start + n
        rest = [t for t in tokens[end:] if t != ","]
        if _clause_start(tokens, start) and (not rest or tokens[end] == ","):
            return True
    return False


def _reversed_order(p: list[str], h: list[str]) -> bool:
    shared = [w for w in h if w not in _STOP and p.count(w) == 1 and h.count(w) == 1]
    pos_p = {w: p.index(w) for w in shared}
    pos_h = {w: h.index(w) for w in shared}
    return any(
        (pos_p[a] - pos_p[b]) * (pos_h[a] - pos_h[b]) < 0 for i, a in enumerate(shared) for b in shared[i + 1 :]
    )


def heuristic_features(premise: str, hypothesis: str) -> dict[str, Any]:
    """The features documented in the module docstring, for one pair."""
    p, h = _words(premise), _words(hypothesis)
    pset = set(p)
    rate = sum(w in pset for w in h) / len(h) if h else 0.0
    subsequence = bool(h) and bool(_find_run(h, p))
    neg_p, neg_h = (bool(_NEGATION.search(_WHETHER.sub(" ", t.lower()))) for t in (premise, hypothesis))
    pas_p, pas_h = bool(_PASSIVE.search(premise.lower())), bool(_PASSIVE.search(hypothesis.lower()))
    return {
        "lexical_overlap_rate": rate,
        "lexical_overlap": bool(h) and rate == 1.0,
        "subsequence": subsequence,
        "constituent": subsequence and _constituent(premise, h),
        "negation": neg_p or neg_h,
        "negation_mismatch": neg_p != neg_h,
        "reversed_order": _reversed_order(p, h),
        "passive": pas_p != pas_h,
        "length_ratio": len(h) / len(p) if p else 0.0,
    }


def active_heuristics(features: dict[str, Any]) -> frozenset[str]:
    return frozenset(k for k in BINARY_HEURISTICS if features[k])


def heuristic_similarity(anchor: Example, example: Example) -> float:
    """``sim`` in [0, 1] as documented above."""
    fa = heuristic_features(anchor.premise, anchor.hypothesis)
    fe = heuristic_features(example.premise, example.hypothesis)
    a, e = active_heuristics(fa), active_heuristics(fe)
    jaccard = len(a & e) / len(a | e) if a | e else 1.0
    return 0.7 * jaccard + 0.3 * (1.0 - abs(fa["lexical_overlap_rate"] - fe["lexical_overlap_rate"]))


class SimulatedAnnotator:
    """A stand-in for a human rater: ``rate(anchor, example) -> int in 1..5``.

    Args:
        name: annotator name (also part of the noise seed).
        noise: standard deviation of the Gaussian noise added before rounding (0 = deterministic).
        bias: constant added before rounding (a lenient rater > 0, a strict one < 0).
        seed: base seed.
        skip_rate: probability that :meth:`ratings` emits a ``skipped`` event instead of a score.
    """

    def __init__(self, name: str, noise: float = 0.5, bias: float = 0.0, seed: int = 0, skip_rate: float = 0.0):
        if noise < 0 or not 0 <= skip_rate <= 1:
            raise ValueError(f"annotator {name}: noise must be >= 0 and skip_rate in [0, 1]")
        self.name, self.noise, self.bias, self.seed, self.skip_rate = name, noise, bias, seed, skip_rate

    def _rng(self, anchor: Example, example: Example) -> np.random.Generator:
        return np.random.default_rng(derive_seed(self.seed, self.name, anchor.id, example.id))

    def rate(self, anchor: Example, example: Example) -> int:
        noise = self._rng(anchor, example).normal(0.0, self.noise) if self.noise > 0 else 0.0
        raw = 1.0 + 4.0 * heuristic_similarity(anchor, example) + self.bias + noise
        return int(min(5, max(1, np.floor(raw + 0.5))))

    def ratings(
        self, pairs: Iterable[tuple[Example, Example]], start: datetime | None = None
    ) -> list[Rating]:
        """Rating events (``submitted``, or ``skipped`` with probability ``skip_rate``) for ``(anchor, example)``."""
        t0 = start or datetime(2024, 1, 1, tzinfo=timezone.utc)
        out = []
        for i, (anchor, example) in enumerate(pairs):
            skip = self.skip_rate > 0 and self._rng(anchor, example).random() < self.skip_rate
            out.append(
                Rating(
                    anchor_id=anchor.id,
                    example_id=example.id,
                    annotator=self.name,
                    score=None if skip else self.rate(anchor, example),
                    status="skipped" if skip else "submitted",
                    updated_at=(t0 + timedelta(seconds=i)).isoformat(),
                    source=f"simulated:{self.name}",
                )
            )
        return out


def simulate_ratings(annotators: Sequence[SimulatedAnnotator], pairs: Sequence[tuple[Example, Example]]) -> list[Rating]:
    """All annotators' rating events over the same pairs."""
    return [r for annotator in annotators for r in annotator.ratings(pairs)]
