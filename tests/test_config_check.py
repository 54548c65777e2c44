"""Every setting is checked when the configuration is built (issue 26, item 12): each profile loads, and for every
key with a vocabulary, range, pattern or length a bad value fails at once (``--set``, a config file, the backend's
command line) with a ConfigError naming the key, the value and what is allowed. ``hildif config show`` lists every
key with its type, default and help; each vocabulary is the one the module that reads the setting uses."""

from __future__ import annotations

import json

import pytest

from hildif.config import (
    PROFILES, ConfigError, HildifConfig, Rule, check_config, describe_settings, load_config, rule_of, sections,
    setting_fields,
)


def _ruled() -> list[tuple[str, Rule, str]]:
    """(section.key, its rule, its type) for every setting whose rule restricts it."""
    out = []
    defaults = HildifConfig()
    for name in sections():
        for f, hint in setting_fields(type(getattr(defaults, name))):
            if rule_of(f) != Rule():
                out.append((f"{name}.{f.name}", rule_of(f), str(hint)))
    return out


def bad_value(rule: Rule, hint: str) -> str:
    """A value (as --set writes it) that ``rule`` refuses."""
    if rule.choices:
        return "no_such_choice" if not rule.or_regex else "(unclosed"
    if rule.pattern:
        return "not a valid value!"
    if rule.lengths:
        return ",".join(["1"] * (max(rule.lengths) + 1))
    if rule.ge is not None:
        return str(rule.ge - 1 if "int" in hint and "float" not in hint else rule.ge - 0.5)
    if rule.gt is not None:
        return str(rule.gt)
    if rule.le is not None:
        return str(rule.le + 1)
    return str(rule.lt)


RULED = _ruled()


def test_every_profile_loads_and_the_defaults_keep_to_their_rules():
    for name in PROFILES:
        check_config(load_config(name))
    check_config(HildifConfig())
    assert len(RULED) > 60  # nearly every setting has a vocabulary, a range or a pattern


@pytest.mark.parametrize("key, rule, hint", RULED, ids=[k for k, _, _ in RULED])
def test_a_bad_value_fails_when_the_config_is_built_naming_key_value_and_what_is_allowed(key, rule, hint, tmp_path):
    from hildif.config import allowed_values

    value = bad_value(rule, hint)
    for profile in PROFILES:
        with pytest.raises(ConfigError) as err:
            load_config(profile, overrides=[f"{key}={value}"])
        message = str(err.value)
        assert key in message and allowed_values(rule).split(";")[0] in message, message
        first = value.split(",")[0]
        assert first in message or repr(first) in message or str(float(first)) in message, message
    section, name = key.split(".")
    file = tmp_path / "bad.json"
    typed = json.loads(json.dumps(load_config(overrides=[]).to_dict()[section][name]))
    file.write_text(json.dumps({section: {name: _typed(value, typed)}}))
    with pytest.raises(ConfigError, match=rf"bad\.json:{section}\.{name}"):
        load_config(file=file)


def _typed(value: str, like):
    if isinstance(like, list) or "," in value:
        return value.split(",") if not value.replace(",", "").isdigit() else [int(v) for v in value.split(",")]
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


@pytest.mark.parametrize("override, message", [
    ("influence.solver=cgg", "influence.solver='cgg': expected one of cg, lissa, exact"),
    ("feedback.aggregation=avg", "feedback.aggregation='avg': expected one of median, mean, trimmed_mean"),
    ("influence.k=-5", "influence.k=-5: expected >= 1"),
    ("feedback.augmenters=synonym>swapp", "('synonym>swapp'): expected one of synonym, backtranslation"),
    ("model.device=gpu", "model.device='gpu': expected auto, cpu, cuda or cuda:N"),
    ("feedback.copies_table=1,2", "feedback.copies_table=[1, 2]: expected >= 0; 5 items, got 2"),
    ("task.heldout_fraction=1", "task.heldout_fraction=1.0: expected >= 0 and < 1"),
    ("influence.params=layer[", "influence.params='layer[': expected one of fastif, head, all (or a regular"),
])
def test_the_issues_examples(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_config(overrides=[override])


def test_good_values_of_the_same_kinds_pass():
    cfg = load_config(overrides=["influence.params=encoder\\.layer\\.5", "feedback.augmenters=synonym>swap,delete",
                                 "model.device=cuda:1", "feedback.copies_table=0,1,2,3,4", "eval.hans_sample=none",
                                 "feedback.syntactic=swap,nps", "feedback.constructions=order"])
    assert cfg.feedback.augmenters == ["synonym>swap", "delete"] and cfg.eval.hans_sample is None


def test_each_vocabulary_is_the_one_its_module_uses():
    import hildif.config as c
    from hildif.feedback.aggregation import AGGREGATORS
    from hildif.feedback.augmentation import constructions, pipeline, syntactic
    from hildif.influence import engine, explain, knn, neighbourhood, params
    from hildif.rounds import finetune, shortfall
    from hildif.tasks import definition

    pairs = {
        "SOLVERS": engine.SOLVERS, "GRADIENT_METHODS": engine.GRADIENT_METHODS, "CANDIDATES": explain.CANDIDATES,
        "QUERIES": explain.QUERIES, "INDEX_KINDS": knn.INDEX_KINDS, "PARAM_SETS": params.NAMED_CHOICES,
        "TRAIN_PARAMS": params.TRAIN_PARAMS, "AGGREGATIONS": tuple(AGGREGATORS), "SHORT_PAIRS": shortfall.RULES,
        "AUGMENTERS": ("synonym", "backtranslation", *pipeline.EDA_OPERATIONS), "SYNTACTIC": syntactic.OPERATIONS,
        "SYNTACTIC_PREMISES": syntactic.PREMISES, "CONSTRUCTIONS": constructions.CONSTRUCTIONS,
        "CONSTRUCTION_SOURCES": neighbourhood.SOURCE_MODES, "REHEARSAL_BALANCES": finetune.REHEARSAL_BALANCES,
        "TASK_SOURCES": definition.SOURCES, "LABEL_POLICIES": definition.LABEL_POLICIES,
    }
    for name, used in pairs.items():
        assert set(getattr(c, name)) == set(used), name


def test_config_show_lists_every_key_with_type_default_and_help(capsys):
    from hildif.cli import main

    assert main(["config", "show", "--profile", "paper", "--set", "influence.k=50"]) == 0
    out = capsys.readouterr().out
    rows = describe_settings()
    assert len(rows) == sum(len(setting_fields(type(getattr(HildifConfig(), s)))) for s in sections()) > 100
    for row in rows:
        assert row["help"] and row["type"], row["key"]
        assert f"\n{row['key']} " in out, row["key"]
    assert "'cg'  now 'lissa'" in out and "1000  now 50" in out  # the profile's and the override's values
    assert "[one of cg, lissa, exact]" in out
    assert main(["config", "show", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [r["key"] for r in shown] == [r["key"] for r in rows]
    assert main(["config", "show", "--set", "influence.solver=cgg"]) == 1
    assert "influence.solver='cgg': expected one of cg, lissa, exact" in capsys.readouterr().err


def test_the_backend_refuses_a_bad_setting_at_start(capsys, tmp_path):
    from ml_backend.launch import main

    assert main(["--run-dir", str(tmp_path / "run"), "--set", "feedback.aggregation=avg"]) == 2
    assert "feedback.aggregation='avg': expected one of median" in capsys.readouterr().err
