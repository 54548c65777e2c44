"""A task from a Label Studio project: its label config and its JSON export, read as plain data.

The label config must be a text-classification config: ``<Text name=".." value="$key"/>`` tags (one text, or two for a
pair) and one single-choice ``<Choices name=".." toName="..">`` tag whose ``<Choice value=".."/>`` values are the
label set, in config order. :func:`parse_label_config` says clearly what is missing otherwise.

The export is what ``GET /api/projects/{id}/export?exportType=JSON`` returns (fetched by
:func:`hildif.labelstudio.export.fetch_project_export`, or saved from Label Studio's Export button): a list of tasks
``{"id", "data": {key: value}, "annotations": [{"id", "completed_by", "result": [{"from_name", "to_name", "type":
"choices", "value": {"choices": [..]}}], "was_cancelled", "ground_truth"}], ...}``. Each annotated task becomes one
example: its label is the majority of its annotators' choices (``task.label_policy = "ground_truth"``: the annotation
marked ground truth, else the majority); a tie without ground truth leaves the task out (counted as ``tie``). The
votes stay in the example's metadata (``votes``, ``annotators``, ``agreement``, ``disagreement``, ``label_source``,
``ls_task_id``) with the task's other scalar data fields, so disagreements can be evaluated and chosen as anchors.

Nothing here talks to Label Studio; every input is treated as hostile: errors name the export, the task (by position
and id) and the field at fault, never echo the text.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

from hildif.data.example import Example
from hildif.data.loaders import DataFormatError, LoadStats
from hildif.tasks.definition import TaskDefinition, TaskError

_DTD = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
MAX_CONFIG_CHARS = 1_000_000


class LabelConfigError(TaskError):
    """A label config is not a text-classification config hildif can serve; the message says what is missing."""


@dataclass(frozen=True)
class TextTag:
    name: str
    key: str  # the task data key: value="$key"


@dataclass(frozen=True)
class ChoicesTag:
    name: str
    to_name: tuple[str, ...]
    choices: tuple[str, ...]


@dataclass(frozen=True)
class TextClassificationConfig:
    """The parts of a label config a text classifier needs: its text inputs and its single-choice label tags."""

    texts: tuple[TextTag, ...]
    choices: tuple[ChoicesTag, ...]

    def choices_tag(self, name: str | None = None) -> ChoicesTag:
        """The ``<Choices>`` tag called ``name``, or the only one when ``name`` is None."""
        if name is not None:
            for tag in self.choices:
                if tag.name == name:
                    return tag
            raise LabelConfigError(f"the label config has no <Choices name={name!r}> (it has: "
                                   f"{', '.join(t.name for t in self.choices)}; task.label)")
        if len(self.choices) > 1:
            raise LabelConfigError(f"the label config has {len(self.choices)} <Choices> tags "
                                   f"({', '.join(t.name for t in self.choices)}): name one in task.label")
        return self.choices[0]

    def text_tags(self, wanted: Sequence[str] = (), choices: ChoicesTag | None = None) -> tuple[TextTag, ...]:
        """The one or two ``<Text>`` inputs the model reads: those named in ``wanted`` (tag name or data key), else
        every ``<Text>`` when there are at most two, else the ones ``choices`` points at (``toName``)."""
        if wanted:
            out = []
            for name in wanted:
                tag = next((t for t in self.texts if name in (t.name, t.key)), None)
                if tag is None:
                    raise LabelConfigError(f"the label config has no <Text> tag or data key {name!r} (it has: "
                                           f"{', '.join(t.name for t in self.texts)}; task.text / task.text_pair)")
                out.append(tag)
            return tuple(out)
        if len(self.texts) <= 2:
            return self.texts
        targets = tuple(t for t in self.texts if choices is not None and t.name in choices.to_name)
        if 1 <= len(targets) <= 2:
            return targets
        raise LabelConfigError(f"the label config has {len(self.texts)} <Text> tags "
                               f"({', '.join(t.name for t in self.texts)}): name the text in task.text (and the "
                               "second of a pair in task.text_pair)")


def parse_label_config(xml: str) -> TextClassificationConfig:
    """Read the ``<Text>`` and ``<Choices>`` tags of a Label Studio label config.

    Raises :class:`LabelConfigError` for a config that is not XML, has a DTD, has no ``<Text>`` tag reading a data
    field, or no single-choice ``<Choices>`` tag with at least two ``<Choice>`` values.
    """
    if not isinstance(xml, str) or not xml.strip():
        raise LabelConfigError("the label config is empty")
    if len(xml) > MAX_CONFIG_CHARS:
        raise LabelConfigError(f"the label config is longer than {MAX_CONFIG_CHARS} characters")
    if _DTD.search(xml):
        raise LabelConfigError("the label config contains a DTD (<!DOCTYPE>/<!ENTITY>), which a label config never "
                               "needs")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        line, column = exc.position
        raise LabelConfigError(f"the label config is not valid XML (line {line}, column {column})") from None
    texts, choices, multiple = [], [], []
    for el in root.iter():
        if el.tag == "Text":
            name, value = (el.get("name") or "").strip(), (el.get("value") or "").strip()
            if name and value.startswith("$") and len(value) > 1:
                texts.append(TextTag(name, value[1:]))
        elif el.tag == "Choices":
            name = (el.get("name") or "").strip()
            # a Choice's alias, when set, is what annotation results hold instead of its value
            values = tuple(v for v in ((c.get("alias") or c.get("value") or "").strip() for c in el.iter("Choice"))
                           if v)
            if not name or len(values) < 2:
                continue
            if len(set(values)) != len(values):
                raise LabelConfigError(f"<Choices name={name!r}> lists a <Choice> value twice")
            if (el.get("choice") or "single").lower() == "multiple":
                multiple.append(name)
                continue
            to_name = tuple(n.strip() for n in (el.get("toName") or "").split(",") if n.strip())
            choices.append(ChoicesTag(name, to_name, values))
    if not choices:
        extra = (f" (<Choices> {', '.join(map(repr, multiple))} allow several choices: multi-label tasks are not "
                 "supported)") if multiple else ""
        raise LabelConfigError("not a text-classification config: it has no single-choice <Choices> tag with at least "
                               f"two <Choice> values{extra}")
    if not texts:
        raise LabelConfigError('not a text-classification config: it has no <Text name=".." value="$field"> tag')
    return TextClassificationConfig(tuple(texts), tuple(choices))


def resolve_labelstudio_task(task: TaskDefinition, config: TextClassificationConfig) -> TaskDefinition:
    """The task with its label field (the ``<Choices>`` name), text fields (data keys) and labels from the config.
    Labels named in the task must be exactly the config's ``<Choice>`` values (their order is the task's)."""
    tag = config.choices_tag(None if task.label_field in ("", "label") and len(config.choices) == 1
                             else task.label_field)
    texts = config.text_tags(task.text_fields, tag)
    if len(texts) > 2:
        raise LabelConfigError(f"{len(texts)} text inputs: a task reads one text or a pair")
    labels = task.labels or tag.choices
    if set(labels) != set(tag.choices):
        raise TaskError(f"task.labels ({', '.join(labels)}) differ from the <Choice> values of <Choices "
                        f"name={tag.name!r}> ({', '.join(tag.choices)})")
    return task.replace(label_field=tag.name, text_fields=tuple(t.key for t in texts), labels=tuple(labels))


def _annotation_choice(ann: dict[str, Any], tag: str, labels: dict[str, int], where: str) -> int | None:
    """The class an annotation chose in the ``tag`` Choices (None when it made no choice there)."""
    result = ann.get("result")
    if result is None:
        return None
    if not isinstance(result, list):
        raise DataFormatError(where, 0, "field 'result' is not a list")
    for item in result:
        if not isinstance(item, dict) or item.get("from_name") != tag:
            continue
        value = item.get("value")
        chosen = value.get("choices") if isinstance(value, dict) else None
        if not isinstance(chosen, list) or not chosen or not all(isinstance(c, str) for c in chosen):
            raise DataFormatError(where, 0, f"result of {tag!r}: field 'value.choices' is not a list of labels")
        if len(chosen) != 1:
            raise DataFormatError(where, 0, f"result of {tag!r}: {len(chosen)} choices, a single-label task needs one")
        if chosen[0] not in labels:
            raise DataFormatError(where, 0, f"result of {tag!r}: field 'value.choices' holds a value that is not one "
                                            "of the label config's <Choice> values")
        return labels[chosen[0]]
    return None


def _metadata_value(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) and not (isinstance(value, str) and len(value) > 1000)


def examples_from_export(
    export: Any, task: TaskDefinition, *, source: str = "Label Studio export", skip_bad_rows: bool = False,
    stats: LoadStats | None = None,
) -> list[Example]:
    """One example per annotated task of ``export`` (a resolved task: :func:`resolve_labelstudio_task`).

    ``source`` names the export in errors (a file name, or "project N"); rows are tasks by position (from 1).
    """
    if not isinstance(export, list):
        raise DataFormatError(source, 0, "a Label Studio JSON export is a list of tasks")
    stats = stats if stats is not None else LoadStats()
    stats.file = source
    labels = {name: i for i, name in enumerate(task.labels)}
    out: list[Example] = []
    for row, item in enumerate(export, start=1):
        stats.rows += 1
        try:
            ex = _task_example(item, task, labels, source, row)
        except DataFormatError as exc:
            if not skip_bad_rows:
                raise
            stats.skip("bad_task", str(exc))
            continue
        if isinstance(ex, str):
            stats.skip(ex)
            continue
        out.append(ex)
    stats.loaded = len(out)
    return out


def _task_example(item: Any, task: TaskDefinition, labels: dict[str, int], source: str, row: int) -> Example | str:
    """The task's example, or the reason it is none (``unannotated``, ``tie``)."""
    if not isinstance(item, dict):
        raise DataFormatError(source, row, "a task is not an object")
    task_id = item.get("id")
    if isinstance(task_id, bool) or not isinstance(task_id, int):
        raise DataFormatError(source, row, "field 'id' is missing or not an integer")
    where = f"{source}, task {task_id}"
    data = item.get("data")
    if not isinstance(data, dict):
        raise DataFormatError(source, row, f"task {task_id}: field 'data' is missing or not an object")
    texts = []
    for key in task.text_fields:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise DataFormatError(source, row, f"task {task_id}: field 'data.{key}' is missing, empty or not text")
        texts.append(value.strip())
    anns = item.get("annotations") or []
    if not isinstance(anns, list):
        raise DataFormatError(source, row, f"task {task_id}: field 'annotations' is not a list")
    votes: list[int] = []
    annotators: list[Any] = []
    truth: int | None = None
    for ann in anns:
        if not isinstance(ann, dict):
            raise DataFormatError(source, row, f"task {task_id}: an annotation is not an object")
        if ann.get("was_cancelled"):
            continue
        try:
            choice = _annotation_choice(ann, task.label_field, labels, where)
        except DataFormatError as exc:
            raise DataFormatError(source, row, f"task {task_id}, annotation {ann.get('id')!r}: {exc.reason}") from None
        if choice is None:
            continue
        votes.append(choice)
        annotators.append(ann.get("completed_by"))
        if ann.get("ground_truth") is True and truth is None:
            truth = choice
    if len(votes) < task.min_annotations:
        return "unannotated"
    counts = Counter(votes)
    ranked = counts.most_common()
    if task.label_policy == "ground_truth" and truth is not None:
        label, label_source = truth, "ground_truth"
    elif len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        if truth is None:
            return "tie"
        label, label_source = truth, "ground_truth"
    else:
        label, label_source = ranked[0][0], "majority"
    metadata = {k: v for k, v in data.items() if k not in task.text_fields and _metadata_value(v)}
    metadata.update({
        "ls_task_id": task_id,
        "votes": {task.labels[c]: n for c, n in sorted(counts.items())},
        "annotators": len(votes),
        "annotator_ids": [a for a in annotators if isinstance(a, (int, str))],
        "agreement": round(counts[label] / len(votes), 4),
        "disagreement": len(counts) > 1,
        "label_source": label_source,
        "source_file": source,
    })
    return Example(f"ls-{task_id}", texts[0], texts[1] if len(texts) > 1 else None, label, metadata)
