"""Any task's evaluation: per label, per slice (any metadata field), the Markdown table and the plot."""

from __future__ import annotations

import json

import pytest

from hildif.data.example import Example
from hildif.model.evaluation import classification_table, evaluate_task, task_markdown, write_report

LABELS = ("fiction", "government", "travel")


def ex(i, label, genre=None):
    return Example(f"e{i}", f"text {i}", None, label, {"source": genre} if genre else {})


def test_classification_table_matches_a_hand_computed_case():
    examples = [ex(0, 0, "a"), ex(1, 0, "a"), ex(2, 0, "b"), ex(3, 1, "b"), ex(4, 1, "a"), ex(5, 2), ex(6, 2, "b")]
    pred = [0, 1, 0, 1, 1, 0, 0]
    t = classification_table(examples, pred, LABELS, slices=["source"])
    assert t["accuracy"] == pytest.approx(100 * 4 / 7, abs=0.01) and t["n"] == 7
    assert t["by_label"]["fiction"] == {"n": 3, "accuracy": 66.67, "precision": 50.0, "f1": 57.14, "predicted": 4}
    assert t["by_label"]["government"] == {"n": 2, "accuracy": 100.0, "precision": 66.67, "f1": 80.0,
                                           "predicted": 3}
    assert t["by_label"]["travel"] == {"n": 2, "accuracy": 0.0, "precision": None, "f1": 0.0, "predicted": 0}
    assert t["macro_f1"] == pytest.approx((57.14 + 80.0 + 0.0) / 3, abs=0.01)
    assert t["confusion"]["travel"] == {"fiction": 2, "government": 0, "travel": 0}
    assert t["majority_class"] == pytest.approx(100 * 3 / 7, abs=0.01)
    by = t["by_slice"]["source"]
    assert list(by) == ["(none)", "a", "b"]
    assert by["a"] == {"accuracy": 66.67, "n": 3, "by_label": {"fiction": 50.0, "government": 100.0}}
    assert by["b"]["n"] == 3 and by["b"]["by_label"]["travel"] == 0.0 and by["(none)"]["n"] == 1
    with pytest.raises(ValueError, match="7 examples but 2 predictions"):
        classification_table(examples, [0, 1], LABELS)
    with pytest.raises(ValueError, match="outside the 3 classes"):
        classification_table(examples, [0, 1, 0, 1, 1, 0, 3], LABELS)


def test_task_markdown_compares_named_results_per_label_and_slice(tmp_path):
    examples = [ex(0, 0, "a"), ex(1, 1, "a"), ex(2, 2, "b"), ex(3, 2, "b")]
    before = {"task": classification_table(examples, [0, 0, 0, 0], LABELS, ["source"])}
    after = {"task": classification_table(examples, [0, 1, 2, 0], LABELS, ["source"])}
    md = task_markdown({"before": before, "after": after})
    assert "| label | n | before | after |" in md
    assert "| government | 1 | 0.00 | 100.00 |" in md and "| travel | 2 | 0.00 | 50.00 |" in md
    assert "| **all** | 4 | 25.00 | 75.00 |" in md
    assert "### per source" in md and "| b | 2 | 0.00 | 50.00 |" in md
    paths = write_report({"before": before, "after": after}, tmp_path, "genre")
    text = paths["markdown"].read_text()
    assert "accuracy per label" in text and "HANS" not in text
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(paths["json"].read_text())["results"]["after"]["task"]["accuracy"] == 75.0


def test_evaluate_task_with_a_single_text_three_class_model():
    from hildif.model.tiny import build_tiny_classifier

    examples = [ex(i, i % 3, "ab"[i % 2]) for i in range(12)]
    clf = build_tiny_classifier(examples, num_labels=3, label_names=LABELS)
    assert clf.label_names == LABELS
    res = evaluate_task(clf, examples, slices=["source"])
    preds = clf.predict(examples).argmax(1)
    assert res["task"]["labels"] == list(LABELS) and res["task"]["n"] == 12
    assert res["task"]["accuracy"] == pytest.approx(100 * (preds == [e.label for e in examples]).mean(), abs=0.01)
    assert set(res["task"]["by_slice"]["source"]) == {"a", "b"}
