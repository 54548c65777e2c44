"""A report's Markdown (``round.md``, ``demo.md``) as one self-contained HTML page: the same text, tables and links,
rendered by markdown-it-py, with every image it shows embedded as a ``data:`` URI and the style inline, so the page
opens from a file with no server and no network. Links stay as they are in the Markdown (relative to the page's
folder, or the Label Studio project's URL).

The page comes from the template ``templates/report.html`` (Jinja2, autoescaped; the rendered Markdown is the only
markup let through, and the Markdown itself may hold no raw HTML: markdown-it's ``html`` option is off, so any
``<`` in a rated text shows as text).
"""

from __future__ import annotations

import base64
import mimetypes
from importlib import resources
from pathlib import Path

from hildif.utils.atomic import write_text_atomic

TEMPLATE = "report.html"


def _markdown_parser():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")


def data_uri(path: Path) -> str:
    """The file at ``path`` as a ``data:`` URI."""
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def markdown_to_html(text: str, base: str | Path) -> str:
    """``text`` (Markdown) as HTML, each image whose source is a file relative to ``base`` embedded as a data URI
    (an image that is not there is left as it is: the page's test finds it)."""
    md = _markdown_parser()
    tokens = md.parse(text)
    for token in tokens:
        for child in token.children or []:
            if child.type != "image":
                continue
            src = str(child.attrGet("src") or "")
            path = Path(base) / src
            if src and ":" not in src and path.is_file():
                child.attrSet("src", data_uri(path))
    return md.renderer.render(tokens, md.options, {})


def render_page(markdown_text: str, base: str | Path, title: str) -> str:
    """The whole page (see the module docstring)."""
    from jinja2 import Environment
    from markupsafe import Markup

    from hildif import __version__

    source = resources.files("hildif.rounds").joinpath("templates", TEMPLATE).read_text(encoding="utf-8")
    template = Environment(autoescape=True, keep_trailing_newline=True).from_string(source)
    return template.render(title=title, body=Markup(markdown_to_html(markdown_text, base)),
                           footer=f"Written by hildif {__version__}; the same report as Markdown beside this page.")


def write_html(markdown_path: str | Path, html_path: str | Path, title: str) -> Path:
    """Render the Markdown file ``markdown_path`` into ``html_path`` (atomically; images relative to the Markdown
    file's folder). Returns ``html_path``."""
    markdown_path = Path(markdown_path)
    page = render_page(markdown_path.read_text(encoding="utf-8"), markdown_path.parent, title)
    return write_text_atomic(Path(html_path), page)


__all__ = ["data_uri", "markdown_to_html", "render_page", "write_html"]
