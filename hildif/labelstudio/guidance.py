"""What raters read before labeling: the rating project's instructions in Label Studio (``expert_instruction``,
shown before the first task when ``show_instruction`` is on, and behind the labeling page's instructions button).

For an MNLI/HANS round (no task) they say what is being compared, what "similar" means here (the same shortcut, not
the same topic), what each of the five choices means with an example of each against one test case, and that the
grey lines are hildif's notes, not part of the sentences. For a round on a team's own task (its record, as
:func:`hildif.rounds.task.task_record` writes it) they speak of that task only, built from its own settings: its
name, its text fields (one text or a pair), its label names, what "similar" means for it (the same reason for a
label, not shared incidental words) and what each choice means; no NLI example or wording. The choice names are
those of the rating template (:data:`CHOICES`, in score order 1..5).
"""

from __future__ import annotations

from html import escape
from typing import Any, Mapping, Sequence

from hildif.labelstudio.template import field_header  # the headers the rating template shows

CHOICES = ("Very different", "Different", "Can't decide", "Similar", "Very similar")

TEST_CASE = ("The judges who the doctors saw advised the lawyer.", "The doctors advised the lawyer.")
# one training example per choice, for TEST_CASE, with why it gets that choice
EXAMPLES = (
    ("Very different", "Tennis is played on grass courts in the summer.", "The weather was cold.",
     "no words shared, no pattern shared: nothing in common but being sentences"),
    ("Different", "She bought three apples at the market.", "She did not buy anything.",
     "a different shortcut (a negation word in the hypothesis), little word overlap"),
    ("Can't decide", "The committee approved the plan after a long debate.", "The committee approved the plan.",
     "the hypothesis reuses the premise's words, but here as a plain shortening that does follow: you cannot tell "
     "whether it is the same trick"),
    ("Similar", "The manager near the clerks smiled.", "The clerks smiled.",
     "the hypothesis is also a run of the premise's own words that does not follow from it; the sentence is built "
     "differently"),
    ("Very similar", "The banker that the tourists met thanked the artist.", "The tourists thanked the artist.",
     "the same construction and the same trick: the hypothesis copies words of a relative clause into a new "
     "subject"),
)


def _pair(premise: str, hypothesis: str) -> str:
    return f"premise <i>{escape(premise)}</i> / hypothesis <i>{escape(hypothesis)}</i>"


def instructions_html(task: Mapping[str, Any] | None = None) -> str:
    """The project's instructions (HTML, as Label Studio shows ``expert_instruction``): MNLI's without ``task``, the
    team's own task's (:func:`task_instructions_html`) with its record."""
    if task:
        return task_instructions_html(task)
    rows = "".join(
        f"<li><b>{escape(choice)}</b> (key {CHOICES.index(choice) + 1}): {_pair(p, h)} &mdash; {escape(why)}.</li>"
        for choice, p, h, why in EXAMPLES
    )
    return (
        "<h3>What you rate</h3>"
        "<p>Each task shows two sentence pairs side by side. On the left, the <b>test case</b>: a premise and a "
        "hypothesis the model got wrong or right. On the right, a <b>training example</b> that influenced the "
        "model's answer most. Decide how much the training example relies on the <b>same pattern</b> as the test "
        "case: the same heuristic or shortcut a model could learn instead of the meaning, for example the "
        "hypothesis reusing the premise's words, being a piece of the premise, or a negation word. "
        "<b>The topic does not matter</b>: two pairs about doctors are not similar for that.</p>"
        "<p>The grey line under each pair is hildif's note, not part of the sentences: for the test case the "
        "model's prediction, its confidence and the correct label; for the training example its training label "
        "and influence rank.</p>"
        f"<h3>The five choices, for the test case {_pair(*TEST_CASE)}</h3>"
        f"<ul>{rows}</ul>"
        "<p>Pick one choice (keys 1-5), optionally add a comment, then Submit. Skip a task you cannot judge at "
        "all. Each task is rated by several people on their own: do not worry about what others chose.</p>"
    )


# what each choice means on a team's own task: whether the training example holds what decides the test case's label
TASK_CHOICES = (
    ("Very different", "nothing that decides the label in common: learning from it tells the model nothing about "
                       "the test case"),
    ("Different", "something on the surface in common (a few words, the length, a name) but not what decides "
                  "the label"),
    ("Can't decide", "they share a cue, but you cannot tell whether it is what decides the test case's label"),
    ("Similar", "it holds a cue that decides between the labels for the test case too (words, phrasing, style or "
                "the kind of text typical of a label), though the rest differs"),
    ("Very similar", "the same cue, used the same way: what the model learns from it is exactly what decides the "
                     "test case's label, right or wrong"),
)


def _field_list(fields: Sequence[str]) -> str:
    names = [f"<b>{escape(field_header(f))}</b>" for f in fields]
    if not names:
        return "one text"
    if len(names) == 1:
        return f"one text (shown as {names[0]})"
    return "a pair of texts (shown as " + " and ".join(names) + ")"


def task_instructions_html(task: Mapping[str, Any]) -> str:
    """The instructions of a round on a team's own task, from its record (``name``, ``text_fields``, ``labels``)."""
    name = str(task.get("name") or "this task")
    labels = [str(label) for label in task.get("labels") or ()]
    label_list = ", ".join(f"<b>{escape(label)}</b>" for label in labels) or "the task's labels"
    rows = "".join(f"<li><b>{escape(choice)}</b> (key {CHOICES.index(choice) + 1}): {escape(why)}.</li>"
                   for choice, why in TASK_CHOICES)
    return (
        "<h3>What you rate</h3>"
        f"<p>The model labels examples of the task <b>{escape(name)}</b>: each example is "
        f"{_field_list(task.get('text_fields') or ())}, and the model gives it one of the labels {label_list}. "
        "Each task shows two examples side by side. On the left, the <b>test case</b>: an example the model got "
        "wrong or right. On the right, a <b>training example</b> that influenced the model's answer most. Decide "
        "how much the training example shows the <b>same reason for a label</b> as the test case: whatever tells "
        f"which of {label_list} the test case has (or what misled the model), such as telling words, phrasing, "
        "style or the kind of text. <b>A few shared words do not make them similar</b> when those words do not "
        "decide the label; two examples that read alike for the reason that decides the label are similar even "
        "with no word in common.</p>"
        "<p>The grey line under each example is hildif's note, not part of the text: for the test case the "
        "model's prediction, its confidence and the correct label; for the training example its training label "
        "and influence rank.</p>"
        f"<h3>The five choices</h3><ul>{rows}</ul>"
        "<p>Pick one choice (keys 1-5), optionally add a comment, then Submit. Skip a task you cannot judge at "
        "all. Each task is rated by several people on their own: do not worry about what others chose.</p>"
    )


def project_guidance(task: Mapping[str, Any] | None = None) -> dict[str, object]:
    """The project settings that carry the instructions (for ``projects.create`` / ``projects.update``): MNLI's
    without ``task``, the team's own task's with its record (:func:`hildif.rounds.task.task_record`)."""
    return {"expert_instruction": instructions_html(task), "show_instruction": True}


__all__ = ["CHOICES", "EXAMPLES", "TASK_CHOICES", "TEST_CASE", "instructions_html", "project_guidance",
           "task_instructions_html"]
