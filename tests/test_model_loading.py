"""The one model loader (hildif.model.loading): current, by version, by checkpoint, pretrained; what a fresh run does."""

from __future__ import annotations

import numpy as np
import pytest

from hildif.config import load_config
from hildif.model.loading import (ModelVersionError, load_checkpoint, load_current, load_kwargs, load_pretrained,
                                  load_version, version_path)
from hildif.model.registry import ModelRegistry


@pytest.fixture()
def run(tmp_path, tiny_clf):
    """A run directory with nothing registered yet, and the tiny model saved as a plain checkpoint beside it."""
    ckpt = tmp_path / "tiny-checkpoint"
    tiny_clf.save(ckpt, {"kind": "test"})
    cfg = load_config(overrides=[f"run.run_dir={tmp_path / 'run'}", "model.device=cpu",
                                 f"model.name_or_path={ckpt}", "model.mixed_precision=false"])
    return cfg, ckpt, tiny_clf


def test_load_kwargs_are_the_model_settings(run):
    cfg, _, _ = run
    assert load_kwargs(cfg) == {"max_length": 128, "device": "cpu", "mixed_precision": False}
    assert load_kwargs(cfg.model) == load_kwargs(cfg)


def test_a_fresh_run_has_no_current_model_unless_asked_to_register_one(run, hans_sample):
    cfg, ckpt, tiny = run
    registry = ModelRegistry(cfg.run.run_dir)
    with pytest.raises(ModelVersionError, match=r"no current model under .*: run `hildif train` first"):
        load_current(cfg)
    plain = load_current(cfg, missing="pretrained")
    assert plain.version is None and plain.path is None and registry.current() is None  # nothing registered
    assert plain.classifier.version == tiny.version
    first = load_current(cfg, missing="register")
    assert first.version == registry.current() == tiny.version and first.path == str(registry.path(first.version))
    assert [v["kind"] for v in registry.versions()] == ["base"]
    again = load_current(cfg, missing="register")  # registered once: the second call loads it
    assert again.version == first.version and len(registry.versions()) == 1
    np.testing.assert_allclose(again.classifier.predict(hans_sample[:8]), tiny.predict(hans_sample[:8]), atol=1e-6)
    assert again.classifier.mixed_precision is False and str(again.classifier.device) == "cpu"
    with pytest.raises(ValueError, match="missing='maybe'"):
        load_current(cfg, missing="maybe")


def test_an_unknown_version_is_named_with_the_registered_ones(run):
    cfg, ckpt, tiny = run
    v = ModelRegistry(cfg.run.run_dir).save(tiny, {"kind": "baseline"})
    assert load_version(cfg, v).version == v and version_path(cfg, v).name == v
    with pytest.raises(ModelVersionError, match=rf"model version 'feedbeef0000' not found under .*registered: {v}"):
        load_version(cfg, "feedbeef0000")
    for bad in ("../tiny-checkpoint", "", "a/b", ".hidden"):  # a name from outside is never a path
        with pytest.raises(ModelVersionError, match="is not a version name"):
            load_version(cfg, bad)
    with pytest.raises(ModelVersionError, match="registered: none"):
        load_version(load_config(overrides=[f"run.run_dir={ckpt.parent / 'empty'}"]), v)


def test_checkpoints_and_pretrained_models_take_the_run_settings_and_overrides(run):
    cfg, ckpt, tiny = run
    clf = load_checkpoint(cfg, ckpt)
    assert clf.version == tiny.version and clf.mixed_precision is False
    assert load_checkpoint(cfg, ckpt, mixed_precision=True).mixed_precision is True  # an override wins
    assert load_pretrained(cfg).version == tiny.version  # model.name_or_path
    from hildif.model.classifier import ModelLoadError

    with pytest.raises(ModelLoadError, match="cannot load model"):
        load_pretrained(cfg, str(ckpt.parent / "no-such-model"))
