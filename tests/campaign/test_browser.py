"""A real browser (Debian's chromium, driven by Playwright) does a whole task list against
`softdigits campaign serve` on 127.0.0.1: consent, instructions, practice, the trials with
their attention checks, a reload that resumes the list, the end page with the code. The
exported raw answers must equal what was clicked, row for row.

Screenshots of a trial and of the end page are saved under test-artifacts/campaign/.
Skips (with the reason) when chromium, Playwright or the task's build is missing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import browser_fixture
import pandas as pd
import pyarrow.parquet as pq
import pytest
from campaign_fixture import SOFTDIGITS, Server, make_campaign, mnist_images

from softdigits.annotation.answers import RAW_SCHEMA
from softdigits.campaign.settings import TASK_BUILD
from softdigits.campaign.store import read_tables

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "campaign"
COMPLETION_URL = "https://app.prolific.com/submissions/complete?cc=CODE42"
PID = "5f1e0c0ffee0000000000042"


def _missing() -> str | None:
    if not browser_fixture.CHROMIUM.is_file():
        return f"{browser_fixture.CHROMIUM} not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright not installed (pip install -r requirements.txt)"
    if not (TASK_BUILD / "index.html").is_file():
        return f"the task page is not built ({TASK_BUILD}): run make campaign-task"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


@pytest.fixture(scope="module")
def browser():
    """Chromium that reaches the campaign server on 127.0.0.1 and nothing else on the network."""
    with browser_fixture.chromium(1100, 800, allow=("file://", "http://127.0.0.1:")) as b:
        yield b.context


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    # real MNIST digits; 2 lists of 6 trials (4 study images + 2 attention checks)
    campaign = make_campaign(
        root,
        images=mnist_images(60),
        n_images=8,
        images_per_task=6,
    )
    server = Server(
        campaign, root / "campaign.sqlite", root / "serve.log", completion_code="CODE42", completion_url=COMPLETION_URL
    ).start()
    yield server, root
    server.stop()


def answers_for(trial: int, gold: int) -> list[str]:
    """What the test clicks: the gold digit alone on a check, a fixed mixed pattern elsewhere."""
    if gold >= 0:
        return ["yes" if d == gold else "no" for d in range(10)]
    return [("yes", "no", "unsure")[(d + trial) % 3] for d in range(10)]


def shown_trial(page) -> int:
    return int(parse_qs(urlparse(page.get_attribute("#sd-stimulus", "src")).query)["trial"][0])


def answer_shown_trial(page, tasks: pd.DataFrame, clicked: dict, screenshot: Path | None = None) -> None:
    """Click the answers of the trial on screen, Continue, and wait for the next page."""
    page.wait_for_selector("#sd-stimulus")
    trial = shown_trial(page)
    assert trial not in clicked, f"trial {trial} asked twice"
    row = tasks[tasks["trial"] == trial].iloc[0]
    responses = answers_for(trial, int(row["gold_label"]) if row["is_attention_check"] else -1)
    for digit, response in enumerate(responses):
        page.click(f'label[data-digit="{digit}"][data-value="{response}"]')
    if screenshot is not None:
        page.screenshot(path=str(screenshot))
    page.click(".sd-continue")
    clicked[trial] = (row, responses)
    page.wait_for_function(
        """t => { const img = document.querySelector('#sd-stimulus');
                  return document.querySelector('#sd-completion-code') || (img && !img.src.endsWith('trial=' + t)); }""",
        arg=trial,
    )


def test_a_person_does_a_whole_list_in_the_browser(browser, served, tmp_path):
    server, root = served
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page()
    page_errors: list = []
    page.on("pageerror", lambda err: page_errors.append(str(err)))
    page.goto(f"{server.url}/?PROLIFIC_PID={PID}&STUDY_ID=study-7&SESSION_ID=session-9")
    page.get_by_role("button", name="I agree").click()
    page.wait_for_selector("text=What you will do")
    page.click("#jspsych-instructions-next")
    page.click("#jspsych-instructions-next")
    # the practice: Continue without answers is refused, naming the open digits
    page.wait_for_selector("text=Practice")
    page.click(".sd-continue")
    assert "Please answer every digit (still open: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)" in page.inner_text(".sd-message")
    rendering = page.eval_on_selector("#sd-stimulus", "img => getComputedStyle(img).imageRendering")
    assert rendering == "pixelated" and page.eval_on_selector("#sd-stimulus", "img => img.width") == 280
    for digit in range(10):
        page.click(f'label[data-digit="{digit}"][data-value="no"]')
    page.click(".sd-continue")
    page.get_by_role("button", name="Start").click()

    state = read_tables(server.db)
    task_id = state["assignments"].set_index("participant_id").loc[PID, "task_id"]
    tasks = pd.read_csv(server.campaign / "tasks.csv")
    tasks = tasks[tasks["task_id"] == task_id]
    assert state["answers"].empty  # the practice is not saved
    clicked: dict = {}
    for k in range(2):
        answer_shown_trial(page, tasks, clicked, ARTIFACTS / "trial.png" if k == 1 else None)
    # a reload: the same list resumes; the answered trials are not asked again
    page.reload()
    page.wait_for_selector("text=Welcome back")
    assert "You have answered 2 of 6 images" in page.inner_text("body")
    page.get_by_role("button", name="Continue").click()
    while len(clicked) < len(tasks):
        answer_shown_trial(page, tasks, clicked)
    page.wait_for_selector("#sd-completion-code")
    page.screenshot(path=str(ARTIFACTS / "end.png"))
    assert page.inner_text("#sd-completion-code") == "CODE42"
    assert page.get_attribute(".sd-complete-link", "href") == COMPLETION_URL
    assert page.eval_on_selector("#jspsych-progressbar-inner", "el => el.style.width") == "100%"
    assert not page_errors, page_errors
    assert sum(bool(r["is_attention_check"]) for r, _ in clicked.values()) == 2

    out = tmp_path / "raw.parquet"
    proc = subprocess.run(
        [str(SOFTDIGITS), "campaign", "answers", "--db", str(server.db), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert pq.read_schema(out).remove_metadata().equals(RAW_SCHEMA)  # the raw answers contract, exactly
    raw = pd.read_parquet(out).astype({"gold_label": "Int64"})
    expected = pd.DataFrame(
        [
            {
                "annotator_id": PID,
                "image_id": row["image_id"],
                "class": digit,
                "response": responses[digit],
                "is_attention_check": bool(row["is_attention_check"]),
                "gold_label": int(row["gold_label"]) if row["is_attention_check"] else None,
            }
            for trial, (row, responses) in sorted(clicked.items())
            for digit in range(10)
        ]
    ).astype({"gold_label": "Int64", "class": "int64"})
    pd.testing.assert_frame_equal(raw[expected.columns].reset_index(drop=True), expected)
    assert not raw["simulated"].any()
    rt = raw.groupby("image_id")["reaction_time_ms"]
    assert (rt.nunique() == 1).all() and (rt.first() > 0).all() and (rt.first() < 60_000).all()
    people = pd.read_parquet(tmp_path / "raw.participants.parquet").set_index("participant_id")
    assert people.loc[PID, ["study_id", "session_id", "finished", "checks_failed"]].tolist() == [
        "study-7",
        "session-9",
        True,
        0,
    ]
    labels = tmp_path / "labels.parquet"
    proc = subprocess.run(
        [str(SOFTDIGITS), "aggregate", "--annotations", str(out), "--out", str(labels)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert len(pd.read_parquet(labels)) == 4  # the list's four study images
    page.close()


def test_a_visitor_without_platform_id_sees_a_generated_id_and_may_decline(browser, served):
    server, _ = served
    page = browser.new_page()
    page.goto(f"{server.url}/")
    page.wait_for_selector("#sd-participant-id")
    pid = page.inner_text("#sd-participant-id")
    assert pid.startswith("p-")
    page.get_by_role("button", name="I do not agree").click()
    page.wait_for_selector("text=You did not consent")
    tables = read_tables(server.db)
    assert pid in set(tables["participants"]["participant_id"])
    assert pid not in set(tables["consents"]["participant_id"]) and pid not in set(
        tables["assignments"]["participant_id"]
    )
    page.close()
