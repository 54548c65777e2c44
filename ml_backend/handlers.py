"""The background job kinds the backend runs: ``sync`` (pull ratings, fine-tune, switch the served model) and
``start`` (explain anchors with influence functions and push the rating tasks; on the GPU when there is one)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from ml_backend.schema import JOB_PARAMS

if TYPE_CHECKING:  # pragma: no cover
    from ml_backend.model import BackendRuntime

log = logging.getLogger(__name__)


def label_studio_client(runtime: "BackendRuntime", project_id: int | None):
    """A client from the configured URL and key; without a configured key, the token Label Studio sent to /setup
    for this project (the project creator's legacy token) is used."""
    from hildif.labelstudio.client import LabelStudioClient, LabelStudioError

    cfg = runtime.cfg.labelstudio
    try:
        return LabelStudioClient.from_config(cfg)
    except LabelStudioError:
        setup = runtime.setups.get(project_id or -1)
        if not setup or not setup.get("access_token"):
            raise
        return LabelStudioClient(cfg.url or setup["hostname"], setup["access_token"], cfg.timeout_s)


def make_handlers(runtime: "BackendRuntime") -> dict[str, Callable[[dict[str, Any]], Any]]:
    # Params are checked again when a job runs (not only when it was posted): a row queued by an older backend that
    # still names a server file fails here, naming the field, before anything is read.
    def sync(params: dict[str, Any]) -> dict[str, Any]:
        from hildif.rounds.sync import sync_round

        params = JOB_PARAMS["sync"]("params", params)
        runtime.state.round(params["round_id"])  # an unknown round fails here, before Label Studio is asked
        client = label_studio_client(runtime, params.get("project_id"))
        return sync_round(runtime.cfg, params["round_id"], client=client, progress=False).to_dict()

    def start(params: dict[str, Any]) -> dict[str, Any]:
        from hildif.rounds.start import AnchorSelection, start_round

        params = JOB_PARAMS["start"]("params", params)
        client = label_studio_client(runtime, None)
        selection = AnchorSelection.from_dict(params.get("selection") or {})
        return start_round(runtime.cfg, params["round_id"], selection, client=client, progress=False).to_dict()

    return {"sync": sync, "start": start}
