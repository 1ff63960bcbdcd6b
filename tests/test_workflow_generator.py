"""The generator sub-DAG through the real Snakemake CLI on the tiny config.

The tiny config takes 500 MNIST training images from the package copy; the generator
keeps the recipe's filter thresholds and makes 600 images. The corpora stage's
corpus_mukhoti then reads the generated table, as in the default offline run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import copy_workflow, dry_run_jobs, snakemake

from softdigits import io, sources

pytestmark = pytest.mark.workflow

OUT = "results/generator"
TARGETS = [
    f"{OUT}/mukhoti_corpus.parquet",
    f"{OUT}/mukhoti_records.parquet",
    f"{OUT}/ensemble_accuracy.csv",
    f"{OUT}/figures/samples_by_entropy.png",
    f"{OUT}/figures/entropy_histogram.png",
    "results/corpora/mukhoti.parquet",
    "results/dedup/duplicates_vs_paper.csv",
]


def args(*configfiles: str) -> list[str]:
    return ["--configfile", "config/test.yaml", *configfiles, "--cores", "2", *TARGETS]


def overlay(workdir: Path, changes: dict) -> str:
    (workdir / "changed.yaml").write_text(yaml.safe_dump(changes))
    return "changed.yaml"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp("generator") / "workflow")
    snakemake(workdir, *args())
    return workdir


def tiny_config(workdir: Path) -> dict:
    config = yaml.safe_load((workdir / "workflow_config.yaml").read_text())["generator"]
    for key, values in yaml.safe_load((workdir / "config/test.yaml").read_text())["generator"].items():
        config[key] = {**config[key], **values} if isinstance(values, dict) else values
    return config


def test_the_tiny_config_builds_a_corpus_that_meets_the_recipe(run):
    config = tiny_config(run)
    corpus = sources.mukhoti_from_generator(run / f"{OUT}/mukhoti_corpus.parquet")
    assert corpus.num_rows == config["stratify"]["n_images"] == 600
    assert io.read_metadata(run / f"{OUT}/mukhoti_corpus.parquet")["labels"].startswith("synthetic")
    # drawn with replacement (the default): the per-bin table in the CSV and the log,
    # each bin's target met, the distinct images fewer than the rows
    bins = pd.read_csv(run / f"{OUT}/selection_bins.csv")
    assert bins.columns.tolist() == ["low", "high", "target", "pool", "drawn", "unique"]
    assert config["stratify"]["replace"] is True
    assert (bins["drawn"] == bins["target"]).all() and bins["drawn"].sum() == 600
    assert ((bins["target"] > 0) == (bins["pool"] > 0)).all()
    n_distinct = len(set(corpus.column("sha256").to_pylist()))
    assert n_distinct == bins["unique"].sum() < corpus.num_rows
    log = (run / "results/logs/generator_select.log").read_text()
    assert "low high target pool drawn unique" in " ".join(log.split())
    assert f"drawn 600, unique {n_distinct} ({600 - n_distinct} exact repeats)" in log
    records = pd.read_parquet(run / f"{OUT}/mukhoti_records.parquet")
    assert records["image_id"].tolist() == corpus.column("image_id").to_pylist()
    assert (records["mutual_information"] <= config["filter"]["max_mutual_information"]).all()
    low = max(config["filter"]["min_entropy"], config["stratify"]["low"])
    assert records["entropy"].between(low, config["stratify"]["high"]).all()
    mnist_ids = set(io.read_images(run / "results/corpora/mnist.parquet").column("image_id").to_pylist())
    assert all(set(p) <= mnist_ids for p in records["parent_image_ids"])
    # the corpora stage takes the generated table as the Ambiguous-MNIST corpus
    downstream = io.read_images(run / "results/corpora/mukhoti.parquet")
    assert downstream.column("sha256").equals(corpus.column("sha256"))
    assert "sampled_labels" in downstream.column_names
    # the dedup stage removes exactly the repeats and sets the count beside the paper's
    vs_paper = pd.read_csv(run / "results/dedup/duplicates_vs_paper.csv").set_index("corpus")
    assert vs_paper.loc["mukhoti", "n_removed"] == 600 - n_distinct
    assert vs_paper.loc["mukhoti", "paper_n_removed"] == 1392 and vs_paper.loc["mukhoti", "agrees"] == "no"
    assert io.read_images(run / "results/dedup/mukhoti.parquet").num_rows == n_distinct
    assert f"{600 - n_distinct} of 600 removed" in (run / "results/dedup/leakage.md").read_text()


def test_the_ensemble_accuracy_is_recorded_and_sane(run):
    acc = pd.read_csv(run / f"{OUT}/ensemble_accuracy.csv")
    members = tiny_config(run)["ensemble"]["members"]
    assert acc["model"].tolist() == [f"member{i}" for i in range(members)] + ["ensemble"]
    # 500 training images: far from the default's >= 98%, but far above chance
    assert acc["test_accuracy"].between(0.7, 1.0).all()
    assert acc["seed"].iloc[:-1].is_unique
    for name in ("samples_by_entropy", "entropy_histogram"):
        assert (run / f"{OUT}/figures/{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for job in ("generator_vae", "generator_pool", "generator_select", "generator_figures"):
        assert (run / f"results/logs/{job}.log").exists() and (run / f"results/benchmarks/{job}.tsv").exists()


def test_nothing_to_do_after_the_run(run):
    assert dry_run_jobs(run, *args()) == {}


@pytest.mark.parametrize(
    "changes, expected",
    [
        (
            {"stratify": {"n_images": 500}},
            {"generator_select": 1, "generator_figures": 1, "corpus_mukhoti": 1, "dedup": 1},
        ),
        (
            {"filter": {"max_mutual_information": 0.04}},
            {"generator_pool": 1, "generator_select": 1, "generator_figures": 1, "corpus_mukhoti": 1, "dedup": 1},
        ),
        (
            {"ensemble": {"epochs": 3}},
            {
                "generator_ensemble_member": 3,
                "generator_ensemble": 1,
                "generator_pool": 1,
                "generator_select": 1,
                "generator_figures": 1,
                "corpus_mukhoti": 1,
                "dedup": 1,
            },
        ),
        (
            {"vae": {"epochs": 3}},
            {
                "generator_vae": 1,
                "generator_pool": 1,
                "generator_select": 1,
                "generator_figures": 1,
                "corpus_mukhoti": 1,
                "dedup": 1,
            },
        ),
    ],
    ids=["n_images", "filter", "ensemble", "vae"],
)
def test_a_config_change_reruns_only_what_it_touches(run, changes, expected):
    name = overlay(run, {"generator": changes})
    assert dry_run_jobs(run, *args(name)) == expected


def test_a_plot_code_change_redraws_only_the_figures(run):
    plots = run / "softdigits/generator/figures.py"
    text, times = plots.read_text(), plots.stat()
    try:
        plots.write_text(text + "\n# edited\n")
        assert dry_run_jobs(run, *args()) == {"generator_figures": 1}
    finally:  # leave the run as it was for the other tests
        plots.write_text(text)
        os.utime(plots, ns=(times.st_atime_ns, times.st_mtime_ns))


def test_no_generator_job_unless_mukhoti_is_generated(run):
    name = overlay(run, {"corpora": {"mukhoti": {"origin": "off"}}, "study": {"corpora": ["mnist"]}})
    jobs = dry_run_jobs(run, "--configfile", "config/test.yaml", name, "--cores", "2")
    assert jobs and not [rule for rule in jobs if rule.startswith("generator_")]
