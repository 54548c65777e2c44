"""A task is data: definitions from the config, file sources through a column mapping, Label Studio exports, the
held-out split, and errors that name the file, row and field at fault."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest

from hildif.config import ConfigError, DataConfig, TaskConfig, load_config
from hildif.data.loaders import DataFormatError
from hildif.data.splits import text_key
from hildif.tasks import (
    MNLI_TASK, LabelConfigError, TaskDefinition, TaskError, is_heldout, load_task, parse_label_config,
)
from hildif.tasks.labelstudio_export import examples_from_export, resolve_labelstudio_task

def files_task(tmp_path, **kw) -> TaskDefinition:
    kw.setdefault("source", "files")
    kw.setdefault("name", "t")
    return TaskDefinition.from_config(TaskConfig(**kw))


def write_csv(path: Path, header, rows) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_jsonl(path: Path, rows) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


# ---------------------------------------------------------------------------------------------- definitions
def test_default_config_is_the_mnli_task_and_loads_the_paper_files(data_dir):
    cfg = load_config()
    assert cfg.task.source == "mnli"
    task = TaskDefinition.from_config(cfg.task)
    assert task == MNLI_TASK and task.is_pair and task.labels == ("non-entailment", "entailment")
    assert task.num_labels == cfg.model.num_labels == 2
    from hildif.data import load_dev, load_train

    data = DataConfig(data_dir=str(data_dir), max_train_examples=50)
    loaded = load_task(task, data)
    assert [e.to_dict() for e in loaded.train] == [e.to_dict() for e in load_train(data)]
    assert [e.id for e in loaded.heldout] == [e.id for e in load_dev(data)]
    assert load_config(overrides=["task.slices=genre"]).task.slices == ["genre"]


@pytest.mark.parametrize("kw,match", [
    ({"source": "csv"}, "task.source='csv'"),
    ({"source": "files", "files": []}, "task.files"),
    ({"source": "files", "files": ["a.csv"]}, "task.text"),
    ({"source": "files", "files": ["a.csv"], "text": "t", "labels": ["only"]}, "at least two labels"),
    ({"source": "files", "files": ["a.csv"], "text": "t", "labels": ["a", "b", "a"]}, "'a' given twice"),
    ({"source": "files", "files": ["a.csv"], "text": "t", "text_pair": "t"}, "both name 't'"),
    ({"source": "files", "files": ["a.csv"], "text": "t", "label": "t"}, "task.label='t' is also a text field"),
    ({"source": "files", "files": ["a.csv"], "text": "t", "heldout_fraction": 1.0}, "task.heldout_fraction"),
    ({"source": "labelstudio"}, "task.files .* or task.project_id"),
    ({"source": "labelstudio", "project_id": 3, "label_policy": "vote"}, "task.label_policy='vote'"),
])
def test_bad_task_settings_name_the_key(kw, match):
    with pytest.raises(TaskError, match=match):
        TaskDefinition.from_config(TaskConfig(name="t", **kw))


def test_task_section_reads_from_overrides_and_rejects_unknown_keys():
    cfg = load_config(overrides=["task.source=files", "task.files=a.csv,b.csv", "task.labels=x,y,z",
                                 "task.heldout_fraction=0.2"])
    assert cfg.task.files == ["a.csv", "b.csv"] and cfg.task.labels == ["x", "y", "z"]
    assert cfg.task.heldout_fraction == 0.2
    with pytest.raises(ConfigError, match="unknown key 'columns'"):
        load_config(overrides=["task.columns=a"])


# ---------------------------------------------------------------------------------------------- files
def test_csv_pair_task_with_column_mapping_ids_labels_and_metadata(tmp_path):
    rows = [[f"id{i}", f"first text {i}", f"second {i}", ["no", "yes", "maybe"][i % 3], ["a", "b"][i % 2]]
            for i in range(30)]
    rows.append(["id30", "line one\nline two, quoted", "second 30", "", "a"])  # unlabelled, a multi-line cell
    rows.append(["id31", "first text 0", "second 0", "no", "b"])  # the same pair as id0: a duplicate
    path = write_csv(tmp_path / "pairs.csv", ["key", "q", "a", "answer", "domain"], rows)
    task = files_task(tmp_path, files=[str(path)], text="q", text_pair="a", label="answer", id="key",
                      labels=["yes", "no", "maybe"], heldout_fraction=0.0)
    data = load_task(task, DataConfig())
    assert data.task.labels == ("yes", "no", "maybe") and data.task.is_pair
    assert len(data.train) == 30 and not data.heldout
    ex = data.train[4]
    assert (ex.id, ex.premise, ex.hypothesis, ex.label) == ("id4", "first text 4", "second 4", 0)  # "yes" = class 0
    assert ex.metadata == {"domain": "a", "source_file": "pairs.csv"}
    skipped = {k: v for s in data.stats for k, v in s.skipped.items()}
    assert skipped == {"unlabelled": 1, "duplicate": 1}


def test_labels_default_to_sorted_values_and_single_text_has_no_pair(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl.gz", [{"body": f"text number {i}", "tag": ["z", "x", "y"][i % 3], "n": i}
                                                 for i in range(60)])
    data = load_task(files_task(tmp_path, files=[str(path)], text="body", label="tag", heldout_fraction=0.25),
                     DataConfig())
    assert data.task.labels == ("x", "y", "z") and not data.task.is_pair
    assert all(e.hypothesis is None and e.texts == (e.premise,) for e in data.train + data.heldout)
    assert {e.metadata["n"] for e in data.train} | {e.metadata["n"] for e in data.heldout} == set(range(60))
    assert 5 <= len(data.heldout) <= 25
    for e in data.heldout:
        assert is_heldout(e, 0.25) and data.task.labels[e.label] == ["z", "x", "y"][e.metadata["n"] % 3]
    # the split is a function of the text: the same text with another id is on the same side
    again = load_task(files_task(tmp_path, files=[str(path)], text="body", label="tag", heldout_fraction=0.25),
                      DataConfig())
    assert [e.id for e in again.heldout] == [e.id for e in data.heldout]


def test_eval_files_are_the_heldout_set_and_leaking_texts_leave_training(tmp_path):
    train = write_csv(tmp_path / "train.csv", ["text", "label"],
                      [[f"t {i}", "ab"[i % 2]] for i in range(20)])
    held = write_csv(tmp_path / "dev.csv", ["text", "label"], [["t 3", "b"], ["new 1", "a"]])
    data = load_task(files_task(tmp_path, files=[str(train)], eval_files=[str(held)], text="text"), DataConfig())
    assert [e.premise for e in data.heldout] == ["t 3", "new 1"]
    assert len(data.train) == 19 and "t 3" not in {e.premise for e in data.train}
    assert data.summary()["heldout_per_label"] == {"a": 1, "b": 1}


def test_files_relative_to_the_data_directory(tmp_path):
    (tmp_path / "sub").mkdir()
    write_csv(tmp_path / "sub" / "x.csv", ["text", "label"], [["one", "a"], ["two", "b"], ["three", "a"]])
    data = load_task(files_task(tmp_path, files=["sub/x.csv"], text="text", heldout_fraction=0.0),
                     DataConfig(data_dir=str(tmp_path)))
    assert len(data.train) == 3


@pytest.mark.parametrize("name,content,where,match", [
    ("a.csv", "text,label\nok,a\n,b\n", ":3:", "field 'text' \\(task.text\\) is missing or empty"),
    ("a.csv", "text,label\nok,a\nfine,c\n", ":3:", "field 'label' holds a value outside the task's label set"),
    ("a.csv", "text,label\nok,a\nx,a,extra\n", ":3:", "3 cells but the header has 2 columns"),
    ("a.csv", "text,text\nok,a\n", ":1:", "columns 'text' appear twice"),
    ("a.csv", 'text,label\nok,a\n"one\ntwo",a\nbad,\n"x",zz\n', ":6:", "outside the task's label set"),
    ("a.jsonl", '{"text": "ok", "label": "a"}\n{"text": 3, "label": "a"}\n', ":2:", "must be text, not int"),
    ("a.jsonl", '{"text": "ok", "label": "a"}\n{"text": "x", "label": ["a"]}\n', ":2:", "holds list, not a label"),
    ("a.jsonl", '{"text": "ok", "label": "a"}\n{"text": "x", "label": 1.5}\n', ":2:", "a fractional number"),
    ("a.jsonl", '{"text": "ok", "label": "a"}\n{"text": "x", \n', ":2:", "broken JSON"),
    ("a.json", '[{"text": "ok", "label": "a"}, 7]', ":2:", "array element is not an object"),
    ("a.json", '{"text": "ok"}', ":1:", "one array of objects"),
])
def test_bad_rows_name_file_row_and_field_without_echoing_the_cell(tmp_path, name, content, where, match):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    task = files_task(tmp_path, files=[str(path)], text="text", labels=["a", "b"], heldout_fraction=0.0)
    with pytest.raises(DataFormatError, match=match) as info:
        load_task(task, DataConfig())
    assert str(info.value).startswith(str(path) + where)
    assert "fine" not in str(info.value) and "zz" not in str(info.value)  # the cell's content is not echoed


def test_bad_rows_are_counted_when_skipping_is_configured(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("text,label\nok,a\n,b\nfine,c\nx,a,extra\nalso,b\n", encoding="utf-8")
    task = files_task(tmp_path, files=[str(path)], text="text", labels=["a", "b"], heldout_fraction=0.0)
    data = load_task(task, DataConfig(skip_bad_rows=True))
    assert [e.premise for e in data.train] == ["ok", "also"]
    assert data.stats[0].skipped == {"bad_row": 2, "unknown_label": 1} and len(data.stats[0].errors) == 3


def test_missing_file_unknown_type_and_too_few_labels_are_named(tmp_path):
    with pytest.raises(TaskError, match="task file .*nope.csv not found"):
        load_task(files_task(tmp_path, files=[str(tmp_path / "nope.csv")], text="t"), DataConfig())
    (tmp_path / "x.xlsx").write_text("x")
    with pytest.raises(TaskError, match="x.xlsx: unknown file type"):
        load_task(files_task(tmp_path, files=[str(tmp_path / "x.xlsx")], text="t"), DataConfig())
    one = write_csv(tmp_path / "one.csv", ["t", "label"], [["a", "x"], ["b", "x"]])
    with pytest.raises(TaskError, match="fewer than two distinct values"):
        load_task(files_task(tmp_path, files=[str(one)], text="t"), DataConfig())


def test_parquet_files(tmp_path):
    path = tmp_path / "t.parquet"
    task = files_task(tmp_path, files=[str(path)], text="text", heldout_fraction=0.0)
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # the environment has no pyarrow: the error says what to install
        path.write_bytes(b"PAR1")
        with pytest.raises(TaskError, match="Parquet needs the pyarrow package"):
            load_task(task, DataConfig())
        return
    pq.write_table(pa.table({"text": ["one", "two", None], "label": ["a", "b", "a"]}), path)
    with pytest.raises(DataFormatError, match=r"t.parquet:3: field 'text'"):
        load_task(task, DataConfig())
    pq.write_table(pa.table({"text": ["one", "two"], "label": ["a", "b"]}), path)
    assert [e.label for e in load_task(task, DataConfig()).train] == [0, 1]


# ---------------------------------------------------------------------------------------------- Label Studio
NLI_CONFIG = """<View>
  <Header value="Premise"/><Text name="premise" value="$premise"/>
  <Header value="Hypothesis"/><Text name="hypothesis" value="$hypothesis"/>
  <Choices name="label" toName="premise" choice="single-radio" required="true">
    <Choice value="entailment"/><Choice value="neutral"/><Choice value="contradiction"/>
  </Choices>
</View>"""


def ls_task(task_id, premise, hypothesis, choices, **extra):
    anns = []
    truth = extra.pop("truth", None)
    for i, c in enumerate(choices):
        cancelled = c is None
        anns.append({"id": 100 * task_id + i, "completed_by": i + 1, "was_cancelled": cancelled,
                     "ground_truth": truth == i,
                     "result": [] if cancelled else [{"from_name": "label", "to_name": "premise", "type": "choices",
                                                      "value": {"choices": [c]}}]})
    return {"id": task_id, "data": {"premise": premise, "hypothesis": hypothesis, **extra}, "annotations": anns,
            "predictions": []}


def test_label_config_gives_text_fields_and_labels():
    cfg = parse_label_config(NLI_CONFIG)
    assert [(t.name, t.key) for t in cfg.texts] == [("premise", "premise"), ("hypothesis", "hypothesis")]
    task = resolve_labelstudio_task(TaskDefinition.from_config(TaskConfig(source="labelstudio", name="nli",
                                                                          project_id=1)), cfg)
    assert task.text_fields == ("premise", "hypothesis") and task.labels == ("entailment", "neutral", "contradiction")
    assert task.label_field == "label"
    single = resolve_labelstudio_task(TaskDefinition.from_config(TaskConfig(source="labelstudio", name="g",
                                                                            project_id=1, text="premise")), cfg)
    assert single.text_fields == ("premise",) and not single.is_pair
    from hildif.labelstudio.template import load_label_config

    rating = parse_label_config(load_label_config())  # hildif's own rating template: six texts, so ask which
    with pytest.raises(LabelConfigError, match="6 <Text> tags"):
        rating.text_tags()


@pytest.mark.parametrize("xml,match", [
    ("", "empty"),
    ("<View><Text name='t' value='$t'/>", "not valid XML"),
    ("<!DOCTYPE x [<!ENTITY a 'b'>]><View/>", "DTD"),
    ("<View><Text name='t' value='$t'/></View>", "no single-choice <Choices>"),
    ("<View><Text name='t' value='$t'/><Choices name='c' toName='t' choice='multiple'><Choice value='a'/>"
     "<Choice value='b'/></Choices></View>", "multi-label tasks are not supported"),
    ("<View><Image name='i' value='$img'/><Choices name='c' toName='i'><Choice value='a'/><Choice value='b'/>"
     "</Choices></View>", "no <Text"),
    ("<View><Text name='t' value='$t'/><Choices name='c' toName='t'><Choice value='a'/><Choice value='a'/>"
     "</Choices></View>", "value twice"),
])
def test_label_configs_that_are_not_text_classification_say_why(xml, match):
    with pytest.raises(LabelConfigError, match=match):
        parse_label_config(xml)


def test_export_majority_ground_truth_ties_and_disagreement_metadata():
    export = [
        ls_task(1, "A man sleeps.", "A person rests.", ["entailment", "entailment", "neutral"], genre="fiction"),
        ls_task(2, "Dogs bark.", "Cats bark.", ["contradiction", "neutral"]),  # a tie: left out
        ls_task(3, "It rains.", "The ground is wet.", ["neutral", "entailment"], truth=1),  # tie broken by truth
        ls_task(4, "Birds fly.", "Birds move.", [None]),  # only a skipped annotation: not annotated
        ls_task(5, "He ran.", "He moved.", ["entailment", None, "entailment"]),
    ]
    base = TaskDefinition.from_config(TaskConfig(source="labelstudio", name="nli", project_id=1))
    task = resolve_labelstudio_task(base, parse_label_config(NLI_CONFIG))
    from hildif.data.loaders import LoadStats

    stats = LoadStats()
    examples = examples_from_export(export, task, source="project 1", stats=stats)
    assert [e.id for e in examples] == ["ls-1", "ls-3", "ls-5"]
    assert stats.skipped == {"tie": 1, "unannotated": 1}
    first = examples[0]
    assert first.label == 0 and first.hypothesis == "A person rests."
    assert first.metadata["votes"] == {"entailment": 2, "neutral": 1} and first.metadata["disagreement"]
    assert first.metadata["agreement"] == pytest.approx(2 / 3, abs=1e-4) and first.metadata["genre"] == "fiction"
    assert first.metadata["ls_task_id"] == 1 and first.metadata["annotator_ids"] == [1, 2, 3]
    assert examples[1].label == 0 and examples[1].metadata["label_source"] == "ground_truth"
    assert examples[2].metadata == {**examples[2].metadata, "annotators": 2, "disagreement": False,
                                    "label_source": "majority"}
    # ground truth first: task 1's minority label wins when its annotation is the ground truth
    truth_task = task.replace(label_policy="ground_truth")
    export[0] = ls_task(1, "A man sleeps.", "A person rests.", ["entailment", "entailment", "neutral"], truth=2)
    assert examples_from_export(export, truth_task)[0].label == 1
    assert examples_from_export(export, task.replace(min_annotations=3))[0].id == "ls-1"
    assert len(examples_from_export(export, task.replace(min_annotations=3))) == 1


@pytest.mark.parametrize("mutate,match", [
    (lambda t: t.pop("data"), "project 7:2: task 2: field 'data' is missing"),
    (lambda t: t["data"].pop("hypothesis"), "project 7:2: task 2: field 'data.hypothesis' is missing"),
    (lambda t: t.update(id="2"), "project 7:2: field 'id' is missing or not an integer"),
    (lambda t: t["annotations"][0]["result"][0]["value"].update(choices=["maybe"]),
     "project 7:2: task 2, annotation 200: result of 'label': field 'value.choices' holds a value that is not"),
    (lambda t: t["annotations"][0]["result"][0]["value"].update(choices=["neutral", "entailment"]),
     "task 2, annotation 200: result of 'label': 2 choices"),
    (lambda t: t.update(annotations={"x": 1}), "task 2: field 'annotations' is not a list"),
])
def test_bad_export_tasks_name_the_task_and_field(mutate, match):
    export = [ls_task(1, "a b", "c d", ["neutral"]), ls_task(2, "secret text", "e f", ["neutral"])]
    mutate(export[1])
    task = resolve_labelstudio_task(TaskDefinition.from_config(TaskConfig(source="labelstudio", name="nli",
                                                                          project_id=7)),
                                    parse_label_config(NLI_CONFIG))
    with pytest.raises(DataFormatError, match=match) as info:
        examples_from_export(export, task, source="project 7")
    assert "secret" not in str(info.value)
    with pytest.raises(DataFormatError, match="is a list of tasks"):
        examples_from_export({"tasks": export}, task, source="project 7")


def test_labelstudio_task_from_export_files_with_a_heldout_file(tmp_path):
    train = [ls_task(i, f"premise {i}", f"hypothesis {i}", [["neutral", "entailment"][i % 2]] * 2)
             for i in range(1, 11)]
    held = [ls_task(50, "premise 3", "hypothesis 3", ["neutral"]), ls_task(51, "new", "one", ["contradiction"])]
    (tmp_path / "train.json").write_text(json.dumps(train))
    (tmp_path / "held.json").write_text(json.dumps(held))
    task = TaskDefinition.from_config(TaskConfig(source="labelstudio", name="nli", files=["train.json"],
                                                 eval_files=["held.json"]))
    with pytest.raises(TaskError, match="needs the project's label config"):
        load_task(task, DataConfig(data_dir=str(tmp_path)))
    data = load_task(task, DataConfig(data_dir=str(tmp_path)), label_config=NLI_CONFIG)
    assert data.task.labels == ("entailment", "neutral", "contradiction")
    assert [e.id for e in data.heldout] == ["ls-50", "ls-51"] and len(data.train) == 9  # premise 3 held out
    assert text_key(data.heldout[0]) not in {text_key(e) for e in data.train}
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(TaskError, match="broken.json:1: not a Label Studio JSON export"):
        load_task(task.replace(files=("broken.json",)), DataConfig(data_dir=str(tmp_path)), label_config=NLI_CONFIG)
