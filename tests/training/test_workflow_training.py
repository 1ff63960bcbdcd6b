"""The training stage through the real Snakemake CLI: one cell, reruns, a killed job, the tiny grid.

The cell tests run the training rules alone (a Snakefile with common.smk and
training.smk) on a synthetic study table, so they do not wait for the upstream
stages; `test_tiny_run_trains_the_whole_grid` checks the full tiny workflow.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import dry_run_jobs, snakemake
from study_fixture import write_study

pytestmark = pytest.mark.workflow

TRAINING_ONLY = """configfile: "workflow_config.yaml"

include: "rules/common.smk"
include: "rules/training.smk"

rule all:
    input: training_targets()
"""
OUTPUT_NAMES = [
    "test_performance_history.parquet",
    "test_performance_predictions.parquet",
    "dynamics_history.parquet",
    "dynamics_predictions.parquet",
    "manifest.json",
]


def cell(model: str, target: str, seed: int, corpus: str = "mnist") -> Path:
    return Path("results-test/training") / corpus / model / target / f"seed{seed}"


@pytest.fixture
def training_workflow(workflow_copy: Path) -> Path:
    (workflow_copy / "Snakefile.training").write_text(TRAINING_ONLY)
    for seed, corpus in enumerate(study_corpora(workflow_copy)):
        write_study(
            workflow_copy / f"results-test/study/{corpus}.parquet",
            seed=seed,
            sizes={"train": 150, "val": 40, "test": 40},
        )
    return workflow_copy


def study_corpora(workdir: Path) -> list[str]:
    overlay = yaml.safe_load((workdir / "config/test.yaml").read_text())
    default = yaml.safe_load((workdir / "workflow_config.yaml").read_text())
    return overlay.get("study", {}).get("corpora", default["study"]["corpora"])


def set_training(workdir: Path, **changes) -> None:
    """Change keys of the training section of the copy's config/test.yaml."""
    path = workdir / "config/test.yaml"
    config = yaml.safe_load(path.read_text())
    config["training"].update(changes)
    path.write_text(yaml.safe_dump(config))


def train(workdir: Path, *cells: Path, args=(), check=True):
    return snakemake(
        workdir,
        "-s",
        "Snakefile.training",
        "--cores",
        "2",
        *args,
        *[str(c / "manifest.json") for c in cells],
        check=check,
    )


def planned(workdir: Path, *cells: Path) -> dict[str, int]:
    return dry_run_jobs(workdir, "-s", "Snakefile.training", *[str(c / "manifest.json") for c in cells])


def test_one_cell_then_only_what_a_change_touches(training_workflow):
    wd = training_workflow
    # One job per corpus x model (3) x target (the paper's four + two controls), every seed in it.
    jobs = len(study_corpora(wd)) * 3 * 6
    # ... and one job per (corpus, target) writing the labels the models train on.
    labels = len(study_corpora(wd)) * 6
    assert planned(wd) == {"train_run": jobs, "training_targets": labels, "all": 1}
    set_training(wd, seeds=[0, 1, 2, 3, 4, 5])
    assert planned(wd) == {"train_run": jobs, "training_targets": labels, "all": 1}  # 36: the default 216 cells
    listing = snakemake(wd, "-s", "Snakefile.training", "-n").stdout
    assert str(cell("lenet", "original", 5) / "manifest.json") in listing  # every seed, in its cell's folder
    set_training(wd, seeds=[0])
    seed0 = cell("simple_ffn", "human_uncertainty", 0)
    train(wd, seed0)
    for name in OUTPUT_NAMES:
        assert (wd / seed0 / name).exists(), name
    manifest = json.loads((wd / seed0 / "manifest.json").read_text())
    assert manifest["data"]["labels_origin"] == "simulated"
    assert manifest["regimes"]["dynamics"]["epochs_trained"] == 5  # config/test.yaml
    assert (wd / "results-test/logs/train_run/mnist/simple_ffn/human_uncertainty.log").exists()
    assert (wd / "results-test/benchmarks/train_run/mnist/simple_ffn/human_uncertainty.tsv").exists()
    assert planned(wd, seed0) == {}

    # Adding a seed reruns the job of each (corpus, model, target), which trains every seed.
    set_training(wd, seeds=[0, 1])
    seed1 = cell("simple_ffn", "human_uncertainty", 1)
    assert planned(wd, seed0, seed1) == {"train_run": 1}
    train(wd, seed1)
    for seed, folder in enumerate((seed0, seed1)):  # each cell's files are its own seed's
        assert json.loads((wd / folder / "manifest.json").read_text())["seed"] == seed
    assert planned(wd, seed0, seed1) == {}
    set_training(wd, seeds=[1, 0])  # reordering (or removing) seeds reruns nothing
    assert planned(wd, seed0, seed1) == {}
    # A setting every run uses reruns the existing run (Snakemake's params trigger) ...
    set_training(wd, lr=5e-4)
    assert planned(wd, seed0) == {"train_run": 1}
    set_training(wd, lr=1e-3)
    assert planned(wd, seed0) == {}
    # ... and so does a change to the code it runs.
    grid_py = wd / "softdigits/training/train_run.py"
    grid_py.write_text(grid_py.read_text() + "\n# changed\n")
    assert planned(wd, seed0) == {"train_run": 1}


def test_killed_job_is_rerun_cleanly(training_workflow):
    """Kill a job after regime 1 wrote its files: Snakemake names the incomplete
    outputs and refuses to use them; --rerun-incomplete trains the cell again."""
    wd = training_workflow
    set_training(wd, dynamics={"epochs": 300})  # a long regime 2, to kill the job inside it
    run = cell("lenet", "human_majority", 0)
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--configfile",
        "config/test.yaml",
        "-s",
        "Snakefile.training",
        "--cores",
        "1",
        str(run / "manifest.json"),
    ]
    proc = subprocess.Popen(cmd, cwd=wd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    first = wd / run / "test_performance_predictions.parquet"
    try:
        deadline = time.monotonic() + 120
        while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.exists() and proc.poll() is None, "the job ended or never reached regime 2"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # snakemake and its job, as a crash would
        proc.wait()
    assert not (wd / run / "manifest.json").exists()
    assert not (wd / run / "dynamics_predictions.parquet").exists()

    snakemake(wd, "-s", "Snakefile.training", "--unlock")  # the killed run left its lock
    refused = train(wd, run, check=False)
    assert refused.returncode != 0
    assert "incomplete" in (refused.stdout + refused.stderr).lower()
    assert "--rerun-incomplete" in refused.stdout + refused.stderr

    set_training(wd, dynamics={"epochs": 5})
    train(wd, run, args=("--rerun-incomplete",))
    assert json.loads((wd / run / "manifest.json").read_text())["regimes"]["dynamics"]["epochs_trained"] == 5
    dynamics = pq.read_table(wd / run / "dynamics_predictions.parquet", columns=["epoch"])
    assert sorted(set(dynamics.column("epoch").to_pylist())) == [1, 2, 3, 4, 5]
    assert not list((wd / run).glob(".*.tmp"))  # no temporary files left behind
    assert planned(wd, run) == {}


def test_tiny_run_trains_the_whole_grid(tiny_run):
    config = yaml.safe_load((tiny_run / "workflow_config.yaml").read_text())
    overlay = yaml.safe_load((tiny_run / "config/test.yaml").read_text())
    training = {**config["training"], **overlay.get("training", {})}  # the overlay's lists replace
    for corpus in study_corpora(tiny_run):
        for model in training["models"]:
            for target in training["targets"]:
                for seed in training["seeds"]:
                    folder = tiny_run / cell(model, target, seed, corpus)
                    for name in OUTPUT_NAMES:
                        assert (folder / name).exists(), folder / name
                    manifest = json.loads((folder / "manifest.json").read_text())
                    assert manifest["regimes"]["dynamics"]["epochs_trained"] == training["dynamics"]["epochs"]
                    assert manifest["data"]["labels_origin"] in ("simulated", "campaign", "released")


TRAINING_AND_RUN_METRICS = """configfile: "workflow_config.yaml"

include: "rules/common.smk"
include: "rules/dedup.smk"
include: "rules/training.smk"
include: "rules/evaluation.smk"

rule all:
    input: training_targets(), expand(rules.evaluate_runs.output, corpus=STUDY_CORPORA)
"""
PAPER_TARGETS = ["original", "human_equal", "human_uncertainty", "human_majority"]
CONTROLS = ["label_smoothing", "human_shuffled"]


def test_adding_the_controls_trains_only_them_and_reevaluates(training_workflow):
    """Adding label_smoothing and human_shuffled to training.targets schedules
    their train_run jobs and the per-corpus evaluation after them, and no other
    target's training; their runs record epsilon and the shuffle, and evaluation
    writes the post-hoc views for every target."""
    wd = training_workflow
    (wd / "Snakefile.controls").write_text(TRAINING_AND_RUN_METRICS)
    corpora = study_corpora(wd)
    set_training(wd, models=["simple_ffn"], targets=PAPER_TARGETS)
    snakemake(wd, "-s", "Snakefile.controls", "--cores", "2")
    assert dry_run_jobs(wd, "-s", "Snakefile.controls") == {}

    set_training(wd, targets=PAPER_TARGETS + CONTROLS)
    plan = dry_run_jobs(wd, "-s", "Snakefile.controls")
    n = len(corpora) * len(CONTROLS)
    assert plan == {"train_run": n, "training_targets": n, "evaluate_runs": len(corpora), "all": 1}
    listing = snakemake(wd, "-s", "Snakefile.controls", "-n").stdout
    assert all(f"target={t}" not in listing for t in PAPER_TARGETS)

    snakemake(wd, "-s", "Snakefile.controls", "--cores", "2")
    for corpus in corpora:
        smoothing = json.loads((wd / cell("simple_ffn", "label_smoothing", 0, corpus) / "manifest.json").read_text())
        assert 0 < smoothing["data"]["target_details"]["epsilon"] < 0.9
        shuffled = json.loads((wd / cell("simple_ffn", "human_shuffled", 0, corpus) / "manifest.json").read_text())
        assert shuffled["data"]["target_details"]["shuffle_seed"] == 0
        evaluation = wd / "results-test/evaluation" / corpus
        temperature = pq.read_table(evaluation / "temperature.parquet").to_pandas()
        assert sorted(temperature["target"]) == sorted(PAPER_TARGETS + CONTROLS)
        assert (temperature["temperature"] > 0).all()
        selective = pq.read_table(evaluation / "selective.parquet").to_pandas()
        assert set(selective["metric"]) == {"aurc", "eaurc"}
        assert set(selective["target"]) == set(PAPER_TARGETS + CONTROLS)
        for name in ("metrics_temperature", "risk_coverage", "disagreement"):
            assert set(pq.read_table(evaluation / f"{name}.parquet").column("target").to_pylist()) >= set(CONTROLS)
    # A new shuffle seed retrains human_shuffled only: the key is that target's param alone.
    set_training(wd, shuffle_seed=2)
    plan = dry_run_jobs(wd, "-s", "Snakefile.controls")
    assert plan == {
        "train_run": len(corpora),
        "training_targets": len(corpora),
        "evaluate_runs": len(corpora),
        "all": 1,
    }
