"""The corpora and dedup stages through the real Snakemake CLI on the tiny config.

The tiny config takes MNIST from the package copy (500 images per split). An
overlay switches Ambiguous-MNIST off (its generator is another stage) and has
Weiss's CSV downloaded from a local file:// mirror with no pinned checksum, so
the download rule, its checksum lock and a second corpus beside MNIST are exercised.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import copy_workflow, dry_run_jobs, snakemake
from corpus_fixture import ardis_text, small_mnist, weiss_frame, write_ardis_archive, write_mukhoti_release

from softdigits import io
from softdigits.corpora.mnist import parse_idx

pytestmark = pytest.mark.workflow

OUTPUTS = [
    "results-test/dedup/mnist.parquet",
    "results-test/dedup/weiss.parquet",
    "results-test/dedup/duplicates.parquet",
    "results-test/dedup/duplicates.csv",
    "results-test/dedup/leakage.csv",
    "results-test/dedup/leakage.md",
]


def overlay(workdir: Path, name: str = "overlay.yaml", **changes) -> str:
    """Write the stage overlay (plus `changes`, merged per corpus) and return its name."""
    corpora = {
        "mukhoti": {"origin": "off"},
        "weiss": {
            "origin": "download",
            "keep_splits": ["train", "test"],
            "files": {"csv": {"url": (workdir.parent / "mirror" / "weiss.csv").as_uri(), "checksum": None}},
        },
    }
    for corpus, values in changes.get("corpora", {}).items():
        corpora.setdefault(corpus, {}).update(values)
    # mukhoti is off, so it is no study corpus either (the config check refuses that)
    config = {
        "corpora": corpora,
        "study": {"corpora": ["mnist"]},
        **{k: v for k, v in changes.items() if k != "corpora"},
    }
    (workdir / name).write_text(yaml.safe_dump(config))
    return name


def with_overlay(name: str) -> list[str]:
    """CLI arguments: the tiny config plus an overlay, then our stages' outputs as targets."""
    return ["--configfile", "config/test.yaml", name, "--cores", "1", *OUTPUTS]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A workflow copy in which the corpora and dedup stages have run once."""
    root = tmp_path_factory.mktemp("corpora")
    workdir = copy_workflow(root / "workflow")
    mirror = root / "mirror"
    mirror.mkdir()
    df = weiss_frame(np.random.default_rng(0), n=6, splits=("train", "train", "test"))
    df.iloc[2, 9:] = df.iloc[0, 9:].to_numpy()  # test row 2 leaks training row 0
    df.to_csv(mirror / "weiss.csv", index=False)
    snakemake(workdir, *with_overlay(overlay(workdir)))
    return workdir


def test_tiny_config_builds_the_corpora_and_dedup_outputs(run):
    mnist = io.read_images(run / "results-test/corpora/mnist.parquet")
    assert mnist.num_rows == 1000
    assert io.read_metadata(run / "results-test/corpora/mnist.parquet")["n_per_split"] == {"train": 500, "test": 500}
    assert io.read_images(run / "results-test/corpora/weiss.parquet").num_rows == 6
    assert io.read_images(run / "results-test/dedup/mnist.parquet").equals(mnist)
    assert io.read_images(run / "results-test/dedup/weiss.parquet").num_rows == 5

    duplicates = pd.read_csv(run / "results-test/dedup/duplicates.csv")
    assert duplicates[["dropped_image_id", "kept_image_id", "reason"]].values.tolist() == [
        ["weiss:test:102", "weiss:train:100", "within_corpus_exact"]
    ]
    leakage = pd.read_csv(run / "results-test/dedup/leakage.csv").set_index("corpus")
    assert leakage.loc["weiss", "test_in_train"] == 1 and leakage.loc["mnist", "test_in_train"] == 0
    assert leakage.loc["mnist", "n_kept"] == 1000
    assert "| weiss | 6 |" in (run / "results-test/dedup/leakage.md").read_text()
    for job in ("corpus/mnist", "corpus/weiss", "dedup/mnist", "dedup/weiss", "dedup_report"):
        assert (run / f"results-test/logs/{job}.log").exists() and (run / f"results-test/benchmarks/{job}.tsv").exists()


def test_unpinned_download_is_locked_with_its_sha256(run):
    csv = run / "resources/downloads/weiss/weiss.csv"
    lock = run / "resources/checksums/weiss/weiss.csv.sha256"
    sha = hashlib.sha256(csv.read_bytes()).hexdigest()
    assert lock.read_text().split()[0] == f"sha256:{sha}"
    assert "recorded sha256:" in (run / "results-test/logs/download_file/weiss/weiss.csv.log").read_text()


def test_nothing_to_do_after_the_run(run):
    assert dry_run_jobs(run, *with_overlay(overlay(run))) == {}


@pytest.mark.parametrize(
    "changes, expected",
    [
        # mnist is first in dedup priority: weiss's dedup reads it, mnist's never reads weiss
        ({"corpora": {"mnist": {"limit_per_split": 400}}}, {"corpus": 1, "dedup": 2, "dedup_report": 1}),
        ({"corpora": {"weiss": {"keep_splits": ["train"]}}}, {"corpus": 1, "dedup": 1, "dedup_report": 1}),
        (
            {"corpora": {"weiss": {"files": {"csv": {"url": "file:///elsewhere/weiss.csv", "checksum": None}}}}},
            {"download_file": 1, "corpus": 1, "dedup": 1, "dedup_report": 1},
        ),
        ({"dedup": {"near_duplicates": {"enabled": True}}}, {"dedup": 2, "dedup_report": 1}),
    ],
    ids=["mnist-limit", "weiss-splits", "weiss-url", "dedup-near"],
)
def test_a_config_change_reruns_only_what_it_touches(run, changes, expected):
    name = overlay(run, "changed.yaml", **changes)
    assert dry_run_jobs(run, *with_overlay(name)) == expected


@pytest.mark.parametrize(
    "module, expected",
    [
        ("dedup/duplicates", {"dedup": 2, "dedup_report": 1}),
        # Downloads are fixed by URL and checksum: a code edit never fetches them again;
        # only MNIST's reader runs this module (its IDX checksums).
        ("corpora/download", {"corpus": 1, "dedup": 2, "dedup_report": 1}),
        # One reader's edit reruns its corpus alone (weiss's dedup reads mnist, not the reverse).
        ("corpora/weiss", {"corpus": 1, "dedup": 1, "dedup_report": 1}),
        ("corpora/mnist", {"corpus": 1, "dedup": 2, "dedup_report": 1}),
        # The registry and what the readers share: every corpus.
        ("corpora/__init__", {"corpus": 2, "dedup": 2, "dedup_report": 1}),
        ("corpora/base", {"corpus": 2, "dedup": 2, "dedup_report": 1}),
    ],
)
def test_a_code_change_reruns_only_the_rules_that_run_it(run, module, expected):
    path = run / f"softdigits/{module}.py"
    original = path.read_text()
    path.write_text(original + "# edited\n")  # Snakemake compares content, not just mtime
    try:
        assert dry_run_jobs(run, *with_overlay(overlay(run))) == expected
    finally:
        path.write_text(original)


def test_lint_is_clean(run):
    """`snakemake --lint` on the whole workflow: no complaint at all."""
    proc = snakemake(run, "--lint", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in out, out[-6000:]


def test_every_download_origin_through_the_cli(tmp_path):
    """All four corpora from file:// mirrors of small fixture files, through download and dedup."""
    workdir = copy_workflow(tmp_path / "workflow")
    mirror = tmp_path / "mirror"
    mirror.mkdir()

    def spec(path: Path, algorithm: str | None = "md5") -> dict:
        digest = hashlib.new(algorithm, path.read_bytes()).hexdigest() if algorithm else None
        return {"url": path.as_uri(), "checksum": f"{algorithm}:{digest}" if algorithm else None}

    mnist_files, idx_checksums = small_mnist(mirror, n_train=6, n_test=4)
    mnist_files = {name: path.rename(mirror / f"{name}-idx.gz") for name, path in mnist_files.items()}
    mukhoti_files = write_mukhoti_release(mirror, n=8)
    rng = np.random.default_rng(8)
    # ARDIS's first training image is a copy of MNIST's first: a cross-corpus duplicate.
    mnist_train = parse_idx(gzip.decompress(mnist_files["train_images"].read_bytes()), "images", "fixture")
    ardis_train = np.vstack([mnist_train[:1], rng.integers(0, 256, (3, 784))])
    write_ardis_archive(mirror / "ARDIS_DATASET_IV.rar", rng, **{"ARDIS_train_2828.csv": ardis_text(ardis_train)})
    weiss_frame(rng).to_csv(mirror / "weiss.csv", index=False)

    config = {
        "corpora": {
            "mnist": {
                "origin": "download",
                "idx_checksums": idx_checksums,
                "files": {name: spec(path) for name, path in mnist_files.items()},
            },
            "mukhoti": {"origin": "download", "files": {name: spec(p) for name, p in mukhoti_files.items()}},
            "ardis": {"origin": "download", "files": {"archive": spec(mirror / "ARDIS_DATASET_IV.rar", None)}},
            "weiss": {"origin": "download", "files": {"csv": spec(mirror / "weiss.csv", "sha256")}},
        }
    }
    (workdir / "all.yaml").write_text(yaml.safe_dump(config))
    targets = [f"results-test/dedup/{c}.parquet" for c in ("mnist", "mukhoti", "ardis", "weiss")]
    targets.append("results-test/dedup/leakage.csv")
    snakemake(workdir, "--configfile", "config/test.yaml", "all.yaml", "--cores", "2", *targets)

    counts = {
        c: io.read_images(workdir / f"results-test/corpora/{c}.parquet").num_rows
        for c in ("mnist", "mukhoti", "ardis", "weiss")
    }
    assert counts == {"mnist": 10, "mukhoti": 8, "ardis": 7, "weiss": 4}
    assert (workdir / "resources/checksums/ardis/ARDIS_DATASET_IV.rar.sha256").exists()
    assert not (workdir / "resources/checksums/weiss").exists()  # pinned: no lock needed
    leakage = pd.read_csv(workdir / "results-test/dedup/leakage.csv").set_index("corpus")
    assert leakage["n_kept"].to_dict() == {**counts, "ardis": 6}
    assert leakage.loc["ardis", "shared_with_mnist"] == 1
    duplicates = pd.read_csv(workdir / "results-test/dedup/duplicates.csv")
    assert duplicates[["dropped_image_id", "kept_image_id", "reason"]].values.tolist() == [
        ["ardis:train:0", "mnist:train:0", "cross_corpus_exact"]
    ]
    mukhoti = io.read_images(workdir / "results-test/dedup/mukhoti.parquet")
    assert (
        "sampled_labels" in mukhoti.column_names
        and io.read_metadata(workdir / "results-test/dedup/mukhoti.parquet")["origin"] == "download"
    )


def test_a_failed_redownload_keeps_the_verified_file(tmp_path):
    """The config's URL changes, Snakemake deletes the output, the new file is
    corrupt; the verified file survives in the store and a revert restores it offline."""
    workdir = copy_workflow(tmp_path / "workflow")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    weiss_frame(np.random.default_rng(0)).to_csv(mirror / "weiss.csv", index=False)
    good = (mirror / "weiss.csv").read_bytes()
    (mirror / "v2").mkdir()
    (mirror / "v2" / "weiss.csv").write_bytes(good[: len(good) // 2])  # the new release, corrupt
    target = "resources/downloads/weiss/weiss.csv"

    def fetch(name: str, url: Path, checksum: str | None, check: bool = True):
        (workdir / name).write_text(
            yaml.safe_dump(
                {
                    "study": {"corpora": ["mnist"]},
                    "corpora": {
                        "mukhoti": {"origin": "off"},
                        "weiss": {"origin": "download", "files": {"csv": {"url": url.as_uri(), "checksum": checksum}}},
                    },
                }
            )
        )
        return snakemake(workdir, "--configfile", "config/test.yaml", name, "--cores", "1", target, check=check)

    fetch("first.yaml", mirror / "weiss.csv", None)
    sha = hashlib.sha256(good).hexdigest()
    kept = workdir / f"resources/verified/sha256-{sha}"
    lock = workdir / "resources/checksums/weiss/weiss.csv.sha256"
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (kept, lock)}
    assert kept.read_bytes() == good

    new_sum = "sha256:" + hashlib.sha256(b"what the new release should be").hexdigest()
    proc = fetch("new.yaml", mirror / "v2" / "weiss.csv", new_sum, check=False)
    assert proc.returncode != 0 and not (workdir / target).exists()
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (kept, lock)} == before

    (mirror / "weiss.csv").unlink()  # offline: the revert is served by the store
    fetch("first.yaml", mirror / "weiss.csv", None)
    assert (workdir / target).read_bytes() == good
