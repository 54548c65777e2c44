"""What the backend's HTTP API accepts: a small hand-written schema validator (no dependency).

The API takes data, never server paths: pair IDs, round ids and settings travel in the request body and are
checked here for type, size and allowed values. Any field that names a file or folder on the server
(``pair_ids_file``, ``anchors_file``, ``config``, ``run_dir``, ``*_path`` ...) is refused, at any depth, with the
field's name. Errors name the field and what was expected; they never echo the value sent (a value may be a secret
or a file's content pasted by a client).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from hildif.errors import HildifError
from hildif.influence.anchors import ANCHOR_METHODS, PROJECT_RULES

# Keys that name something on the server's disk; refused over HTTP wherever they appear.
_FILE_KEY = re.compile(r"(^|_)(file|files|path|paths|dir|dirs|directory|folder|config|cfg)$", re.IGNORECASE)

# Patterns are matched whole (re.fullmatch): "$" alone also matches before a trailing newline.
PAIR_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")  # MNLI/HANS pairIDs: "12345n", "ex123", "53088c"
RULE = re.compile(r"[A-Za-z0-9_:+-]{1,200}")  # heuristic:NAME / label:NAME / misclassified / all, joined by +
ACTION = re.compile(r"[A-Z][A-Z_]{0,63}")  # Label Studio webhook actions: ANNOTATION_CREATED, START_TRAINING
MAX_PAIR_IDS = 1000
MAX_TASKS = 1000
MAX_ID = 2**31 - 1  # ids stored in SQLite and sent to Label Studio: a larger integer is refused, never an overflow
MAX_DEPTH = 64  # nesting of a body's lists and objects (Label Studio's deepest payloads nest about 8)
MAX_TASK_TEXT_CHARS = 20_000  # per string of a /predict task's data (the model reads its first max_length tokens)

# The top-level fields Label Studio 1.23 sends (label_studio/ml/api_connector.py, webhooks/models.py); any other is
# refused by name. What a task, project or annotation object holds inside is Label Studio's and not checked.
SETUP_FIELDS = ("project", "schema", "hostname", "access_token", "extra_params")
PREDICT_FIELDS = ("tasks", "project", "label_config", "params")
PREDICT_PARAMS = ("login", "password", "context")
WEBHOOK_FIELDS = ("action", "project", "annotation", "annotations", "task", "tasks", "label_link", "label")


class FieldError(HildifError, ValueError):
    """A request field the API does not accept: ``field`` is its dotted name, the message says what is expected."""

    def __init__(self, field_name: str, message: str, status: int = 400) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.status = status


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "object",
            type(None): "null"}.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class Field:
    """One field of an object: its check (value -> cleaned value; raises FieldError) and whether it is required."""

    check: Callable[[str, Any], Any]
    required: bool = False


def integer(lo: int, hi: int) -> Callable[[str, Any], int]:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(name, f"expected an integer, got a {_type_name(value)}")
        if not lo <= value <= hi:
            raise FieldError(name, f"must be between {lo} and {hi}")
        return value
    return check


def string(pattern: re.Pattern[str], what: str) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise FieldError(name, f"expected a string, got a {_type_name(value)}")
        if not pattern.fullmatch(value):
            raise FieldError(name, f"expected {what}")
        return value
    return check


def one_of(*allowed: str) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise FieldError(name, f"expected a string, got a {_type_name(value)}")
        if value not in allowed:
            raise FieldError(name, f"must be one of {', '.join(allowed)}")
        return value
    return check


def list_of(item: Callable[[str, Any], Any], max_items: int, min_items: int = 1) -> Callable[[str, Any], list]:
    def check(name: str, value: Any) -> list:
        if not isinstance(value, list):
            raise FieldError(name, f"expected a list, got a {_type_name(value)}")
        if not min_items <= len(value) <= max_items:
            raise FieldError(name, f"expected {min_items} to {max_items} items, got {len(value)}")
        return [item(f"{name}[{i}]", v) for i, v in enumerate(value)]
    return check


def refuse_file_fields(name: str, value: Any) -> None:
    """FieldError for the first key (at any depth) that names a server file or folder."""
    if isinstance(value, dict):
        for key, sub in value.items():
            path = f"{name}.{key}" if name else str(key)
            if isinstance(key, str) and _FILE_KEY.search(key):
                raise FieldError(path, "names a file or folder on the server; the HTTP API takes data, not paths "
                                       "(send pair IDs as 'pair_ids')")
            refuse_file_fields(path, sub)
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            refuse_file_fields(f"{name}[{i}]", sub)


@dataclass(frozen=True)
class Obj:
    """A JSON object with known fields only (an unknown key is refused by name)."""

    fields: dict[str, Field] = field(default_factory=dict)

    def __call__(self, name: str, value: Any) -> dict[str, Any]:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise FieldError(name or "body", f"expected an object, got a {_type_name(value)}")
        refuse_file_fields(name, value)
        out: dict[str, Any] = {}
        for key in value:
            if key not in self.fields:
                path = f"{name}.{key}" if name else str(key)
                raise FieldError(path, f"unknown field (allowed: {', '.join(self.fields) or 'none'})")
        for key, spec in self.fields.items():
            path = f"{name}.{key}" if name else key
            if key not in value or value[key] is None:
                if spec.required:
                    raise FieldError(path, "required")
                continue
            out[key] = spec.check(path, value[key])
        return out


def _round_id(name: str, value: Any) -> str:
    from hildif.service import RoundError, validate_round_id

    if not isinstance(value, str):
        raise FieldError(name, f"expected a string, got a {_type_name(value)}")
    try:
        return validate_round_id(value)
    except RoundError:
        raise FieldError(name, "use 1-64 letters, digits, '.', '_' or '-' (starting alphanumeric)") from None


SELECTION = Obj({
    "method": Field(one_of(*ANCHOR_METHODS)),
    "n": Field(integer(1, 1000)),
    "seed": Field(integer(0, MAX_ID)),
    "pair_ids": Field(list_of(string(PAIR_ID, "a pairID (letters, digits, '_.:-', at most 64)"), MAX_PAIR_IDS)),
    "rule": Field(string(RULE, "a rule such as heuristic:lexical_overlap+misclassified")),
    "project_anchors": Field(one_of(*PROJECT_RULES)),
    "task_ids": Field(list_of(integer(1, MAX_ID), MAX_PAIR_IDS)),
})

JOB_PARAMS = {
    "sync": Obj({"round_id": Field(_round_id, required=True), "project_id": Field(integer(1, MAX_ID))}),
    "start": Obj({"round_id": Field(_round_id, required=True), "selection": Field(SELECTION)}),
    "train": Obj({"project_id": Field(integer(1, MAX_ID), required=True)}),
}


def job_request(data: Any) -> tuple[str, dict[str, Any]]:
    """``POST /jobs`` body -> (kind, cleaned params); FieldError naming the field otherwise."""
    body = Obj({"kind": Field(one_of(*JOB_PARAMS), required=True), "params": Field(lambda n, v: v)})("", data)
    kind = body["kind"]
    params = JOB_PARAMS[kind]("params", body.get("params") or {})
    selection = params.get("selection")
    if selection is not None:
        method = selection.get("method", "paper")
        if method == "pairids" and not selection.get("pair_ids"):
            raise FieldError("params.selection.pair_ids", "required when method is 'pairids' (a list of pairIDs)")
        if method != "pairids" and "pair_ids" in selection:
            raise FieldError("params.selection.pair_ids", "only with method 'pairids'")
        if method == "rule" and not selection.get("rule"):
            raise FieldError("params.selection.rule", "required when method is 'rule'")
        for key in ("project_anchors", "task_ids"):
            if method != "project" and key in selection:
                raise FieldError(f"params.selection.{key}", "only with method 'project'")
        if method == "project" and selection.get("project_anchors") == "ids" and not selection.get("task_ids"):
            raise FieldError("params.selection.task_ids", "required when project_anchors is 'ids' (Label Studio task ids)")
    return kind, params


def json_object(raw: bytes) -> dict[str, Any]:
    """A request body -> its JSON object; FieldError ``body`` (400) for anything else: not JSON, not UTF-8, not an
    object, nested deeper than MAX_DEPTH (deep nesting used to end in a RecursionError, 500)."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise FieldError("body", f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # not JSON, not UTF-8, an integer of more than 4300 digits
        raise FieldError("body", "expected a JSON object") from None
    if not isinstance(data, dict):
        raise FieldError("body", f"expected a JSON object, got a {_type_name(data)}")
    level, depth = [data], 1
    while level:
        level = [v for c in level for v in (c.values() if isinstance(c, dict) else c) if isinstance(v, (dict, list))]
        depth += bool(level)
        if depth > MAX_DEPTH:
            raise FieldError("body", f"nested deeper than {MAX_DEPTH} levels")
    return data


def known_fields(data: dict[str, Any], allowed: tuple[str, ...], where: str = "") -> dict[str, Any]:
    """``data`` itself, or FieldError naming its first key outside ``allowed`` (only this level is looked at)."""
    for key in data:
        if key not in allowed:
            raise FieldError(f"{where}.{key}" if where else str(key), f"unknown field (allowed: {', '.join(allowed)})")
    return data


def project_id(name: str, value: Any) -> int | None:
    """Label Studio's project: ``"<id>.<created timestamp>"`` (/setup, /predict), an integer, or an object with an
    ``id`` (webhooks); None when absent or not a number. An id outside 1..MAX_ID is a FieldError (400), not an
    overflow in SQLite."""
    if value is None:
        return None
    if isinstance(value, dict):
        name, value = f"{name}.id", value.get("id")
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    text = str(value).split(".")[0].strip()
    if not text.lstrip("-").isdigit():
        return None
    if len(text) > 19 or not 1 <= int(text) <= MAX_ID:
        raise FieldError(name, f"a Label Studio project id between 1 and {MAX_ID}")
    return int(text)


def webhook_action(data: dict[str, Any]) -> str:
    if "action" not in data or data["action"] in (None, ""):
        raise FieldError("action", "required")
    return string(ACTION, "a Label Studio action name such as ANNOTATION_CREATED")("action", data["action"])


def tasks_list(data: dict[str, Any]) -> list[dict[str, Any]]:
    tasks = data.get("tasks")
    if not isinstance(tasks, list):
        raise FieldError("tasks", f"expected a list of task objects, got a {_type_name(tasks)}")
    if len(tasks) > MAX_TASKS:
        raise FieldError("tasks", f"at most {MAX_TASKS} tasks per request, got {len(tasks)}")
    for i, t in enumerate(tasks):
        if not isinstance(t, dict):
            raise FieldError(f"tasks[{i}]", f"expected a task object, got a {_type_name(t)}")
        if not isinstance(t.get("data", {}), dict):
            raise FieldError(f"tasks[{i}].data", f"expected an object, got a {_type_name(t.get('data'))}")
        for key, value in (t.get("data") or {}).items():
            if isinstance(value, str) and len(value) > MAX_TASK_TEXT_CHARS:
                raise FieldError(f"tasks[{i}].data.{key}", f"at most {MAX_TASK_TEXT_CHARS} characters per text",
                                 status=413)
    return tasks


def optional_string(data: dict[str, Any], key: str, max_len: int) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise FieldError(key, f"expected a string, got a {_type_name(value)}")
    if len(value) > max_len:
        raise FieldError(key, f"at most {max_len} characters")
    return value


# ------------------------------------------------------------------------------------------ POST /influence
MAX_TEXT_CHARS = 5000  # per text of an influence query (the model reads at most model.max_length tokens of it)
MAX_INFLUENCE_K = 100
MAX_INFLUENCE_RERANK = 200
LABEL_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,100}")
# where a Label Studio task's data holds the text (pair), tried in order after the configured task.text/text_pair
TASK_TEXT_FIELDS = (("anchor_premise", "anchor_hypothesis"), ("premise", "hypothesis"), ("text", "text_pair"))


def text(max_len: int) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise FieldError(name, f"expected a string, got a {_type_name(value)}")
        if len(value) > max_len:
            raise FieldError(name, f"at most {max_len} characters")
        return value
    return check


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise FieldError(name, f"expected true or false, got a {_type_name(value)}")
    return value


def label_value(name: str, value: Any) -> int | str:
    if isinstance(value, str):
        return string(LABEL_NAME, "a label name (1-100 characters)")(name, value)
    return integer(0, 1000)(name, value)


INFLUENCE = Obj({
    "premise": Field(text(MAX_TEXT_CHARS)),
    "hypothesis": Field(text(MAX_TEXT_CHARS)),
    "label": Field(label_value),
    "k": Field(integer(1, MAX_INFLUENCE_K)),
    "harmful": Field(boolean),
    "rerank": Field(integer(0, MAX_INFLUENCE_RERANK)),
})


def _task_texts(task: Any, fields: tuple[tuple[str, str | None], ...]) -> tuple[str, str | None]:
    """(first text, second text or None) from a Label Studio task's ``data``: the first of ``fields`` present."""
    if not isinstance(task, dict):
        raise FieldError("task", f"expected a Label Studio task object, got a {_type_name(task)}")
    data = task.get("data")
    if not isinstance(data, dict):
        raise FieldError("task.data", f"expected an object, got a {_type_name(data)}")
    for first, second in fields:
        if first and data.get(first) not in (None, ""):
            premise = text(MAX_TEXT_CHARS)(f"task.data.{first}", data[first])
            pair = data.get(second) if second else None
            return premise, (text(MAX_TEXT_CHARS)(f"task.data.{second}", pair) if pair not in (None, "") else None)
    names = ", ".join(f for pair in fields for f in pair if f)
    raise FieldError("task.data", f"no text to explain (looked for {names})")


def influence_request(data: dict[str, Any], text_fields: tuple[str | None, str | None] = (None, None)) -> dict[str, Any]:
    """``POST /influence`` body -> {premise, hypothesis, label, k, harmful, rerank}.

    The text is ``premise`` (+ ``hypothesis``) or a Label Studio ``task`` (its ``data``: the configured
    ``task.text``/``task.text_pair`` fields, else a rating task's anchor, ``premise``/``hypothesis`` or
    ``text``/``text_pair``); exactly one of the two. ``k``: 1-100 (default 10); ``rerank``: 0-200 exact re-scorings
    (default 0, the store's scores); ``label``: the class to explain (index or name; default the prediction).
    Only the task's ``data`` text fields are read (a task may carry any other key, it is ignored).
    """
    rest = {key: value for key, value in data.items() if key != "task"}
    body = INFLUENCE("", rest)
    if "task" in data and "premise" in body:
        raise FieldError("task", "send either 'premise' (and 'hypothesis') or a Label Studio 'task', not both")
    if "task" not in data and "premise" not in body:
        raise FieldError("task", "required: 'premise' (and 'hypothesis') or a Label Studio 'task'")
    if "task" in data:
        if "hypothesis" in body:
            raise FieldError("hypothesis", "only with 'premise' (a task brings its own texts)")
        first, second = text_fields
        fields = (((first, second),) if first else ()) + TASK_TEXT_FIELDS
        body["premise"], body["hypothesis"] = _task_texts(data["task"], fields)
    if not body["premise"].strip():
        raise FieldError("premise", "empty text")
    hypothesis = body.get("hypothesis")
    return {"premise": body["premise"], "hypothesis": hypothesis if hypothesis not in (None, "") else None,
            "label": body.get("label"), "k": body.get("k", 10), "harmful": body.get("harmful", False),
            "rerank": body.get("rerank", 0)}
