"""The generator sub-DAG through the real Snakemake CLI on the tiny config.

The tiny config takes 500 MNIST training images from the package copy; the generator
keeps the recipe's filter thresholds and makes 600 images. The corpora stage's
rule corpus then reads the generated table, as in the default offline run.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import colour_pixels, copy_workflow, dry_run_jobs, ink_share, png_rgb, snakemake

from softdigits import io
from softdigits.corpora.mukhoti import mukhoti_from_generator
from softdigits.evaluation.metrics import entropy
from softdigits.generator import figures

pytestmark = pytest.mark.workflow

OUT = "results-test/generator"
TARGETS = [
    f"{OUT}/mukhoti_corpus.parquet",
    f"{OUT}/mukhoti_records.parquet",
    f"{OUT}/ensemble_accuracy.csv",
    f"{OUT}/figures/samples_by_entropy.png",
    f"{OUT}/figures/entropy_histogram.png",
    "results-test/corpora/mukhoti.parquet",
    "results-test/dedup/mukhoti.parquet",
    "results-test/dedup/duplicates_vs_paper.csv",
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
    corpus = mukhoti_from_generator(run / f"{OUT}/mukhoti_corpus.parquet")
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
    log = (run / "results-test/logs/generator_select.log").read_text()
    assert "low high target pool drawn unique" in " ".join(log.split())
    assert f"drawn 600, unique {n_distinct} ({600 - n_distinct} exact repeats)" in log
    records = pd.read_parquet(run / f"{OUT}/mukhoti_records.parquet")
    assert records["image_id"].tolist() == corpus.column("image_id").to_pylist()
    assert (records["mutual_information"] <= config["filter"]["max_mutual_information"]).all()
    low = max(config["filter"]["min_entropy"], config["stratify"]["low"])
    assert records["entropy"].between(low, config["stratify"]["high"]).all()
    mnist_ids = set(io.read_images(run / "results-test/corpora/mnist.parquet").column("image_id").to_pylist())
    assert all(set(p) <= mnist_ids for p in records["parent_image_ids"])
    # the corpora stage takes the generated table as the Ambiguous-MNIST corpus
    downstream = io.read_images(run / "results-test/corpora/mukhoti.parquet")
    assert downstream.column("sha256").equals(corpus.column("sha256"))
    assert "sampled_labels" in downstream.column_names
    # the dedup stage removes exactly the repeats and sets the count beside the paper's
    vs_paper = pd.read_csv(run / "results-test/dedup/duplicates_vs_paper.csv").set_index("corpus")
    assert vs_paper.loc["mukhoti", "n_removed"] == 600 - n_distinct
    assert vs_paper.loc["mukhoti", "paper_n_removed"] == 1392 and vs_paper.loc["mukhoti", "agrees"] == "no"
    assert io.read_images(run / "results-test/dedup/mukhoti.parquet").num_rows == n_distinct
    assert f"{600 - n_distinct} of 600 removed" in (run / "results-test/dedup/leakage.md").read_text()


def test_the_ensemble_accuracy_is_recorded_and_sane(run):
    acc = pd.read_csv(run / f"{OUT}/ensemble_accuracy.csv")
    members = tiny_config(run)["ensemble"]["members"]
    assert acc["model"].tolist() == [f"member{i}" for i in range(members)] + ["ensemble"]
    # 500 training images: far from the default's >= 98%, but far above chance
    assert acc["test_accuracy"].between(0.7, 1.0).all()
    assert acc["seed"].iloc[:-1].is_unique
    for job in ("generator_vae", "generator_pool", "generator_select", "generator_figures"):
        assert (run / f"results-test/logs/{job}.log").exists() and (run / f"results-test/benchmarks/{job}.tsv").exists()


def test_the_figures_draw_the_generated_corpus(run, saved_figures, tmp_path):
    """Each figure, drawn again from the run's outputs, gives the very PNG the workflow wrote,
    and what that figure draws is read back against the corpus and its selection bins."""
    config = tiny_config(run)
    stratify = config["stratify"]
    corpus_path, bins_path = run / f"{OUT}/mukhoti_corpus.parquet", run / f"{OUT}/selection_bins.csv"
    table = io.read_images(corpus_path)
    pixels, dist = io.pixels_array(table), io.vectors_array(table, "label_dist").astype(np.float64)
    h = entropy(dist)
    bins = pd.read_csv(bins_path)
    figures.samples_by_entropy(corpus_path, tmp_path / "samples.png", stratify["low"], stratify["high"], config["seed"])
    figures.entropy_histogram(corpus_path, bins_path, tmp_path / "histogram.png", stratify["power"])
    (grid, _), (hist, _) = saved_figures
    written = {name: run / f"{OUT}/figures/{name}.png" for name in ("samples_by_entropy", "entropy_histogram")}
    assert (tmp_path / "samples.png").read_bytes() == written["samples_by_entropy"].read_bytes()
    assert (tmp_path / "histogram.png").read_bytes() == written["entropy_histogram"].read_bytes()

    # samples by entropy: row r shows up to 12 images of its entropy band, in entropy order,
    # each titled with its top-2 classes; the row label counts the band
    n_rows, per_row = 10, 12
    edges = np.linspace(stratify["low"], stratify["high"], n_rows + 1)
    by_pixels = {pixels[i].tobytes(): i for i in range(len(pixels))}
    axes = np.array(grid.axes).reshape(n_rows, per_row)
    for r in range(n_rows):
        upper = h <= edges[r + 1] if r == n_rows - 1 else h < edges[r + 1]
        band = int(np.sum((h >= edges[r]) & upper))
        assert axes[r, 0].get_ylabel().endswith(f"(n={band})")
        shown = [ax for ax in axes[r] if ax.images]
        assert len(shown) == min(per_row, band)
        ids = [by_pixels[np.asarray(ax.images[0].get_array(), np.uint8).tobytes()] for ax in shown]
        assert all(edges[r] <= h[i] <= edges[r + 1] for i in ids)
        assert list(h[ids]) == sorted(h[ids])
        for ax, i in zip(shown, ids):
            top = np.argsort(-dist[i])[:2]
            assert ax.get_title() == f"{top[0]}:{dist[i, top[0]]:.2f} {top[1]}:{dist[i, top[1]]:.2f}"
    rgb = png_rgb(written["samples_by_entropy"])
    assert ink_share(rgb) > 0.3  # digits on black squares
    assert np.abs(rgb - rgb.mean(axis=-1, keepdims=True)).max() < 0.02  # grey scale only
    assert colour_pixels(rgb, "black") > 10_000 and colour_pixels(rgb, "white", tol=0.1) > 10_000

    # the entropy histogram: the corpus's entropies on the selection bins, the distinct
    # images and the recipe's target per bin, the pool per bin on the right axis
    ax, pool_ax = hist.axes
    bin_edges = np.append(bins["low"].to_numpy(), bins["high"].iloc[-1])
    heights = [bar.get_height() for bar in ax.containers[0]]
    np.testing.assert_allclose(heights, np.histogram(h, bin_edges)[0])
    assert sum(heights) == len(h) == stratify["n_images"]
    unique, target = (patch.get_data() for patch in ax.patches[len(heights) :])
    np.testing.assert_allclose(unique.values, bins["unique"])
    np.testing.assert_allclose(target.values, bins["target"])
    np.testing.assert_allclose(target.edges, bin_edges)
    pool = pool_ax.patches[0].get_data().values
    np.testing.assert_allclose(pool, np.where(bins["pool"] > 0, bins["pool"], np.nan))
    assert ax.get_title().startswith(f"median {np.median(h):.2f} nats")
    rgb = png_rgb(written["entropy_histogram"])
    assert ink_share(rgb) > 0.05
    for colour in ("black", "tab:orange"):
        assert colour_pixels(rgb, colour) >= 20, colour


def test_nothing_to_do_after_the_run(run):
    assert dry_run_jobs(run, *args()) == {}


@pytest.mark.parametrize(
    "changes, expected",
    [
        (
            {"stratify": {"n_images": 500}},
            {"generator_select": 1, "generator_figures": 1, "corpus": 1, "dedup": 1, "dedup_report": 1},
        ),
        (
            {"filter": {"max_mutual_information": 0.04}},
            {
                "generator_pool": 1,
                "generator_select": 1,
                "generator_figures": 1,
                "corpus": 1,
                "dedup": 1,
                "dedup_report": 1,
            },
        ),
        (
            {"ensemble": {"epochs": 3}},
            {
                "generator_ensemble_member": 3,
                "generator_ensemble": 1,
                "generator_pool": 1,
                "generator_select": 1,
                "generator_figures": 1,
                "corpus": 1,
                "dedup": 1,  # mukhoti's only: MNIST is above it in dedup priority
                "dedup_report": 1,
            },
        ),
        (
            {"vae": {"epochs": 3}},
            {
                "generator_vae": 1,
                "generator_pool": 1,
                "generator_select": 1,
                "generator_figures": 1,
                "corpus": 1,
                "dedup": 1,  # mukhoti's only: MNIST is above it in dedup priority
                "dedup_report": 1,
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
