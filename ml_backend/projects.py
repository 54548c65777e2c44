"""What the backend serves for a Label Studio project, read from the project's label config.

* hildif's own rating projects (a ``<Choices>`` named like the rating template's, with its five answers): a
  similarity pre-annotation when ``--preannotate`` is on, else empty predictions (unchanged).
* a team's text-classification project (:func:`hildif.tasks.labelstudio_export.parse_label_config`: ``<Text>`` tags
  and a single-choice ``<Choices>``): the served model's label as a ``choices`` result with the project's own
  ``from_name`` / ``to_name``, when the model's labels (``Classifier.labels``, saved with the model) are among the
  project's ``<Choice>`` values.
* anything else cannot be served: :class:`UnservableConfig`, answered 400 with a message naming what is missing
  (never the config itself).

Everything here is pure (no I/O): the config and the task data are hostile input.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Sequence

from hildif.labelstudio.convert import FROM_NAME, SCORE_CHOICES
from hildif.tasks.labelstudio_export import (
    ChoicesTag, LabelConfigError, TextClassificationConfig, parse_label_config,
)
from ml_backend.schema import FieldError

RATING = "rating"
TEXT = "text"
MAX_REASON_CHARS = 300


class UnservableConfig(FieldError):
    """A project's label config is neither hildif's rating config nor a text-classification config."""

    def __init__(self, reason: str, field_name: str = "schema") -> None:
        super().__init__(field_name, f"hildif cannot serve this project: {reason}"[:MAX_REASON_CHARS + 40])


@dataclass(frozen=True)
class ProjectConfig:
    """A project's kind (:data:`RATING` or :data:`TEXT`) and, for a text project, its parsed tags."""

    kind: str
    text: TextClassificationConfig | None = None


@dataclass(frozen=True)
class ServedTags:
    """Where a text project's prediction goes: the ``<Choices>`` tag, the ``<Text>`` it points at, and the task
    data keys the model reads (one text or a pair)."""

    choices: ChoicesTag
    to_name: str
    keys: tuple[str, ...]


@functools.lru_cache(maxsize=64)
def read_label_config(xml: str, field_name: str = "schema") -> ProjectConfig:
    """The project's kind; :class:`UnservableConfig` (naming ``field_name`` and what is missing) otherwise."""
    try:
        config = parse_label_config(xml)
    except LabelConfigError as exc:
        raise UnservableConfig(f"{_short(str(exc))}. hildif serves text-classification projects (<Text name=.. "
                               'value="$field"/> tags and one single-choice <Choices> with <Choice> values) and '
                               "its own rating projects", field_name) from None
    if any(tag.name == FROM_NAME and set(tag.choices) == set(SCORE_CHOICES) for tag in config.choices):
        return ProjectConfig(RATING)
    if not any(_tags_for(config, tag) is not None for tag in config.choices):
        raise UnservableConfig(f"its label config has {len(config.texts)} <Text> tags and no <Choices> whose toName "
                               "names one or two of them: the model reads one text or a pair", field_name)
    return ProjectConfig(TEXT, config)


def _short(text: str) -> str:
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS - 3] + "..."


def _tags_for(config: TextClassificationConfig, tag: ChoicesTag) -> ServedTags | None:
    try:
        texts = config.text_tags((), tag)
    except LabelConfigError:
        return None
    if not 1 <= len(texts) <= 2:
        return None
    to_name = next((n for n in tag.to_name if any(t.name == n for t in config.texts)), texts[0].name)
    return ServedTags(tag, to_name, tuple(t.key for t in texts))


def served_tags(config: TextClassificationConfig, labels: Sequence[str]) -> ServedTags | str:
    """The ``<Choices>`` the model's ``labels`` answer (every label one of its ``<Choice>`` values; with several
    such tags, the first), or the reason there is none, naming both label sets."""
    for tag in config.choices:
        if set(labels) <= set(tag.choices):
            found = _tags_for(config, tag)
            if found is not None:
                return found
    names = "; ".join(f"<Choices name={t.name!r}>: {', '.join(t.choices)}" for t in config.choices)
    return _short(f"the served model's labels ({', '.join(labels)}) are not the project's <Choice> values ({names}); "
                  "train a model on this project (Start training) or serve one with these labels")


def task_texts(task: Any, keys: Sequence[str]) -> tuple[str, str | None] | None:
    """The text (pair) a task's ``data`` holds under ``keys``; None when a key is missing, empty or not a string."""
    data = task.get("data") if isinstance(task, dict) else None
    if not isinstance(data, dict):
        return None
    values = [data.get(k) for k in keys]
    if not all(isinstance(v, str) and v.strip() for v in values):
        return None
    return values[0], (values[1] if len(values) > 1 else None)


def choices_result(tags: ServedTags, label: str) -> list[dict[str, Any]]:
    """A Label Studio ``result`` choosing ``label`` in the project's own tags."""
    return [{"from_name": tags.choices.name, "to_name": tags.to_name, "type": "choices",
             "value": {"choices": [label]}}]


__all__ = ["ProjectConfig", "RATING", "ServedTags", "TEXT", "UnservableConfig", "choices_result", "read_label_config",
           "served_tags", "task_texts"]
