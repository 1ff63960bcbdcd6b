"""Cartography, selection and Table 5 through the real Snakemake CLI on the tiny config.

An overlay switches Ambiguous-MNIST off (its generator is another stage), so the
run needs only the MNIST package copy. After one real run, dry runs show what a
config change reruns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import copy_workflow, dry_run_jobs, snakemake

pytestmark = pytest.mark.workflow

TARGETS = [
    "results-test/cartography/mnist/data_map.png",
    "results-test/cartography/mnist/regions.csv",
    "results-test/selection/mnist.parquet",
    "results-test/selection/mnist_strata.csv",
    "results-test/selection/mnist_strata.md",
    "results-test/corpus_size/runs.parquet",
    "results-test/tables/table5.md",
    "results-test/tables/table5.csv",
    "results-test/tables/table5.parquet",
]
OVERLAY = {"study": {"corpora": ["mnist"]}, "corpora": {"mukhoti": {"origin": "off"}}}


def overlay(workdir: Path, name: str, **changes) -> list[str]:
    """CLI arguments: the tiny config plus OVERLAY updated with `changes` (one level deep)."""
    config = {key: dict(value) for key, value in OVERLAY.items()}
    for key, value in changes.items():
        config.setdefault(key, {}).update(value)
    (workdir / name).write_text(yaml.safe_dump(config))
    return ["--configfile", "config/test.yaml", name]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp("selection") / "workflow")
    snakemake(workdir, *overlay(workdir, "base.yaml"), "--cores", "2", *TARGETS)
    return workdir


def test_outputs_follow_their_contracts(run):
    dynamics = pq.read_table(run / "results-test/cartography/mnist/dynamics.parquet")
    assert dynamics.column_names == ["seed", "epoch", "image_id", "digit", "gold", "p_gold", "correct", "probs"]
    assert dynamics.num_rows == 1000 * 10  # 1 seed x 10 epochs x 1,000 images (tiny config)

    data_map = pd.read_parquet(run / "results-test/cartography/mnist/data_map.parquet")
    assert list(data_map.columns) == [
        "image_id",
        "digit",
        "gold",
        "confidence",
        "variability",
        "correctness",
        "region",
        "mean_probs",
    ]
    assert (data_map["gold"] == data_map["digit"]).all()  # MNIST on label_dist: gold = the original label
    assert len(data_map) == 1000 and data_map["image_id"].is_unique
    assert set(data_map["region"]) <= {"easy", "ambiguous", "hard", "other"}
    assert np.stack(data_map["mean_probs"]).shape == (1000, 10)

    selection = pd.read_parquet(run / "results-test/selection/mnist.parquet")
    assert list(selection.columns) == ["image_id", "digit", "region", "split"]
    assert selection["split"].value_counts().to_dict() == {"train": 60, "val": 20, "test": 20}
    assert selection["image_id"].is_unique and selection["image_id"].isin(data_map["image_id"]).all()
    easy_train = selection.query("split == 'train' and region == 'easy'")["digit"].value_counts()
    assert (easy_train.reindex(range(10), fill_value=0) >= 3).all()
    strata = pd.read_csv(run / "results-test/selection/mnist_strata.csv")
    assert strata.groupby("split")["count"].sum().to_dict() == {"test": 20, "train": 60, "val": 20}
    log = (run / "results-test/logs/selection_solve/mnist.log").read_text()
    assert "solver status: Optimal" in log and "objective" in log

    runs = pd.read_parquet(run / "results-test/corpus_size/runs.parquet")
    assert sorted(runs["samples_per_digit"].unique()) == [5, 10] and len(runs) == 4
    table5 = pd.read_csv(run / "results-test/tables/table5.csv")
    assert list(table5.columns) == ["Samples per digit (class):", "5", "10"]
    assert (run / "results-test/cartography/mnist/data_map.png").stat().st_size > 0


def test_nothing_to_do_after_the_run(run):
    assert dry_run_jobs(run, *overlay(run, "same.yaml"), "--cores", "1", *TARGETS) == {}


def test_a_threshold_change_reruns_regions_and_selection_not_the_training(run):
    changed = {
        "corpora": {
            "mnist": {
                "epochs": 10,
                "thresholds": {
                    "confidence_high": 0.55,
                    "confidence_low": 0.3,
                    "variability_low": 0.25,
                    "variability_high": 0.3,
                },
            }
        }
    }
    jobs = dry_run_jobs(run, *overlay(run, "threshold.yaml", cartography=changed), "--cores", "1", *TARGETS)
    assert jobs.get("cartography_regions") == 1 and jobs.get("selection_solve") == 1
    assert jobs.get("cartography_plot") == 1
    assert "cartography_train" not in jobs and "corpus_size_run" not in jobs


def test_a_budget_change_reruns_only_the_selection(run):
    changed = {"corpora": {"mnist": {"budget": {"train": 50, "val": 20, "test": 20}, "min_easy_per_digit_train": 3}}}
    jobs = dry_run_jobs(run, *overlay(run, "budget.yaml", selection=changed), "--cores", "1", *TARGETS)
    assert jobs == {"selection_solve": 1}


def test_more_repetitions_rerun_only_the_corpus_size_jobs(run):
    jobs = dry_run_jobs(run, *overlay(run, "reps.yaml", corpus_size={"repetitions": 3}), "--cores", "1", *TARGETS)
    assert set(jobs) == {"corpus_size_run", "corpus_size_table"} and jobs["corpus_size_run"] == 2


def copy_results(run: Path, workdir: Path, parts=("results-test/dedup", "results-test/cartography")) -> None:
    for part in parts:
        for path in (run / part).rglob("*"):
            if path.is_file():
                dest = workdir / path.relative_to(run)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(path.read_bytes())


def test_an_infeasible_budget_fails_with_the_reason_and_no_output(run, tmp_path):
    workdir = copy_workflow(tmp_path / "workflow")
    copy_results(run, workdir)
    # (an easy minimum beyond the train budget is already refused by the config check)
    changed = {
        "corpora": {
            "mnist": {
                "budget": {"train": 60, "val": 20, "test": 20},
                "min_easy_per_digit_train": 3,
                "min_per_region_split": {"easy": 10, "ambiguous": 10, "hard": 10},
            }
        }
    }
    args = overlay(workdir, "infeasible.yaml", selection=changed)
    proc = snakemake(workdir, *args, "--cores", "1", "--touch", "results-test/cartography/mnist/data_map.parquet")
    proc = snakemake(workdir, *args, "--cores", "1", "results-test/selection/mnist.parquet", check=False)
    assert proc.returncode != 0
    log = (workdir / "results-test/logs/selection_solve/mnist.log").read_text()
    assert "min_per_region_split" in log and "asks 30 images of split val, whose budget is 20" in log
    assert not (workdir / "results-test/selection/mnist.parquet").exists()


def test_sampled_label_target_on_mnist_fails_naming_the_missing_column(run, tmp_path):
    workdir = copy_workflow(tmp_path / "workflow")
    copy_results(run, workdir, parts=("results-test/dedup",))
    changed = {"corpora": {"mnist": {"target": "sampled_label"}}}
    args = overlay(workdir, "sampled.yaml", cartography=changed)
    snakemake(workdir, *args, "--cores", "1", "--touch", "results-test/dedup/mnist.parquet")
    proc = snakemake(workdir, *args, "--cores", "1", "results-test/cartography/mnist/dynamics.parquet", check=False)
    assert proc.returncode != 0
    log = (workdir / "results-test/logs/cartography_train/mnist.log").read_text()
    assert "'sampled_label' needs a `sampled_labels` column" in log and "results-test/dedup/mnist.parquet" in log
    assert not (workdir / "results-test/cartography/mnist/dynamics.parquet").exists()


def test_a_map_below_its_minimum_shares_fails_the_regions_job(run, tmp_path):
    workdir = copy_workflow(tmp_path / "workflow")
    copy_results(run, workdir)
    changed = {"corpora": {"mnist": {"min_share": {"easy": 0.0, "ambiguous": 0.0, "hard": 0.9}}}}
    args = overlay(workdir, "shares.yaml", cartography=changed)
    snakemake(workdir, *args, "--cores", "1", "--touch", "results-test/cartography/mnist/dynamics.parquet")
    proc = snakemake(workdir, *args, "--cores", "1", "results-test/cartography/mnist/regions.csv", check=False)
    assert proc.returncode != 0
    log = (workdir / "results-test/logs/cartography_regions/mnist.log").read_text()
    assert "misses its minimum region shares" in log and "< 90.00%" in log
    assert not (workdir / "results-test/cartography/mnist/regions.csv").exists()
