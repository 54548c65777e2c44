"""The background job kinds the backend runs: ``sync`` (pull ratings, fine-tune, switch the served model),
``start`` (explain anchors with influence functions and push the rating tasks; on the GPU when there is one),
``train`` (train on a team's text-classification project's annotated tasks and serve the result) and ``influence``
(open the served version's gradient store for ``POST /influence``; queued by that endpoint only).
Each checks its params and hands over to :class:`hildif.service.Service`."""

from __future__ import annotations

from typing import Any, Callable

from hildif.service import Service
from ml_backend.schema import JOB_PARAMS, FieldError

ClientFor = Callable[[Any], Any]  # project id (or None) -> a LabelStudioClient


def make_handlers(service: Service, client_for: ClientFor) -> dict[str, Callable[[dict[str, Any]], Any]]:
    """``{kind: fn(params)}`` for :class:`ml_backend.jobs.JobQueue`. ``client_for(project_id)``: the Label Studio
    client a job talks to."""
    # Params are checked again when a job runs (not only when it was posted): a row queued by an older backend that
    # still names a server file fails here, naming the field, before anything is read.
    def sync(params: dict[str, Any]) -> dict[str, Any]:
        params = JOB_PARAMS["sync"]("params", params)
        service.check_round(params["round_id"])  # an unknown round fails here, before Label Studio is asked
        return service.sync_round(params["round_id"], client_for(params.get("project_id")))

    def start(params: dict[str, Any]) -> dict[str, Any]:
        params = JOB_PARAMS["start"]("params", params)
        return service.start_round(params["round_id"], params.get("selection") or {}, client_for(None))

    def train(params: dict[str, Any]) -> dict[str, Any]:
        params = JOB_PARAMS["train"]("params", params)
        return service.train_on_project(params["project_id"], client_for(params["project_id"]))

    def influence(params: dict[str, Any]) -> dict[str, Any]:
        version = params.get("model_version")
        if not isinstance(version, str) or not version:
            raise FieldError("params.model_version", "required: the model version whose gradient store to open")
        return service.open_influence(version)

    return {"sync": sync, "start": start, "train": train, "influence": influence}
