"""Back translation English -> pivot -> English: Apertium (rule-based, Debian) or MarianMT from local folders.

Apertium output is often wrong in ways that change the meaning ("The senator near the artists supported the
banker." -> "The senator approaches the artists leaned the banker."), so every round trip passes
:func:`roundtrip_ok` before it is used; rejected sentences count as failed copies.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

from hildif.feedback.resources import ResourceMissingError, pos_tag, require_apertium

_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")
_PRONOUNS = frozenset(
    "i me my you your he him his she her it its we us our they them their myself yourself himself herself "
    "itself ourselves themselves".split()
)
_RELATIONAL = frozenset(
    "near behind by with without before after above below under over between among from to into onto of in on at "
    "for against about around through since because although though if unless while whereas whether and or but "
    "than like".split()
)
_VERB_TAGS = frozenset({"VB", "VBD", "VBG", "VBN", "VBP", "VBZ", "MD"})
_SEPARATOR = "\n\n"


def roundtrip_ok(original: str, candidate: str, max_length_change: float = 0.25) -> bool:
    """Quality filter for a back-translated sentence. All must hold:

    * no Apertium marks (``*``, ``#``, ``@``) and no doubled space (a dropped word) that the original lacks;
    * token count within ``1 +/- max_length_change`` of the original's;
    * the same multiset of personal pronouns (Apertium often turns "he"/"I" into "it");
    * every number and every capitalised word after the first of the original kept, and no capitalised word after
      the first added (names survive, no mistranslated name or verb "Knew");
    * every preposition, conjunction and subordinator of the original still there (additions allowed): the
      relation words carry NLI labels ("near" -> "approaches" changes who did what);
    * the same number of verbs (VB*, MD under :func:`pos_tag`), which rejects clause-breaking output such as
      "The doctor near the actors danced." -> "The doctor approaches the actors danced.".
    """
    candidate = candidate.strip()
    if not candidate:
        return False
    for mark in ("*", "#", "@", "  "):
        if mark in candidate and mark not in original:
            return False
    a, b = _WORD.findall(original), _WORD.findall(candidate)
    if not a or abs(len(b) - len(a)) > max_length_change * len(a):
        return False
    if Counter(w.lower() for w in a if w.lower() in _PRONOUNS) != Counter(
        w.lower() for w in b if w.lower() in _PRONOUNS
    ):
        return False

    lost = Counter(w.lower() for w in a if w.lower() in _RELATIONAL)
    lost.subtract(Counter(w.lower() for w in b if w.lower() in _RELATIONAL))
    if any(v > 0 for v in lost.values()):
        return False

    def anchors(words: list[str]) -> set[str]:
        return {w for w in words[1:] if w[0].isupper() or w[0].isdigit()} | {w for w in words[:1] if w[0].isdigit()}

    if anchors(a) != anchors(b):
        return False

    def verbs(words: list[str]) -> int:
        return sum(tag in _VERB_TAGS for _, tag in pos_tag(words))

    return verbs(a) == verbs(b)


class ApertiumBackTranslator:
    """Round trip through Apertium (``apertium -u eng-spa | apertium -u spa-eng``), batched in one subprocess call.

    Deterministic: the seed is ignored and results are cached per sentence. A pair whose premise or hypothesis
    fails :func:`roundtrip_ok` yields ``None``.
    """

    name = "backtranslation"
    deterministic = True

    def __init__(self, pair: str = "eng-spa", quality_filter: bool = True, timeout_s: float = 600.0) -> None:
        require_apertium(pair)
        src, tgt = pair.split("-", 1)
        self.pair = pair
        self._commands = (["apertium", "-u", f"{src}-{tgt}"], ["apertium", "-u", f"{tgt}-{src}"])
        self.quality_filter = quality_filter
        self.timeout_s = timeout_s
        self._cache: dict[str, str | None] = {}
        self.rejected = 0

    def _run(self, command: list[str], texts: list[str]) -> list[str]:
        payload = _SEPARATOR.join(" ".join(t.split()) for t in texts) + "\n"
        proc = subprocess.run(command, input=payload, capture_output=True, text=True, timeout=self.timeout_s)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode}): {proc.stderr.strip()[:500]}")
        out = [o.strip() for o in proc.stdout.strip("\n").split(_SEPARATOR)]
        if len(out) != len(texts):
            raise RuntimeError(f"{' '.join(command)} returned {len(out)} texts for {len(texts)} inputs")
        return out

    def translate(self, texts: list[str]) -> list[str | None]:
        """Round-trip each text; ``None`` where the result fails the quality filter."""
        todo = sorted({t for t in texts if t not in self._cache and t.strip()})
        if todo:
            back = self._run(self._commands[1], self._run(self._commands[0], todo))
            for original, result in zip(todo, back):
                ok = not self.quality_filter or roundtrip_ok(original, result)
                self.rejected += not ok
                self._cache[original] = result if ok else None
        return [self._cache.get(t, t) for t in texts]

    def augment_batch(self, pairs: list[tuple[str, str]], seeds: list[int]) -> list[tuple[str, str] | None]:
        translated = self.translate([p for p, _ in pairs] + [h for _, h in pairs])
        premises, hypotheses = translated[: len(pairs)], translated[len(pairs) :]
        return [None if p is None or h is None else (p, h) for p, h in zip(premises, hypotheses)]


class MarianBackTranslator:
    """nlpaug ``BackTranslationAug`` over two local MarianMT folders (English -> pivot, pivot -> English).

    Only used when both folders are configured (``feedback.marian_model_dirs``); nothing is downloaded.
    """

    name = "backtranslation"
    deterministic = True

    def __init__(self, to_pivot_dir: str, from_pivot_dir: str, device: str = "cpu", quality_filter: bool = True):
        missing = [d for d in (to_pivot_dir, from_pivot_dir) if not (Path(d) / "config.json").is_file()]
        if missing:
            raise ResourceMissingError(
                f"MarianMT model folder(s) without config.json: {', '.join(missing)}; put opus-mt-en-xx and "
                "opus-mt-xx-en folders there, or leave feedback.marian_model_dirs empty to use Apertium"
            )
        import nlpaug.augmenter.word as naw

        self._aug = naw.BackTranslationAug(from_model_name=to_pivot_dir, to_model_name=from_pivot_dir, device=device)
        self.quality_filter = quality_filter
        self._cache: dict[str, str | None] = {}

    def augment_batch(self, pairs: list[tuple[str, str]], seeds: list[int]) -> list[tuple[str, str] | None]:
        texts = sorted({t for pair in pairs for t in pair if t not in self._cache})
        if texts:
            for text, out in zip(texts, self._aug.augment(texts)):
                self._cache[text] = out if (not self.quality_filter or roundtrip_ok(text, out)) else None
        results = [(self._cache[p], self._cache[h]) for p, h in pairs]
        return [None if p is None or h is None else (p, h) for p, h in results]
