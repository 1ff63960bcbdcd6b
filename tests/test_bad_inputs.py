"""Every bad input gets a one-line error (exit 2) and nothing earlier is lost.

One test per case of docs/troubleshooting.md (the cases that need the workflow
itself are in tests/test_workflow_reliability.py). Each asserts the message, the
exit code (for the command line) and that every file that existed before keeps its
bytes and mtime. Downloads run against an HTTP server on 127.0.0.1 (conftest's).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io as io_
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from answers_fixture import GOOD, answers, write_answers
from conftest import copy_workflow, skip_without_mount_namespace
from corpus_fixture import weiss_frame, write_ardis_archive
from http_fixture import GOOD as PAYLOAD

from softdigits import io, jobs
from softdigits.annotation.answers import RawAnnotationError, read_raw_annotations
from softdigits.annotation.released import ReleasedTableError, read_released
from softdigits.cli import main
from softdigits.config import ConfigError, check_files
from softdigits.corpora import mukhoti
from softdigits.corpora.base import SourceFormatError, write_corpus
from softdigits.corpora.checks import check_download
from softdigits.corpora.download import ChecksumError, DownloadError, download, store_path

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "schemas" / "config.schema.yaml"


def cli(*args) -> subprocess.CompletedProcess:
    """`softdigits ARGS` in this process (fast); an uncaught exception fails the test."""
    out, err = io_.StringIO(), io_.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def cli_process(*args) -> subprocess.CompletedProcess:
    """`softdigits ARGS` as its own process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "softdigits.cli", *map(str, args)], capture_output=True, text=True)


def snapshot(*paths: Path) -> dict:
    """Bytes and mtime of each file, to show that nothing earlier was lost."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


# ------------------------------------------------------------ 1. aggregate over its input


@pytest.mark.parametrize("how", ["same path", "hard link", "symlink", "qc over input"])
def test_aggregate_refuses_to_write_over_its_input(tmp_path, how):
    raw = write_answers(GOOD, tmp_path / "raw.csv", "csv")
    before = snapshot(raw)
    out, qc = tmp_path / "labels.parquet", None
    if how == "same path":
        out = raw
    elif how == "hard link":
        os.link(raw, out := tmp_path / "alias.csv")
    elif how == "symlink":
        (out := tmp_path / "alias.csv").symlink_to(raw)
    else:
        qc = raw
    proc = cli("aggregate", "--annotations", raw, "--out", out, *(["--qc", qc] if qc else []))
    assert_one_line_error(proc, "refusing to write over it", "the annotations file")
    assert snapshot(raw) == before


def test_aggregate_out_folder_is_named(tmp_path):
    raw = write_answers(GOOD, tmp_path / "raw.csv", "csv")
    before = snapshot(raw)
    (tmp_path / "labels").mkdir()
    proc = cli("aggregate", "--annotations", raw, "--out", tmp_path / "labels")
    assert_one_line_error(proc, f"{tmp_path / 'labels'}: the --out path is a folder")
    assert snapshot(raw) == before and not list((tmp_path / "labels").iterdir())


# ------------------------------------------------------------ 5. tracebacks -> messages


def test_empty_answers_csv_is_named(tmp_path):
    raw = tmp_path / "raw.csv"
    raw.write_bytes(b"")
    out = tmp_path / "labels.parquet"
    out.write_bytes(b"earlier labels")
    before = snapshot(raw, out)
    proc = cli_process("aggregate", "--annotations", raw, "--out", out)
    assert_one_line_error(proc, f"{raw}: the file is empty")
    assert snapshot(raw, out) == before


def test_non_utf8_answers_are_named_with_line(tmp_path):
    raw = write_answers(GOOD, tmp_path / "raw.csv", "csv")
    data = raw.read_bytes().replace(b"a2,img1", b"a\xe92,img1", 1)
    raw.write_bytes(data)
    line = data[: data.index(b"\xe9")].count(b"\n") + 1
    before = snapshot(raw)
    proc = cli("aggregate", "--annotations", raw, "--out", tmp_path / "labels.parquet")
    assert_one_line_error(proc, f"{raw}: line {line} ", "byte 0xe9 is not UTF-8")
    assert snapshot(raw) == before and not (tmp_path / "labels.parquet").exists()


def test_every_annotator_failing_the_checks_is_named(tmp_path):
    rows = (
        answers("a1", "img1", yes=[3])
        + answers("a1", "g1", yes=[5], check=True, gold=0)
        + answers("a2", "img1", yes=[3])
        + answers("a2", "g1", yes=[7], check=True, gold=0)
    )
    raw = write_answers(rows, tmp_path / "raw.csv", "csv")
    before = snapshot(raw)
    proc = cli("aggregate", "--annotations", raw, "--out", tmp_path / "labels.parquet")
    assert_one_line_error(proc, f"{raw}: all 2 annotator(s) failed an attention check (a1, a2)")
    assert snapshot(raw) == before


def test_unreadable_parquet_answers_are_named(tmp_path):
    raw = tmp_path / "raw.parquet"
    raw.write_bytes(b"PAR1 not really")
    before = snapshot(raw)
    proc = cli("aggregate", "--annotations", raw, "--out", tmp_path / "labels.parquet")
    assert_one_line_error(proc, f"{raw}: not a readable Parquet file")
    assert snapshot(raw) == before


def test_missing_answers_file_is_named(tmp_path):
    proc = cli("aggregate", "--annotations", tmp_path / "nope.csv", "--out", tmp_path / "l.parquet")
    assert_one_line_error(proc, f"{tmp_path / 'nope.csv'}: no such file")


def test_malformed_yaml_config_gives_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("study:\n  corpora: [mnist\ntraining:\n  seeds: [0]\n")
    before = snapshot(bad)
    proc = cli_process("check-config", REPO / "workflow_config.yaml", bad)
    assert_one_line_error(proc, f"{bad}:3:", "YAML syntax error")
    assert snapshot(bad) == before


def test_missing_config_file_is_one_line(tmp_path):
    proc = cli("check-config", REPO / "workflow_config.yaml", tmp_path / "missing.yaml")
    assert_one_line_error(proc, f"{tmp_path / 'missing.yaml'}: no such config file")


def test_check_config_prints_the_results_folder_or_refuses_a_bad_one(tmp_path):
    """What the Makefile reads (`make report`/`clean` follow each config's own folder)."""
    assert cli("check-config", "--results", REPO / "workflow_config.yaml").stdout.strip() == "results"
    paper = cli("check-config", "--results", REPO / "workflow_config.yaml", REPO / "config/paper.yaml")
    assert paper.stdout.strip() == "results-paper"
    # A subfolder is a folder like any other (the replicates overlay writes one per replicate)...
    nested = tmp_path / "nested.yaml"
    nested.write_text("results: results/paper\n")
    assert cli("check-config", "--results", REPO / "workflow_config.yaml", nested).stdout.strip() == "results/paper"
    # ...but never one inside the project's data (make clean would delete the downloads).
    inside = tmp_path / "inside.yaml"
    inside.write_text("results: resources/run\n")
    proc = cli("check-config", "--results", REPO / "workflow_config.yaml", inside)
    assert proc.returncode == 2 and proc.stdout == "" and "results" in proc.stderr


def test_config_whose_top_level_is_not_a_mapping(tmp_path):
    bad = tmp_path / "list.yaml"
    bad.write_text("- mnist\n")
    proc = cli("check-config", REPO / "workflow_config.yaml", bad)
    assert_one_line_error(proc, f"{bad}:1: the top level must be a mapping")


def test_makefile_checks_the_merged_config_before_snakemake():
    proc = subprocess.run(["make", "-n", "run", "CONFIG=config/test.yaml"], cwd=REPO, capture_output=True, text=True)
    lines = [
        line for line in proc.stdout.splitlines() if "softdigits check-config" in line or "snakemake --cores" in line
    ]
    assert lines[0].endswith("softdigits check-config workflow_config.yaml config/test.yaml")
    assert "snakemake --cores" in lines[1]


# ------------------------------------------------------------ 4. cross-field config rules


def overlay_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "overlay.yaml"
    path.write_text(text)
    return path


CROSS_FIELD = {
    "inverted thresholds": (
        "cartography:\n  corpora:\n    mnist:\n      epochs: 3\n"
        "      thresholds: {confidence_high: 0.3, confidence_low: 0.8, variability_low: 0.1, variability_high: 0.25}\n",
        5,
        "cartography.corpora.mnist.thresholds': confidence_low 0.8 must be below confidence_high 0.3",
    ),
    "zero train budget": (
        "selection:\n  corpora:\n    mnist:\n      budget: {train: 0, val: 20, test: 20}\n",
        4,
        "selection.corpora.mnist.budget.train': 0: every split needs a positive budget",
    ),
    "all-zero budgets": (
        "selection:\n  corpora:\n    mukhoti:\n      budget: {train: 0, val: 0, test: 0}\n",
        4,
        "selection.corpora.mukhoti.budget.train': 0: every split needs a positive budget",
    ),
    "train budget below the easy minimum": (
        "selection:\n  corpora:\n    mnist:\n      budget: {train: 100, val: 20, test: 20}\n"
        "      min_easy_per_digit_train: 11\n",
        5,
        "min_easy_per_digit_train': 11 easy images per digit need 110 training images, but budget.train is 100",
    ),
    "gold corpus not studied": (
        "annotation:\n  campaign:\n    gold_corpus: weiss\n",
        3,
        "annotation.campaign.gold_corpus': 'weiss' must be one of study.corpora",
    ),
    "answers inside results/": (
        "annotation:\n  origin: campaign\n  answers:\n    mnist: data/mnist.csv\n"
        "    mukhoti: results/annotation/mukhoti/raw_annotations.parquet\n",
        5,
        "annotation.answers.mukhoti': 'results/annotation/mukhoti/raw_annotations.parquet' is inside results/",
    ),
    "comparison of an untrained target": (
        "training:\n  targets: [original, human_majority]\n",
        None,
        "evaluation.comparisons.0': ['human_uncertainty'] not in training.targets",
    ),
}


@pytest.mark.parametrize("case", sorted(CROSS_FIELD))
def test_cross_field_rules_are_checked_at_load(tmp_path, case):
    text, line, message = CROSS_FIELD[case]
    overlay = overlay_file(tmp_path, text)
    before = snapshot(overlay)
    proc = cli("check-config", REPO / "workflow_config.yaml", overlay)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    first = proc.stderr.splitlines()[0]
    where = f"{overlay}:{line}:" if line else "workflow_config.yaml:"
    assert where in first and message in first, proc.stderr
    if case == "all-zero budgets":  # one line per problem
        assert [line.split("budget.")[1][:5] for line in proc.stderr.splitlines()] == ["train", "val':", "test'"]
    assert snapshot(overlay) == before


@pytest.mark.parametrize("overlay", [None, "config/test.yaml", "config/paper.yaml"])
def test_shipped_configs_pass_every_rule(overlay):
    check_files([REPO / "workflow_config.yaml", *([REPO / overlay] if overlay else [])], SCHEMA)


def test_overlays_merge_like_snakemake(tmp_path):
    """Dicts merge key by key; lists replace (so a one-seed overlay really has one seed)."""
    overlay = overlay_file(tmp_path, "training:\n  seeds: [7]\ncartography:\n  batch_size: 32\n")
    config = check_files([REPO / "workflow_config.yaml", overlay], SCHEMA)
    assert config["training"]["seeds"] == [7] and config["training"]["models"]
    assert config["cartography"]["batch_size"] == 32 and config["cartography"]["seeds"] == [0, 1, 2]


def test_duplicate_seeds_are_named(tmp_path):
    overlay = overlay_file(tmp_path, "training:\n  seeds: [0, 1, 0]\n")
    with pytest.raises(ConfigError, match=r"overlay\.yaml:2: config key 'training\.seeds': .*non-unique"):
        check_files([REPO / "workflow_config.yaml", overlay], SCHEMA)


# ------------------------------------------------------------ 6./7. the validator


def systematic_bad_rows(path: Path, n_pairs: int) -> Path:
    """Every (annotator, image) pair lacks class 9: each row is bad."""
    pair = np.repeat(np.arange(n_pairs), 9)
    pd.DataFrame(
        {
            "annotator_id": "a" + (pair % 97).astype(str),
            "image_id": "img" + (pair // 97).astype(str),
            "class": np.tile(np.arange(9), n_pairs),
            "response": "no",
            "is_attention_check": "false",
            "reaction_time_ms": 500,
        }
    ).to_csv(path, index=False)
    return path


def test_many_systematically_bad_rows_are_capped_and_counted(tmp_path):
    raw = systematic_bad_rows(tmp_path / "raw.csv", 5000)  # 45,000 bad rows
    before = snapshot(raw)
    with pytest.raises(RawAnnotationError) as err:
        read_raw_annotations(raw)
    lines = str(err.value).splitlines()
    assert lines[0].startswith(
        f"{raw}: row 1 (line 2) and 8 more row(s): annotator 'a0' did not "
        "answer class(es) [9] for image 'img0' (45000 bad row(s) in all: "
        "45000 did not answer;"
    )
    assert len(lines) == 11 and lines[-1].strip() == "... and 44910 more bad row(s)"
    assert snapshot(raw) == before


def test_root_cause_is_listed_before_its_follow_on_errors(tmp_path):
    rows = [dict(r) for r in GOOD]
    rows[25]["class"] = 12  # a2/img1's class 5 row: that pair is now incomplete too
    raw = write_answers(rows, tmp_path / "raw.csv", "csv")
    with pytest.raises(RawAnnotationError) as err:
        read_raw_annotations(raw)
    first = str(err.value).splitlines()[0]
    assert first.startswith(f"{raw}: row 26 (line 27): class '12' is not a digit 0-9 (1 bad row(s)")
    assert "did not answer" not in str(err.value)  # fail fast: follow-on checks not run


def test_error_names_the_real_option_to_drop_rows(tmp_path):
    rows = [dict(r) for r in GOOD]
    rows[0]["response"] = "maybe"
    raw = write_answers(rows, tmp_path / "raw.csv", "csv")
    proc = cli("aggregate", "--annotations", raw, "--out", tmp_path / "labels.parquet")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "annotation.on_bad_rows: drop" in proc.stderr and "--on-bad-rows drop" in proc.stderr
    assert "on_bad_rows: drop to drop them" not in proc.stderr


@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity"])  # empty or nan = not recorded
def test_reaction_time_must_be_finite(tmp_path, value):
    rows = [dict(r) for r in GOOD]
    rows[3]["reaction_time_ms"] = value
    raw = write_answers(rows, tmp_path / "raw.csv", "csv")
    with pytest.raises(
        RawAnnotationError, match=rf"row 4 \(line 5\): reaction_time_ms '{value}' " r"is not a finite number >= 0"
    ):
        read_raw_annotations(raw)


# ------------------------------------------------------------ 7. empty tables


def test_zero_row_images_parquet_is_rejected(tmp_path):
    rng = np.random.default_rng(0)
    table = io.images_table(
        source="mukhoti",
        source_split="train",
        source_index=np.arange(2),
        pixels=rng.integers(0, 256, (2, 784)).astype(np.uint8),
        label=[1, 2],
    )
    empty = tmp_path / "empty.parquet"
    io.write_table(table.slice(0, 0), empty)
    with pytest.raises(SourceFormatError, match=r"empty\.parquet: the images table has no rows"):
        mukhoti.mukhoti_from_generator(empty)
    with pytest.raises(SourceFormatError, match=r"weiss: the source has no images"):
        write_corpus(table.slice(0, 0), tmp_path / "out.parquet", "weiss", "download", None)
    assert not (tmp_path / "out.parquet").exists()


def test_zero_row_released_table_is_rejected(tmp_path):
    from softdigits.annotation.released import RELEASED_COLUMNS

    path = tmp_path / "released.parquet"
    pq.write_table(pa.table({c: pa.array([], pa.string()) for c in RELEASED_COLUMNS}), path)
    with pytest.raises(ReleasedTableError, match=r"released\.parquet: the released table has no rows"):
        read_released(path, "mnist")


# ------------------------------------------------------------ 2. trust on first use


def truncated_gzip() -> bytes:
    data = gzip.compress(PAYLOAD * 50)
    return data[: len(data) // 2]


def test_truncated_first_download_is_not_pinned(server, tmp_path):  # noqa: F811
    url, files = server
    files["/train-idx.gz"] = truncated_gzip()  # served whole: Content-Length matches
    dest, lock = tmp_path / "dl" / "train-idx.gz", tmp_path / "locks" / "train-idx.gz.sha256"
    check = lambda path, name: check_download(path, name, "mnist")  # noqa: E731
    with pytest.raises(
        DownloadError,
        match=r"train-idx\.gz is damaged, so its checksum was not " r"pinned: train-idx\.gz: not a complete gzip file",
    ):
        download(f"{url}/train-idx.gz", dest, None, lock=lock, timeout=5, check=check)
    assert not lock.exists() and not dest.exists()

    files["/train-idx.gz"] = gzip.compress(PAYLOAD * 50)  # the correct file is then accepted
    download(f"{url}/train-idx.gz", dest, None, lock=lock, timeout=5, check=check)
    assert lock.exists() and gzip.decompress(dest.read_bytes()) == PAYLOAD * 50


def test_truncated_csv_and_rar_first_downloads_are_not_pinned(tmp_path):
    csv = tmp_path / "weiss.csv"
    weiss_frame(np.random.default_rng(0)).to_csv(csv, index=False)
    check_download(csv, "weiss.csv", "weiss", "csv")
    csv.write_bytes(csv.read_bytes()[:-3000])
    with pytest.raises(SourceFormatError, match=r"weiss\.csv: line \d+"):
        check_download(csv, "weiss.csv", "weiss", "csv")

    rar = tmp_path / "ARDIS.rar"
    write_ardis_archive(rar, np.random.default_rng(1))
    check_download(rar, "ARDIS.rar", "ardis", "archive")
    rar.write_bytes(rar.read_bytes()[:-500])
    with pytest.raises(SourceFormatError, match=r"ARDIS\.rar: "):
        check_download(rar, "ARDIS.rar", "ardis", "archive")


def test_pin_mismatch_names_the_lock_and_how_to_reset_it(server, tmp_path):  # noqa: F811
    url, files = server
    dest, lock = tmp_path / "dl" / "good.bin", tmp_path / "locks" / "good.bin.sha256"
    download(f"{url}/good.bin", dest, None, lock=lock, timeout=5, check=lambda p, n: None)
    before = snapshot(dest, lock)
    files["/good.bin"] = b"changed upstream"
    with pytest.raises(ChecksumError) as err:
        download(f"{url}/good.bin", dest, None, lock=lock, timeout=5)
    message = str(err.value)
    assert f"(expected by the lock file {lock})" in message
    assert f"delete {lock} (or put the new checksum in the config) and rerun" in message
    assert snapshot(dest, lock) == before


def test_damaged_released_table_is_not_pinned(tmp_path):
    from softdigits.annotation.released import RELEASED_COLUMNS

    path = tmp_path / "released.parquet"
    pq.write_table(pa.table({c: pa.array(["x"], pa.string()) for c in RELEASED_COLUMNS}), path)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ReleasedTableError, match=r"released\.parquet: not a readable Parquet file"):
        check_download(path, "soft-digits.parquet")


def test_import_never_writes_over_the_answers(tmp_path):
    from softdigits.annotation.answers import run_import

    raw = write_answers(GOOD, tmp_path / "answers.parquet", "parquet")
    before = snapshot(raw)
    with pytest.raises(RawAnnotationError, match=r"answers\.parquet: the raw table path is the answers file"):
        run_import(
            answers_path=raw,
            campaign_dir=tmp_path,
            raw_out=raw,
            report_out=tmp_path / "report.json",
            on_bad_rows="error",
        )
    assert snapshot(raw) == before


# ------------------------------------------------------------ 3. verified files outlive reruns


def test_corrupt_redownload_after_a_config_change_keeps_the_verified_file(server, tmp_path):  # noqa: F811
    url, files = server
    store, dest = tmp_path / "verified", tmp_path / "dl" / "data.bin"
    good_sum = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()
    download(f"{url}/good.bin", dest, good_sum, timeout=5, store=store)
    kept = store_path(store, good_sum)
    before = snapshot(kept)
    assert kept.read_bytes() == PAYLOAD

    # The config now names another URL and sum: Snakemake deletes the rule's output
    # before the job runs, and the new download is corrupt.
    dest.unlink()
    new_sum = "sha256:" + hashlib.sha256(b"the intended new file").hexdigest()
    with pytest.raises(ChecksumError):
        download(f"{url}/corrupt.bin", dest, new_sum, timeout=5, store=store)
    assert not dest.exists() and snapshot(kept) == before

    # Reverting the config gets the verified file back offline (no server needed).
    files.clear()
    download("http://127.0.0.1:9/offline.bin", dest, good_sum, timeout=5, store=store)
    assert dest.read_bytes() == PAYLOAD and snapshot(kept) == before


def test_a_damaged_store_copy_is_ignored_not_trusted(server, tmp_path):  # noqa: F811
    url, _ = server
    store, dest = tmp_path / "verified", tmp_path / "good.bin"
    good_sum = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()
    store.mkdir()
    store_path(store, good_sum).write_bytes(b"tampered")
    download(f"{url}/good.bin", dest, good_sum, timeout=5, store=store)
    assert dest.read_bytes() == PAYLOAD


# ------------------------------------------------------------ answers: no-value ids, packed files, reaction times


@pytest.mark.parametrize("value", ["NaN", "nan", "NA", "null", "None", ""])
def test_an_annotator_id_that_says_no_value_is_a_bad_row(tmp_path, value):
    """An id 'NaN' is no participant: before, every such row was one annotator, and passed QC."""
    rows = [dict(r) for r in GOOD]
    rows[24]["annotator_id"] = value  # one of a2's answers
    raw = write_answers(rows, tmp_path / "raw.csv", "csv")
    out = tmp_path / "labels.parquet"
    before = snapshot(raw)
    proc = cli("aggregate", "--annotations", raw, "--out", out)
    assert_one_line_error(proc, f"{raw}: row 25 (line 26): annotator_id {value!r} is no id", "1 empty annotator_id")
    assert snapshot(raw) == before and not out.exists()


@pytest.mark.parametrize("column", ["annotator_id", "image_id"])
def test_parquet_nulls_in_the_ids_are_bad_rows(tmp_path, column):
    """A null image id gave `TypeError: '<' not supported between 'float' and 'str'`; a null
    annotator id was one more participant."""
    rows = [dict(r) for r in GOOD]
    for row in rows[20:30]:  # every answer of the pair (a2, img1)
        row[column] = None
    raw = write_answers(rows, tmp_path / "raw.parquet", "parquet")
    out = tmp_path / "labels.parquet"
    before = snapshot(raw)
    proc = cli_process("aggregate", "--annotations", raw, "--out", out)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert f"{raw}: row 21: {column} null is no id" in first and f"10 empty {column}" in first, first
    assert snapshot(raw) == before and not out.exists()


@pytest.mark.parametrize("packing", ["gzip", "zip"])
def test_a_compressed_answers_file_says_so(tmp_path, packing):
    plain = write_answers(GOOD, tmp_path / "plain.csv", "csv").read_bytes()
    raw = tmp_path / "raw.csv"
    if packing == "gzip":
        raw.write_bytes(gzip.compress(plain))
        what = "gzip-compressed"
    else:
        import zipfile

        with zipfile.ZipFile(raw, "w") as archive:
            archive.writestr("raw.csv", plain)
        what = "a zip archive (or an .xlsx workbook)"
    before = snapshot(raw)
    proc = cli("aggregate", "--annotations", raw, "--out", tmp_path / "labels.parquet")
    assert_one_line_error(proc, f"{raw}: the file is {what}, not a plain .csv file")
    assert snapshot(raw) == before


def test_a_reaction_time_not_recorded_follows_one_rule(tmp_path):
    """The docs accept `nan`; `NaN` was refused. Every spelling of no value is 'not recorded'."""
    for value in ["nan", "", "NaN", "NA", "null"]:
        rows = [dict(r) for r in GOOD]
        rows[3]["reaction_time_ms"] = value
        raw = write_answers(rows, tmp_path / "raw.csv", "csv")
        table, report = read_raw_annotations(raw)
        assert report["bad_rows"] == 0 and np.isnan(table.loc[3, "reaction_time_ms"]), value
        assert table["reaction_time_ms"].notna().sum() == len(rows) - 1


# ------------------------------------------------------------ config: what reaches a job


def check_config(tmp_path: Path, text: str, *, results: bool = False) -> subprocess.CompletedProcess:
    overlay = overlay_file(tmp_path, text)
    return cli("check-config", *(["--results"] if results else []), REPO / "workflow_config.yaml", overlay)


@pytest.mark.parametrize(
    "folder, relation",
    [("resources", "is"), ("softdigits", "is"), ("config", "is"), ("docs", "is"), ("link", "is")],
)
def test_the_results_folder_is_no_folder_of_the_project(tmp_path, monkeypatch, folder, relation):
    """`results: resources` passed, and `make clean` then deleted the verified downloads."""
    monkeypatch.chdir(REPO)
    if folder == "link":  # another spelling of resources/: a link to it
        monkeypatch.chdir(tmp_path)
        (tmp_path / "link").symlink_to(REPO / "resources")
    proc = check_config(tmp_path, f"results: {folder}\n")
    target = "resources" if folder == "link" else folder
    assert_one_line_error(
        proc, "overlay.yaml:1: config key 'results'", f"{folder!r} {relation} the project folder {target}/"
    )
    # `make clean` deletes `check-config --results`: nothing is printed, so nothing is deleted
    refused = check_config(tmp_path, f"results: {folder}\n", results=True)
    assert refused.returncode == 2 and refused.stdout == ""


def test_the_results_folder_that_contains_the_checkout_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "up").symlink_to(REPO.parent)
    proc = check_config(tmp_path, "results: up\n")
    assert_one_line_error(proc, "config key 'results': 'up' is (or contains) the repository")


def test_an_existing_file_as_results_folder_is_refused(tmp_path, monkeypatch):
    """`results: README.md` passed and failed later with a traceback."""
    monkeypatch.chdir(REPO)
    before = snapshot(REPO / "README.md")
    proc = check_config(tmp_path, "results: README.md\n")
    assert_one_line_error(proc, "overlay.yaml:1: config key 'results': 'README.md' is an existing file, not a folder")
    assert snapshot(REPO / "README.md") == before


@pytest.mark.parametrize("spelling", ["absolute", "dotted"])
def test_answers_inside_the_results_folder_whatever_the_spelling(tmp_path, monkeypatch, spelling):
    monkeypatch.chdir(REPO)
    path = REPO / "results/answers/mnist.csv" if spelling == "absolute" else "data/../results/mnist.csv"
    proc = check_config(
        tmp_path, f"annotation:\n  origin: campaign\n  answers:\n    mnist: {str(path)!r}\n    mukhoti: data/m.csv\n"
    )
    assert_one_line_error(proc, "overlay.yaml:4: config key 'annotation.answers.mnist'", "is inside results/")


def test_an_empty_answers_path_names_its_key(tmp_path):
    """It reached Snakemake, which said only "Empty file path encountered"."""
    proc = check_config(tmp_path, "annotation:\n  origin: campaign\n  answers: {mnist: '', mukhoti: data/m.csv}\n")
    assert_one_line_error(proc, "overlay.yaml:3: config key 'annotation.answers.mnist': the answers file path is empty")


SEED_KEYS = {
    "generator.seed": "generator:\n  seed: {v}\n",
    "cartography.seeds": "cartography:\n  seeds: [{v}]\n",
    "selection.seed": "selection:\n  seed: {v}\n",
    "corpus_size.seed": "corpus_size:\n  seed: {v}\n",
    "annotation.seed": "annotation:\n  seed: {v}\n",
    "training.seeds": "training:\n  seeds: [{v}]\n",
    "training.shuffle_seed": "training:\n  shuffle_seed: {v}\n",
    "evaluation.permutation_seed": "evaluation:\n  permutation_seed: {v}\n",
    "evaluation.bootstrap_seed": "evaluation:\n  bootstrap_seed: {v}\n",
}


@pytest.mark.parametrize("key", sorted(SEED_KEYS))
@pytest.mark.parametrize(
    "value, problem",
    [
        ("1.0", "1.0 is not of type 'integer'"),
        ("10000000000000000000", "is greater than the maximum of 4294967295"),
        # YAML 1.1 reads it as a string, which the schema refused before too: this case
        # guards the spelling, the integer above is the one that crashed a training job
        ("1e19", "'1e19' is not of type 'integer'"),
    ],
)
def test_every_seed_is_an_integer_numpy_and_torch_accept(tmp_path, key, value, problem):
    """A seed of 1e19 or 1.0 passed and crashed a training job with a traceback."""
    proc = check_config(tmp_path, SEED_KEYS[key].format(v=value))
    shown = key + (".0" if key.endswith("seeds") else "")
    assert_one_line_error(proc, "overlay.yaml:2:", f"config key '{shown}': ", problem)
    assert check_config(tmp_path, SEED_KEYS[key].format(v=4294967295)).returncode == 0  # the largest is fine


def test_a_duplicate_key_names_file_and_line(tmp_path):
    """The second setting used to win in silence (the first was ignored)."""
    proc = check_config(tmp_path, "training:\n  seeds: [0, 1]\n  lr: 0.01\n  seeds: [2]\n")
    assert_one_line_error(proc, "overlay.yaml:4: duplicate key 'training.seeds' (first set on line 2")


def test_a_study_corpus_that_is_off_is_named(tmp_path):
    """It passed and failed in rule dedup with an InputFunctionException."""
    proc = check_config(
        tmp_path,
        "study:\n  corpora: [mnist, weiss]\nselection:\n  corpora:\n    weiss: {budget: {train: 9, val: 9, test: 9}, min_easy_per_digit_train: 0, min_per_region_split: {easy: 0, ambiguous: 0, hard: 0}}\n",
    )
    assert_one_line_error(
        proc, "overlay.yaml:2: config key 'study.corpora': 'weiss' is a study corpus, but corpora.weiss.origin is 'off'"
    )


def test_a_budget_larger_than_the_corpus_is_refused_at_load(tmp_path):
    """train 10^9 passed; Snakemake then removed the selection's outputs and the job failed."""
    proc = check_config(
        tmp_path, "selection:\n  corpora:\n    mnist:\n      budget: {train: 1000000000, val: 457, test: 457}\n"
    )
    assert_one_line_error(
        proc,
        "overlay.yaml:4: config key 'selection.corpora.mnist.budget'",
        "asks for 1000000914 images, but the corpus has at most 70000",
    )


# ------------------------------------------------------------ a stalled server, a full disk


def test_a_stalled_server_fails_after_the_configured_time_limit(tmp_path):
    """It took 66 s and said only `TimeoutError: timed out`."""
    import socket
    import threading
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/weiss.csv"
    dest = tmp_path / "weiss.csv"
    started = time.monotonic()
    try:
        with pytest.raises(DownloadError) as err:
            download(url, dest, "sha256:" + "0" * 64, timeout=1)
    finally:
        listener.close()
    assert time.monotonic() - started < 10
    assert str(err.value) == (
        f"download of {url} failed: the server sent nothing for 1 s, the time limit of config downloads.timeout_s"
    )
    assert not dest.exists() and not list(tmp_path.iterdir())


FULL_DISK_JOB = """
import sys, types
from softdigits import io, jobs
log, out, what = sys.argv[1:]
jobs.start(types.SimpleNamespace(rule="generator_vae", log=[log], input=[], output=[out]))
if what == "torch":
    import torch
    with io.atomic_path(out) as tmp:
        torch.save({"weights": torch.zeros(1_000_000)}, tmp)
else:
    import numpy as np, pyarrow as pa
    io.write_table(pa.table({"x": np.random.default_rng(0).random(1_000_000)}), out)
"""


@pytest.mark.parametrize("what", ["torch", "parquet"])
def test_a_full_disk_says_disk_full(tmp_path, what):
    """torch said `RuntimeError: basic_ios::clear: iostream error` in a traceback."""
    skip_without_mount_namespace()
    disk = tmp_path / "disk"
    disk.mkdir()
    earlier = disk / "earlier.txt"
    script = tmp_path / "job.py"
    script.write_text(FULL_DISK_JOB)
    log, out = tmp_path / "job.log", disk / f"vae.{'pt' if what == 'torch' else 'parquet'}"
    command = (
        f"mount -t tmpfs -o size=256k tmpfs {disk} && echo earlier > {earlier} && "
        f"{sys.executable} {script} {log} {out} {what}; status=$?; ls -A {disk}; exit $status"
    )
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", command], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(f"rule generator_vae: {out}: disk full, the file could not be written")
    assert proc.stdout.split() == ["earlier.txt"]  # no half-written file left on the full disk
    assert "disk full" in log.read_text() and "Traceback" not in log.read_text()


@pytest.mark.parametrize("results, deleted", [("resources", False), ("results-elsewhere", True)])
def test_make_clean_deletes_nothing_when_the_results_folder_is_refused(tmp_path, results, deleted):
    """`make clean` deletes the checked folder, or nothing: never the downloads or Snakemake's records."""
    work = copy_workflow(tmp_path / "work")
    shutil.copy2(REPO / "Makefile", work / "Makefile")
    # The checkout's own CLI (its REPOSITORY is the copy), where the Makefile looks for it.
    bin_dir = work / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "softdigits").write_text(
        f'#!/bin/sh\nexec {sys.executable} -c "from softdigits.cli import main; raise SystemExit(main())" "$@"\n'
    )
    (bin_dir / "softdigits").chmod(0o755)
    kept = [work / "resources" / "downloads" / "mnist.gz", work / ".snakemake" / "metadata" / "x"]
    made = work / results / "report.html"
    for path in [*kept, made]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"data")
    overlay = work / "overlay.yaml"
    overlay.write_text(f"results: {results}\n")
    proc = subprocess.run(
        ["make", "clean", "CONFIG=overlay.yaml"],
        cwd=work,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(work)},
    )
    if deleted:
        assert proc.returncode == 0, proc.stderr
        assert not made.exists() and not kept[1].exists() and kept[0].read_bytes() == b"data"
    else:
        assert proc.returncode != 0 and "config key 'results'" in proc.stderr
        assert all(path.read_bytes() == b"data" for path in [*kept, made])


KNOWN_OR_BUG_JOB = """
import sys, types
from softdigits import jobs
from softdigits.errors import KnownError
log, what = sys.argv[1:]
jobs.start(types.SimpleNamespace(rule="dedup", log=[log], input=[], output=[]))
raise KnownError("answers.csv: row 3: no image id") if what == "known" else ZeroDivisionError("a bug")
"""


@pytest.mark.parametrize(
    "what, flag, status, traceback",
    [("known", None, 2, False), ("known", "1", 2, True), ("bug", None, 1, True)],
)
def test_a_job_shows_a_traceback_for_bugs_or_with_the_flag_only(tmp_path, what, flag, status, traceback):
    script, log = tmp_path / "job.py", tmp_path / "job.log"
    script.write_text(KNOWN_OR_BUG_JOB)
    env = {k: v for k, v in os.environ.items() if k != jobs.TRACEBACK_ENV} | (
        {jobs.TRACEBACK_ENV: flag} if flag else {}
    )
    proc = subprocess.run([sys.executable, script, log, what], capture_output=True, text=True, cwd=REPO, env=env)
    assert proc.returncode == status, proc.stderr
    assert ("Traceback" in proc.stderr) is traceback and ("Traceback" in log.read_text()) is traceback
    if what == "known":
        assert proc.stderr.splitlines()[0] == "rule dedup: answers.csv: row 3: no image id"


def test_a_run_names_each_damaged_input_before_any_job_starts(tmp_path, monkeypatch):
    """The look the workflow takes before it starts a job (rules/common.smk, onstart): a file
    of the results folder that a job would read and that is cut short is named with its
    reader and the rule that rebuilds it; one the run rewrites, one that reads well, a folder
    and a file outside the results folder (a download) are not."""
    import types

    def table(path):
        io.write_table(pa.table({"x": [1, 2, 3]}), path)
        return path

    def cut(path):
        path.write_bytes(path.read_bytes()[:-9])
        return path

    good = table(tmp_path / "good.parquet")
    (tmp_path / "sel").mkdir()
    cut_read = cut(table(tmp_path / "sel" / "mnist.parquet"))
    cut_rewritten = cut(table(tmp_path / "rewritten.parquet"))
    model = tmp_path / "vae.pt"
    model.write_bytes(b"PK\x03\x04 not a whole zip")
    raw = tmp_path.parent / f"{tmp_path.name}-downloads" / "amnist_samples.pt"  # outside the results folder
    raw.parent.mkdir()
    raw.write_bytes(b"a legacy torch pickle, say")

    def job(rule, inputs, outputs):
        return types.SimpleNamespace(
            rule=types.SimpleNamespace(name=rule), input=list(map(str, inputs)), output=list(map(str, outputs))
        )

    dag = types.SimpleNamespace(
        needrun_jobs=lambda: [
            job("annotation_export", [good, cut_read, tmp_path], [tmp_path / "campaign"]),
            job("dedup", [cut_rewritten, model, raw], [tmp_path / "dedup.parquet"]),
            job("corpus", [], [cut_rewritten]),
        ]
    )
    monkeypatch.setenv(jobs.RULE_OUTPUTS_ENV, json.dumps({"selection_solve": [f"{tmp_path}/sel/{{corpus}}.parquet"]}))
    lines = jobs.unreadable_run_inputs(dag, tmp_path)
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"rule annotation_export: {cut_read}: not a readable Parquet file (")
    assert lines[0].endswith("; rebuild it: snakemake --forcerun selection_solve")
    assert lines[1].startswith(f"rule dedup: {model}: not a readable torch file (")
    assert lines[1].endswith(f"; rebuild it: snakemake --forcerun {model}")  # no rule's output pattern
    cut_read.write_bytes(good.read_bytes())  # rebuilt: the run may start
    assert len(jobs.unreadable_run_inputs(dag, tmp_path)) == 1
