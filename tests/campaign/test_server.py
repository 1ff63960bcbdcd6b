"""`softdigits campaign serve` over HTTP on 127.0.0.1: hostile requests, 50 participants at
once, and a SIGKILL mid-campaign (every acknowledged answer survives)."""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import zlib

import pytest
from campaign_fixture import SOFTDIGITS, Server, admin_status, answer_body, make_campaign, request

from softdigits.campaign.settings import TASK_BUILD
from softdigits.campaign.store import read_tables

pytestmark = pytest.mark.skipif(
    not (TASK_BUILD / "index.html").is_file(), reason=f"task page not built ({TASK_BUILD}): run make campaign-task"
)
RESPONSES = ("yes", "no", "unsure")


def responses_for(pid: str, trial: int) -> list[str]:
    """A participant's answers to a trial, fixed by (pid, trial)."""
    seed = zlib.crc32(f"{pid}:{trial}".encode())
    return [RESPONSES[(seed >> (2 * d)) % 3] for d in range(10)]


def join(server: Server, pid: str) -> dict:
    status, state = request(f"{server.url}/api/session", "POST", {"prolific_pid": pid, "study_id": "STUDY"})
    assert status == 200, state
    status, state = request(f"{server.url}/api/start", "POST", {"participant_id": pid})
    assert status == 200, state
    return state


def row_counts(db) -> dict[str, int]:
    return {t: len(df) for t, df in read_tables(db).items()}


@pytest.fixture
def served(tmp_path):
    campaign = make_campaign(tmp_path, n_images=12, images_per_task=6)  # 3 lists of 6 trials
    server = Server(campaign, tmp_path / "campaign.sqlite", tmp_path / "serve.log").start()
    yield server
    server.stop()


def test_hostile_requests_get_a_clear_4xx_and_store_nothing(served):
    url = served.url
    alice, bob = join(served, "alice"), join(served, "bob")
    assert alice["task_id"] != bob["task_id"]
    assert "image_id" not in str(alice["trials"]) and "attention" not in str(alice)  # the page cannot tell checks
    first = answer_body(alice, 1, ["no"] * 10)
    status, reply = request(f"{url}/api/answer", "POST", first)
    assert status == 200 and reply["stored"] and reply["answered"] == [1]
    before = row_counts(served.db)

    hostile = {
        "another participant's list": (answer_body({**alice, "task_id": bob["task_id"]}, 2, ["no"] * 10), 403),
        "a trial not in the list": (answer_body(alice, 7, ["no"] * 10), 404),
        "a different second answer": (answer_body(alice, 1, ["yes"] + ["no"] * 9), 409),
        "an unknown participant": (answer_body({**alice, "participant_id": "mallory"}, 2, ["no"] * 10), 404),
        "a response not allowed": (answer_body(alice, 2, ["no"] * 9 + ["perhaps"]), 400),
        "nine responses": (answer_body(alice, 2, ["no"] * 9), 400),
        "a negative reaction time": ({**answer_body(alice, 2, ["no"] * 10), "reaction_time_ms": -5}, 400),
        "an extra field": ({**answer_body(alice, 2, ["no"] * 10), "is_attention_check": True}, 400),
        "an id with odd characters": ({**answer_body(alice, 2, ["no"] * 10), "participant_id": "a b;"}, 400),
    }
    for what, (body, expected) in hostile.items():
        status, reply = request(f"{url}/api/answer", "POST", body)
        assert status == expected, (what, status, reply)
        assert reply["error"], what
    raw = {
        "malformed JSON": (b'{"participant_id": "alice", ', 400),
        "a JSON list": (b"[1, 2, 3]", 400),
        "an oversized body": (b'{"x": "' + b"a" * 20_000 + b'"}', 413),
    }
    for what, (payload, expected) in raw.items():
        status, reply = request(f"{url}/api/answer", "POST", raw=payload)
        assert status == expected, (what, status, reply)
    # a replay of the stored answer: 200, stored once
    status, reply = request(f"{url}/api/answer", "POST", first)
    assert status == 200 and reply["replay"] and not reply["stored"]
    # images: only the participant's own trials
    assert request(f"{url}/api/image?participant_id=alice&trial=1")[0] == 200
    assert request(f"{url}/api/image?participant_id=alice&trial=7")[0] == 404
    assert request(f"{url}/api/image?participant_id=mallory&trial=1")[0] == 404
    assert request(f"{url}/api/session", "POST", {"participant_id": "p-made-up"})[0] == 404
    # the admin view: a wrong or missing token is refused, the right one (a header) works
    assert admin_status(served, "wrong-token-wrong-token")[0] == 401
    assert request(f"{url}/admin/api/status")[0] == 401
    assert request(f"{url}/admin/api/status?token=test-admin-token-0123456789")[0] == 401
    status, view = admin_status(served)
    assert status == 200 and view["lists"]["in progress"] == 2 and view["answered_trials"] == 1
    assert row_counts(served.db) == before  # nothing stored by any refused request (nor by the replay)


def participant(url: str, pid: str, acked: list, errors: list, lock: threading.Lock) -> None:
    """Join (or resume) and answer every open trial; record each acknowledged answer."""
    try:
        status, state = request(f"{url}/api/session", "POST", {"prolific_pid": pid})
        if status == 200:
            status, state = request(f"{url}/api/start", "POST", {"participant_id": pid})
        if status != 200:
            raise AssertionError(f"{pid}: {status} {state}")
        for item in state["trials"]:
            trial = item["trial"]
            if trial in state["answered"]:
                continue
            status, reply = request(f"{url}/api/answer", "POST", answer_body(state, trial, responses_for(pid, trial)))
            if status != 200:
                raise AssertionError(f"{pid} trial {trial}: {status} {reply}")
            with lock:
                acked.append((pid, trial))
    # the server was killed under us (mid-connection, or mid-reply: IncompleteRead), or refused
    except (OSError, http.client.HTTPException, AssertionError) as err:
        with lock:
            errors.append((pid, repr(err)))


def run_participants(url: str, pids: list[str], acked: list, *, kill_after: int | None = None, server=None):
    errors: list = []
    lock = threading.Lock()
    threads = [threading.Thread(target=participant, args=(url, p, acked, errors, lock)) for p in pids]
    for t in threads:
        t.start()
    if kill_after is not None:
        while len(acked) < kill_after and any(t.is_alive() for t in threads):
            threading.Event().wait(0.005)
        server.kill()
    for t in threads:
        t.join(timeout=60)
    return errors


def test_fifty_participants_at_once_and_a_sigkill_lose_nothing(tmp_path):
    # 50 lists of 5 trials (4 study images + 1 check)
    campaign = make_campaign(tmp_path, n_images=200, images_per_task=5, checks_per_task=1)
    db = tmp_path / "campaign.sqlite"
    server = Server(campaign, db, tmp_path / "serve.log").start()
    pids = [f"P{k:02d}" for k in range(50)]
    acked: list = []
    try:
        errors = run_participants(server.url, pids, acked, kill_after=120, server=server)
    finally:
        server.stop()
    assert errors, "the SIGKILL interrupted nobody: the test did not test a crash"
    answers = read_tables(db)["answers"]
    stored = set(zip(answers["participant_id"], answers["trial"]))
    assert set(acked) <= stored, f"acknowledged but lost: {sorted(set(acked) - stored)[:5]}"
    assert len(acked) >= 120

    server = Server(campaign, db, tmp_path / "serve.log").start()  # the same database
    try:
        errors = run_participants(server.url, pids, acked)
        assert not errors, errors[:3]
        status, view = admin_status(server)
    finally:
        server.stop()
    tables = read_tables(db)
    answers = tables["answers"]
    assert len(answers) == 50 * 5 and not answers.duplicated(["participant_id", "trial"]).any()
    expected = {(p, t): responses_for(p, t) for p in pids for t in range(1, 6)}
    got = {(r.participant_id, r.trial): json.loads(r.responses) for r in answers.itertuples()}
    assert got == expected
    assert tables["assignments"]["task_id"].is_unique and len(tables["assignments"]) == 50
    assert view["lists"]["done"] == 50 and view["lists"]["doubled"] == 0


def test_serve_refuses_a_database_inside_the_campaign_folder(tmp_path):
    campaign = make_campaign(tmp_path, n_images=12, images_per_task=6)
    proc = subprocess.run(
        [str(SOFTDIGITS), "campaign", "serve", "--campaign", str(campaign), "--db", str(campaign / "db.sqlite")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"softdigits campaign serve: error: {campaign / 'db.sqlite'}: the database must live outside the campaign "
        f"folder {campaign} (the workflow replaces that folder when it exports again)"
    ]
    assert not (campaign / "db.sqlite").exists()
