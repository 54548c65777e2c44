"""WordNet synonym replacement with nlpaug's ``SynonymAug``, offline, applied consistently to a premise/hypothesis pair.

A word replaced in the premise is replaced by the same synonym wherever it occurs in the hypothesis, so the
lexical relation between the two sentences (overlap, order, subsequence) survives; hypothesis words that do not
occur in the premise are then replaced on their own. Spacing and punctuation of the original are kept.
"""

from __future__ import annotations

import re

from hildif.feedback.augmentation.seeding import seeded
from hildif.feedback.resources import ensure_wordnet, pos_tag

_TOKEN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")
# Penn tags never replaced: names, pronouns, function words, numbers. Replacing them changes who does what
# ("Reich" -> "Steve reich", "us" -> "united states", "not" -> "non"), which can flip the NLI label.
SKIP_TAGS = frozenset(
    {"DT", "PDT", "WDT", "NNP", "NNPS", "PRP", "PRP$", "WP", "WP$", "WRB", "IN", "CC", "MD", "TO", "POS", "CD", "EX",
     "RP", "UH", "SYM", "LS", "FW"}
)
# Words never replaced whatever their tag: auxiliaries and negation (the tagger labels them as verbs/adverbs).
PROTECTED_WORDS = frozenset(
    "be am is are was were been being have has had having do does did done not no never n't nor neither only "
    "also too very just".split()
)


class _SpacingTokenizer:
    """nlpaug tokenizer pair that remembers the whitespace after each token, so untouched text stays byte-equal."""

    def __init__(self) -> None:
        self._spaces: list[str] = []

    def tokenize(self, text: str) -> list[str]:
        tokens, spaces = [], []
        for match in _TOKEN.finditer(text):
            tokens.append(match.group())
            end = match.end()
            nxt = _TOKEN.search(text, end)
            spaces.append(text[end : nxt.start()] if nxt else text[end:])
        self._spaces = spaces
        return tokens

    def detokenize(self, tokens: list[str]) -> str:
        if len(tokens) != len(self._spaces):  # not expected for substitution; fall back to single spaces
            return " ".join(tokens)
        return "".join(t + s for t, s in zip(tokens, self._spaces)).strip()


class _CaseInsensitive(frozenset):
    """A stop-word set that nlpaug's ``token in stopwords`` test checks case-insensitively."""

    def __contains__(self, item: object) -> bool:
        return isinstance(item, str) and frozenset.__contains__(self, item.lower())


class SynonymAugmenter:
    """Replace about ``aug_p`` of the words (at most ``aug_max``) with WordNet synonyms of the same part of speech.

    Deterministic given the seed. Builds the project's WordNet corpus on first use
    (:func:`hildif.feedback.resources.ensure_wordnet`); raises ``ResourceMissingError`` when WordNet is not installed.
    """

    name = "synonym"
    deterministic = False

    def __init__(self, aug_p: float = 0.3, aug_max: int = 10, stopwords: tuple[str, ...] = ()) -> None:
        ensure_wordnet()
        import nlpaug.augmenter.word as naw

        self._tok = _SpacingTokenizer()
        self._stop = _CaseInsensitive(PROTECTED_WORDS | {w.lower() for w in stopwords})
        class _Aug(naw.SynonymAug):
            def skip_aug(self, token_idxes, tokens):  # nlpaug only skips DT; skip SKIP_TAGS too
                return [i for i in token_idxes if tokens[i][1] not in SKIP_TAGS and len(tokens[i][0]) > 1]

        self._aug = _Aug(
            aug_src="wordnet",
            aug_p=aug_p,
            aug_max=aug_max,
            tokenizer=self._tok.tokenize,
            reverse_tokenizer=self._tok.detokenize,
        )
        model = self._aug.model
        model.pos_tag = pos_tag  # instance attribute: the offline tagger instead of nltk.pos_tag
        lookup = model.predict
        # single-word synonyms only: a multi-word one ("trip the light fantastic") breaks the sentence's structure
        model.predict = lambda word, pos=None: [c for c in lookup(word, pos=pos) if "_" not in c and "-" not in c]
        self._aug.include_detail = True

    def _substitute(self, text: str, extra_stop: frozenset[str]) -> tuple[str, dict[str, str]]:
        if not text.strip():
            return text, {}
        self._aug.stopwords = _CaseInsensitive(self._stop | extra_stop)
        out = self._aug.substitute(text)
        new_text, logs = out if isinstance(out, tuple) else (out, [])
        return new_text, {log["orig_token"].lower(): log["new_token"] for log in logs}

    def augment_pair(self, premise: str, hypothesis: str, seed: int) -> tuple[str, str]:
        """One augmented ``(premise, hypothesis)``; may equal the input when no word has a synonym."""
        with seeded(seed):
            new_premise, mapping = self._substitute(premise, frozenset())
            tokens = self._tok.tokenize(hypothesis)
            mapped = [
                self._aug.align_capitalization(t, mapping[t.lower()]) if t.lower() in mapping else t for t in tokens
            ]
            partial = self._tok.detokenize(mapped)
            keep = frozenset(t.lower() for t in self._tok.tokenize(premise)) | frozenset(
                w.lower() for v in mapping.values() for w in v.split()
            )
            new_hypothesis, _ = self._substitute(partial, keep)
        return new_premise, new_hypothesis

    def augment_batch(self, pairs: list[tuple[str, str]], seeds: list[int]) -> list[tuple[str, str] | None]:
        """``augment_pair`` over a batch; never rejects (returns no ``None``)."""
        return [self.augment_pair(p, h, s) for (p, h), s in zip(pairs, seeds)]
