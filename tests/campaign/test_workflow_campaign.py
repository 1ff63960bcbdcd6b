"""A campaign's answers from the server's database through the workflow's own import
(Snakemake CLI, tiny config, `annotation.origin: campaign`): export -> database ->
`softdigits campaign answers` -> annotation_import -> aggregate_labels."""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest
import yaml
from campaign_fixture import SOFTDIGITS
from conftest import snakemake
from corpus_fixture import make_corpus, make_selection_and_map

from softdigits import io
from softdigits.campaign.settings import read_campaign_folder, serve_settings
from softdigits.campaign.store import Store

pytestmark = pytest.mark.workflow
CAMPAIGN = "results-test/annotation/mnist/campaign"


def test_exported_answers_go_through_the_workflow_import(workflow_copy):
    results = workflow_copy / "results-test"
    images = make_corpus("mnist", 300, 0)
    selection, data_map = make_selection_and_map(images, 120, 0)
    io.write_table(images, results / "dedup" / "mnist.parquet")
    io.write_table(selection, results / "selection" / "mnist.parquet")
    io.write_table(data_map, results / "cartography" / "mnist" / "data_map.parquet")
    snakemake(workflow_copy, "--cores", "1", "--allowed-rules", "annotation_export", "--", CAMPAIGN)
    config = yaml.safe_load((workflow_copy / "workflow_config.yaml").read_text())
    campaign = read_campaign_folder(workflow_copy / CAMPAIGN, serve_settings(config))
    assert campaign.list_timeout_minutes == 60 and campaign.completion_url is None  # the config's `campaign` section

    # people answer every list through the store (the server's own code): the gold digit on checks,
    # digit (trial mod 10) elsewhere; one participant of the first list fails a check
    db = workflow_copy / "data" / "campaign.sqlite"
    db.parent.mkdir()
    store = Store(db, campaign)
    tasks = campaign.tasks.set_index(["task_id", "trial"])
    n_lists = campaign.tasks["task_id"].nunique()
    for k in range(n_lists):
        pid = f"P{k:03d}"
        store.register(prolific_pid=pid)
        task_id = store.start(pid)["task_id"]
        for trial in range(1, int(store.state(pid)["n_trials"]) + 1):
            row = tasks.loc[(task_id, trial)]
            digit = int(row["gold_label"]) if row["is_attention_check"] else trial % 10
            if k == 0 and row["is_attention_check"]:
                digit = (digit + 1) % 10
            store.record_answer(pid, task_id, trial, ["yes" if d == digit else "no" for d in range(10)], 700.0)
    store.close()
    answers = workflow_copy / "data" / "answers" / "mnist.parquet"
    proc = subprocess.run(
        [str(SOFTDIGITS), "campaign", "answers", "--db", str(db), "--out", str(answers)],
        capture_output=True,
        text=True,
        cwd=workflow_copy,
    )
    assert proc.returncode == 0, proc.stderr

    config = workflow_copy / "config" / "test.yaml"
    overlay = yaml.safe_load(config.read_text())
    overlay["annotation"].update(
        origin="campaign", answers={"mnist": "data/answers/mnist.parquet", "mukhoti": "data/answers/mukhoti.parquet"}
    )
    config.write_text(yaml.safe_dump(overlay))
    rules = ["annotation_import", "aggregate_labels"]
    snakemake(
        workflow_copy, "--cores", "1", "--allowed-rules", *rules, "--", "results-test/annotation/mnist/labels.parquet"
    )

    report = json.loads((results / "annotation" / "mnist" / "import_report.json").read_text())
    assert report["bad_rows"] == 0 and report["rows"] == len(campaign.tasks) * 10
    assert not io.read_metadata(results / "annotation" / "mnist" / "raw_annotations.parquet")["simulated"]
    qc = json.loads((results / "annotation" / "mnist" / "qc.json").read_text())
    assert qc["n_annotators"] == n_lists and qc["excluded_annotators"] == ["P000"] and not qc["simulated"]
    labels = pd.read_parquet(results / "annotation" / "mnist" / "labels.parquet")
    assert set(labels["image_id"]) == set(selection["image_id"])
    # every kept participant said yes to digit (trial mod 10) alone: each label's top class is a most voted digit
    tasks = campaign.tasks
    kept = tasks[~tasks["is_attention_check"] & (tasks["task_id"] != tasks["task_id"].min())]
    votes = (
        kept.assign(digit=kept["trial"] % 10)
        .groupby("image_id")["digit"]
        .agg(lambda d: set(d.value_counts()[lambda c: c == c.max()].index))
    )
    top = labels.set_index("image_id")["soft_label_argmax"]
    wrong = [i for i, digits in votes.items() if top[i] not in digits]
    assert not wrong, wrong[:5]
