"""Integration: the shipped MiniLM fine-tuned for a few steps on genuine MNLI rows, evaluated on a HANS sample."""

import numpy as np
import pytest

from hildif.config import TrainConfig
from hildif.model.classifier import Classifier
from hildif.model.evaluation import evaluate
from hildif.model.training import train

pytestmark = pytest.mark.integration


def _loss_and_accuracy(clf, rows) -> tuple[float, float]:
    """Mean cross-entropy and accuracy % of ``clf`` on ``rows`` (inference mode)."""
    gold = np.array([e.label for e in rows])
    probs = clf.predict(rows)
    return float(-np.log(probs[np.arange(len(rows)), gold]).mean()), float((probs.argmax(1) == gold).mean() * 100)


def test_minilm_fine_tunes_and_evaluates(mnli_train_sample, hans_sample, tmp_path):
    """Training works, measured where a few CPU steps can show it: on the 48 rows it trains on, the loss falls well
    below the fresh head's (about ln 2) and accuracy beats always answering the majority class of those rows."""
    clf = Classifier.load("minilm", device="cpu", max_length=128)
    assert clf.model.config.num_labels == 2 and clf.version == "untrained"
    assert clf.features(hans_sample[:3]).shape == (3, 384)
    rows = mnli_train_sample[:48]
    majority = max(np.mean([e.label for e in rows]), 1 - np.mean([e.label for e in rows])) * 100
    loss_before, _ = _loss_and_accuracy(clf, rows)
    res = train(clf, rows, TrainConfig(learning_rate=2e-4, max_steps=15, batch_size=16, seed=0, warmup_ratio=0.0),
                progress=False)
    assert res.steps == 15 and all(np.isfinite(res.losses))
    assert np.mean(res.losses[-3:]) < np.mean(res.losses[:3])  # the training loss itself goes down
    loss_after, acc_after = _loss_and_accuracy(clf, rows)
    assert loss_after < 0.75 * loss_before, (loss_before, loss_after)
    assert acc_after > majority, (acc_after, majority)
    out = evaluate(clf, hans_sample[:60], mnli_train_sample[-60:])
    assert out["hans"]["n"] == 60 and out["mnli"]["n"] == 60
    version = clf.save(tmp_path / "m")
    again = Classifier.load(str(tmp_path / "m"), device="cpu")
    assert again.version == version
    np.testing.assert_array_equal(clf.predict(hans_sample[:20]), again.predict(hans_sample[:20]))


def test_cli_train_and_evaluate_with_the_tiny_model(tmp_path, data_dir, capsys):
    """`hildif train` then `hildif evaluate` end to end (tiny model, 5 steps, small HANS/MNLI samples)."""
    import json

    from hildif.cli import main

    run = tmp_path / "run"
    common = ["--data-dir", str(data_dir), "--run-dir", str(run), "--model", "tiny",
              "--set", "data.max_train_examples=300", "--set", "eval.hans_sample=120", "--set", "eval.mnli_sample=60"]
    assert main(["train", *common, "--set", "train.max_steps=5", "--set", "train.batch_size=8",
                 "--set", "train.eval_examples=40"]) == 0
    report = json.loads((run / "reports" / "baseline.json").read_text())
    (version, result), = report["results"].items()
    assert result["hans"]["n"] == 120 and result["mnli"]["n"] == 60
    assert (run / "reports" / "baseline.png").exists() and (run / "reports" / "baseline.md").exists()
    current = json.loads((run / "models" / "current.json").read_text())
    assert current["version"] == version
    meta = json.loads((run / "models" / version / "hildif.json").read_text())
    assert meta["kind"] == "baseline" and meta["train"]["steps"] == 5
    out = capsys.readouterr().out
    assert "LO (ent, non-ent)" in out
    assert main(["evaluate", "--data-dir", str(data_dir), "--run-dir", str(run), "--set", "eval.hans_sample=60",
                 "--set", "eval.mnli_sample=30", "--title", "again"]) == 0
    assert json.loads((run / "reports" / "again.json").read_text())["results"][version]["hans"]["n"] == 60


def test_cli_reports_a_missing_data_dir(tmp_path, monkeypatch, capsys):
    from hildif.cli import main

    monkeypatch.delenv("HILDIF_DATA_DIR")
    assert main(["train", "--run-dir", str(tmp_path), "--model", "tiny"]) == 1
    assert "no data directory" in capsys.readouterr().err
