"""A team's own Label Studio project for the tests: the genre of MNLI premises (one text, five choices), built from
the genuine rows of ``mnli/train_subset_original_text.jsonl.gz`` and annotated by three users who sometimes disagree.

Vote pattern, by task position ``n`` (so the first eight tasks cover every case): ``n % 8 == 7`` nobody annotates;
``n % 8 in (1, 4)``: the third annotator disagrees (the majority is still the genre); ``n % 8 == 5``: two annotators
who disagree (a tie, no label); otherwise all three choose the genre.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

SOURCE = "mnli/train_subset_original_text.jsonl.gz"
GENRES = ("fiction", "government", "slate", "telephone", "travel")
GENRE_CONFIG = """<View>
  <Text name="passage" value="$text"/>
  <Choices name="genre" toName="passage" choice="single-radio" required="true">
    <Choice value="fiction"/><Choice value="government"/><Choice value="slate"/><Choice value="telephone"/>
    <Choice value="travel"/>
  </Choices>
</View>"""
# the choice of an annotator who disagrees
WRONG = {"fiction": "slate", "government": "travel", "slate": "fiction", "telephone": "fiction",
         "travel": "government"}


def genre_rows(data_dir: Path, n: int, balanced: bool = False) -> list[dict]:
    """``n`` rows that have a genre: the first ones, or (``balanced``) taken in turn from each genre."""
    with gzip.open(Path(data_dir) / SOURCE, "rt", encoding="utf-8") as f:
        rows = [r for r in map(json.loads, f) if r.get("genre")]
    if not balanced:
        return rows[:n]
    by_genre = {g: [r for r in rows if r["genre"] == g] for g in GENRES}
    return [by_genre[GENRES[i % len(GENRES)]][i // len(GENRES)] for i in range(n)]


def genre_votes(n: int, genre: str) -> list[str]:
    """The annotators' choices for the task at position ``n`` (module docstring)."""
    case = n % 8
    if case == 7:
        return []
    if case == 5:
        return [genre, WRONG[genre]]
    votes = [genre] * 3
    if case in (1, 4):
        votes[2] = WRONG[genre]
    return votes


def build_genre_project(client, rows: list[dict], title: str = "Genre of MNLI premises") -> tuple[int, list[int]]:
    """A project titled ``title`` with one task per row (data ``text`` = the premise, ``pair_id``) and the
    annotations of :func:`genre_votes` by three users; returns ``(project id, task ids)``."""
    pid = client.ensure_project(title, GENRE_CONFIG, maximum_annotations=3)
    ids = client.import_tasks(pid, [{"data": {"text": r["sentence1"], "pair_id": r["pairID"]}} for r in rows])
    users = [client.ensure_user(f"annotator{i}@example.org") for i in range(3)]
    for n, (task_id, row) in enumerate(zip(ids, rows)):
        for user, choice in zip(users, genre_votes(n, row["genre"])):
            client.sdk.annotations.create(id=task_id, completed_by=user, result=[
                {"from_name": "genre", "to_name": "passage", "type": "choices", "value": {"choices": [choice]}}])
    return pid, ids
