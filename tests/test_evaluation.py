import json

import pytest

from hildif.data.example import Example
from hildif.model.evaluation import evaluate, figure_1c_markdown, hans_table, mnli_table, write_report


def hx(i, heuristic, label, subcase):
    return Example(f"ex{i}", "p", "h", label, {"heuristic": heuristic, "subcase": subcase})


def test_hans_table_matches_a_hand_computed_case():
    ex = [
        hx(0, "lexical_overlap", 1, "ln_a"), hx(1, "lexical_overlap", 1, "ln_a"),   # ent: 1 of 2 right
        hx(2, "lexical_overlap", 0, "ln_b"), hx(3, "lexical_overlap", 0, "ln_b"),   # non: 0 of 2
        hx(4, "subsequence", 1, "sn_a"),                                           # ent: 1 of 1
        hx(5, "subsequence", 0, "sn_b"), hx(6, "subsequence", 0, "sn_b"), hx(7, "subsequence", 0, "sn_b"),  # 2/3
        hx(8, "constituent", 0, "cn_b"),                                           # non: 1 of 1
    ]
    pred = [1, 0, 1, 1, 1, 0, 1, 0, 0]
    t = hans_table(ex, pred)
    assert t["by_heuristic"]["lexical_overlap"] == {"entailment": 50.0, "non-entailment": 0.0, "n": 4}
    assert t["by_heuristic"]["subsequence"] == {"entailment": 100.0, "non-entailment": 66.67, "n": 4}
    assert t["by_heuristic"]["constituent"] == {"entailment": None, "non-entailment": 100.0, "n": 1}
    assert t["accuracy"] == pytest.approx(100 * 5 / 9, abs=0.01) and t["n"] == 9
    assert t["predicted_entailment"] == pytest.approx(100 * 5 / 9, abs=0.01)
    assert t["by_subcase"]["sn_b"] == {"accuracy": 66.67, "n": 3, "heuristic": "subsequence", "gold": "non-entailment"}
    md = figure_1c_markdown({"m": {"hans": t, "mnli": {"accuracy": 80.0}}})
    assert "| m | (50.00, 0.00) | (100.00, 66.67) | (-, 100.00) | 55.56 | 80.00 |" in md
    with pytest.raises(ValueError, match="9 examples but 2 predictions"):
        hans_table(ex, [1, 0])


def test_mnli_table():
    ex = [Example(str(i), "p", "h", lab) for i, lab in enumerate([1, 0, 0, 0])]
    assert mnli_table(ex, [1, 1, 0, 0]) == {"accuracy": 75.0, "n": 4, "majority_class": 75.0}


def test_evaluate_and_write_report(tiny_clf, hans_sample, mnli_train_sample, tmp_path):
    res = evaluate(tiny_clf, hans_sample, mnli_train_sample[:100])
    preds = tiny_clf.predict(hans_sample).argmax(1)
    assert res["hans"]["accuracy"] == hans_table(hans_sample, preds)["accuracy"]
    assert set(res["hans"]["by_heuristic"]) == {"lexical_overlap", "subsequence", "constituent"}
    assert res["mnli"]["n"] == 100
    paths = write_report({"before": res, "after": res}, tmp_path, "cmp", extra={"note": 1})
    data = json.loads(paths["json"].read_text())
    assert data["results"]["before"]["hans"]["n"] == len(hans_sample) and data["note"] == 1
    assert "| before |" in paths["markdown"].read_text() and "HANS per subcase" in paths["markdown"].read_text()
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
