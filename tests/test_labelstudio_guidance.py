"""The rating project's instructions follow the round's task: MNLI's (unchanged) for an MNLI/HANS round, and for a
team's own task a text built from its record (its name, text fields and labels) with no NLI or HANS wording."""

from __future__ import annotations

import hashlib
import re

from hildif.labelstudio.guidance import CHOICES, instructions_html, project_guidance

# the MNLI instructions as they were before the guidance depended on the task
MNLI_DIGEST = "59cac177d5f2858bee7bbb56ba210d81d4755d652929dd74ac99bfe060f0074c"
NLI_WORDS = re.compile(r"premise|hypothes|entail|contradict|neutral|negation|\bnli\b|\bhans\b|heuristic|shortcut|"
                       r"relative clause|judges|doctors", re.IGNORECASE)
GENRE = {"name": "mnli-genre", "source": "files", "text_fields": ["sentence1"],
         "labels": ["fiction", "government", "slate", "telephone", "travel"], "slices": ["gold_label"]}


def test_mnli_guidance_is_unchanged():
    html = instructions_html()
    assert hashlib.sha256(html.encode("utf-8")).hexdigest() == MNLI_DIGEST
    assert instructions_html(None) == html and project_guidance() == project_guidance(None)
    assert project_guidance() == {"expert_instruction": html, "show_instruction": True}
    assert "premise" in html and "negation" in html  # the NLI text, for MNLI and HANS rounds


def test_own_task_guidance_names_the_task_and_its_labels_and_no_nli_words():
    html = instructions_html(GENRE)
    assert not NLI_WORDS.search(html), NLI_WORDS.search(html)
    assert "mnli-genre" in html and "Sentence1" in html  # the task and its text field, as the template heads it
    for label in GENRE["labels"]:
        assert f"<b>{label}</b>" in html
    for choice in CHOICES:
        assert f"<b>{choice.replace(chr(39), '&#x27;')}</b>" in html
    assert project_guidance(GENRE) == {"expert_instruction": html, "show_instruction": True}
    assert html != instructions_html()


def test_own_pair_task_names_both_fields_and_escapes_labels():
    task = {"name": "q&a <pairs>", "text_fields": ["question_text", "answer"], "labels": ["ok", "<bad>"]}
    html = instructions_html(task)
    assert "a pair of texts" in html and "<b>Question text</b>" in html and "<b>Answer</b>" in html
    assert "&lt;bad&gt;" in html and "<bad>" not in html and "q&amp;a &lt;pairs&gt;" in html
    assert not NLI_WORDS.search(html)
