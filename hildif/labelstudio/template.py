"""The rating template (Label Studio's label config) that ships inside the package, and the tag names read from it.

``templates/rating.xml`` is package data, read with :mod:`importlib.resources`, so an installed wheel finds it as
well as a checkout. The names hildif writes into annotations come from the template itself, as the
label-studio-ml-backend examples read them from the label config: the rating's ``from_name`` is the name of its one
``<Choices>``, ``to_name`` that tag's ``toName``, and the comment's name that of its ``<TextArea>``.

A round on a team's own task shows that task's text fields: :func:`task_label_config` generates its template from
the shipped one (headers named after the task's fields, one text or a pair per side, the same tags and scale).
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib import resources
from typing import Sequence

from hildif.errors import HildifError

PACKAGE = "hildif.labelstudio"
RATING_TEMPLATE = "templates/rating.xml"


class TemplateError(HildifError, ValueError):
    """A label config lacks what hildif's rating needs (one ``<Choices>`` with a ``toName``); the message says what."""


@dataclass(frozen=True)
class RatingTags:
    """The tag names of the rating template. ``choices``: the answers in the template's order."""

    from_name: str
    to_name: str
    comment_name: str | None
    choices: tuple[str, ...]


def load_label_config() -> str:
    """The rating template's XML, from the installed package."""
    return resources.files(PACKAGE).joinpath(RATING_TEMPLATE).read_text(encoding="utf-8")


# the shipped template's question is about NLI pairs; a team's own task gets this one
TASK_QUESTION = ("Do the test case (left) and the training example (right) share a pattern a model could use as a "
                 "shortcut, such as the same cue words or phrasing? (Not the topic; the instructions show an example "
                 "of each choice.) They are:")
_TEXT_TAGS = (("anchor_premise", "anchor_hypothesis"), ("example_premise", "example_hypothesis"))


def field_header(field: str) -> str:
    """A text field's name as a header: ``question_text`` -> ``Question text``."""
    words = " ".join(field.replace("_", " ").replace("-", " ").split())
    return (words[:1].upper() + words[1:]) if words else "Text"


def task_label_config(text_fields: Sequence[str] = ()) -> str:
    """The rating template for a task whose examples have ``text_fields`` (one text or a pair): the shipped template
    with the task's field names as headers, the second text of each side removed for a single-text task, and a
    question that is not about NLI. Tag names, data keys and the five-choice scale stay the shipped template's (the
    first text is ``$anchor_premise`` / ``$example_premise``, the second ``$anchor_hypothesis`` /
    ``$example_hypothesis``), so ratings read the same. No fields (MNLI): the shipped template itself, unchanged."""
    fields = [str(f) for f in text_fields]
    if not fields:
        return load_label_config()
    if len(fields) > 2:
        raise TemplateError(f"a rating template shows one text or a pair per side, not {len(fields)}")
    root = ET.fromstring(load_label_config())  # the template's comment is not kept: it describes the MNLI layout
    for first, second in _TEXT_TAGS:
        card = next(v for v in root.iter("View") if any(t.get("name") == first for t in v.findall("Text")))
        children = list(card)
        head_first = children[[c.get("name") for c in children].index(first) - 1]
        head_first.set("value", field_header(fields[0]))
        i = [c.get("name") for c in children].index(second)
        if len(fields) == 2:
            children[i - 1].set("value", field_header(fields[1]))
        else:
            card.remove(children[i - 1])
            card.remove(children[i])
    question = next(h for h in root.iter("Header") if str(h.get("value", "")).startswith("Do the test case"))
    question.set("value", TASK_QUESTION)
    return ET.tostring(root, encoding="unicode") + "\n"


def rating_tags(xml: str | None = None) -> RatingTags:
    """The rating's tag names in ``xml`` (default: the shipped template); :class:`TemplateError` when it has no single
    ``<Choices>`` with a ``name`` and a ``toName``."""
    return _parse(load_label_config() if xml is None else xml)


@functools.lru_cache(maxsize=8)
def _parse(xml: str) -> RatingTags:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise TemplateError(f"label config is not valid XML ({exc})") from None
    choices = root.findall(".//Choices")
    if len(choices) != 1:
        raise TemplateError(f"label config: expected one <Choices> tag for the rating, found {len(choices)}")
    tag = choices[0]
    from_name, to_name = tag.get("name"), tag.get("toName")
    if not from_name or not to_name:
        raise TemplateError("label config: the <Choices> tag needs both name and toName")
    comments = root.findall(".//TextArea")
    return RatingTags(
        from_name=from_name,
        to_name=to_name,
        comment_name=comments[0].get("name") if comments else None,
        choices=tuple(c.get("value", "") for c in tag.findall("Choice")),
    )


__all__ = ["RATING_TEMPLATE", "RatingTags", "TASK_QUESTION", "TemplateError", "field_header", "load_label_config",
           "rating_tags", "task_label_config"]
