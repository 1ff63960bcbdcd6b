"""`softdigits campaign answers`: the database's answers as the raw-answers contract, a
participants file beside it, and the refusals that keep raw data safe."""

from __future__ import annotations

import subprocess

import pandas as pd
import pyarrow.parquet as pq
import pytest
from campaign_fixture import SOFTDIGITS, make_campaign, settings

from softdigits.annotation.answers import RAW_SCHEMA, read_raw_annotations
from softdigits.campaign.settings import read_campaign_folder
from softdigits.campaign.store import Store
from softdigits.cli import main


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SOFTDIGITS), *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    """Two participants finish their lists (one fails a check), a third answers one trial."""
    root = tmp_path_factory.mktemp("export")
    campaign = read_campaign_folder(make_campaign(root, n_images=12, images_per_task=6), settings())
    store = Store(root / "campaign.sqlite", campaign)
    tasks = campaign.tasks.set_index(["task_id", "trial"])
    for pid, careful, n in (("ann", True, 6), ("ben", False, 6), ("cat", True, 1)):
        store.register(prolific_pid=pid, study_id="S1", session_id=f"sess-{pid}")
        task_id = store.start(pid)["task_id"]
        for trial in range(1, n + 1):
            row = tasks.loc[(task_id, trial)]
            responses = ["no"] * 10
            if row["is_attention_check"] and careful:
                responses[int(row["gold_label"])] = "yes"
            elif not row["is_attention_check"]:
                responses[trial % 10] = "yes"
            store.record_answer(pid, task_id, trial, responses, 900.0 + trial)
    store.close()
    return root / "campaign.sqlite", campaign


def test_writes_the_raw_contract_and_a_participants_file(database, tmp_path):
    db, campaign = database
    out = tmp_path / "answers" / "mnist.parquet"
    proc = cli("campaign", "answers", "--db", str(db), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "13 trials" not in proc.stdout and "from 3 participants (2 finished" in proc.stdout
    assert pq.read_schema(out).remove_metadata().equals(RAW_SCHEMA)
    raw, report = read_raw_annotations(out, known_image_ids=set(campaign.tasks["image_id"]))
    assert report["bad_rows"] == 0 and len(raw) == (6 + 6 + 1) * 10
    assert not raw["simulated"].any()
    people = pd.read_parquet(tmp_path / "answers" / "mnist.participants.parquet").set_index("participant_id")
    assert people.loc["ann", ["finished", "checks_failed", "session_id"]].tolist() == [True, 0, "sess-ann"]
    assert people.loc["ben", ["finished", "checks_failed", "failed_attention_check"]].tolist() == [True, 2, True]
    assert people.loc["cat", ["finished", "n_answered", "returned"]].tolist() == [False, 1, False]
    labels = tmp_path / "labels.parquet"
    proc = cli("aggregate", "--annotations", str(out), "--out", str(labels), "--qc", str(tmp_path / "qc.json"))
    assert proc.returncode == 0, proc.stderr
    assert "1 of 3 annotators excluded by attention checks" in proc.stdout  # ben

    finished = tmp_path / "finished.parquet"
    assert cli("campaign", "answers", "--db", str(db), "--out", str(finished), "--finished-only").returncode == 0
    assert set(pd.read_parquet(finished)["annotator_id"]) == {"ann", "ben"}


def test_never_writes_over_raw_answers_or_the_database(database, tmp_path, capsys):
    """In-process through softdigits.cli.main (the console script's entry point), to keep it fast."""
    db, _ = database

    def run(*args: str) -> tuple[int, str]:
        code = main(["campaign", "answers", *args])
        return code, capsys.readouterr().err.strip()

    out = tmp_path / "raw.parquet"
    assert run("--db", str(db), "--out", str(out))[0] == 0
    first = out.read_bytes()
    assert run("--db", str(db), "--out", str(out)) == (
        2,
        f"softdigits campaign answers: error: {out}: exists; raw answers are not written over "
        "(pass --overwrite to replace it)",
    )
    assert out.read_bytes() == first
    assert run("--db", str(db), "--out", str(out), "--overwrite")[0] == 0
    # a database whose name ends in .parquet: --overwrite still never writes over it
    odd = tmp_path / "campaign-db.parquet"
    odd.write_bytes(db.read_bytes())
    code, err = run("--db", str(odd), "--out", str(odd), "--overwrite")
    assert code == 2 and f"{odd}: the --out path is the campaign database file; refusing to write over it" in err
    assert odd.read_bytes() == db.read_bytes()
    code, err = run("--db", str(out), "--out", str(tmp_path / "x.parquet"))
    assert code == 2 and f"{out}: not a readable campaign database" in err
    code, err = run("--db", str(tmp_path / "nope.sqlite"), "--out", str(tmp_path / "y.parquet"))
    assert code == 2 and "no such campaign database" in err
    assert not (tmp_path / "nope.sqlite").exists()
