"""hildif's own errors derive from :class:`hildif.errors.HildifError`; the ``hildif`` command prints those on one
line and exits 1, while any other exception is a bug and surfaces with its traceback (hildif/cli.py)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

from hildif.errors import HildifError

REPO = Path(__file__).resolve().parents[1]


def _modules(package: str):
    pkg = importlib.import_module(package)
    yield pkg
    for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
        if info.name.endswith("__main__"):
            continue
        yield importlib.import_module(info.name)


def test_every_error_class_of_the_package_is_a_hildif_error():
    """An error class defined in hildif or ml_backend that the CLI would not catch is a mistake: the user would
    get a traceback for a message that names what to fix."""
    found, stray = [], []
    for package in ("hildif", "ml_backend"):
        for module in _modules(package):
            for name, obj in vars(module).items():
                if (inspect.isclass(obj) and issubclass(obj, Exception) and not issubclass(obj, Warning)
                        and obj.__module__ == module.__name__
                        and obj is not HildifError):
                    (found if issubclass(obj, HildifError) else stray).append(f"{module.__name__}.{name}")
    assert not stray, f"error classes that do not derive from HildifError: {stray}"
    assert {"hildif.config.ConfigError", "hildif.demo.DemoError", "hildif.rounds.start.RoundError",
            "ml_backend.settings.ExposureError"} <= set(found), found


def test_a_hildif_error_is_one_line_on_stderr_and_exit_code_1(tmp_path, capsys):
    from hildif.cli import main

    code = main(["train", "--run-dir", str(tmp_path), "--set", "nosuchsection.key=1"])
    captured = capsys.readouterr()
    assert code == 1
    err = captured.err.strip()
    assert err.startswith("hildif train: error: ") and "unknown section 'nosuchsection'" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in captured.err


def test_a_multi_line_message_is_printed_on_one_line(monkeypatch, capsys):
    from hildif.cli import main
    from hildif.config import ConfigError

    def fails(args):
        raise ConfigError("first line\n  second line\n")

    monkeypatch.setattr("hildif.commands.train.run", fails)
    assert main(["train"]) == 1
    assert capsys.readouterr().err == "hildif train: error: first line; second line\n"


def test_other_exceptions_are_bugs_and_surface(monkeypatch):
    from hildif.cli import main

    def bug(args):
        return {}["missing"]

    monkeypatch.setattr("hildif.commands.train.run", bug)
    with pytest.raises(KeyError, match="missing"):
        main(["train"])
    # a built-in error that used to be caught by type is no longer mistaken for ours
    monkeypatch.setattr("hildif.commands.train.run", lambda args: int("not a number"))
    with pytest.raises(ValueError, match="invalid literal"):
        main(["train"])


def test_verbose_shows_the_traceback_of_our_errors_too(monkeypatch):
    from hildif.cli import main
    from hildif.config import ConfigError

    def fails(args):
        raise ConfigError("bad value")

    monkeypatch.setattr("hildif.commands.train.run", fails)
    with pytest.raises(ConfigError, match="bad value"):
        main(["train", "--verbose"])
