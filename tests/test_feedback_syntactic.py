"""Syntactic augmentation (hildif.feedback.augmentation.syntactic) with the real spaCy parser, checked against HANS:
HANS's own templates are the transformations, so its premise/hypothesis pairs are exact references."""

from __future__ import annotations

import pytest

from hildif.data.example import Example
from hildif.feedback.augmentation.syntactic import load_parser, syntactic_examples, transformations


@pytest.fixture(scope="module")
def nlp():
    return load_parser()


def _norm(text: str) -> str:
    return " ".join(text.replace(" .", ".").split()).casefold()


def _by_subcase(data_dir, subcase: str, n: int = 150):
    from hildif.config import DataConfig
    from hildif.data import load_hans

    rows = [e for e in load_hans(DataConfig(data_dir=str(data_dir))) if e.metadata.get("subcase") == subcase]
    assert rows, subcase
    return rows[:n]


def _ops(nlp, sentence: str, premise_side: bool = True) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for op, hyp in transformations(nlp(sentence), premise_side=premise_side):
        out.setdefault(op, []).append(hyp)
    return out


def test_swap_reproduces_hans_subject_object_swap(nlp, data_dir):
    rows = _by_subcase(data_dir, "ln_subject/object_swap")
    hits = sum(any(_norm(h) == _norm(e.hypothesis) for h in _ops(nlp, e.premise).get("swap", [])) for e in rows)
    assert hits >= 0.9 * len(rows), f"{hits}/{len(rows)}"


def test_passive_reproduces_hans_passive_premises(nlp, data_dir):
    # le_passive: premise "The athlete was recognized by the professors", hypothesis its active form (entailed)
    rows = [e for e in _by_subcase(data_dir, "le_passive", 300) if e.hypothesis.split()[2].endswith("ed")]
    assert len(rows) > 50
    hits = sum(any(_norm(h) == _norm(e.premise) for h in _ops(nlp, e.hypothesis).get("passive", [])) for e in rows)
    assert hits >= 0.9 * len(rows), f"{hits}/{len(rows)}"


@pytest.mark.parametrize("subcase", ["cn_embedded_under_verb", "cn_embedded_under_if"])
def test_embedded_reproduces_hans_non_entailed_clauses(nlp, data_dir, subcase):
    rows = _by_subcase(data_dir, subcase)
    ops = [_ops(nlp, e.premise) for e in rows]
    hits = sum(any(_norm(h) == _norm(e.hypothesis) for h in o.get("embedded", [])) for e, o in zip(rows, ops))
    assert hits >= 0.6 * len(rows), f"{hits}/{len(rows)}"
    # and the clause under the condition or the verb is never offered as entailed
    assert not any(_norm(h) == _norm(e.hypothesis) for e, o in zip(rows, ops) for h in o.get("clause", []))


def test_factive_and_asserted_clauses_are_not_called_non_entailed(nlp, data_dir):
    for subcase in ("ce_embedded_under_verb", "ce_after_since_clause"):
        for e in _by_subcase(data_dir, subcase, 60):
            assert not any(_norm(h) == _norm(e.hypothesis) for h in _ops(nlp, e.premise).get("embedded", [])), e


@pytest.mark.parametrize("sentence", [
    "The doctor did not advise the lawyer .",          # negation
    "The doctor might advise the lawyer .",            # modal
    "Everyone advised the lawyer .",                   # a pronoun without an object form
    "The doctor married the lawyer .",                 # symmetric verb: the swap would be entailed
    "If the actor slept , the doctor advised the lawyer .",  # a conditional main clause is not asserted
])
def test_unsafe_clauses_give_no_swap_passive_or_clause(nlp, sentence):
    ops = _ops(nlp, sentence)
    assert not ops.get("swap") and not ops.get("passive") and not ops.get("clause"), ops


def test_pronouns_change_case_when_they_change_role(nlp):
    ops = _ops(nlp, "He advised the lawyers in the morning .")
    assert ops["swap"] == ["The lawyers advised him ."]
    assert ops["passive"] == ["The lawyers were advised by him ."]
    assert ops["clause"] == ["He advised the lawyers ."]


def test_long_noun_phrases_keep_their_core(nlp):
    ops = _ops(nlp, "The senator who lived near the old harbour in the north praised the young artists .")
    assert ops["swap"] == ["The young artists praised the senator ."]
    assert ops["clause"] == ["The senator praised the young artists ."]


def test_examples_labels_ids_caps_and_dedup(nlp):
    ex = [
        Example("a", "The doctor advised the lawyers in the morning .", "The doctor advised someone .", 1,
                {"score": 4}),
        Example("a~aug0", "The doctor advised the lawyers in the morning .", "A doctor advised someone .", 1,
                {"augmented_from": "a", "score": 4}),
        Example("b", "It rained .", "It was wet .", 1),
    ]
    res = syntactic_examples(ex, per_example=3, parser=nlp)
    by_op = {e.metadata["syntactic"]: e for e in res.examples if e.metadata["transformed_from"] == "a"}
    assert _norm(by_op["swap"].hypothesis) == _norm("The lawyers advised the doctor.") and by_op["swap"].label == 0
    assert _norm(by_op["passive"].hypothesis) == _norm("The lawyers were advised by the doctor.")
    assert by_op["passive"].label == 1 and by_op["clause"].label == 1
    assert all(e.premise == ex[0].premise for e in res.examples)
    # the copy has the same premise: its transformations would repeat the original's and are dropped
    assert not [e for e in res.examples if e.metadata["transformed_from"] == "a~aug0"]
    assert [e.id for e in res.examples] == [f"a~syn{i}" for i in range(len(res.examples))]
    assert res.stats["produced"] == len(res.examples) == 3 and res.stats["requested"] == 9
    assert res.stats["sources_without_transform"] == 2
    assert res.stats["by_label"] == {"entailment": 2, "non-entailment": 1}
    one = syntactic_examples(ex[:1], per_example=1, parser=nlp)
    assert len(one.examples) == 1
    assert syntactic_examples(ex, per_example=0, parser=nlp).examples == []
    with pytest.raises(ValueError, match="unknown operation"):
        syntactic_examples(ex, operations=["swap", "cleft"], parser=nlp)


def test_one_pair_per_example_alternates_the_classes(nlp):
    # every premise offers swap (non-entailment) and passive/clause (entailment): one pair each must not be all
    # swaps (a fixed operation order did that), but alternate so the set stays balanced
    subjects = ["The doctor", "The lawyer", "The artist", "The senator", "The banker", "The student"]
    objects = ["the tourists", "the managers", "the athletes", "the authors", "the judges", "the actors"]
    ex = [Example(f"e{i}", f"{s} advised {o} .", "Someone advised someone .", 0) for i, (s, o) in
          enumerate(zip(subjects, objects))]
    res = syntactic_examples(ex, per_example=1, parser=nlp)
    assert len(res.examples) == len(ex)
    assert res.stats["by_label"] == {"entailment": 3, "non-entailment": 3}
    assert [e.label for e in res.examples] == [0, 1, 0, 1, 0, 1]


def test_clause_premises_are_as_short_as_hans(nlp):
    ex = [Example("a", "The doctor who met the banker advised the lawyers in the morning .", "x", 0)]
    res = syntactic_examples(ex, per_example=3, premise="clause", parser=nlp)
    pairs = {e.metadata["syntactic"]: (_norm(e.premise), _norm(e.hypothesis), e.label) for e in res.examples}
    clause = _norm("The doctor who met the banker advised the lawyers.")
    assert pairs["swap"] == (clause, _norm("The lawyers advised the doctor who met the banker."), 0)
    assert pairs["passive"] == (clause, _norm("The lawyers were advised by the doctor who met the banker."), 1)
    # "clause" needs the whole sentence as its premise (the clause is entailed by it)
    assert pairs["clause"] == (_norm(ex[0].premise), clause, 1)
    source = syntactic_examples(ex, per_example=3, parser=nlp)
    assert {e.premise for e in source.examples} == {ex[0].premise}
    with pytest.raises(ValueError, match="syntactic_premise"):
        syntactic_examples(ex, premise="short", parser=nlp)


# the subsequence family (feedback.syntactic: modifier, pp, relcl, nps): each operation rebuilds HANS's own
# hypotheses from HANS's premises, and none offers a non-entailed subsequence as entailed
@pytest.mark.parametrize("subcase,op,share", [
    ("sn_PP_on_subject", "pp", 0.6), ("sn_relative_clause_on_subject", "relcl", 0.6), ("sn_NP/S", "nps", 0.6),
    ("se_adjective", "modifier", 0.6), ("se_relative_clause_on_obj", "modifier", 0.5), ("se_PP_on_obj", "modifier", 0.2),
])
def test_subsequence_operations_reproduce_hans(nlp, data_dir, subcase, op, share):
    rows = _by_subcase(data_dir, subcase)
    hits = sum(any(_norm(h) == _norm(e.hypothesis) for h in _ops(nlp, e.premise).get(op, [])) for e in rows)
    assert hits >= share * len(rows), f"{subcase}: {op} rebuilt {hits}/{len(rows)}"


@pytest.mark.parametrize("subcase", ["sn_PP_on_subject", "sn_relative_clause_on_subject", "sn_NP/S",
                                     "sn_past_participle", "sn_NP/Z"])
def test_non_entailed_subsequences_are_never_offered_as_entailed(nlp, data_dir, subcase):
    rows = _by_subcase(data_dir, subcase)
    wrong = [e.premise for e in rows
             if any(_norm(h) == _norm(e.hypothesis) for op in ("modifier",) for h in _ops(nlp, e.premise).get(op, []))]
    assert not wrong, wrong[:3]


@pytest.mark.parametrize("sentence", [
    "No student in the class passed the exam .",       # dropping a modifier under "no" is not entailed
    "The former president visited the school .",       # a privative adjective
    "Members of the board approved the plan .",        # "of": the board is not the one who approved
])
def test_subsequence_operations_skip_unsafe_sentences(nlp, sentence):
    ops = _ops(nlp, sentence)
    if "modifier" in ops:  # "Members approved the plan" is entailed; "The board approved the plan" is not offered
        assert sentence.startswith("Members") and ops["modifier"] == ["Members approved the plan ."]
    assert "pp" not in ops and "relcl" not in ops


def test_subsequence_operations_are_chosen_by_name_and_keep_their_labels(nlp):
    src = [Example("s1", "The lawyer near the judges advised the doctor .", "A lawyer gave advice .", 1),
           Example("s2", "The manager knew the athlete won the race .", "Someone won .", 1)]
    res = syntactic_examples(src, per_example=4, operations=["modifier", "pp", "nps"], parser=nlp)
    got = {(e.hypothesis, e.label, e.metadata["syntactic"]) for e in res.examples}
    assert got == {("The lawyer advised the doctor .", 1, "modifier"), ("The judges advised the doctor .", 0, "pp"),
                   ("The manager knew the athlete .", 0, "nps")}
    assert all(e.premise == s.premise for e in res.examples for s in src if e.metadata["transformed_from"] == s.id)
    # the default operations are the four of before: no subsequence pair unless asked for
    assert not {e.metadata["syntactic"] for e in syntactic_examples(src, per_example=4, parser=nlp).examples} \
        & {"modifier", "pp", "relcl", "nps"}
