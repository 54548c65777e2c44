"""Label Studio <-> hildif conversions, the rating template and API-key handling (no server needed)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from hildif.config import LabelStudioConfig
from hildif.data.example import Example
from hildif.feedback import Rating
from hildif.labelstudio.convert import (
    CHOICE_SCORES, FROM_NAME, SCORE_CHOICES, TO_NAME, ConversionError, comment_from_result, load_label_config,
    rating_from_annotation, result_for_score, score_from_result, task_identity, task_payload,
)

ANCHOR = Example("98315c", "From Cockpit Country to St. Ann's Bay", "From St. Ann's Bay to Cockpit Country.", 0,
                 {"gold_label": "contradiction"})
INFLUENTIAL = Example("t42", "The cat sat on the mat.", "The mat sat on the cat.", 1)


def test_template_has_the_papers_five_radio_choices_in_score_order():
    root = ET.fromstring(load_label_config())
    choices = root.find(f".//Choices[@name='{FROM_NAME}']")
    assert choices is not None and choices.get("toName") == TO_NAME
    assert choices.get("choice") == "single-radio" and choices.get("required") == "true"
    assert [c.get("value") for c in choices.findall("Choice")] == list(SCORE_CHOICES)
    assert SCORE_CHOICES == ("Very different", "Different", "Can't decide", "Similar", "Very similar")
    assert CHOICE_SCORES["Very different"] == 1 and CHOICE_SCORES["Very similar"] == 5
    assert root.find(".//TextArea[@name='comment']") is not None  # optional comment
    assert any(h.get("value", "").endswith("They are:") and "pattern" in h.get("value") for h in root.iter("Header"))


def test_every_template_variable_is_in_the_task_data():
    xml = load_label_config()
    data = task_payload("r1", ANCHOR, [0.2, 0.8], INFLUENTIAL, 3, -1.5)["data"]
    variables = set(re.findall(r"\$([A-Za-z_]+)", xml))
    assert variables and variables <= set(data), variables - set(data)
    to_names = {el.get("toName") for el in ET.fromstring(xml).iter() if el.get("toName")}
    text_names = {el.get("name") for el in ET.fromstring(xml).iter("Text")}
    assert to_names <= text_names


def test_task_payload_carries_prediction_confidence_gold_and_rank():
    task = task_payload("round-1", ANCHOR, [0.13, 0.87], INFLUENTIAL, 2, -0.25)
    d = task["data"]
    assert d["anchor_prediction"] == "entailment" and d["anchor_confidence"] == "0.87"
    assert d["anchor_gold"] == "non-entailment"
    assert "WRONG" in d["anchor_verdict"] and "(contradiction)" in d["anchor_verdict"]
    assert d["example_label"] == "entailment" and d["influence_rank"] == 2 and d["influence_score"] == -0.25
    assert "influence rank 2" in d["example_verdict"]
    assert d["pair_key"] == "98315c|t42"  # the PairKey as one string, a Data Manager column
    assert task["meta"] == {"round_id": "round-1", "anchor_id": "98315c", "example_id": "t42", "rank": 2}
    assert task_identity(task) == ("round-1", "98315c", "t42") and task_identity(task).pair == ("98315c", "t42")
    assert task_identity({"id": 5, "data": {"text": "someone else's task"}}) is None
    with pytest.raises(ValueError, match="98315c"):
        task_payload("r", ANCHOR, [1.0], INFLUENTIAL, 1, 0.0)


@pytest.mark.parametrize("score", [1, 2, 3, 4, 5])
def test_score_round_trips_through_an_annotation_result(score):
    result = result_for_score(score, comment="same overlap trick")
    assert score_from_result(result) == score
    assert comment_from_result(result) == "same overlap trick"


def test_bad_results_are_named():
    assert score_from_result([{"from_name": "comment", "value": {"text": ["x"]}}]) is None
    with pytest.raises(ConversionError, match="annotation 7"):
        score_from_result([{"from_name": FROM_NAME, "value": {"choices": ["Maybe"]}}], "annotation 7")
    with pytest.raises(ValueError):
        result_for_score(6)


def test_rating_from_annotation_submitted_and_skipped():
    users = {3: "ann@x.org"}
    sub = {"id": 11, "task": 5, "completed_by": 3, "result": result_for_score(4), "was_cancelled": False,
           "updated_at": "2026-01-02T03:04:05.000001Z"}
    r = rating_from_annotation("a", "z", sub, users)
    assert r == Rating("a", "z", "ann@x.org", 4, "submitted", "2026-01-02T03:04:05.000001Z",
                       "labelstudio:task/5/annotation/11")
    r.validate()
    skipped = {"id": 12, "task": 5, "completed_by": 9, "result": [], "was_cancelled": True,
               "updated_at": "2026-01-02T03:04:06Z"}
    s = rating_from_annotation("a", "z", skipped, users)
    assert (s.status, s.score, s.annotator) == ("skipped", None, "user-9")
    with pytest.raises(ConversionError, match="annotation 13 of task 5"):
        rating_from_annotation("a", "z", {"id": 13, "task": 5, "completed_by": 3, "result": []}, users)


def test_api_key_from_env_then_file_and_clear_errors(tmp_path, monkeypatch):
    from hildif.labelstudio.client import LabelStudioError, resolve_api_key

    cfg = LabelStudioConfig(api_key_env="HILDIF_TEST_KEY_X")
    monkeypatch.delenv("HILDIF_TEST_KEY_X", raising=False)
    with pytest.raises(LabelStudioError, match=r"\$HILDIF_TEST_KEY_X"):
        resolve_api_key(cfg)
    key_file = tmp_path / "key"
    key_file.write_text("")
    cfg.api_key_file = str(key_file)
    with pytest.raises(LabelStudioError, match="is empty"):
        resolve_api_key(cfg)
    key_file.write_text("file-token\n")
    assert resolve_api_key(cfg) == "file-token"
    monkeypatch.setenv("HILDIF_TEST_KEY_X", "env-token")
    assert resolve_api_key(cfg) == "env-token"


def test_unreachable_label_studio_is_a_clear_error():
    from hildif.labelstudio.client import LabelStudioClient, LabelStudioUnavailable
    from hildif.labelstudio.server import free_port

    url = f"http://127.0.0.1:{free_port()}"
    client = LabelStudioClient(url, "token", timeout=5)
    with pytest.raises(LabelStudioUnavailable, match=re.escape(url) + ".*is it running"):
        client.tasks(1)
