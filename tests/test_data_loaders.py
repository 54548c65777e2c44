import gzip
import json

import pytest

from hildif.config import DataConfig
from hildif.data import (
    DataDirError, DataFormatError, LoadStats, load_anchors, load_dev, load_examples, load_hans, load_train,
    resolve_data_dir, stable_id,
)

GLUE_HEADER = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
               "sentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label")
HANS_HEADER = ("gold_label\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\t"
               "sentence1\tsentence2\tpairID\theuristic\tsubcase\ttemplate")


def glue_row(i, s1, s2, label, pair="1e"):
    return f"{i}\t1\t{pair}\tfiction\t( a )\t( b )\t(ROOT a)\t(ROOT b)\t{s1}\t{s2}\t{label}\t{label}"


def write_jsonl(path, rows, gz=False):
    text = "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n"
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def test_mnli_multinli_jsonl_keeps_ids_metadata_and_binarises(tmp_path):
    p = write_jsonl(tmp_path / "multinli_1.0_dev_matched.jsonl", [
        {"sentence1": "A man sleeps.", "sentence2": "A person rests.", "gold_label": "entailment", "pairID": "7e",
         "promptID": "7", "genre": "fiction", "annotator_labels": ["entailment"]},
        {"sentence1": "A man sleeps.", "sentence2": "A man runs.", "gold_label": "contradiction", "pairID": "7c",
         "genre": "fiction"},
        {"sentence1": "A man sleeps.", "sentence2": "He is tired.", "gold_label": "neutral", "pairID": "7n"},
        {"sentence1": "A man sleeps.", "sentence2": "Maybe.", "gold_label": "-", "pairID": "7x"},
    ])
    stats = LoadStats()
    ex = load_examples(p, stats=stats)
    assert [e.id for e in ex] == ["7e", "7c", "7n"]
    assert [e.label for e in ex] == [1, 0, 0]
    assert ex[0].metadata["genre"] == "fiction" and ex[0].metadata["gold_label"] == "entailment"
    assert ex[1].metadata["gold_label"] == "contradiction"
    assert stats.skipped == {"no_consensus": 1} and stats.loaded == 3


def test_tokenized_jsonl_gz_uses_tok_fields_and_prefers_original_text(tmp_path):
    p = write_jsonl(tmp_path / "t.jsonl.gz", [
        {"sentence1_tok": "it 's fine .", "sentence2_tok": "it is .", "gold_label": "neutral", "sentence1": None,
         "sentence2": None, "pairID": None, "genre": "slate"},
        {"sentence1_tok": "do n't go", "sentence2_tok": "stay", "gold_label": "entailment", "sentence1": "don't go",
         "sentence2": "stay", "pairID": "9e"},
    ], gz=True)
    a, b = load_examples(p)
    assert a.premise == "it 's fine ." and a.id == stable_id("it 's fine .", "it is .")
    assert b.premise == "don't go" and b.id == "9e"


def test_glue_tsv_takes_last_column_label(tmp_path):
    p = tmp_path / "dev_matched.tsv"
    p.write_text("\n".join([GLUE_HEADER, glue_row(0, "A b.", "C d.", "neutral", "3n"),
                            glue_row(1, "A b.", "A.", "entailment", "3e")]) + "\n")
    ex = load_examples(p)
    assert [(e.id, e.label, e.metadata["genre"]) for e in ex] == [("3n", 0, "fiction"), ("3e", 1, "fiction")]


def test_hans_txt_keeps_heuristic_subcase_template(data_dir):
    ex = load_examples(data_dir / "hans" / "small_heuristics_evaluation_set.txt")
    assert len(ex) == 30
    assert ex[0].id == "ex6" and ex[0].label == 0
    assert ex[0].metadata["heuristic"] == "lexical_overlap"
    assert ex[0].metadata["subcase"] == "ln_subject/object_swap" and ex[0].metadata["template"] == "temp1"
    assert {e.metadata["heuristic"] for e in ex} == {"lexical_overlap", "subsequence", "constituent"}


@pytest.mark.parametrize(
    "bad, line, reason",
    [
        ('{"sentence1": "a", "gold_label": "entailment"}', 2, "missing field sentence2/hypothesis"),
        ('{"sentence1": "a", "sentence2": "b", "gold_label": "maybe"}', 2, "unknown label 'maybe'"),
        ('{"sentence1": "a", "sentence2": ', 2, "broken JSON"),
        ('["a", "b"]', 2, "must be an object"),
    ],
)
def test_bad_jsonl_rows_name_file_and_line_or_are_counted(tmp_path, bad, line, reason):
    good = {"sentence1": "x", "sentence2": "y", "gold_label": "neutral"}
    p = write_jsonl(tmp_path / "bad.jsonl", [good, bad, good])
    with pytest.raises(DataFormatError) as err:
        load_examples(p)
    assert err.value.line == line and reason in err.value.reason and err.value.file.endswith("bad.jsonl")
    assert f"bad.jsonl:{line}:" in str(err.value)
    stats = LoadStats()
    assert len(load_examples(p, skip_bad_rows=True, stats=stats)) == 2
    assert stats.skipped == {"bad_row": 1} and reason in stats.errors[0]


def test_bad_tsv_rows(tmp_path):
    p = tmp_path / "train.tsv"
    p.write_text("\n".join([GLUE_HEADER, glue_row(0, "a", "b", "neutral"), "0\t1\tshort",
                            glue_row(2, "a", "c", "sometimes")]) + "\n")
    with pytest.raises(DataFormatError, match=r"train.tsv:3: expected 12 tab-separated columns, found 3"):
        load_examples(p)
    stats = LoadStats()
    assert len(load_examples(p, skip_bad_rows=True, stats=stats)) == 1
    assert stats.skipped == {"bad_row": 2}
    headerless = tmp_path / "x.tsv"
    headerless.write_text("a\tb\tc\n")
    with pytest.raises(DataFormatError, match="x.tsv:1: header lacks sentence1"):
        load_examples(headerless)


def test_unknown_file_type_and_missing_file(tmp_path):
    (tmp_path / "a.csv").write_text("x")
    with pytest.raises(DataFormatError, match="unknown file type"):
        load_examples(tmp_path / "a.csv")
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_examples(tmp_path / "nope.jsonl")


def test_data_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("HILDIF_DATA_DIR", raising=False)
    with pytest.raises(DataDirError, match="hildif data fetch"):
        resolve_data_dir()
    monkeypatch.setenv("HILDIF_DATA_DIR", str(tmp_path))
    assert resolve_data_dir() == tmp_path
    assert resolve_data_dir(tmp_path / "..") == tmp_path / ".."
    with pytest.raises(DataDirError, match="does not exist"):
        resolve_data_dir(tmp_path / "missing")


def test_shared_data_splits(data_dir):
    cfg = DataConfig(data_dir=str(data_dir))
    train = load_train(cfg)
    assert len(train) == 32137  # 32,210 minus 76 flagged artefact rows, deduplicated across the two subsets
    assert len({e.id for e in train}) == len(train)
    assert 0.32 < sum(e.label for e in train) / len(train) < 0.34
    dev = load_dev(cfg)
    assert len(dev) == 9815 and sum(e.label for e in dev) == 3479
    hans = load_hans(cfg)
    assert len(hans) == 30000 and len({e.id for e in hans}) == 30000
    anchors = load_anchors(cfg)
    assert [a.id for a in anchors] == ["49703e", "98315c", "53088c", "144634c", "5913e"]
    assert anchors[0].metadata["heuristics"] == ["subsequence"]
