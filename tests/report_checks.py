"""Checks a person's view of a report makes: its Markdown's tables declare their rounding and keep to it, its links
resolve from the file's own folder, and its HTML page renders in the real browser (every image loads, no link is
broken, no console error, nothing asked of the network). Shared by test_round_report.py and test_demo.py."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import requests

DECLARED = re.compile(r"(\d) decimals?\b")
NUMBER = re.compile(r"(?<![\w.])[+-]?\d+\.(\d+)(?![\w.])")
TEXT_COLUMNS = {"premise", "hypothesis", "influential example", "anchor"}  # rated texts: any number they hold
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|<(https?://[^>\s]+)>|!\[[^\]]*\]\(([^)\s]+)\)")


def tables(markdown: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """Every table of ``markdown`` as (the sentence above it, header, rows)."""
    lines = markdown.splitlines()
    out, i = [], 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            caption = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            header = split_row(lines[i])
            j = i + 2
            rows = []
            while j < len(lines) and lines[j].startswith("|"):
                rows.append(split_row(lines[j]))
                j += 1
            out.append((caption, header, rows))
            i = j
        else:
            i += 1
    return out


def split_row(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip())
    return [c.strip() for c in cells[1:-1]]


def check_rounding(markdown: str) -> int:
    """Assert that no JSON block is left, that each table's caption declares its rounding, that no number in a
    table has more decimals than its caption declares and none in the prose more than 3. Returns the number of
    tables checked."""
    assert "```" not in markdown, "a code block (raw JSON?) in the report"
    assert not [line for line in markdown.splitlines() if line.lstrip().startswith(("{", "["))], "raw JSON lines"
    found = tables(markdown)
    for caption, header, rows in found:
        declared = [int(d) for d in DECLARED.findall(caption)]
        assert declared or "whole numbers" in caption, f"table {header} does not say how it is rounded: {caption!r}"
        most = max(declared, default=0)
        for row in rows:
            assert len(row) == len(header), (header, row)
            for name, cell in zip(header, row):
                if name in TEXT_COLUMNS:
                    continue
                for digits in NUMBER.findall(cell):
                    assert len(digits) <= most, f"{cell!r} in column {name!r}: more than {most} decimals ({caption})"
    prose = [line for line in markdown.splitlines() if not line.startswith(("|", "#"))]
    for line in prose:
        for digits in NUMBER.findall(line):
            assert len(digits) <= 3, f"a number with {len(digits)} decimals: {line!r}"
    return len(found)


def markdown_links(markdown: str) -> list[str]:
    """Every link and image target of ``markdown`` (``[text](target)``, ``<https://...>``, ``![alt](target)``)."""
    return [next(g for g in m.groups() if g) for m in LINK.finditer(markdown)]


def check_link(target: str, folder: Path) -> None:
    """Assert that ``target`` (a link in a file in ``folder``) resolves: a file relative to ``folder``, or a URL
    that answers."""
    parsed = urlparse(target)
    if parsed.scheme in ("http", "https"):
        r = requests.get(target, timeout=30)
        assert r.ok, f"{target}: HTTP {r.status_code}"
        return
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
    else:
        assert not parsed.scheme and not target.startswith("/"), f"{target}: not relative to the file's folder"
        path = folder / unquote(parsed.path)
    if parsed.path:
        assert path.exists(), f"{target}: {path} does not exist"


def check_page(browser, html: Path, screenshot: Path | None = None) -> dict:
    """Open ``html`` from its file in Chromium and assert what a reader needs: it renders (a heading, tables),
    every image is embedded and loads, every link resolves, no console error or page error, no request but the
    page and its data URIs. Returns {"images", "links", "tables"} counts."""
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    page = ctx.new_page()
    errors, requests_made = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests_made.append(r.url))
    try:
        page.goto(html.resolve().as_uri(), wait_until="load")
        assert page.locator("h1").count() == 1 and page.locator("h1").inner_text().strip()
        n_tables = page.locator("table").count()
        assert n_tables > 0
        images = page.eval_on_selector_all(
            "img", "els => els.map(e => ({src: e.getAttribute('src'), ok: e.complete && e.naturalWidth > 0}))")
        assert images, "no plot on the page"
        for img in images:
            assert img["src"].startswith("data:image/"), f"not embedded: {img['src'][:80]}"
            assert img["ok"], f"image does not load: {img['src'][:60]}"
        links = page.eval_on_selector_all("a", "els => els.map(e => e.getAttribute('href'))")
        for href in links:
            check_link(href, html.parent)
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=False)
    finally:
        ctx.close()
    assert not errors, errors
    others = [u for u in requests_made if not u.startswith("data:") and u != html.resolve().as_uri()]
    assert not others, f"the page asked for more than itself: {others}"
    return {"images": len(images), "links": len(links), "tables": n_tables}
