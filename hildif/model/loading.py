"""How every model of a run is loaded: the one place (besides :meth:`Classifier.load` itself) that calls it.

Four doors, one per kind of source, all with the run's ``model`` settings (max length, device, mixed precision;
:func:`load_kwargs`):

* :func:`load_current`: the version the run serves (``<run_dir>/models/current.json``); a fresh run directory has
  none, and ``missing`` says what then (an error, ``model.name_or_path`` as it is, or that model registered as the
  first version);
* :func:`load_version`: one registered version by name (an unknown name is an error naming it);
* :func:`load_checkpoint`: a checkpoint directory (a round's recorded base, the ablation's baseline);
* :func:`load_pretrained`: ``model.name_or_path`` or a given name (a hub name, ``minilm``, a folder, or ``tiny``,
  the small BERT built over the training texts), with ``model.num_labels``: what training starts from.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hildif.config import HildifConfig, ModelConfig
from hildif.model.classifier import Classifier
from hildif.model.registry import ModelRegistry, ModelVersionError

log = logging.getLogger(__name__)

MISSING_CURRENT = ("error", "pretrained", "register")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass
class LoadedModel:
    """A loaded model and where it came from: ``version`` and ``path`` of the registry (both None when
    ``model.name_or_path`` was loaded without registering it)."""

    classifier: Classifier
    version: str | None
    path: str | None


def load_kwargs(model: ModelConfig | HildifConfig) -> dict[str, Any]:
    """How every checkpoint of a run is loaded: ``model``'s max length, device and mixed precision."""
    m = model.model if isinstance(model, HildifConfig) else model
    return dict(max_length=m.max_length, device=m.device, mixed_precision=m.mixed_precision)


def load_pretrained(cfg: HildifConfig, name_or_path: str | None = None, **overrides: Any) -> Classifier:
    """``name_or_path`` (default ``model.name_or_path``) with ``model.num_labels``: a hub name, ``minilm``, a model
    folder, or ``tiny`` (a small BERT whose vocabulary is built over the first 5,000 training examples)."""
    name = name_or_path or cfg.model.name_or_path
    if name == "tiny":
        from hildif.data.splits import load_train
        from hildif.model.tiny import build_tiny_classifier

        return build_tiny_classifier(load_train(cfg.data)[:5000], device=overrides.get("device", cfg.model.device))
    return Classifier.load(name, num_labels=cfg.model.num_labels, **{**load_kwargs(cfg), **overrides})


def load_checkpoint(cfg: HildifConfig, path: str | Path, **overrides: Any) -> Classifier:
    """The checkpoint directory ``path`` with the run's load settings (``overrides`` win)."""
    return Classifier.load(str(path), **{**load_kwargs(cfg), **overrides})


def version_path(cfg: HildifConfig, version: str) -> Path:
    """The directory of the registered ``version``; :class:`ModelVersionError` naming it (and the registered
    ones) when the run has no such version. ``version`` may come from outside: only a plain name is looked up."""
    registry = ModelRegistry(cfg.run.run_dir)
    if not isinstance(version, str) or not _VERSION.match(version):
        raise ModelVersionError(f"model version {version!r} is not a version name (letters, digits, '_', '.', '-')")
    try:
        return registry.path(version)
    except FileNotFoundError:
        known = [v["version"] for v in registry.versions()]
        listed = ", ".join(known[:10]) + (f" (+{len(known) - 10} more)" if len(known) > 10 else "")
        raise ModelVersionError(f"model version {version!r} not found under {registry.root} "
                                f"(registered: {listed or 'none'})") from None


def load_version(cfg: HildifConfig, version: str, **overrides: Any) -> Classifier:
    """The registered model ``version`` (see :func:`version_path`)."""
    return load_checkpoint(cfg, version_path(cfg, version), **overrides)


def load_current(cfg: HildifConfig, *, missing: str = "error", **overrides: Any) -> LoadedModel:
    """The version the run serves. When the run has none yet, ``missing`` decides:

    * ``"error"``: :class:`ModelVersionError` saying to train one (``hildif train``);
    * ``"pretrained"``: ``model.name_or_path`` (:func:`load_pretrained`), not registered (version and path None);
    * ``"register"``: ``model.name_or_path`` saved as the first version (kind ``base``) and made current, so
      everything after (a round) starts from a recorded version.
    """
    if missing not in MISSING_CURRENT:
        raise ValueError(f"missing={missing!r}: expected one of {', '.join(MISSING_CURRENT)}")
    registry = ModelRegistry(cfg.run.run_dir)
    if registry.current() is None:
        if missing == "error":
            raise ModelVersionError(f"no current model under {registry.root}: run `hildif train` first")
        if missing == "pretrained":
            return LoadedModel(load_pretrained(cfg, **overrides), None, None)
        log.info("no current model in %s: registering %s as the first version", registry.root, cfg.model.name_or_path)
        registry.save(load_pretrained(cfg, **overrides), {"kind": "base", "source": cfg.model.name_or_path},
                      make_current=True)
    version = registry.current()
    path = version_path(cfg, version)
    return LoadedModel(load_checkpoint(cfg, path, **overrides), version, str(path))


__all__ = ["LoadedModel", "MISSING_CURRENT", "ModelVersionError", "load_checkpoint", "load_current", "load_kwargs",
           "load_pretrained", "load_version", "version_path"]
