"""Word-level EDA operations (random swap, deletion, insertion; Wei & Zou 2019, as the original HILDIF code used) to
fill the copies that synonyms and back translation cannot make distinct (``feedback.fill_augmenters``).

Label safety for NLI. Only the premise is changed: the hypothesis is the claim the label is about, and swapping or
dropping one of its words turns an entailed claim into another one ("the doctor saw the actor" -> "the actor saw the
doctor" is the HANS trap itself). In the premise, these words are never moved, deleted or swapped with a neighbour:

* negation and other function words whose loss flips a label (:data:`NEGATION_WORDS` plus the synonym augmenter's
  :data:`~hildif.feedback.augmentation.synonym.PROTECTED_WORDS`: not, no, never, n't, nobody, nothing, ...);
* every word that also occurs in the hypothesis (the overlap is the evidence for or against entailment, and its
  order is the subject/object structure the label depends on);
* punctuation.

So an operation touches only premise words the hypothesis does not mention: the noise EDA adds without moving the
part the label rests on. Deletion uses nlpaug's ``RandomWordAug(action="delete")`` with those words as
``stopwords``; swap uses ``RandomWordAug(action="swap")``, whose partner (a neighbour) is also kept off the protected
words; insertion puts a single-word WordNet synonym of an unprotected premise word at a random position (the EDA
paper's random insertion; WordNet as built by :mod:`hildif.feedback.resources`).
"""

from __future__ import annotations

import re

from hildif.config import ConfigError
from hildif.feedback.augmentation.seeding import seeded
from hildif.feedback.augmentation.synonym import _TOKEN, PROTECTED_WORDS, _SpacingTokenizer

NEGATION_WORDS = frozenset(
    "not no never n't nobody nothing none nowhere neither nor without cannot can't won't don't doesn't didn't isn't "
    "aren't wasn't weren't hasn't haven't hadn't shouldn't wouldn't couldn't mustn't hardly barely scarcely few "
    "all every some any each only".split()
)
OPERATIONS = ("swap", "delete", "insert")
_WORD = re.compile(r"\w")
_NO_SPACE_BEFORE = re.compile(r"^(?:[.,;:!?%)\]}]|'s|n't|'re|'ve|'ll|'d|'m)$", re.IGNORECASE)


class _Protected(frozenset):
    """nlpaug's ``token in stopwords``: true for the protected words (any case) and for punctuation."""

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, str):
            return False
        return not _WORD.search(item) or frozenset.__contains__(self, item.lower())


def _detokenize(tokens: list[str]) -> str:
    out = ""
    for t in tokens:
        if not t:
            continue
        if out and not _NO_SPACE_BEFORE.match(t) and not out.endswith(("(", "[", "{", "$")):
            out += " "
        out += t
    return out


def protected_words(hypothesis: str) -> _Protected:
    """The premise words an EDA operation leaves alone for this hypothesis (see the module docstring)."""
    return _Protected(NEGATION_WORDS | PROTECTED_WORDS | {t.lower() for t in _TOKEN.findall(hypothesis)})


class EdaAugmenter:
    """One EDA operation (``swap``, ``delete`` or ``insert``) on about ``aug_p`` of the premise's words (at least
    one, at most ``aug_max``), deterministic given the seed; the hypothesis is returned unchanged."""

    deterministic = False

    def __init__(self, operation: str, aug_p: float = 0.1, aug_max: int = 3) -> None:
        if operation not in OPERATIONS:
            raise ConfigError(f"feedback.fill_augmenters: unknown operation {operation!r} (known: {', '.join(OPERATIONS)})")
        self.name = operation
        self.aug_p, self.aug_max = aug_p, aug_max
        self._wordnet = None
        if operation == "insert":
            from hildif.feedback.resources import ensure_wordnet, load_wordnet

            ensure_wordnet()
            self._wordnet = load_wordnet()
            self._aug = None
            return
        import nlpaug.augmenter.word as naw

        outer = self

        class _Aug(naw.RandomWordAug):
            def _get_random_aug_idxes(self, tokens):  # a word to swap needs an unprotected neighbour
                idxes = [i for i in self.pre_skip_aug(tokens) if self.action != "swap" or
                         any(0 <= q < len(tokens) and q not in outer._fixed for q in (i - 1, i + 1))]
                return self.sample(idxes, min(self.generate_aug_cnt(len(tokens)), len(idxes)))

            def _get_swap_position(self, pos, token_length):  # never swap with a protected neighbour
                options = [q for q in (pos - 1, pos + 1) if 0 <= q <= token_length and q not in outer._fixed]
                return self.sample(options, 1)[0] if options else pos

        self._fixed: set[int] = set()
        self._tok = _SpacingTokenizer()
        self._aug = _Aug(action=operation, aug_p=aug_p, aug_min=1, aug_max=aug_max, tokenizer=self._tok.tokenize,
                         reverse_tokenizer=self._detokenize)

    def _detokenize(self, tokens: list[str]) -> str:
        """The original spacing when the token count is unchanged (swap), else single spaces by punctuation rules."""
        tokens = [t for t in tokens if t]
        if len(tokens) == len(self._tok._spaces):
            return self._tok.detokenize(tokens)
        return _detokenize(tokens)

    def _insert(self, tokens: list[str], stop: _Protected) -> list[str]:
        import random

        candidates = [t for t in tokens if t not in stop and len(t) > 1]
        random.shuffle(candidates)
        n = max(1, min(self.aug_max, int(self.aug_p * len(tokens))))
        out = list(tokens)
        for word in candidates:
            if n == 0:
                break
            synonyms = sorted({lemma.name() for s in self._wordnet.synsets(word.lower()) for lemma in s.lemmas()
                               if "_" not in lemma.name() and "-" not in lemma.name()
                               and lemma.name().lower() != word.lower()})
            synonyms = [s for s in synonyms if s.lower() not in stop]
            if not synonyms:
                continue
            # not before the first token (keeps the capitalised start) and not after the final punctuation
            last = len(out) - 1 if out and not _WORD.search(out[-1]) else len(out)
            out.insert(random.randint(1, max(1, last)), random.choice(synonyms))
            n -= 1
        return out

    def augment_pair(self, premise: str, hypothesis: str, seed: int) -> tuple[str, str]:
        """One changed ``(premise, hypothesis)``; may equal the input when the premise has no word to touch."""
        stop = protected_words(hypothesis)
        tokens = _TOKEN.findall(premise)
        if not tokens:
            return premise, hypothesis
        with seeded(seed):
            if self._aug is None:
                return _detokenize(self._insert(tokens, stop)), hypothesis
            self._fixed = {i for i, t in enumerate(tokens) if t in stop}
            self._aug.stopwords = stop
            out = self._aug.augment(premise)
        out = out[0] if isinstance(out, list) else out
        return (out if out else premise), hypothesis

    def augment_batch(self, pairs: list[tuple[str, str]], seeds: list[int]) -> list[tuple[str, str] | None]:
        return [self.augment_pair(p, h, s) for (p, h), s in zip(pairs, seeds)]
