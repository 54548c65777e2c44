"""Construction minimal pairs: every construction in both labels, so that no construction, word or length predicts
the label (issue 25; after Min et al. 2020, who built their inversions and passives from MNLI's own sentences).

:mod:`hildif.feedback.augmentation.syntactic` gives each operation one label (a swap is always non-entailment, a
passive always entailment): fine-tuned on them, the model learns each construction's surface as a cue ("a passive
means entailment"). Here every source clause ``C = X V Y`` of a team's own sentence gives *minimal pairs*: two
examples of the same construction and premise form that differ in the one thing that decides the label.

=============  =======================================  ===========================  ===========================
construction   premise                                  entailment member            non-entailment member
=============  =======================================  ===========================  ===========================
``order``      the source sentence                      ``X V Y`` (its clause)       ``Y V X`` (roles swapped)
``passive``    the source sentence                      ``Y was V by X``             ``X was V by Y``
``swap``       the clause ``X V Y`` alone (short)       ``X V Y`` (the premise)      ``Y V X`` (roles swapped)
``voice``      the clause ``X V Y`` alone (short, as    ``Y was V by X``             ``X was V by Y``
               short as the clause)
``active``     the clause's passive ``Y was V by X``    ``X V Y``                    ``Y V X``
``embedding``  ``S F that C`` / ``S N that C``          F factive: ``C`` holds        N non-factive: ``C`` need
                                                                                     not hold
``adverbial``  ``A C , Z`` / ``B C , Z``                A veridical (``because``):   B non-veridical (``if``):
                                                        ``C`` holds                  ``C`` need not hold
``coordination`` ``C and Z`` / ``C or Z``               conjunction: ``C`` holds     disjunction: ``C`` need not
                                                                                     hold
``modifier``   the source sentence                      ``X' V Y``: the subject       ``Z V Y``: the noun ``Z`` of
                                                        without its modifier         the subject's modifier made
                                                                                     the subject
=============  =======================================  ===========================  ===========================

Why each label holds:

* ``order`` / ``swap`` / ``passive`` / ``voice`` / ``active``: the clause is asserted by its sentence (no negation, modal, condition or
  non-factive verb above it, :func:`hildif.feedback.augmentation.syntactic._main_clause`), so ``X V Y`` and its
  passive are entailed; the verb is not symmetric (``meet``, ``marry`` are excluded), so with the roles swapped it
  is not. ``swap``'s entailed member repeats its premise: with ``voice`` and ``active`` beside it, a short premise
  meets an active and a passive hypothesis in both labels, so only the roles decide (the swap of a short clause is
  what moves a model on role order; a swap inside a long sentence, ``order``, does not, issue 25). Agreement is kept (past tense, or two nouns of one number); the passive needs a regular past tense (it is
  also the participle) and takes ``was``/``were`` from its new subject.
* ``embedding``: a factive verb (Kiparsky & Kiparsky 1970: ``knew``, ``realized``, ``noticed`` ...) presupposes its
  complement, a non-factive one (``thought``, ``hoped``, ``claimed`` ...) does not. ``S`` is the subject of another
  source sentence of the same batch.
* ``adverbial``: a veridical subordinator (``because``, ``since``, ``although``, ``now that``) asserts or
  presupposes its clause; a conditional one (``if``, ``unless``, ``in case``) does not. ``Z`` is the clause of another
  source sentence.
* ``coordination``: ``C and Z`` entails each conjunct; ``C or Z`` entails neither.
* ``modifier``: as :mod:`~hildif.feedback.augmentation.syntactic`'s ``modifier`` (entailed: dropping a modifier of
  the subject, not under ``no``/``every``/...) and ``pp``/``relcl`` (not entailed: another participant made the
  subject); a pair only when one sentence gives both.

The frame words are English function words and verbs of known semantics (the lists below), never an evaluation set's
templates or vocabulary. Parsing: spaCy's small English pipeline (:func:`~hildif.feedback.augmentation.syntactic.
load_parser`).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from hildif.config import ConfigError
from hildif.data.example import ENTAILMENT, NON_ENTAILMENT, Example
from hildif.feedback.augmentation.syntactic import (Clause, _intransitive, _main_clause, _norm, _phrase, _sentence,
                                                    _subsequence, load_parser)

CONSTRUCTIONS = ("order", "swap", "passive", "voice", "active", "embedding", "adverbial", "coordination", "modifier")
# factive verbs presuppose their complement (Kiparsky & Kiparsky 1970); past tense, as the frame is in the past
FACTIVE = ("knew", "realized", "noticed", "discovered", "learned", "remembered", "regretted", "revealed",
           "confirmed", "understood", "found out", "proved")
NON_FACTIVE = ("thought", "believed", "hoped", "assumed", "claimed", "suggested", "feared", "guessed", "imagined",
               "suspected", "expected", "alleged", "wished", "said", "doubted", "pretended")
# subordinators that assert or presuppose their clause; "when" and "after" are left out: with a present-tense clause
# they read generically ("when it rains, the street gets wet"), which does not assert the clause
VERIDICAL = ("because", "since", "although", "now that", "given that")
NON_VERIDICAL = ("if", "unless", "in case", "provided that")
PLURAL_WORDS = frozenset({"they", "them", "we", "us", "you"})
# who knows or thinks in an embedding frame: the other source's subject when it is a personal pronoun, else one of
# these (a frame's subject must be able to know or believe; the parser has no named entities to tell a person's name)
FRAME_SUBJECTS = ("He", "She", "They", "I", "We", "Someone", "Everyone")
PERSONAL = frozenset({"he", "she", "they", "i", "we", "you"})


@dataclass
class ConstructionResult:
    """``examples``: the pairs, two per minimal pair (ids ``<source id>~cx<k>``, metadata ``construction``,
    ``transformed_from``, ``member`` = ``entailment`` or ``non-entailment``); ``stats``: pairs per construction,
    sources read and sources that gave none."""

    examples: list[Example]
    stats: dict[str, Any]


@dataclass(frozen=True)
class _Source:
    """A parsed source sentence's usable parts: the transitive main clause (or None), the clause as a sentence and
    as an embeddable clause (lower-case start), its subject phrase, and its modifier pairs."""

    example: Example
    clause: Clause | None
    subject_plural: bool
    text: str | None  # "X V Y" / "X V" without the final stop, lower-case start unless a name
    subject: str | None  # the subject when it can know or believe (a personal pronoun), else None
    modifier: tuple[str, str] | None  # (entailed hypothesis, non-entailed hypothesis)


def _plural(token) -> bool:
    return token.tag_ in ("NNS", "NNPS") or token.lower_ in PLURAL_WORDS


def _parse_source(ex: Example, doc, max_phrase_tokens: int) -> _Source | None:
    sents = list(doc.sents)
    if not sents:
        return None
    verb = sents[0].root
    clause = _main_clause(verb, max_phrase_tokens)
    subj = next((c for c in verb.children if c.dep_ == "nsubj"), None)
    if clause is None and (not _intransitive(verb) or subj is None):
        return None
    start = verb.sent.start
    if clause is not None:
        text, subject = f"{clause.subject} {clause.verb} {clause.obj}", clause.subject
    else:
        subject = _phrase(subj, start, max_phrase_tokens, role_change=False)
        if not subject:
            return None
        words = sorted([c for c in verb.children if c.dep_ in ("aux", "prt")] + [verb], key=lambda t: t.i)
        text = f"{subject} {' '.join(t.text for t in words)}"
    mods = _subsequence(verb, max_phrase_tokens)
    ent = next((h for op, h in mods if op == "modifier"), None)
    non = next((h for op, h in mods if op in ("pp", "relcl")), None)
    person = subj is not None and subj.lower_ in PERSONAL
    return _Source(ex, clause, _plural(subj) if subj is not None else False, text, subject if person else None,
                   (ent, non) if ent and non else None)


def _be(plural: bool) -> str:
    return "were" if plural else "was"


def _pairs_of(src: _Source, other: _Source | None, rng: random.Random, constructions: set[str]
              ) -> list[tuple[str, str, str, str, str]]:
    """``[(construction, entailed premise, entailed hypothesis, non-entailed premise, non-entailed hypothesis)]``."""
    out = []
    c, P = src.clause, src.example.premise
    if c is not None:
        own, swapped = _sentence(f"{c.subject} {c.verb} {c.obj}"), _sentence(f"{c.obj_moved} {c.verb} {c.subject_moved}")
        if "order" in constructions:
            out.append(("order", P, own, P, swapped))
        if c.regular:
            kept = _sentence(f"{c.obj_moved} {_be(c.object_plural)} {c.verb} by {c.subject_moved}")
            roles = _sentence(f"{c.subject} {_be(src.subject_plural)} {c.verb} by {c.obj}")
            if "passive" in constructions:
                out.append(("passive", P, kept, P, roles))
            if "voice" in constructions:
                out.append(("voice", own, kept, own, roles))
            if "active" in constructions:
                out.append(("active", kept, own, kept, swapped))
        if "swap" in constructions:
            out.append(("swap", own, own, own, swapped))
    if src.modifier and "modifier" in constructions:
        out.append(("modifier", P, src.modifier[0], P, src.modifier[1]))
    if other is None or not src.text:
        return out
    C = src.text
    hyp = _sentence(C)
    if "embedding" in constructions:
        s = other.subject or rng.choice(FRAME_SUBJECTS)
        s = s[:1].upper() + s[1:]
        out.append(("embedding", f"{s} {rng.choice(FACTIVE)} that {C} .", hyp,
                    f"{s} {rng.choice(NON_FACTIVE)} that {C} .", hyp))
    if other.text and _norm(other.text) != _norm(C):
        z = other.text
        if "adverbial" in constructions:
            v, n = rng.choice(VERIDICAL), rng.choice(NON_VERIDICAL)
            out.append(("adverbial", _sentence(f"{v} {C} , {z}"), hyp, _sentence(f"{n} {C} , {z}"), hyp))
        if "coordination" in constructions:
            first = rng.random() < 0.5  # the clause asked about first or second, the same in both members
            a, b = (C, z) if first else (z, C)
            out.append(("coordination", _sentence(f"{a} and {b}"), hyp, _sentence(f"{a} or {b}"), hyp))
    return out


def construction_pairs(
    examples: Sequence[Example],
    *,
    constructions: Iterable[str] = CONSTRUCTIONS,
    per_source: int | None = None,
    max_phrase_tokens: int = 8,
    seed: int = 0,
    parser: Any = None,
) -> ConstructionResult:
    """Minimal pairs (both labels) of every construction each source example's premise allows.

    Args:
        examples: source examples (a team's own rows, e.g. the rated examples and their neighbourhood); only the
            premise is read, so the source's label does not matter.
        constructions: a subset of :data:`CONSTRUCTIONS`.
        per_source: at most this many minimal pairs per source (constructions in turn, seeded), None = all.
        seed: the draw of frame words and of the other source whose subject or clause a frame uses.
    Returns:
        :class:`ConstructionResult`: two examples per minimal pair, label 1 (entailment) and 0, adjacent.
    """
    wanted = list(constructions)
    unknown = [c for c in wanted if c not in CONSTRUCTIONS]
    if unknown:
        raise ConfigError(f"constructions: unknown {unknown} (known: {', '.join(CONSTRUCTIONS)})")
    if not examples or not wanted:
        return ConstructionResult([], {"sources": len(examples), "sources_without_pair": len(examples),
                                       "by_construction": {}})
    nlp = parser if parser is not None else load_parser()
    premises = sorted({e.premise for e in examples})
    parsed = dict(zip(premises, nlp.pipe(premises, batch_size=64)))
    sources = [_parse_source(e, parsed[e.premise], max_phrase_tokens) for e in examples]
    # every usable source with its clause normalised once (each source draws its frame partner among them)
    usable = [(s, _norm(s.text)) for s in sources if s is not None and s.text]
    rng = random.Random(seed)
    seen = {(_norm(e.premise), _norm(e.hypothesis or "")) for e in examples}
    out: list[Example] = []
    by: Counter[str] = Counter()
    empty = 0
    for src in sources:
        if src is None:
            empty += 1
            continue
        own = _norm(src.text or "")
        others = [o for o, norm in usable if o is not src and norm != own]
        other = rng.choice(others) if others else None
        made = _pairs_of(src, other, rng, set(wanted))
        rng.shuffle(made)
        k = 0
        for name, ent_p, ent_h, non_p, non_h in made:
            if per_source is not None and k >= per_source:
                break
            keys = ((_norm(ent_p), _norm(ent_h)), (_norm(non_p), _norm(non_h)))
            if keys[0] == keys[1] or any(key in seen for key in keys):
                continue
            seen.update(keys)
            base = str(src.example.id).split("~")[0]
            for label, p, h in ((ENTAILMENT, ent_p, ent_h), (NON_ENTAILMENT, non_p, non_h)):
                meta = {"construction": name, "transformed_from": src.example.id,
                        "member": "entailment" if label == ENTAILMENT else "non-entailment"}
                out.append(Example(f"{base}~cx{len(out)}", p, h, label, meta))
            by[name] += 1
            k += 1
        if k == 0:
            empty += 1
    return ConstructionResult(out, {"sources": len(examples), "sources_without_pair": empty,
                                    "by_construction": dict(by), "pairs": sum(by.values())})


__all__ = ["CONSTRUCTIONS", "FACTIVE", "NON_FACTIVE", "NON_VERIDICAL", "VERIDICAL", "ConstructionResult",
           "construction_pairs"]
