"""FIT / FINE_TUNE loop on a tiny BERT built in code."""

import numpy as np
import torch

from hildif.config import TrainConfig
from hildif.model.classifier import Classifier
from hildif.model.registry import ModelRegistry
from hildif.model.tiny import build_tiny_classifier
from hildif.model.training import decay_parameter_groups, length_grouped_batches, train


def small_cfg(**kw):
    base = dict(learning_rate=2e-3, max_steps=40, batch_size=16, warmup_ratio=0.1, seed=3, weight_decay=0.005)
    base.update(kw)
    return TrainConfig(**base)


def test_loss_decreases_on_a_learnable_problem(mnli_train_sample):
    # Label = "hypothesis shares its first word with the premise": learnable by a tiny model, unlike MNLI.
    from hildif.data.example import Example

    rows = []
    for i, e in enumerate(mnli_train_sample[:320]):
        words = e.hypothesis.split()
        hyp = e.hypothesis if i % 2 else " ".join(["zzz"] + words[1:])
        rows.append(Example(f"t{i}", e.premise, hyp, int(i % 2 and hyp.split()[0] in e.premise.split()), {}))
    clf = build_tiny_classifier(rows + [Example("z", "zzz", "zzz", 0)], seed=1)
    res = train(clf, rows, small_cfg(max_steps=80), progress=False)
    first, last = np.mean(res.losses[:10]), np.mean(res.losses[-10:])
    assert res.steps == 80 and len(res.losses) == 80
    assert last < first * 0.8, (first, last)


def test_checkpoint_round_trip_gives_identical_predictions(tiny_clf, mnli_train_sample, hans_sample, tmp_path):
    train(tiny_clf, mnli_train_sample[:64], small_cfg(max_steps=3), progress=False)
    before = tiny_clf.predict(hans_sample[:50])
    version = tiny_clf.save(tmp_path / "ckpt", {"kind": "test"})
    loaded = Classifier.load(str(tmp_path / "ckpt"), device="cpu")
    assert loaded.version == version and loaded.metadata["kind"] == "test"
    np.testing.assert_array_equal(before, loaded.predict(hans_sample[:50]))
    np.testing.assert_allclose(tiny_clf.features(hans_sample[:5]), loaded.features(hans_sample[:5]))
    assert tiny_clf.features(hans_sample[:5]).shape == (5, 32)
    assert not list(tmp_path.glob(".*tmp*")), "no temporary directory left behind"


def test_registry_switches_current_last(tiny_clf, tmp_path):
    reg = ModelRegistry(tmp_path)
    assert reg.current() is None
    v1 = reg.save(tiny_clf, {"kind": "baseline"})
    assert reg.current() == v1
    with torch.no_grad():
        tiny_clf.model.classifier.bias.add_(1.0)
    v2 = reg.save(tiny_clf, {"kind": "round", "parent": v1}, make_current=False)
    assert v2 != v1 and reg.current() == v1
    reg.set_current(v2)
    assert reg.current() == v2 and reg.current_path() == reg.path(v2)
    assert {v["version"] for v in reg.versions()} == {v1, v2}


def test_registry_is_the_record_of_versions(tiny_clf, tmp_path):
    """Versions in the order they were saved, with the lineage their hildif.json holds; a version that must not stay
    one is discarded atomically, never the served one."""
    import pytest

    reg = ModelRegistry(tmp_path)
    v1 = reg.save(tiny_clf, {"kind": "base"})
    with torch.no_grad():
        tiny_clf.model.classifier.bias.add_(1.0)
    v2 = reg.save(tiny_clf, {"kind": "round", "parent": v1, "round_id": "r1", "sync_id": 3}, make_current=False)
    rows = reg.versions()
    assert [r["version"] for r in rows] == [v1, v2]  # saved order, whatever the digests' alphabetical order
    assert rows[1] == {"version": v2, "created_at": rows[1]["created_at"], "kind": "round", "parent": v1,
                       "round_id": "r1", "sync_id": 3}
    assert rows[0]["parent"] is None and rows[0]["created_at"] <= rows[1]["created_at"]
    with pytest.raises(ValueError, match="served"):
        reg.discard(v1)
    reg.discard(v2)
    assert [r["version"] for r in reg.versions()] == [v1] and not (tmp_path / "models" / v2).exists()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == sorted([v1, "current.json"])
    with pytest.raises(FileNotFoundError):
        reg.discard(v2)


def test_resume_reproduces_an_uninterrupted_run(mnli_train_sample, hans_sample, tmp_path):
    rows = mnli_train_sample[:96]
    cfg = small_cfg(max_steps=8, batch_size=8, grad_accum_steps=2)
    a = build_tiny_classifier(list(rows) + list(hans_sample), seed=0)
    full = train(a, rows, cfg, progress=False)
    b = build_tiny_classifier(list(rows) + list(hans_sample), seed=0)
    part = train(b, rows, cfg, output_dir=tmp_path, progress=False, stop_after=3)
    assert part.steps == 3
    b2 = build_tiny_classifier(list(rows) + list(hans_sample), seed=5)  # different init: resume must overwrite it
    rest = train(b2, rows, cfg, output_dir=tmp_path, resume=True, progress=False)
    assert rest.resumed_from == 3 and rest.steps == 8
    np.testing.assert_allclose(full.losses, rest.losses, rtol=1e-5)
    for (n, p), (_, q) in zip(a.model.named_parameters(), b2.model.named_parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=n)


def test_weight_decay_excludes_bias_and_layernorm(tiny_clf):
    decay, no_decay = decay_parameter_groups(tiny_clf.model, 0.005)
    names = {id(p): n for n, p in tiny_clf.model.named_parameters()}
    assert decay["weight_decay"] == 0.005 and no_decay["weight_decay"] == 0.0
    assert all(not names[id(p)].endswith("bias") and "LayerNorm" not in names[id(p)] for p in decay["params"])
    assert all(names[id(p)].endswith("bias") or "LayerNorm" in names[id(p)] for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(names)


def test_length_grouped_batches_cover_everything_once_and_group_lengths():
    lengths = [int(x) for x in np.random.default_rng(0).integers(5, 120, size=1000)]
    batches = length_grouped_batches(lengths, 16, seed=1)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    assert batches == length_grouped_batches(lengths, 16, seed=1)
    assert batches != length_grouped_batches(lengths, 16, seed=2)
    spread_grouped = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])
    random_batches = length_grouped_batches(lengths, 16, seed=1, group=False)
    spread_random = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in random_batches])
    assert spread_grouped < spread_random / 4
