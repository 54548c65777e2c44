"""What raters read before labeling: the rating project's instructions in Label Studio (``expert_instruction``,
shown before the first task when ``show_instruction`` is on, and behind the labeling page's instructions button).

They say what is being compared, what "similar" means here (the same shortcut, not the same topic), what each of the
five choices means with an example of each against one test case, and that the grey lines are hildif's notes, not
part of the sentences. The choice names are those of the rating template (:data:`CHOICES`, in score order 1..5).
"""

from __future__ import annotations

from html import escape

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


def instructions_html() -> str:
    """The project's instructions (HTML, as Label Studio shows ``expert_instruction``)."""
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


def project_guidance() -> dict[str, object]:
    """The project settings that carry the instructions (for ``projects.create`` / ``projects.update``)."""
    return {"expert_instruction": instructions_html(), "show_instruction": True}


__all__ = ["CHOICES", "EXAMPLES", "TEST_CASE", "instructions_html", "project_guidance"]
