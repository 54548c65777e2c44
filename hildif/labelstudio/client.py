"""The one place hildif talks to Label Studio's API (through ``label_studio_sdk`` 2.x).

Every call goes through :meth:`LabelStudioClient._call`, which turns transport failures into
:class:`LabelStudioUnavailable` ("is Label Studio running at URL?") and API errors into :class:`LabelStudioError`
with the status and body, naming what was being done. Nothing here keeps state between calls: callers (the rounds)
record what they pushed before and after each call, so a failure loses nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from hildif.config import LabelStudioConfig
from hildif.errors import HildifError
from hildif.labelstudio.convert import rating_from_annotation, result_for_score

if TYPE_CHECKING:
    from hildif.feedback.ratings import PairKey, Rating

log = logging.getLogger(__name__)


class LabelStudioError(HildifError, RuntimeError):
    """Label Studio answered with an error; the message names the action, the status and the body."""


class LabelStudioUnavailable(LabelStudioError):
    """Label Studio could not be reached (connection refused, timeout, DNS)."""


def resolve_api_key(cfg: LabelStudioConfig) -> str:
    """The API key from ``$<cfg.api_key_env>`` or, failing that, the first line of ``cfg.api_key_file``.

    Keys never come from the command line (they would show in ``ps`` and shell history).
    """
    key = os.environ.get(cfg.api_key_env, "").strip()
    if key:
        return key
    if cfg.api_key_file:
        path = Path(cfg.api_key_file).expanduser()
        try:
            key = path.read_text(encoding="utf-8").strip().splitlines()[0].strip() if path.stat().st_size else ""
        except OSError as exc:
            raise LabelStudioError(f"labelstudio.api_key_file {path}: cannot read it: {exc}") from exc
        if key:
            return key
        raise LabelStudioError(f"labelstudio.api_key_file {path} is empty")
    raise LabelStudioError(
        f"no Label Studio API key: set ${cfg.api_key_env} or labelstudio.api_key_file "
        "(the admin's token: Label Studio > Account & Settings > Access Token)"
    )


def _plain(obj: Any) -> Any:
    """SDK pydantic models -> plain dicts (JSON-compatible)."""
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if hasattr(obj, "dict"):
        return obj.dict()
    return obj


class LabelStudioClient:
    """A thin, error-translating wrapper around :class:`label_studio_sdk.LabelStudio`.

    Args:
        url: e.g. ``http://127.0.0.1:8080``.
        api_key: a legacy token or a personal access token (the SDK exchanges the latter for a JWT itself).
        timeout: seconds per HTTP request.
    """

    def __init__(self, url: str, api_key: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._sdk = LabelStudio(base_url=self.url, api_key=api_key, timeout=timeout)

    @classmethod
    def from_config(cls, cfg: LabelStudioConfig, url: str | None = None) -> "LabelStudioClient":
        return cls(url or cfg.url, resolve_api_key(cfg), cfg.timeout_s)

    @property
    def sdk(self) -> LabelStudio:
        return self._sdk

    @contextlib.contextmanager
    def _call(self, what: str) -> Iterator[None]:
        try:
            yield
        except (httpx.TransportError, ConnectionError) as exc:
            raise LabelStudioUnavailable(
                f"Label Studio at {self.url} is unreachable while {what} ({type(exc).__name__}: {exc}); "
                "is it running? (`hildif` never retries silently: nothing was changed by this call)"
            ) from exc
        except ApiError as exc:
            body = exc.body if not isinstance(exc.body, (bytes, bytearray)) else exc.body.decode("utf-8", "replace")
            hint = " (check the API key and that legacy tokens are enabled)" if exc.status_code == 401 else ""
            raise LabelStudioError(f"Label Studio {what}: HTTP {exc.status_code}{hint}: {str(body)[:500]}") from exc

    # ------------------------------------------------------------------ server
    def check(self) -> dict[str, Any]:
        """Who am I? Raises :class:`LabelStudioUnavailable` / :class:`LabelStudioError` with the reason."""
        with self._call("checking the connection and the API key"):
            return _plain(self._sdk.users.whoami())

    # ------------------------------------------------------------------ projects
    def find_project(self, title: str) -> int | None:
        with self._call(f"listing projects to find {title!r}"):
            for p in self._sdk.projects.list(title=title):
                if p.title == title:
                    return int(p.id)
        return None

    def project_settings(self, project_id: int) -> dict[str, Any] | None:
        """``{"title", "label_config", "maximum_annotations", "expert_instruction", "show_instruction"}`` of a
        project, or None when it does not exist (any more: deleted in Label Studio)."""
        try:
            with self._call(f"reading project {project_id}"):
                p = self._sdk.projects.get(id=project_id)
        except LabelStudioError as exc:
            if isinstance(exc.__cause__, ApiError) and exc.__cause__.status_code == 404:
                return None
            raise
        return {"title": p.title, "label_config": p.label_config, "maximum_annotations": p.maximum_annotations,
                "expert_instruction": p.expert_instruction, "show_instruction": p.show_instruction}

    def update_project(self, project_id: int, **changes: Any) -> None:
        if changes:
            with self._call(f"updating project {project_id} ({', '.join(changes)})"):
                self._sdk.projects.update(id=project_id, **changes)

    def ensure_project(self, title: str, label_config: str, maximum_annotations: int, description: str = "",
                       guidance: Mapping[str, Any] | None = None) -> int:
        """The id of the project titled ``title``, created if missing; its template, overlap and ``guidance``
        (:func:`hildif.labelstudio.guidance.project_guidance`: the instructions) are kept in sync."""
        if len(title) < 3:
            raise LabelStudioError(f"labelstudio.project_title {title!r}: Label Studio needs at least 3 characters")
        pid = self.find_project(title)
        if pid is None:
            with self._call(f"creating project {title!r}"):
                p = self._sdk.projects.create(
                    title=title, label_config=label_config, maximum_annotations=maximum_annotations,
                    description=description, show_skip_button=True, show_collab_predictions=False,
                    **dict(guidance or {}),
                )
            log.info("created Label Studio project %s (%r)", p.id, title)
            return int(p.id)
        current = self.project_settings(pid) or {}
        wanted = {"label_config": label_config, "maximum_annotations": maximum_annotations, **dict(guidance or {})}
        changes = {k: v for k, v in wanted.items() if current.get(k) != v}
        self.update_project(pid, **changes)
        return pid

    # ------------------------------------------------------------------ tasks and annotations
    def import_tasks(self, project_id: int, tasks: Sequence[Mapping[str, Any]]) -> list[int]:
        """Create ``tasks`` (dicts with ``data`` and ``meta``); return their ids in the same order."""
        if not tasks:
            return []
        with self._call(f"importing {len(tasks)} tasks into project {project_id}"):
            resp = self._sdk.projects.import_tasks(id=project_id, request=list(tasks), return_task_ids=True)
        ids = list(getattr(resp, "task_ids", None) or [])
        if len(ids) != len(tasks):
            raise LabelStudioError(
                f"importing into project {project_id}: sent {len(tasks)} tasks, Label Studio returned {len(ids)} ids"
            )
        return [int(i) for i in ids]

    def tasks(self, project_id: int) -> list[dict[str, Any]]:
        """All tasks of a project with their annotations (``fields="all"``), as plain dicts."""
        with self._call(f"listing the tasks of project {project_id}"):
            return [_plain(t) for t in self._sdk.tasks.list(project=project_id, fields="all", page_size=500)]

    def ratings(self, project_id: int, pairs_by_task: Mapping[int, PairKey]) -> list[Rating]:
        """Every annotation (submitted or skipped) of the given tasks as :class:`hildif.feedback.Rating` records.

        ``pairs_by_task``: task id -> (anchor_id, example_id), as recorded when the tasks were pushed; other tasks
        of the project are ignored.
        """
        users = self.users()
        out = []
        for task in self.tasks(project_id):
            key = pairs_by_task.get(int(task["id"]))
            if key is None:
                continue
            for ann in task.get("annotations") or []:
                ann.setdefault("task", task["id"])
                out.append(rating_from_annotation(key[0], key[1], ann, users))
        return out

    def annotations(self, task_id: int) -> list[dict[str, Any]]:
        with self._call(f"listing the annotations of task {task_id}"):
            return [_plain(a) for a in self._sdk.annotations.list(id=task_id)]

    def annotate(self, task_id: int, user_id: int, score: int, comment: str | None = None) -> int:
        """Record a rating on behalf of ``user_id`` (admin key needed); returns the annotation id."""
        with self._call(f"annotating task {task_id} for user {user_id}"):
            a = self._sdk.annotations.create(id=task_id, completed_by=user_id, result=result_for_score(score, comment))
        return int(a.id)

    def skip(self, task_id: int, user_id: int) -> int:
        """Record a skipped (cancelled) annotation for ``user_id``."""
        with self._call(f"skipping task {task_id} for user {user_id}"):
            a = self._sdk.annotations.create(id=task_id, completed_by=user_id, result=[], was_cancelled=True)
        return int(a.id)

    def update_annotation(self, annotation_id: int, score: int, comment: str | None = None) -> None:
        with self._call(f"updating annotation {annotation_id}"):
            self._sdk.annotations.update(id=annotation_id, result=result_for_score(score, comment))

    def delete_annotation(self, annotation_id: int) -> None:
        with self._call(f"deleting annotation {annotation_id}"):
            self._sdk.annotations.delete(id=annotation_id)

    # ------------------------------------------------------------------ users
    def users(self) -> dict[int, str]:
        """``{user id: email or username}`` of the organization."""
        with self._call("listing users"):
            return {int(u.id): str(u.email or u.username) for u in self._sdk.users.list()}

    def ensure_user(self, email: str) -> int:
        """The id of the user with this email, created if missing and attached to the admin's organization.

        Users made through the API cannot log in (Label Studio ignores the password); they suit rating on someone's
        behalf and tests. Real annotators sign up with an invite link (Organization > Add people).
        """
        for uid, name in self.users().items():
            if name == email:
                return uid
        me = self.check()
        with self._call(f"creating user {email}"):
            u = self._sdk.users.create(username=email.split("@")[0], email=email)
            if me.get("active_organization") is not None:
                self._sdk.users.update(id=u.id, active_organization=me["active_organization"])
        return int(u.id)

    def invite_path(self) -> str:
        """The organization's signup link, relative (``/user/signup/?token=...``), from ``GET /api/invite``: whoever
        opens it may make an account in the admin's organization (Community Edition has no other way to make
        accounts that can log in)."""
        with self._call("reading the organization's invite link"):
            resp = self._sdk._client_wrapper.httpx_client.request("api/invite", method="GET")
            if resp.status_code >= 400:
                raise ApiError(status_code=resp.status_code, headers=dict(resp.headers), body=resp.text)
        try:
            path = resp.json()["invite_url"]
        except (ValueError, KeyError, TypeError):
            raise LabelStudioError("Label Studio GET /api/invite: the answer has no invite_url") from None
        if not isinstance(path, str) or not path.startswith("/user/signup"):
            raise LabelStudioError("Label Studio GET /api/invite: invite_url is not a signup link")
        return path

    # ------------------------------------------------------------------ ML backend
    def connect_ml_backend(
        self, project_id: int, url: str, title: str = "hildif", basic_auth: tuple[str, str] | None = None,
        timeout: float | None = None,
    ) -> int:
        """Connect the hildif backend at ``url`` to the project (reusing a connection to the same URL).

        Label Studio calls the backend's ``/health`` and ``/setup`` now and creates the ``<url>/webhook`` webhook,
        without the backend's credentials. With ``basic_auth``, that webhook gets the project's webhook key header
        (:mod:`hildif.labelstudio.webhook`) so annotation events pass the backend's authentication.
        """
        url = url.rstrip("/")
        backend_id = None
        with self._call(f"listing ML backends of project {project_id}"):
            for b in self._sdk.ml.list(project=project_id):
                if str(b.url).rstrip("/") == url:
                    backend_id = int(b.id)
                    break
        if backend_id is None:
            kwargs: dict[str, Any] = {"project": project_id, "url": url, "title": title, "is_interactive": False}
            if basic_auth:
                kwargs.update(auth_method="BASIC_AUTH", basic_auth_user=basic_auth[0], basic_auth_pass=basic_auth[1])
            if timeout:
                kwargs["timeout"] = timeout
            with self._call(f"connecting ML backend {url} to project {project_id}"):
                backend_id = int(self._sdk.ml.create(**kwargs).id)
        if basic_auth:
            from hildif.labelstudio.webhook import request_webhook_key

            self.secure_backend_webhook(project_id, url, request_webhook_key(url, basic_auth, project_id))
        return backend_id

    def secure_backend_webhook(self, project_id: int, backend_url: str, webhook_key: str) -> int:
        """Add the project's webhook key header to the ``<backend>/webhook`` webhook (made by Label Studio when
        the backend was connected; created here if missing). Returns the webhook id."""
        from hildif.labelstudio.webhook import WEBHOOK_SECRET_HEADER

        target = backend_url.rstrip("/") + "/webhook"
        headers = {WEBHOOK_SECRET_HEADER: webhook_key}
        for w in self.webhooks(project_id):
            if str(w.get("url", "")).rstrip("/") == target:
                if (w.get("headers") or {}).get(WEBHOOK_SECRET_HEADER) != headers[WEBHOOK_SECRET_HEADER]:
                    with self._call(f"adding the webhook key to webhook {w['id']} of project {project_id}"):
                        self._sdk.webhooks.update(id=int(w["id"]), headers={**(w.get("headers") or {}), **headers})
                return int(w["id"])
        with self._call(f"creating the backend webhook of project {project_id}"):
            w = self._sdk.webhooks.create(url=target, project=project_id, send_payload=True,
                                          send_for_all_actions=True, headers=headers)
        return int(w.id)

    def ml_backend_state(self, backend_id: int) -> dict[str, Any]:
        with self._call(f"reading ML backend {backend_id}"):
            return _plain(self._sdk.ml.get(id=backend_id))

    def train(self, backend_id: int) -> None:
        """Ask Label Studio to send START_TRAINING to the backend (``POST /api/ml/{id}/train``)."""
        with self._call(f"starting training on ML backend {backend_id}"):
            self._sdk.ml.train(id=backend_id)

    def webhooks(self, project_id: int) -> list[dict[str, Any]]:
        with self._call(f"listing webhooks of project {project_id}"):
            return [_plain(w) for w in self._sdk.webhooks.list(project=str(project_id))]

    def export_json(self, project_id: int, max_bytes: int) -> bytes:
        """The project's JSON export (``GET /api/projects/{id}/export?exportType=JSON``: annotated tasks with their
        annotations), as raw bytes; :class:`LabelStudioError` when it exceeds ``max_bytes``."""
        chunks, size = [], 0
        with self._call(f"exporting project {project_id}"):
            for chunk in self._sdk.projects.exports.download_sync(id=project_id, export_type="JSON"):
                size += len(chunk)
                if size > max_bytes:
                    raise LabelStudioError(f"the export of project {project_id} exceeds {max_bytes} bytes")
                chunks.append(chunk)
        return b"".join(chunks)
