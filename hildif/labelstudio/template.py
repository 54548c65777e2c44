"""The rating template (Label Studio's label config) that ships inside the package, and the tag names read from it.

``templates/rating.xml`` is package data, read with :mod:`importlib.resources`, so an installed wheel finds it as
well as a checkout. The names hildif writes into annotations come from the template itself, as the
label-studio-ml-backend examples read them from the label config: the rating's ``from_name`` is the name of its one
``<Choices>``, ``to_name`` that tag's ``toName``, and the comment's name that of its ``<TextArea>``.
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib import resources

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


__all__ = ["RATING_TEMPLATE", "RatingTags", "TemplateError", "load_label_config", "rating_tags"]
