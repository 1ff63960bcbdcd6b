"""What the readers share: the one pixel check, the subsample and the writer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from corpus_fixture import small_mnist

from softdigits import io
from softdigits.corpora.base import SourceFormatError, limit_per_split, pixel_matrix, write_corpus
from softdigits.corpora.mnist import mnist_from_idx


@pytest.mark.parametrize(
    "value, shown",
    [(12.5, "12.5"), (-1, "-1"), (256, "256"), (np.nan, "nan")],
)
def test_pixel_check_names_the_first_bad_value(value, shown):
    values = np.zeros((3, 784))
    assert pixel_matrix(values, "f", lambda r, c: "x").dtype == np.uint8
    values[1, 5] = value
    values[2, 0] = 300  # a later bad value is not the one named
    with pytest.raises(SourceFormatError, match=rf"^f: row 1, col 5: '{shown}' is not an integer pixel in 0-255$"):
        pixel_matrix(values, "f", lambda r, c: f"row {r}, col {c}: '{values[r, c]:g}'")
    with pytest.raises(SourceFormatError, match=r"^f: 783 values per row, expected 784$"):
        pixel_matrix(np.zeros((2, 783)), "f", lambda r, c: "x")


def test_limit_per_split_is_deterministic_nested_and_keeps_order(tmp_path):
    paths, sums = small_mnist(tmp_path, n_train=40, n_test=20)
    table = mnist_from_idx(paths, sums)
    small = limit_per_split(table, 5)
    large = limit_per_split(table, 12)
    assert pd.Series(small.column("source_split").to_pylist()).value_counts().to_dict() == {"train": 5, "test": 5}
    assert set(small.column("image_id").to_pylist()) <= set(large.column("image_id").to_pylist())
    assert small.equals(limit_per_split(table.take(np.arange(table.num_rows)[::-1]), 5).take(np.arange(10)[::-1]))
    positions = [table.column("image_id").to_pylist().index(i) for i in small.column("image_id").to_pylist()]
    assert positions == sorted(positions)
    assert limit_per_split(table, None) is table
    assert limit_per_split(table, 1000).num_rows == 60


def test_write_corpus_applies_the_limit_and_records_metadata(tmp_path):
    paths, sums = small_mnist(tmp_path, n_train=6, n_test=4)
    table = mnist_from_idx(paths, sums)
    write_corpus(table, tmp_path / "out.parquet", "mnist", "download", 3)
    written = io.read_images(tmp_path / "out.parquet")
    assert written.num_rows == 6
    meta = io.read_metadata(tmp_path / "out.parquet")
    assert meta == {
        "corpus": "mnist",
        "origin": "download",
        "limit_per_split": 3,
        "n_images": 6,
        "n_per_split": {"train": 3, "test": 3},
    }
