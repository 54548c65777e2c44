"""A task from a team's real Label Studio project: the genre of MNLI premises (one text, five choices), annotated by
three users who sometimes disagree, fetched through the API and loaded as a task (majority labels, votes kept)."""

from __future__ import annotations

import pytest
from own_project_env import build_genre_project, genre_rows

pytestmark = [pytest.mark.labelstudio]


@pytest.fixture(scope="module")
def project(label_studio, data_dir):
    from hildif.labelstudio.client import LabelStudioClient

    client = LabelStudioClient(label_studio.url, label_studio.admin_token)
    rows = genre_rows(data_dir, 8)
    pid, ids = build_genre_project(client, rows)
    return client, pid, ids, rows


def test_project_export_becomes_a_task_with_majority_labels_and_disagreements(project):
    from hildif.config import DataConfig, TaskConfig
    from hildif.labelstudio.export import fetch_project_export
    from hildif.tasks import TaskDefinition, load_task

    client, pid, ids, rows = project
    export = fetch_project_export(client, pid)
    assert export.label_config.strip().startswith("<View>")
    task = TaskDefinition.from_config(TaskConfig(source="labelstudio", name="genre", project_id=pid,
                                                 heldout_fraction=0.0, slices=["pair_id"]))
    data = load_task(task, DataConfig(), label_config=export.label_config, exports={export.source: export.tasks})
    assert data.task.labels == ("fiction", "government", "slate", "telephone", "travel")
    assert data.task.text_fields == ("text",) and data.task.label_field == "genre"
    by_task = {e.metadata["ls_task_id"]: e for e in data.train}
    assert sorted(by_task) == sorted(ids[n] for n in (0, 1, 2, 3, 4, 6))  # the tie and the unannotated task: out
    skipped = {k: v for s in data.stats for k, v in s.skipped.items()}
    assert skipped.get("tie") == 1 and skipped.get("unannotated", 0) + (len(export.tasks) < len(ids)) >= 1
    for n in (0, 1, 2, 3, 4, 6):
        ex = by_task[ids[n]]
        assert data.task.labels[ex.label] == rows[n]["genre"] and ex.hypothesis is None
        assert ex.premise == rows[n]["sentence1"].strip() and ex.metadata["pair_id"] == rows[n]["pairID"]
        assert ex.metadata["disagreement"] is (n in (1, 4)) and ex.metadata["annotators"] == 3
    assert by_task[ids[1]].metadata["agreement"] == pytest.approx(2 / 3, abs=1e-4)


def test_missing_project_is_named(project):
    from hildif.labelstudio.client import LabelStudioError
    from hildif.labelstudio.export import fetch_project_export

    client = project[0]
    with pytest.raises(LabelStudioError, match="project 987654 does not exist"):
        fetch_project_export(client, 987654)
