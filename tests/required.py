"""Skip a test whose tool is missing, except where the environment requires it (CI sets ``HILDIF_REQUIRE_*=1`` in
scripts/test.sh): there the missing tool fails the test loudly instead of passing as a quiet skip."""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

LABEL_STUDIO = "HILDIF_REQUIRE_LABEL_STUDIO"
BROWSER = "HILDIF_REQUIRE_BROWSER"
POSTGRES = "HILDIF_REQUIRE_POSTGRES"
DOCKER_COMPOSE = "HILDIF_REQUIRE_DOCKER_COMPOSE"


def required(env_var: str) -> bool:
    return os.environ.get(env_var) == "1"


def skip_or_fail(reason: str, env_var: str) -> NoReturn:
    """Fail with ``reason`` when ``$env_var`` is 1, else skip with it."""
    if required(env_var):
        pytest.fail(f"{reason} ({env_var}=1: this test must run here)", pytrace=False)
    pytest.skip(f"{reason} (set {env_var}=1 to make this an error)")


def import_or_fail(module: str, env_var: str, hint: str = "") -> ModuleType:
    """``pytest.importorskip`` that fails instead when ``$env_var`` is 1."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        skip_or_fail(f"cannot import {module}: {exc}{'; ' + hint if hint else ''}", env_var)
