"""HANS-style heuristics detected in the text of a premise/hypothesis pair (no parser, no model).

Used by the rule anchor strategy (``heuristic:NAME`` on examples that carry no heuristic labels, see
:func:`with_detected_heuristics`) and by the simulated annotators (:mod:`hildif.feedback.simulation`).

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
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from hildif.data.example import Example

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


def _overlap(p: list[str], h: list[str]) -> float:
    pset = set(p)
    return sum(w in pset for w in h) / len(h) if h else 0.0


def overlap_rate(premise: str, hypothesis: str | None) -> float:
    """The fraction of the hypothesis's words that occur in the premise, in [0, 1] (0 without a hypothesis)."""
    return _overlap(_words(premise), _words(hypothesis or ""))


def heuristic_features(premise: str, hypothesis: str) -> dict[str, Any]:
    """The features documented in the module docstring, for one pair."""
    p, h = _words(premise), _words(hypothesis)
    rate = _overlap(p, h)
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
    """The binary heuristics (:data:`BINARY_HEURISTICS`) that ``features`` (of :func:`heuristic_features`) has on."""
    return frozenset(k for k in BINARY_HEURISTICS if features[k])


def with_detected_heuristics(examples: Sequence[Example]) -> list[Example]:
    """Copies whose ``heuristics`` metadata adds the :func:`active_heuristics` found in the text (sorted)."""
    out = []
    for e in examples:
        found = set(e.metadata.get("heuristics") or []) | active_heuristics(heuristic_features(e.premise, e.hypothesis))
        out.append(Example(e.id, e.premise, e.hypothesis, e.label, {**e.metadata, "heuristics": sorted(found)}))
    return out


__all__ = ["BINARY_HEURISTICS", "active_heuristics", "heuristic_features", "overlap_rate", "with_detected_heuristics"]
