import json

import pytest

from hildif.config import ConfigError, load_config


def test_default_and_paper_profiles_differ_where_the_paper_says():
    d, p = load_config(), load_config("paper")
    assert d.model.name_or_path == "minilm"
    assert p.model.name_or_path == "bert-base-cased"
    assert (p.train.learning_rate, p.train.epochs, p.train.batch_size, p.model.max_length) == (2e-5, 2.0, 32, 128)
    assert p.train.weight_decay == 0.005
    assert p.data.train_files == ["mnli/train.tsv"]
    assert (d.influence.solver, p.influence.solver) == ("cg", "lissa")  # FastIF's LiSSA in the paper's setting
    assert (p.influence.damping, p.influence.scale, p.influence.lissa_steps) == (5e-3, 1e4, 1000)


def test_file_then_overrides_are_applied_in_order(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('profile = "paper"\n[train]\nlearning_rate = 1e-4\nbatch_size = 8\n[influence]\nk = 50\n')
    cfg = load_config(file=f, overrides=["train.batch_size=4", "feedback.augmenters=synonym", "eval.hans_sample=none"])
    assert cfg.profile == "paper"
    assert cfg.train.learning_rate == 1e-4 and cfg.train.batch_size == 4
    assert cfg.influence.k == 50
    assert cfg.feedback.augmenters == ["synonym"]
    assert cfg.eval.hans_sample is None


def test_json_config_file(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"model": {"max_length": 64}}))
    assert load_config(file=f).model.max_length == 64


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.nope=1", "unknown key 'nope'"),
        ("nosection.k=1", "unknown section 'nosection'"),
        ("train.batch_size=abc", "train.batch_size: expected int"),
        ("train.length_grouping=maybe", "expected true/false"),
        ("no-dot=1", "section.key=value"),
    ],
)
def test_bad_overrides_name_the_setting(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[override])


def test_bad_file_and_profile(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[train\n")
    with pytest.raises(ConfigError, match="bad.toml"):
        load_config(file=f)
    with pytest.raises(ConfigError, match="unknown profile 'x'"):
        load_config("x")
