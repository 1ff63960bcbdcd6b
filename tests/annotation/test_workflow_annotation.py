"""The annotation rules through the Snakemake CLI (tiny config), on fixture inputs.

The upstream stages' outputs (de-duplicated corpora, selection, data maps, generation
records) are written as fixtures and only this stage's rules are allowed to run, so
the test exercises exactly the annotation DAG.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import dry_run_jobs, snakemake
from corpus_fixture import make_corpus, make_selection_and_map

from softdigits import io

pytestmark = pytest.mark.workflow

RULES = ["annotation_export", "annotation_simulate", "aggregate_labels", "study_table", "dataset_stats"]
TARGETS = [
    "results-test/study/mnist.parquet",
    "results-test/study/mukhoti.parquet",
    "results-test/tables/table1.md",
    "results-test/tables/table1_vs_paper.md",
    "results-test/tables/annotations_per_image.md",
    "results-test/tables/appendix_b_correlations.md",
]


def write_upstream(workdir):
    results = workdir / "results-test"
    for corpus, n, n_selected, seed in (("mnist", 300, 120, 0), ("mukhoti", 200, 80, 1)):
        images = make_corpus(corpus, n, seed)
        selection, data_map = make_selection_and_map(images, n_selected, seed)
        io.write_table(images, results / "dedup" / f"{corpus}.parquet")
        io.write_table(selection, results / "selection" / f"{corpus}.parquet")
        io.write_table(data_map, results / "cartography" / corpus / "data_map.parquet")
    rng = np.random.default_rng(3)
    ids = make_corpus("mukhoti", 200, 1).column("image_id").to_pylist()
    parents = [list(rng.choice(10, 2, replace=False)) for _ in ids]
    weights = [list(rng.dirichlet([1.0, 1.0]).astype(np.float32)) for _ in ids]
    records = pd.DataFrame(
        {
            "image_id": ids,
            "parent_image_ids": [["x", "y"]] * len(ids),
            "parent_labels": parents,
            "mix_weights": weights,
            "entropy": 0.5,
            "mutual_information": 0.01,
        }
    )
    io.write_table(records, results / "generator" / "mukhoti_records.parquet")


@pytest.fixture(scope="module")
def annotated(tmp_path_factory):
    from conftest import copy_workflow

    workdir = copy_workflow(tmp_path_factory.mktemp("annotation") / "workflow")
    write_upstream(workdir)
    snakemake(workdir, "--cores", "2", "--allowed-rules", *RULES, "--", *TARGETS)
    return workdir


def test_default_origin_runs_simulated_campaign_to_tables(annotated):
    results = annotated / "results-test"
    for corpus, n_selected in (("mnist", 120), ("mukhoti", 80)):
        campaign = results / "annotation" / corpus / "campaign"
        tasks = pd.read_csv(campaign / "tasks.csv")
        # test overlay: 23 trials per list (20 images + 3 checks), 6 lists per image
        assert tasks.groupby("task_id").size().max() == 23
        study_rows = tasks[~tasks["is_attention_check"]]
        assert (study_rows.groupby("image_id")["task_id"].nunique() == 6).all()
        raw = pq.read_table(results / "annotation" / corpus / "raw_annotations.parquet")
        assert all(raw.column("simulated").to_pylist())
        assert io.read_metadata(results / "annotation" / corpus / "raw_annotations.parquet")["simulated"]
        study_path = results / "study" / f"{corpus}.parquet"
        study = pq.read_table(study_path)
        assert io.read_metadata(study_path)["labels_origin"] == "simulated"
        assert all(study.column("simulated").to_pylist())
        assert 0 < study.num_rows <= n_selected
        soft = io.vectors_array(study, "soft_label")
        np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-5)
        qc = json.loads((results / "annotation" / corpus / "qc.json").read_text())
        assert qc["simulated"] and qc["n_annotators"] > 0
    table1 = pd.read_csv(results / "tables" / "table1.csv")
    assert table1["corpus"].tolist() == ["mnist", "mukhoti"]
    assert (table1["labels"] == "simulated").all()
    assert np.allclose(table1["nohlv_pct"] + table1["hlv_pct"], 100.0)
    assert "SIMULATED" in (results / "tables" / "table1.md").read_text()
    compare = pd.read_csv(results / "tables" / "table1_vs_paper.csv")
    assert set(compare["source"]) == {"this run (simulated labels)", "paper Table 1 (human annotators)"}
    corr = pd.read_parquet(results / "tables" / "appendix_b_correlations.parquet")
    assert corr["spearman_rho"].notna().any()
    assert (results / "tables" / "annotations_per_image.png").stat().st_size > 1000


def test_simulation_is_deterministic(annotated, tmp_path):
    from softdigits.annotation import simulation

    raw_path = annotated / "results-test" / "annotation" / "mnist" / "raw_annotations.parquet"
    first = pq.read_table(raw_path)
    config_panel = {  # the defaults of workflow_config.yaml, re-read to rerun the job here
        **__import__("yaml").safe_load((annotated / "workflow_config.yaml").read_text())["annotation"]["simulation"]
    }
    again = tmp_path / "raw.parquet"
    simulation.run(
        corpus="mnist",
        campaign_dir=annotated / "results-test/annotation/mnist/campaign",
        images_path=annotated / "results-test/dedup/mnist.parquet",
        gold_images_path=annotated / "results-test/dedup/mnist.parquet",
        reference_path=annotated / "results-test/dedup/mnist.parquet",
        raw_out=again,
        simulation=config_panel,
        seed=0,
    )
    assert pq.read_table(again).equals(first)


def test_panel_change_reruns_simulation_not_export(annotated):
    config = annotated / "workflow_config.yaml"
    default = config.read_text()
    assert "lapse_rate: 0.0005" in default
    config.write_text(default.replace("lapse_rate: 0.0005", "lapse_rate: 0.01"))
    try:
        jobs = dry_run_jobs(annotated, "--allowed-rules", *RULES, "--", *TARGETS)
    finally:
        config.write_text(default)
    assert jobs.get("annotation_simulate") == 2
    assert "annotation_export" not in jobs
    assert jobs.get("dataset_stats") == 1


def set_annotation_config(workdir, text: str) -> None:
    """Append an `annotation:` overlay to the copy's test config (a dict merge)."""
    config = workdir / "config" / "test.yaml"
    lines = config.read_text().splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("annotation:"))
    end = next(k for k in range(start + 1, len(lines)) if lines[k] and not lines[k][0].isspace())
    config.write_text("\n".join(lines[:start] + text.strip().splitlines() + lines[end:]) + "\n")


def test_campaign_origin_imports_answers_and_names_bad_rows(workflow_copy):
    write_upstream(workflow_copy)
    set_annotation_config(
        workflow_copy,
        """
annotation:
  origin: campaign
  campaign: {images_per_task: 23, gold_per_digit: 1}
  answers: {mnist: answers/mnist.csv, mukhoti: answers/mukhoti.parquet}
""",
    )
    rules = ["annotation_export", "annotation_import", "aggregate_labels", "study_table"]
    targets = ["results-test/study/mnist.parquet", "results-test/study/mukhoti.parquet"]
    snakemake(
        workflow_copy,
        "--cores",
        "2",
        "--allowed-rules",
        "annotation_export",
        "--",
        "results-test/annotation/mnist/campaign",
        "results-test/annotation/mukhoti/campaign",
    )
    (workflow_copy / "answers").mkdir()
    for corpus in ("mnist", "mukhoti"):
        tasks = pd.read_csv(workflow_copy / f"results-test/annotation/{corpus}/campaign/tasks.csv")
        rows = []
        for trial in tasks.itertuples():  # everyone says yes to the gold / digit 1
            digit = trial.gold_label if trial.is_attention_check else 1
            rows += [
                {
                    "annotator_id": f"p-{trial.task_id}",
                    "image_id": trial.image_id,
                    "class": c,
                    "response": "yes" if c == digit else "no",
                    "is_attention_check": trial.is_attention_check,
                    "reaction_time_ms": 700.0,
                    "gold_label": trial.gold_label if trial.is_attention_check else None,
                }
                for c in range(10)
            ]
        answers = pd.DataFrame(rows)
        if corpus == "mnist":
            answers.loc[7, "response"] = "perhaps"
            answers.to_csv(workflow_copy / "answers/mnist.csv", index=False)
        else:
            answers.astype({"gold_label": "Int64"}).to_parquet(workflow_copy / "answers/mukhoti.parquet")
    proc = snakemake(
        workflow_copy, "--cores", "1", "--keep-going", "--allowed-rules", *rules, "--", *targets, check=False
    )
    assert proc.returncode != 0
    log = (workflow_copy / "results-test/logs/annotation_import/mnist.log").read_text()
    assert "answers/mnist.csv: row 8 (line 9): response 'perhaps' is not yes/no/unsure" in log
    assert not (workflow_copy / "results-test/annotation/mnist/raw_annotations.parquet").exists()
    study_path = workflow_copy / "results-test/study/mukhoti.parquet"
    assert io.read_metadata(study_path)["labels_origin"] == "campaign"
    study = pq.read_table(study_path)
    assert not any(study.column("simulated").to_pylist())
    assert set(study.column("soft_label_argmax").to_pylist()) == {1}


def test_released_origin_feeds_study_and_tables(workflow_copy):
    from test_annotation import released_fixture

    write_upstream(workflow_copy)
    images = make_corpus("mnist", 300, 0)
    released_fixture(workflow_copy / "released.parquet", images)
    set_annotation_config(
        workflow_copy,
        """
annotation:
  origin: released
  released_file: released.parquet
""",
    )
    config = workflow_copy / "workflow_config.yaml"
    config.write_text(config.read_text().replace("corpora: [mnist, mukhoti]", "corpora: [mnist]"))
    snakemake(
        workflow_copy,
        "--cores",
        "2",
        "--allowed-rules",
        "study_table",
        "dataset_stats",
        "--",
        "results-test/study/mnist.parquet",
        "results-test/tables/table1.md",
    )
    study_path = workflow_copy / "results-test/study/mnist.parquet"
    assert io.read_metadata(study_path)["labels_origin"] == "released"
    assert pq.read_table(study_path).num_rows == 7
    per_image = (workflow_copy / "results-test/tables/annotations_per_image.md").read_text()
    assert "Not available" in per_image
    table1 = pd.read_csv(workflow_copy / "results-test/tables/table1.csv")
    assert table1["labels"].tolist() == ["released"]
    log = (workflow_copy / "results-test/logs/study_table/mnist.log").read_text()
    assert "per-annotator statistics" in log and "not available" in log
