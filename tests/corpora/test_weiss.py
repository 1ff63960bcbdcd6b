"""Weiss & Tonella's reader: the CSV release, the rows of the splits kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from corpus_fixture import weiss_frame

from softdigits import io
from softdigits.corpora import weiss
from softdigits.corpora.base import SourceFormatError


def test_weiss_reader_keeps_the_training_split(tmp_path):
    df = weiss_frame(np.random.default_rng(5))
    df.to_csv(tmp_path / "w.csv", index=False)
    table = weiss.weiss_from_csv(tmp_path / "w.csv", ["train"])
    train = df[df["split"] == "train"]
    assert table.column("image_id").to_pylist() == [f"weiss:train:{i}" for i in train["index"]]
    assert table.column("label").to_pylist() == train["det_label"].tolist()
    dist = io.vectors_array(table, "label_dist")
    rows = np.arange(len(train))
    np.testing.assert_allclose(dist[rows, train["class_1"]], train["p(class_1)"], atol=1e-6)
    np.testing.assert_allclose(dist[rows, train["class_2"]], train["p(class_2)"], atol=1e-6)
    np.testing.assert_allclose(dist.sum(axis=1), 1, atol=1e-6)
    assert np.array_equal(io.pixels_array(table), train.iloc[:, 9:].to_numpy())


def test_weiss_pixel_columns_are_placed_by_name(tmp_path):
    df = weiss_frame(np.random.default_rng(6), n=2, splits=("train",))
    pixel_cols = list(df.columns[9:])
    shuffled = df[list(df.columns[:9]) + pixel_cols[::-1]]
    shuffled.to_csv(tmp_path / "w.csv", index=False)
    table = weiss.weiss_from_csv(tmp_path / "w.csv", ["train"])
    assert np.array_equal(io.pixels_array(table), df[pixel_cols].to_numpy())


def _broken_weiss(tmp_path: Path, edit) -> Path:
    df = weiss_frame(np.random.default_rng(7)).astype({"x_(3, 4)": object})
    df = edit(df) if edit else df
    df.to_csv(tmp_path / "w.csv", index=False)
    return tmp_path / "w.csv"


@pytest.mark.parametrize(
    "edit, problem",
    [
        (lambda d: d.drop(columns=["det_label"]), r"missing column\(s\) \['det_label'\]"),
        (
            lambda d: d.drop(columns=["x_(27, 27)"]),
            r"expected 784 pixel columns x_\(row, col\); 783 found, missing e\.g\. \['x_\(27, 27\)'\]",
        ),
        (
            lambda d: d.assign(**{"x_(3, 4)": ["7"] * 3 + ["dark"] + ["1"] * 2}),
            r"line 5, column 'x_\(3, 4\)': 'dark' is not an integer pixel",
        ),
        (lambda d: d.assign(**{"x_(3, 4)": [1.5] * 6}), r"line 2, column 'x_\(3, 4\)': '1\.5' is not an integer pixel"),
        (
            lambda d: d.assign(**{"x_(3, 4)": [256] * 6}),
            r"line 2, column 'x_\(3, 4\)': '256' is not an integer pixel in 0-255",
        ),
        (lambda d: d.assign(**{"p(class_2)": 0.9}), r"line 2: p\(class_1\) \+ p\(class_2\) is not a distribution"),
        (lambda d: d.assign(det_label=[1, 11, 1, 1, 1, 1]), r"line 3: det_label is not a digit"),
        (lambda d: d.assign(index=[1, 2, 3, 4, 1, 6]), r"line 6: index 1 repeats within its split"),
        (
            lambda d: d.assign(split="validation"),
            r"no rows with split in \['train'\] \(splits found: \['validation'\]\)",
        ),
    ],
)
def test_malformed_weiss_csv_is_named(tmp_path, edit, problem):
    path = _broken_weiss(tmp_path, edit)
    with pytest.raises(SourceFormatError, match=r"w\.csv: " + problem):
        weiss.weiss_from_csv(path, ["train"])


# ------------------------------------------------------------- the registry's API


def test_read_keeps_the_configured_splits_and_records_them(tmp_path):
    weiss_frame(np.random.default_rng(5)).to_csv(tmp_path / "w.csv", index=False)
    table, metadata = weiss.read({"csv": str(tmp_path / "w.csv")}, "download", keep_splits=("test",))
    assert set(table.column("source_split").to_pylist()) == {"test"} and metadata == {"keep_splits": ["test"]}


def test_check_reads_every_split_the_file_has(tmp_path):
    weiss_frame(np.random.default_rng(5), splits=("train", "validation")).to_csv(tmp_path / "w.csv", index=False)
    weiss.check(tmp_path / "w.csv", "w.csv", "csv")  # a split no run keeps is still checked, not refused
    (tmp_path / "w.csv").write_bytes(b"no,columns\n1,2\n")
    with pytest.raises(SourceFormatError, match=r"w\.csv: not a readable CSV file"):
        weiss.check(tmp_path / "w.csv", "w.csv", "csv")
