"""The campaign database (softdigits.campaign.store) and what its rows mean (records)."""

from __future__ import annotations

import sqlite3

import pytest
from campaign_fixture import make_campaign, settings

from softdigits.campaign import records
from softdigits.campaign.settings import CampaignError, read_campaign_folder, require_build, serve_settings
from softdigits.campaign.store import Refused, Store, read_tables

NO = ["no"] * 10


class Clock:
    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    # 3 lists of 6 trials (4 study images + 2 checks), a 10-minute timeout
    folder = make_campaign(tmp_path_factory.mktemp("store"), n_images=12, images_per_task=6)
    return read_campaign_folder(folder, settings(list_timeout_minutes=10))


def new_store(tmp_path, campaign, clock=None):
    return Store(tmp_path / "campaign.sqlite", campaign, clock=clock or Clock())


def answer_all(store, pid, responses=NO):
    state = store.state(pid)
    for trial in sorted(set(range(1, state["n_trials"] + 1)) - set(state["answered"])):
        state = store.record_answer(pid, state["task_id"], trial, responses, 800.0)
    return state


def test_the_database_is_append_only(tmp_path, campaign):
    store = new_store(tmp_path, campaign)
    store.register(prolific_pid="alice")
    store.start("alice")
    store.record_answer("alice", store.state("alice")["task_id"], 1, NO, 500.0)
    store.close()
    conn = sqlite3.connect(tmp_path / "campaign.sqlite")
    for sql in ("UPDATE answers SET responses = 'x'", "DELETE FROM answers", "DELETE FROM assignments"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(sql)
    assert conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 1
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_lists_are_given_once_resumed_and_returned_after_the_timeout(tmp_path, campaign):
    clock = Clock()
    store = new_store(tmp_path, campaign, clock)
    lists = sorted(campaign.tasks["task_id"].unique())
    for pid in ("a", "b", "c"):
        store.register(prolific_pid=pid)
        store.start(pid)
    assert [store.state(p)["task_id"] for p in "abc"] == lists  # round order, one list each
    store.record_answer("a", lists[0], 2, NO, 700.0)
    # a reload: the same list, the answered trial known
    again = store.register(prolific_pid="a")
    assert again["task_id"] == lists[0] and again["answered"] == [2]
    # every list is held: the next participant is told so, and keeps the consent
    store.register(prolific_pid="d")
    with pytest.raises(Refused) as refused:
        store.start("d")
    assert refused.value.status == 503
    assert store.state("d")["consented"] and store.state("d")["task_id"] is None
    # b finishes; after the timeout a's and c's lists go back to the pool
    answer_all(store, "b")
    clock.t += 10 * 60 + 1
    assert store.start("d")["task_id"] == lists[0]  # a's list (the first free one)
    assert store.state("a")["expired"]
    # a may still finish: then both a and d finished lists[0]: a doubled list
    answer_all(store, "a")
    answer_all(store, "d")
    people = records.participants(read_tables(store.path), clock.t).set_index("participant_id")
    assert people.loc[["a", "d"], "doubled"].all() and not people.loc[["b", "c"], "doubled"].any()
    assert people.loc["c", "returned"] and not people.loc[["a", "b", "d"], "returned"].any()
    lists_view = records.task_lists(read_tables(store.path), clock.t).set_index("task_id")
    assert lists_view.loc[lists[0], "doubled"] and lists_view.loc[lists[0], "n_finished"] == 2
    assert lists_view.loc[lists[2], "state"] == "returned"
    status = records.status(read_tables(store.path), clock.t)
    assert status["lists"] == {"total": 3, "done": 2, "in progress": 0, "returned": 1, "not started": 0, "doubled": 1}


def test_answers_are_checked_before_anything_is_stored(tmp_path, campaign):
    store = new_store(tmp_path, campaign)
    store.register(prolific_pid="alice")
    store.register(prolific_pid="bob")
    with pytest.raises(Refused) as no_list:
        store.record_answer("alice", "r1-t001", 1, NO, 1.0)
    assert no_list.value.status == 409  # no consent, no list yet
    store.start("alice")
    store.start("bob")
    mine, theirs = store.state("alice")["task_id"], store.state("bob")["task_id"]
    cases = [
        (("alice", theirs, 1, NO, 1.0), 403),  # another participant's list
        (("alice", mine, 99, NO, 1.0), 404),  # a trial not in the list
        (("nobody", mine, 1, NO, 1.0), 404),  # an unknown participant
        (("alice", mine, 1, ["no"] * 9, 1.0), 400),  # nine answers
        (("alice", mine, 1, ["no"] * 9 + ["maybe"], 1.0), 400),  # not yes/no/unsure
    ]
    for args, status in cases:
        with pytest.raises(Refused) as refused:
            store.record_answer(*args)
        assert refused.value.status == status, args
    assert read_tables(store.path)["answers"].empty
    first = store.record_answer("alice", mine, 1, NO, 1.0)
    replay = store.record_answer("alice", mine, 1, NO, 1.0)
    assert first["stored"] and not replay["stored"] and replay["replay"]
    with pytest.raises(Refused) as other:
        store.record_answer("alice", mine, 1, ["yes"] + NO[1:], 1.0)
    assert other.value.status == 409
    assert len(read_tables(store.path)["answers"]) == 1


def test_generated_ids_and_platform_ids(tmp_path, campaign):
    store = new_store(tmp_path, campaign)
    generated = store.register(study_id="S1")
    assert generated["id_source"] == "generated" and generated["participant_id"].startswith("p-")
    assert store.register(participant_id=generated["participant_id"])["participant_id"] == generated["participant_id"]
    with pytest.raises(Refused) as unknown:
        store.register(participant_id="p-never-issued")
    assert unknown.value.status == 404
    store.register(prolific_pid="PID1", study_id="S1", session_id="SES1")
    people = read_tables(store.path)["participants"].set_index("participant_id")
    assert people.loc["PID1", ["prolific_pid", "study_id", "session_id", "id_source"]].tolist() == [
        "PID1",
        "S1",
        "SES1",
        "platform",
    ]
    assert "p-never-issued" not in people.index


def test_failed_attention_checks_are_counted_per_participant(tmp_path, campaign):
    store = new_store(tmp_path, campaign)
    for pid in ("careful", "careless"):
        store.register(prolific_pid=pid)
        store.start(pid)
    tasks = campaign.tasks.set_index(["task_id", "trial"])
    for pid in ("careful", "careless"):
        task_id = store.state(pid)["task_id"]
        for (tid, trial), row in tasks.loc[[task_id]].iterrows():
            responses = list(NO)
            if row["is_attention_check"] and pid == "careful":
                responses[int(row["gold_label"])] = "yes"
            store.record_answer(pid, tid, int(trial), responses, 600.0)
    people = records.participants(read_tables(store.path), 0.0).set_index("participant_id")
    assert people.loc["careful", ["checks_answered", "checks_failed"]].tolist() == [2, 0]
    assert people.loc["careless", ["checks_answered", "checks_failed"]].tolist() == [2, 2]
    assert people["finished"].all()
    failures = records.status(read_tables(store.path), 0.0)["attention_check_failures"]
    assert [f["participant_id"] for f in failures] == ["careless"]


def test_a_database_serves_one_campaign_only(tmp_path, campaign, tmp_path_factory):
    new_store(tmp_path, campaign).close()
    other = read_campaign_folder(
        make_campaign(tmp_path_factory.mktemp("other"), n_images=14, images_per_task=6), settings()
    )
    with pytest.raises(CampaignError, match="belongs to another campaign"):
        Store(tmp_path / "campaign.sqlite", other)
    (tmp_path / "notes.sqlite").write_bytes(b"not a database at all, just text" * 4)
    with pytest.raises(CampaignError, match="notes.sqlite"):
        Store(tmp_path / "notes.sqlite", campaign)


def test_missing_build_names_the_command(tmp_path):
    with pytest.raises(CampaignError) as err:
        require_build(tmp_path / "dist")
    assert "run `make campaign-task`" in str(err.value) and "\n" not in str(err.value)


def test_serving_settings_without_a_key_or_with_a_bad_timeout_are_refused_naming_it():
    with pytest.raises(CampaignError, match=r"config key 'campaign.completion_url' is missing"):
        serve_settings({"campaign": {"list_timeout_minutes": 60, "completion_code": None}})
    with pytest.raises(CampaignError, match=r"'campaign.list_timeout_minutes': 0 is not a number > 0"):
        settings(list_timeout_minutes=0)
