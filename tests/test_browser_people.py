"""Two people rate a round in a real browser (Debian's Chromium driven by Playwright), joining through what hildif
prints: ``hildif annotators add`` makes their accounts and prints the login page, their passwords and the round's
project link. Each logs in, sees the project's instructions when labeling starts, and rates every task of the label
stream with a choice of their own; the round (two raters per task) then syncs, trains, and attributes each rating to
its person. Screenshots are kept in ``test-artifacts/`` (git-ignored; CI keeps that folder).
"""

from __future__ import annotations

import re

import pytest

from round_env import KEY_ENV, register_tiny_base, round_config
from test_browser_rating import ARTIFACTS, browser  # noqa: F401  (the module's Chromium fixture)

pytestmark = [pytest.mark.integration, pytest.mark.labelstudio]

PEOPLE = {"ana.rater@hildif.test": "Very similar", "ben.rater@hildif.test": "Different"}
SCORES = {"Very different": 1, "Different": 2, "Can't decide": 3, "Similar": 4, "Very similar": 5}


def printed_accounts(out: str) -> tuple[str, str, dict[str, str]]:
    """(login URL, project URL, {email: password}) from ``hildif annotators add``'s output."""
    head = re.search(r"\(log in at (\S+), then rate at (\S+)\):", out)
    assert head, out
    passwords = dict(re.findall(r"^  (\S+@\S+)\s+password (\S+)$", out, re.M))
    return head.group(1), head.group(2), passwords


def rate_the_stream(page, login_url: str, project_url: str, email: str, password: str, choice: str, shot: str | None,
                    expected_tasks: int) -> int:
    """Log in, open the project, Label All Tasks, read the instructions, rate each task with ``choice``."""
    from playwright.sync_api import expect

    page.goto(login_url)
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/user/login" not in url)
    page.goto(project_url)
    page.get_by_text("Label All Tasks", exact=False).first.click()
    instructions = page.get_by_text("The five choices, for the test case")
    expect(instructions).to_be_visible()
    for choice_name in SCORES:
        expect(page.get_by_text(f"{choice_name} (key", exact=False).first).to_be_visible()
    if shot:
        page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    page.keyboard.press("Escape")
    expect(instructions).to_be_hidden()
    rated = 0
    for _ in range(expected_tasks):
        meta, premise = page.locator(".hildif-anchor .hildif-meta").first, page.locator(".hildif-anchor").first
        expect(meta).to_be_visible()
        # the verdict line is styled apart from the sentences: on a grey band with a bar, not on the card's colour
        style = "e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).borderLeftStyle]"
        assert meta.evaluate(style) == ["rgb(236, 239, 243)", "solid"] and premise.evaluate(style)[0] != "rgb(236, 239, 243)"
        radio = page.locator("label.ant-radio-wrapper", has=page.locator(f'input[name="{choice}"]'))
        expect(radio).to_be_visible()
        radio.click()
        with page.expect_response(lambda r: "/api/tasks/" in r.url and "/annotations" in r.url
                                  and r.request.method == "POST") as posted:
            page.get_by_test_id("bottombar-submit-button").click()  # the label stream's (its dropdown is another)
        assert posted.value.status == 201, posted.value.text()
        rated += 1
    return rated


def test_two_people_join_through_what_hildif_prints_and_the_round_trains_on_both(label_studio, browser, tmp_path,  # noqa: F811
                                                                               data_dir, capsys, monkeypatch):
    from hildif.cli import main
    from hildif.labelstudio.client import LabelStudioClient
    from hildif.labelstudio.guidance import instructions_html
    from hildif.rounds.start import AnchorSelection, start_round
    from hildif.rounds.state import RoundState
    from hildif.rounds.sync import sync_round

    monkeypatch.setenv(KEY_ENV, label_studio.admin_token)
    run = tmp_path / "run"
    cfg = round_config(run, data_dir, label_studio.url, "HILDIF people browser test", annotators=2)
    register_tiny_base(cfg)
    client = LabelStudioClient(label_studio.url, label_studio.admin_token)
    started = start_round(cfg, "rp", AnchorSelection("paper", n=1), client=client, progress=False)
    assert (started.pushed_now, started.annotators_per_task) == (2, 2)
    project = client.sdk.projects.get(id=started.project_id)
    assert project.show_instruction and project.expert_instruction == instructions_html()

    assert main(["annotators", "add", *PEOPLE, "--round", "rp", "--run-dir", str(run), "--ls-url", label_studio.url,
                 "--set", f"labelstudio.api_key_env={KEY_ENV}"]) == 0
    login_url, project_url, passwords = printed_accounts(capsys.readouterr().out)
    assert project_url == f"{label_studio.url}/projects/{started.project_id}" and set(passwords) == set(PEOPLE)

    ARTIFACTS.mkdir(exist_ok=True)
    for i, (email, choice) in enumerate(PEOPLE.items()):
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = ctx.new_page()
        page.set_default_timeout(90_000)
        try:
            n = rate_the_stream(page, login_url, project_url, email, passwords[email], choice,
                                "browser_people_instructions.png" if i == 0 else None, expected_tasks=2)
            page.screenshot(path=str(ARTIFACTS / f"browser_people_done_{i + 1}.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / f"browser_people_failure_{i + 1}.png"), full_page=True)
            raise
        finally:
            ctx.close()
        assert n == 2
    assert (ARTIFACTS / "browser_people_instructions.png").stat().st_size > 10_000

    result = sync_round(cfg, "rp", client=client, progress=False)
    assert result.status == "trained" and result.changes["new"] == 4 and result.short_pairs["n_short"] == 0
    state = RoundState(cfg.run_path("rounds.sqlite"))
    snap = state.snapshot_ratings(result.snapshot_id)
    by_person = {(r.anchor_id, r.example_id, r.annotator): (r.score, r.status) for r in snap}
    assert len(by_person) == 4
    for p in state.pairs("rp"):
        for email, choice in PEOPLE.items():
            assert by_person[(p.anchor_id, p.example_id, email)] == (SCORES[choice], "submitted")
    scores = {(s["anchor_id"], s["example_id"]): (s["score"], s["n_raters"]) for s in state.scores(result.sync_id)}
    assert set(scores.values()) == {(3.5, 2)}  # median of 5 and 2, two raters on every pair
