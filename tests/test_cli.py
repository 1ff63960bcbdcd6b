"""`softdigits aggregate` as a subprocess, on CSV and Parquet fixtures, good and malformed."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from answers_fixture import GOOD, answers, bad_variants, write_answers

from softdigits import io
from softdigits.annotation.aggregation import read_labels


def aggregate_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "softdigits.cli", "aggregate", *map(str, args)], capture_output=True, text=True
    )


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_aggregate_writes_labels(tmp_path, fmt):
    rows = GOOD + answers("a3", "img1", yes=[8]) + answers("a3", "g1", yes=[1], check=True, gold=0)
    raw = write_answers(rows, tmp_path / f"raw.{fmt}", fmt)
    out = tmp_path / "labels.parquet"
    proc = aggregate_cli("--annotations", raw, "--out", out, "--qc", tmp_path / "qc.json")
    assert proc.returncode == 0, proc.stderr
    assert "1 images, 1 of 3 annotators excluded" in proc.stdout
    labels = read_labels(out)
    assert labels["image_id"].tolist() == ["img1"]
    row = labels.iloc[0]
    # a1: yes 3; a2: yes 3, unsure 5 -> (2/3, 1/3); a3 excluded (failed its check)
    np.testing.assert_allclose(row["soft_label"][[3, 5]], [5 / 6, 1 / 6], rtol=1e-6)
    assert row["n_annotators"] == 2 and row["soft_label_argmax"] == 3 and row["hlv"]
    assert io.read_metadata(out)["n_excluded_attention"] == 1


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
# Unknown images need the campaign's image list: the import rule checks those.
@pytest.mark.parametrize("case", sorted(set(bad_variants()) - {"unknown_image"}))
def test_malformed_file_fails_naming_file_and_row(tmp_path, fmt, case):
    rows, row, reason = bad_variants()[case]
    raw = write_answers(rows, tmp_path / f"raw.{fmt}", fmt)
    out = tmp_path / "labels.parquet"
    proc = aggregate_cli("--annotations", raw, "--out", out)
    assert proc.returncode == 2
    assert str(raw) in proc.stderr and row in proc.stderr and reason in proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".labels*"))


def test_missing_columns_fail(tmp_path):
    raw = tmp_path / "raw.parquet"
    bad = pd.DataFrame(GOOD).drop(columns=["class", "is_attention_check"])
    bad.assign(gold_label=pd.to_numeric(bad["gold_label"])).to_parquet(raw)
    proc = aggregate_cli("--annotations", raw, "--out", tmp_path / "labels.parquet")
    assert proc.returncode == 2
    assert "missing column(s) ['class', 'is_attention_check']" in proc.stderr


def test_drop_option_drops_and_reports(tmp_path):
    rows, _, _ = bad_variants()["bad_response"]
    raw = write_answers(rows, tmp_path / "raw.csv", "csv")
    out = tmp_path / "labels.parquet"
    proc = aggregate_cli("--annotations", raw, "--out", out, "--on-bad-rows", "drop")
    assert proc.returncode == 0, proc.stderr
    assert "10 bad rows dropped" in proc.stdout
    assert read_labels(out)["n_annotators"].tolist() == [1]


def test_console_script_entry_point_is_main():
    from importlib.metadata import entry_points

    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("softdigits") == "softdigits.cli:main"
