"""Naik et al.'s stress tests of NLI, built from MNLI dev rows by their published rules (no download).

A. Naik, A. Ravichander, N. Sadeh, C. Rose and G. Neubig (2018), "Stress Test Evaluation for Natural Language
Inference", COLING 2018, pages 2340-2353 (https://aclanthology.org/C18-1198), section 4; their generators are
``make_distraction_adv_samples_jsonl.py`` and ``make_grammar_adv_samples_jsonl.py`` in
``AbhilashaRavichander/NLI_StressTest``. Every rule keeps the gold label: a tautology conjoined to a sentence, or a
typo, does not change whether the premise entails the hypothesis, so a model that reads the meaning scores on each set
what it scores on MNLI dev; a model that uses the cue does not.

The three *distraction* sets (section 4.2) add a tautology that a shortcut can read as a cue:

``word_overlap``     the hypothesis + ``" and true is true"`` (more words shared with nothing: a lexical-overlap
                     cue towards entailment);
``negation``         the hypothesis + ``" and false is not true"`` (a strong negation word, "not": the cue towards
                     contradiction, the artifact of the paper's fifth anchor);
``length_mismatch``  the premise + ``" and true is true"`` five times (the premise much longer than the hypothesis).

Where the phrase goes (``append_phrase``), as in the authors' generator: right after the sentence's last word, i.e.
before its closing run of ``.``, ``!`` or ``?`` (and any spaces before that run, which stay where they were), or at
the very end when the sentence does not end with one of those marks; trailing whitespace is dropped.
``"I hated the story."`` -> ``"I hated the story and true is true."``; ``"The new rights are nice enough"`` ->
``"The new rights are nice enough and true is true"``. (The authors' script splits at the first mark and keeps only
the first part, which cuts a hypothesis of several sentences, or one with "Mr.", short; here nothing is cut.)

The *noise* set (section 4.3):

``spelling_error``   one word of the hypothesis misspelt, as the authors' generator does it: a word (a run of two or
                     more ASCII letters) drawn at random, one of its letters drawn at random and replaced by one of
                     that key's neighbours on the keyboard (:data:`KEYBOARD`, the authors' table; an upper-case
                     letter's neighbour is upper-case). The draws use ``random.Random`` seeded by the set's seed and
                     the row's id and hypothesis, so a row gets the same typo in any sample and any order. A
                     hypothesis without such a word (none in MNLI dev_matched) is left out of the set.

Each stressed row is a new :class:`~hildif.data.example.Example`: id ``<row id>@<set name>``, the same label,
the row's metadata plus ``stress`` (the set's name) and ``source_id`` (the row's id).
"""

from __future__ import annotations

import random
import re
from typing import Callable, Iterable, Sequence

from hildif.data.example import Example
from hildif.errors import HildifError

WORD_OVERLAP_PHRASE = " and true is true"
NEGATION_PHRASE = " and false is not true"
LENGTH_MISMATCH_REPEATS = 5

# the authors' keyboard neighbours (make_grammar_adv_samples_jsonl.py, perturb_word_kb)
KEYBOARD: dict[str, tuple[str, ...]] = {
    "a": ("s",), "b": ("v", "n"), "c": ("x", "v"), "d": ("s", "f"), "e": ("r", "w"), "f": ("g", "d"),
    "g": ("f", "h"), "h": ("g", "j"), "i": ("u", "o"), "j": ("h", "k"), "k": ("j", "l"), "l": ("k",),
    "m": ("n",), "n": ("m", "b"), "o": ("i", "p"), "p": ("o",), "q": ("w",), "r": ("t", "e"), "s": ("d", "a"),
    "t": ("r", "y"), "u": ("y", "i"), "v": ("c", "b"), "w": ("e", "q"), "x": ("z", "c"), "y": ("t", "u"),
    "z": ("x",),
}

_FINAL_MARKS = re.compile(r"[.!?]+$")
_WORD = re.compile(r"[A-Za-z]{2,}")


class StressSetError(HildifError, ValueError):
    """An unknown stress set was asked for; the message names it and the known ones."""


def append_phrase(text: str, phrase: str) -> str:
    """``text`` with ``phrase`` after its last word: before a closing run of ``.``/``!``/``?`` (and the spaces before
    it), else at the end; trailing whitespace dropped. ``append_phrase("It rained.", " and true is true")`` ->
    ``"It rained and true is true."``."""
    body = text.rstrip()
    mark = _FINAL_MARKS.search(body)
    if not mark:
        return body + phrase
    before = body[: mark.start()]
    words = before.rstrip()
    return words + phrase + before[len(words):] + body[mark.start():]


def _stressed(example: Example, name: str, premise: str, hypothesis: str) -> Example:
    return Example(f"{example.id}@{name}", premise, hypothesis, example.label,
                   {**example.metadata, "stress": name, "source_id": example.id})


def _hypothesis(example: Example) -> str:
    if example.hypothesis is None:
        raise StressSetError(f"example {example.id!r} has no hypothesis: the stress sets are built from NLI pairs")
    return example.hypothesis


def word_overlap(example: Example) -> Example:
    """The hypothesis + ``" and true is true"`` (:func:`append_phrase`)."""
    return _stressed(example, "word_overlap", example.premise,
                     append_phrase(_hypothesis(example), WORD_OVERLAP_PHRASE))


def negation(example: Example) -> Example:
    """The hypothesis + ``" and false is not true"`` (:func:`append_phrase`)."""
    return _stressed(example, "negation", example.premise, append_phrase(_hypothesis(example), NEGATION_PHRASE))


def length_mismatch(example: Example) -> Example:
    """The premise + ``" and true is true"`` five times (:func:`append_phrase`)."""
    return _stressed(example, "length_mismatch",
                     append_phrase(example.premise, WORD_OVERLAP_PHRASE * LENGTH_MISMATCH_REPEATS),
                     _hypothesis(example))


def misspell(text: str, rng: random.Random) -> str | None:
    """``text`` with one keyboard typo: a word of two or more ASCII letters drawn with ``rng``, one of its letters
    drawn and replaced by one of its :data:`KEYBOARD` neighbours (case kept). None when ``text`` has no such word."""
    words = list(_WORD.finditer(text))
    if not words:
        return None
    word = rng.choice(words)
    at = word.start() + rng.randrange(len(word.group()))
    letter = text[at]
    typo = rng.choice(KEYBOARD[letter.lower()])
    return text[:at] + (typo.upper() if letter.isupper() else typo) + text[at + 1:]


def spelling_error(example: Example, seed: int = 0) -> Example | None:
    """The hypothesis with one keyboard typo (:func:`misspell`), drawn with ``random.Random`` seeded by ``seed``,
    the row's id and its hypothesis; None when the hypothesis has no word to misspell."""
    hypothesis = _hypothesis(example)
    typo = misspell(hypothesis, random.Random(f"naik-spelling:{seed}:{example.id}:{hypothesis}"))
    return None if typo is None else _stressed(example, "spelling_error", example.premise, typo)


RULES: dict[str, Callable[..., Example | None]] = {
    "word_overlap": word_overlap,
    "negation": negation,
    "length_mismatch": length_mismatch,
    "spelling_error": spelling_error,
}
# the names, in the paper's order (hildif.config.STRESS_SETS holds the same)
STRESS_SETS: tuple[str, ...] = tuple(RULES)


def check_names(names: Iterable[str]) -> list[str]:
    """``names`` as a list, or a :class:`StressSetError` naming the first unknown one and the known ones."""
    names = list(names)
    for name in names:
        if name not in RULES:
            raise StressSetError(f"unknown stress set {name!r} (known: {', '.join(STRESS_SETS)})")
    return names


def build_stress_set(name: str, examples: Sequence[Example], seed: int = 0) -> list[Example]:
    """The stress set ``name`` of ``examples`` (n rows in, n rows out in their order; ``spelling_error`` leaves out
    a row with no word to misspell)."""
    rule = RULES[check_names([name])[0]]
    made = (rule(ex, seed) if name == "spelling_error" else rule(ex) for ex in examples)
    return [ex for ex in made if ex is not None]


def stress_sets(examples: Sequence[Example], names: Iterable[str], seed: int = 0) -> dict[str, list[Example]]:
    """``{name: build_stress_set(name, examples, seed)}`` for each of ``names``, in their order."""
    return {name: build_stress_set(name, examples, seed) for name in check_names(names)}


__all__ = ["KEYBOARD", "LENGTH_MISMATCH_REPEATS", "NEGATION_PHRASE", "RULES", "STRESS_SETS", "StressSetError",
           "WORD_OVERLAP_PHRASE", "append_phrase", "build_stress_set", "check_names", "length_mismatch",
           "misspell", "negation", "spelling_error", "stress_sets", "word_overlap"]
