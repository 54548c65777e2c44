"""The pair-ids file of ``round start --pair-ids`` / ``explain --anchors-file``: a plain list of pairIDs or JSON Lines
with a pairID per object (the anchors file itself). The file is outside input: errors name the file and the line
numbers at fault, and never echo what the file holds."""

from __future__ import annotations

import json

import pytest

from hildif.data.example import Example
from hildif.influence.anchors import AnchorSelectionError, PairIdAnchors, read_id_file, read_id_lines, select_anchors

POOL = [Example(i, f"premise {i}", f"hypothesis {i}", 0) for i in ("49703e", "98315c", "63735n", "ex#2")]
SECRET = "LABEL_STUDIO_API_KEY=s3cr3t-token"


def test_plain_list_with_comments_and_blank_lines(tmp_path):
    f = tmp_path / "ids.txt"
    f.write_text("# handpicked\n\n98315c\n  63735n   # the first dev row\n")
    assert read_id_lines(f) == [(3, "98315c"), (4, "63735n")]
    assert [e.id for e in select_anchors(PairIdAnchors(ids_file=f), POOL)] == ["98315c", "63735n"]


def test_anchors_jsonl_is_accepted(tmp_path, data_dir):
    """The real anchors file (``data.anchors_file``) as a pair-ids file."""
    from hildif.config import DataConfig

    anchors = data_dir / DataConfig().anchors_file
    ids = [json.loads(line)["pairID"] for line in anchors.read_text().splitlines() if line.strip()]
    assert len(ids) == 5 and read_id_file(anchors) == ids


def test_jsonl_objects_mixed_with_plain_ids_and_other_id_keys(tmp_path):
    f = tmp_path / "mixed.jsonl"
    f.write_text('{"pairID": "49703e", "sentence1": "x # not a comment"}\n98315c\n{"id": "ex#2"}\n'
                 '{"pair_id": "63735n", "gold_label": "entailment"}\n')
    assert read_id_file(f) == ["49703e", "98315c", "ex#2", "63735n"]


@pytest.mark.parametrize("content, message", [
    (f'{{"pairID": "49703e"}}\n{{"sentence1": "{SECRET}"}}\n', r"line\(s\) 2 hold neither"),
    (f'98315c\n{{"pairID": "49703e", broken {SECRET}\n', r"line\(s\) 2 hold neither"),
    (f"98315c\n{SECRET} and more words\n", r"line\(s\) 2 hold neither"),
    (f'["{SECRET}"]\n', r"line\(s\) 1 hold neither"),
    ('{"pairID": true}\n', r"line\(s\) 1 hold neither"),
    ("# only a comment\n\n", "lists no pairID"),
])
def test_bad_lines_are_named_by_number_without_their_content(tmp_path, content, message):
    f = tmp_path / "ids.txt"
    f.write_text(content)
    with pytest.raises(AnchorSelectionError, match=message) as err:
        read_id_file(f)
    assert str(f) in str(err.value) and "s3cr3t" not in str(err.value)


def test_unknown_ids_are_named_by_line_not_by_content(tmp_path):
    f = tmp_path / "ids.txt"
    f.write_text("98315c\nsecretvalue1\n49703e\nsecretvalue2\n")
    with pytest.raises(AnchorSelectionError, match=r"line\(s\) 2, 4 are not in the pool") as err:
        select_anchors(PairIdAnchors(ids_file=f), POOL)
    assert str(f) in str(err.value) and "secretvalue" not in str(err.value)


@pytest.mark.parametrize("blob, message", [
    (b"\x7fELF\x02\x01\x01\x00\x00\x00" + SECRET.encode(), "a binary file"),
    (f"HOME=/root\0{SECRET}\0".encode(), "a binary file"),  # /proc/self/environ looks like this
    (b"98315c\n49703e\n\xff\xfe" + SECRET.encode() + b"\n", r"line 3 is not UTF-8 text"),
])
def test_binary_or_undecodable_file_error_names_the_file(tmp_path, blob, message):
    f = tmp_path / "model.bin"
    f.write_bytes(blob)
    with pytest.raises(AnchorSelectionError, match=message) as err:
        read_id_file(f)
    assert str(f) in str(err.value) and "s3cr3t" not in str(err.value)


def test_missing_file_directory_and_oversized_file(tmp_path, monkeypatch):
    import hildif.influence.anchors as anchors

    with pytest.raises(AnchorSelectionError, match="nope.txt: not found"):
        read_id_file(tmp_path / "nope.txt")
    with pytest.raises(AnchorSelectionError, match="not a regular file"):
        read_id_file(tmp_path)
    big = tmp_path / "big.txt"
    big.write_text("98315c\n" * 100)
    monkeypatch.setattr(anchors, "MAX_ID_FILE_BYTES", 64)
    with pytest.raises(AnchorSelectionError, match="big.txt: larger than"):
        read_id_file(big)
