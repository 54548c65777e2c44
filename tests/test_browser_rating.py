"""A real browser on the rating page: Debian's Chromium driven by Playwright (no browser download works here).

An annotator signs up through the organization's invite link and logs in, opens a task of a round pushed by the
rounds code (tiny model, real influence), sees both pairs and the five choices, picks "Similar" and submits; the next
sync counts exactly that rating. The screenshot is kept in ``test-artifacts/`` (CI keeps that folder).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from required import BROWSER, import_or_fail, skip_or_fail
from round_env import KEY_ENV, invite_url, register_tiny_base, round_config

pytestmark = [pytest.mark.integration, pytest.mark.labelstudio]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("HILDIF_CHROMIUM", "/usr/bin/chromium")
# Flags for a closed network (python.md): without the background-networking ones Chromium keeps dialing out.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
CHOICES = ("Very different", "Different", "Can't decide", "Similar", "Very similar")
RATER, RATER_PASSWORD = "rater.browser@hildif.test", "browser-rater-pass-1"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        skip_or_fail(f"{CHROMIUM} not found (Debian package chromium)", BROWSER)
    sync_api = import_or_fail("playwright.sync_api", BROWSER, "install the dev extra: pip install -e .[dev]")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def rate_similar_in_browser(page, ls_url: str, admin_token: str, project_id: int, pair, anchor) -> Path:
    """Sign up (invite link), log out, log in, open the pair's task, check what is shown, pick "Similar", submit.
    Returns the screenshot taken before submitting."""
    from playwright.sync_api import expect

    # Sign up in a browser context of its own, then log in from `page`'s context, which never held a session: a
    # returning annotator logs in (clearing cookies in the same context was not enough: the session came back).
    signup = page.context.browser.new_context()
    try:
        sp = signup.new_page()
        sp.set_default_timeout(60_000)
        sp.goto(invite_url(ls_url, admin_token))
        sp.fill("input[name=email]", RATER)
        sp.fill("input[name=password]", RATER_PASSWORD)
        sp.click("button[type=submit]")
        sp.wait_for_url(lambda url: "/user/signup" not in url)
    finally:
        signup.close()
    page.goto(f"{ls_url}/user/login/")
    page.fill("input[name=email]", RATER)
    page.fill("input[name=password]", RATER_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/user/login" not in url)

    page.goto(f"{ls_url}/projects/{project_id}/data?task={pair.task_id}")
    anchor_card, example_card = page.locator(".hildif-anchor"), page.locator(".hildif-example")  # rating.xml's
    expect(anchor_card).to_be_visible()
    expect(example_card).to_be_visible()
    for card, title, ex in ((anchor_card, "Test case (anchor)", anchor), (example_card, "Influential training example",
                                                                         pair.example)):
        for text in (title, ex.premise, ex.hypothesis):
            expect(card).to_contain_text(text)
    choices = page.locator("input.ant-radio-input")  # the template's radios (the Data Manager has others)
    expect(choices).to_have_count(len(CHOICES))
    assert [choices.nth(i).get_attribute("name") for i in range(choices.count())] == list(CHOICES)
    for choice in CHOICES:
        expect(page.locator("label.ant-radio-wrapper", has=page.locator(f'input[name="{choice}"]'))).to_be_visible()
    page.locator("label.ant-radio-wrapper", has=page.locator('input[name="Similar"]')).click()
    assert page.locator('input[name="Similar"]').is_checked()
    assert [choices.nth(i).is_checked() for i in range(len(CHOICES))] == [False, False, False, True, False]
    shot = ARTIFACTS / "browser_rating.png"
    page.screenshot(path=str(shot), full_page=True)
    with page.expect_response(lambda r: "/api/tasks/" in r.url and "/annotations" in r.url
                              and r.request.method == "POST") as posted:
        page.get_by_role("button", name="Submit").click()
    assert posted.value.status == 201, posted.value.text()
    return shot


def test_annotator_rates_similar_in_chromium_and_the_next_sync_counts_it(label_studio, browser, tmp_path, data_dir):
    from hildif.labelstudio.client import LabelStudioClient
    from hildif.rounds.start import AnchorSelection, start_round
    from hildif.rounds.state import RoundState
    from hildif.rounds.sync import sync_round

    os.environ[KEY_ENV] = label_studio.admin_token
    cfg = round_config(tmp_path / "run", data_dir, label_studio.url, "HILDIF browser test")
    register_tiny_base(cfg)
    client = LabelStudioClient(label_studio.url, label_studio.admin_token)
    started = start_round(cfg, "rb", AnchorSelection("paper", n=1), client=client, progress=False)
    assert started.pushed_now == 2
    state = RoundState(cfg.run_path("rounds.sqlite"))
    pair = state.pairs("rb")[0]
    anchor = state.anchors("rb")[0].example

    ARTIFACTS.mkdir(exist_ok=True)
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    try:
        shot = rate_similar_in_browser(page, label_studio.url, label_studio.admin_token, started.project_id, pair,
                                       anchor)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "browser_rating_failure.png"), full_page=True)
        raise
    finally:
        ctx.close()
    assert shot.stat().st_size > 10_000

    result = sync_round(cfg, "rb", client=client, progress=False)
    assert result.status == "trained" and result.changes["new"] == 1
    key = (pair.anchor_id, pair.example_id)
    rows = {(r["anchor_id"], r["example_id"]): (r["score"], r["n_raters"]) for r in state.scores(result.sync_id)}
    assert rows[key] == (4.0, 1)  # "Similar" = 4, one rater
    snap = state.snapshot_ratings(result.snapshot_id)
    assert [(r.annotator, r.score, r.status) for r in snap] == [(RATER, 4, "submitted")]
    assert sync_round(cfg, "rb", client=client, progress=False).status == "unchanged"  # counted once
