"""Readers of every corpus format, on fixtures made here (and the real MNIST package copy)."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml
from corpus_fixture import weiss_frame

from softdigits import io
from softdigits.corpora import sources
from softdigits.corpora.download import ChecksumError, digest_bytes
from softdigits.corpora.sources import SourceFormatError

REPO = Path(__file__).resolve().parents[2]
OFFICIAL_IDX = yaml.safe_load((REPO / "workflow_config.yaml").read_text())["corpora"]["mnist"]["idx_checksums"]


# ------------------------------------------------------------- fixture writers


def write_stored_rar(path: Path, members: dict[str, bytes]) -> Path:
    """A RAR 1.5-4.x archive whose entries are stored (method 0x30, uncompressed).

    Layout (RAR technote): marker block, archive header, one file header + data per
    member, end-of-archive block. Each header's CRC is the low 16 bits of the
    CRC32 of the header bytes after the CRC field.
    """

    def block(head_type: int, flags: int, body: bytes) -> bytes:
        rest = struct.pack("<BHH", head_type, flags, 7 + len(body)) + body
        return struct.pack("<H", zlib.crc32(rest) & 0xFFFF) + rest

    dos_time = (2020 - 1980) << 25 | 1 << 21 | 1 << 16  # 2020-01-01 00:00:00
    out = bytearray(b"Rar!\x1a\x07\x00")
    out += block(0x73, 0, b"\x00" * 6)  # archive header: two reserved fields
    for name, data in members.items():
        encoded = name.encode()
        body = (
            struct.pack(
                "<IIBIIBBHI", len(data), len(data), 3, zlib.crc32(data), dos_time, 20, 0x30, len(encoded), 0o100644
            )
            + encoded
        )
        out += block(0x74, 0x8000, body) + data  # 0x8000: a data area follows
    out += block(0x7B, 0x4000, b"")
    path.write_bytes(bytes(out))
    return path


def ardis_text(pixels: np.ndarray, as_float: bool = True) -> bytes:
    fmt = "%.7e" if as_float else "%d"
    return "\n".join(" ".join(fmt % v for v in row) for row in pixels).encode() + b"\n"


def write_ardis_archive(path: Path, rng: np.random.Generator, n_train=4, n_test=3, prefix="", **override) -> dict:
    """An ARDIS IV-like archive; returns the arrays written (override replaces member bytes)."""
    arrays = {}
    members = {}
    for split, n in (("train", n_train), ("test", n_test)):
        pixels = rng.integers(0, 256, size=(n, 784))
        labels = rng.integers(0, 10, size=n)
        arrays[split] = (pixels.astype(np.uint8), labels)
        images_name, labels_name = sources.ARDIS_MEMBERS[split]
        members[prefix + images_name] = ardis_text(pixels)
        members[prefix + labels_name] = ardis_text(np.eye(10)[labels])
    members.update(override)
    write_stored_rar(path, members)
    return arrays


# ------------------------------------------------------------------------ MNIST


@pytest.fixture(scope="module")
def mnist_package() -> pa.Table:
    return sources.mnist_from_package(OFFICIAL_IDX)


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


def write_idx_gz(folder: Path, arrays: dict[str, np.ndarray]) -> dict[str, Path]:
    paths = {}
    for name, array in arrays.items():
        paths[name] = folder / f"{name}.gz"
        with gzip.open(paths[name], "wb", compresslevel=1) as f:
            f.write(sources._idx_bytes(array, name.split("_")[1]))
    return paths


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
    from_idx = sources.mnist_from_idx(paths, OFFICIAL_IDX)
    assert from_idx.equals(mnist_package)


def small_mnist(tmp_path: Path, n_train=5, n_test=3, **replace) -> tuple[dict[str, Path], dict[str, str]]:
    """Tiny IDX .gz files and the checksums of their uncompressed content."""
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 784), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 784), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    raw = {name: sources._idx_bytes(a, name.split("_")[1]) for name, a in arrays.items()}
    raw.update(replace)
    paths = {}
    for name, data in raw.items():
        paths[name] = tmp_path / f"{name}.gz"
        paths[name].write_bytes(gzip.compress(data))
    return paths, {name: "md5:" + digest_bytes(data, "md5") for name, data in raw.items()}


def test_mnist_idx_reader_on_small_files(tmp_path):
    paths, sums = small_mnist(tmp_path)
    table = sources.mnist_from_idx(paths, sums)
    assert table.column("image_id").to_pylist()[-1] == "mnist:test:2"
    assert table.num_rows == 8


def test_mnist_idx_content_checksum_is_verified(tmp_path):
    paths, sums = small_mnist(tmp_path)
    sums["test_labels"] = "md5:" + "0" * 32
    with pytest.raises(
        ChecksumError, match=r"test_labels\.gz \(uncompressed IDX\): md5 is [0-9a-f]{32}, expected 0{32}"
    ):
        sources.mnist_from_idx(paths, sums)


def test_mnist_package_checksum_mismatch_is_an_error(tmp_path):
    rng = np.random.default_rng(1)
    fake = tuple((rng.integers(0, 256, (n, 784)) / 256.0, rng.integers(0, 10, n)) for n in (3, 2, 2))
    path = tmp_path / "mnist.pkl.gz"
    import pickle

    with gzip.open(path, "wb") as f:
        pickle.dump(fake, f)
    with pytest.raises(ChecksumError, match=r"mnist\.pkl\.gz \[train images\] \(uncompressed IDX\)"):
        sources.mnist_from_package(OFFICIAL_IDX, path=path)


def idx_images(n: int, magic=sources.IDX_IMAGES_MAGIC, rows=28, cols=28, extra=0) -> bytes:
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
        sources.mnist_from_idx(paths, sums)


def _re(text: str) -> str:
    import re

    return re.escape(text)


def test_mnist_label_count_must_match_images(tmp_path):
    labels = struct.pack(">II", sources.IDX_LABELS_MAGIC, 4) + bytes(4)
    paths, sums = small_mnist(tmp_path, train_labels=labels)
    with pytest.raises(SourceFormatError, match=r"train_labels\.gz: 4 labels for 5 images"):
        sources.mnist_from_idx(paths, sums)


def test_mnist_file_that_is_not_gzip_is_named(tmp_path):
    paths, sums = small_mnist(tmp_path)
    paths["test_images"].write_bytes(b"plain text")
    with pytest.raises(SourceFormatError, match=r"test_images\.gz: not a readable gzip file"):
        sources.mnist_from_idx(paths, sums)


# ------------------------------------------------------------- limit_per_split


def test_limit_per_split_is_deterministic_nested_and_keeps_order(tmp_path):
    paths, sums = small_mnist(tmp_path, n_train=40, n_test=20)
    table = sources.mnist_from_idx(paths, sums)
    small = sources.limit_per_split(table, 5)
    large = sources.limit_per_split(table, 12)
    assert pd.Series(small.column("source_split").to_pylist()).value_counts().to_dict() == {"train": 5, "test": 5}
    assert set(small.column("image_id").to_pylist()) <= set(large.column("image_id").to_pylist())
    assert small.equals(
        sources.limit_per_split(table.take(np.arange(table.num_rows)[::-1]), 5).take(np.arange(10)[::-1])
    )
    positions = [table.column("image_id").to_pylist().index(i) for i in small.column("image_id").to_pylist()]
    assert positions == sorted(positions)
    assert sources.limit_per_split(table, None) is table
    assert sources.limit_per_split(table, 1000).num_rows == 60


# -------------------------------------------------------------- Ambiguous-MNIST


def write_mukhoti_release(tmp_path: Path, n=8, samples=None, labels=None, predictions=None) -> dict[str, Path]:
    import torch

    g = torch.Generator().manual_seed(0)
    tensors = {
        "samples": torch.rand(n, 1, 28, 28, generator=g) if samples is None else samples,
        "labels": torch.randint(0, 10, (n, 10), generator=g) if labels is None else labels,
        "predictions": torch.softmax(torch.randn(n, 10, generator=g), dim=1) if predictions is None else predictions,
    }
    paths = {}
    for name, tensor in tensors.items():
        paths[name] = tmp_path / f"amnist_{name}.pt"
        torch.save(tensor, paths[name])
    return paths


def test_mukhoti_release_reader(tmp_path):
    import torch

    paths = write_mukhoti_release(tmp_path)
    table = sources.mukhoti_from_release(**paths)
    samples = torch.load(paths["samples"]).numpy()
    probs = torch.load(paths["predictions"]).numpy()
    assert table.column("image_id").to_pylist()[:5] == [
        "mukhoti:train:0",
        "mukhoti:train:1",
        "mukhoti:train:2",
        "mukhoti:train:3",
        "mukhoti:test:0",
    ]
    assert np.array_equal(io.pixels_array(table), np.rint(samples.reshape(8, 784).astype(np.float64) * 255))
    np.testing.assert_allclose(io.vectors_array(table, "label_dist"), probs, atol=1e-6)
    assert table.column("label").to_pylist() == probs.argmax(axis=1).tolist()
    assert io.vectors_array(table, "sampled_labels").tolist() == torch.load(paths["labels"]).tolist()


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"samples": "rand(8, 3, 28, 28)"}, r"amnist_samples\.pt: shape \(8, 3, 28, 28\), expected \(n, 1, 28, 28\)"),
        (
            {
                "samples": "rand(7, 1, 28, 28)",
                "labels": "zeros(7, 10, dtype=torch.int64)",
                "predictions": "full((7, 10), 0.1)",
            },
            r"amnist_samples\.pt: 7 images; expected an even",
        ),
        ({"samples": "rand(8, 1, 28, 28) * 2"}, r"amnist_samples\.pt: pixel values outside \[0, 1\]"),
        ({"labels": "zeros(8, 9, dtype=torch.int64)"}, r"amnist_labels\.pt: shape \(8, 9\)"),
        ({"labels": "full((8, 10), 10)"}, r"amnist_labels\.pt: sampled labels outside 0-9"),
        ({"predictions": "rand(8, 10)"}, r"amnist_predictions\.pt: row \d+ is not a probability distribution"),
        ({"predictions": "full((8, 11), 1 / 11)"}, r"amnist_predictions\.pt: shape \(8, 11\), expected \(8, 10\)"),
    ],
)
def test_malformed_mukhoti_release_is_named(tmp_path, change, problem):
    import torch

    tensors = {name: eval(f"torch.{expr}", {"torch": torch}) for name, expr in change.items()}
    paths = write_mukhoti_release(tmp_path, **tensors)
    with pytest.raises(SourceFormatError, match=problem):
        sources.mukhoti_from_release(**paths)


def test_mukhoti_file_that_is_no_tensor_is_named(tmp_path):
    paths = write_mukhoti_release(tmp_path)
    paths["labels"].write_bytes(b"not a torch file")
    with pytest.raises(SourceFormatError, match=r"amnist_labels\.pt: not a readable torch tensor file"):
        sources.mukhoti_from_release(**paths)


def test_mukhoti_generator_table_is_checked(tmp_path):
    good = sources.mukhoti_from_release(**write_mukhoti_release(tmp_path))
    io.write_table(good, tmp_path / "ok.parquet")
    assert sources.mukhoti_from_generator(tmp_path / "ok.parquet").equals(good)

    wrong_ids = good.set_column(0, "image_id", pa.array([f"mukhoti:train:{i + 100}" for i in range(8)]))
    io.write_table(wrong_ids, tmp_path / "ids.parquet")
    with pytest.raises(
        SourceFormatError, match=r"ids\.parquet: row 0: image_id 'mukhoti:train:100', expected 'mukhoti:train:0'"
    ):
        sources.mukhoti_from_generator(tmp_path / "ids.parquet")

    other = good.set_column(1, "source", pa.array(["mnist"] * 8))
    io.write_table(other, tmp_path / "src.parquet")
    with pytest.raises(SourceFormatError, match=r"src\.parquet: source must be 'mukhoti'"):
        sources.mukhoti_from_generator(tmp_path / "src.parquet")


# ------------------------------------------------------------------------ ARDIS


def test_stored_rar_fixture_is_read_by_rarfile_without_a_tool(tmp_path):
    import rarfile

    write_stored_rar(tmp_path / "a.rar", {"dir/a.txt": b"hello", "b.txt": b""})
    with rarfile.RarFile(tmp_path / "a.rar") as rf:
        assert rf.read("dir/a.txt") == b"hello" and rf.read("b.txt") == b""


@pytest.mark.parametrize("prefix", ["", "ARDIS_DATASET_IV/"])
def test_ardis_reader(tmp_path, prefix):
    arrays = write_ardis_archive(tmp_path / "ARDIS_DATASET_IV.rar", np.random.default_rng(2), prefix=prefix)
    table = sources.ardis_from_archive(tmp_path / "ARDIS_DATASET_IV.rar")
    assert table.column("image_id").to_pylist() == [f"ardis:train:{i}" for i in range(4)] + [
        f"ardis:test:{i}" for i in range(3)
    ]
    assert np.array_equal(io.pixels_array(table), np.concatenate([arrays["train"][0], arrays["test"][0]]))
    assert table.column("label").to_pylist() == [*arrays["train"][1], *arrays["test"][1]]


@pytest.mark.parametrize(
    "override, problem",
    [
        (
            {"ARDIS_test_labels.csv": ardis_text(np.eye(10)[[1, 2, 3]] * 2)},
            r"ARDIS_test_labels\.csv: row 1 is not one-hot",
        ),
        (
            {"ARDIS_test_labels.csv": ardis_text(np.eye(10)[[1, 2]])},
            r"ARDIS_test_labels\.csv: shape \(2, 10\), expected \(3, 10\)",
        ),
        (
            {"ARDIS_train_2828.csv": ardis_text(np.full((4, 784), 12.5))},
            r"ARDIS_train_2828\.csv: row 1, pixel 0: '12\.5' is not an integer in 0-255",
        ),
        (
            {"ARDIS_train_2828.csv": ardis_text(np.full((4, 784), 300))},
            r"ARDIS_train_2828\.csv: row 1, pixel 0: '300' is not an integer",
        ),
        (
            {"ARDIS_train_2828.csv": ardis_text(np.zeros((4, 780)))},
            r"ARDIS_train_2828\.csv: 780 values per row, expected 784",
        ),
        ({"ARDIS_train_2828.csv": b"1 2 x\n"}, r"ARDIS_train_2828\.csv: could not convert string 'x'"),
    ],
)
def test_malformed_ardis_is_named(tmp_path, override, problem):
    write_ardis_archive(tmp_path / "a.rar", np.random.default_rng(3), **override)
    with pytest.raises(SourceFormatError, match=r"a\.rar!" + problem):
        sources.ardis_from_archive(tmp_path / "a.rar")


def test_ardis_missing_member_and_bad_archive_are_named(tmp_path):
    write_stored_rar(tmp_path / "a.rar", {"ARDIS_train_2828.csv": b"0\n"})
    with pytest.raises(SourceFormatError, match=r"a\.rar: archive lacks ARDIS_train_labels\.csv"):
        sources.ardis_from_archive(tmp_path / "a.rar")
    (tmp_path / "b.rar").write_bytes(b"no archive")
    with pytest.raises(SourceFormatError, match=r"b\.rar: not a readable RAR archive"):
        sources.ardis_from_archive(tmp_path / "b.rar")


def test_compressed_ardis_without_unrar_tool_names_the_tools(tmp_path, monkeypatch):
    import rarfile

    write_ardis_archive(tmp_path / "a.rar", np.random.default_rng(4))
    data = bytearray((tmp_path / "a.rar").read_bytes())
    # Mark the first entry as compressed (method 0x33) and fix its header CRC.
    start = 7 + 13
    head_size = struct.unpack_from("<H", data, start + 5)[0]
    data[start + 25] = 0x33
    struct.pack_into("<H", data, start, zlib.crc32(bytes(data[start + 2 : start + head_size])) & 0xFFFF)
    (tmp_path / "a.rar").write_bytes(bytes(data))
    for tool in ("UNRAR_TOOL", "UNAR_TOOL", "BSDTAR_TOOL", "SEVENZIP_TOOL", "SEVENZIP2_TOOL"):
        monkeypatch.setattr(rarfile, tool, "softdigits-no-such-tool")
    monkeypatch.setattr(rarfile, "CURRENT_SETUP", None)
    with pytest.raises(SourceFormatError, match=r"a\.rar: ARDIS_train_2828\.csv is compressed.*libarchive-tools"):
        sources.ardis_from_archive(tmp_path / "a.rar")


# ------------------------------------------------------------------------ Weiss


def test_weiss_reader_keeps_the_training_split(tmp_path):
    df = weiss_frame(np.random.default_rng(5))
    df.to_csv(tmp_path / "w.csv", index=False)
    table = sources.weiss_from_csv(tmp_path / "w.csv", ["train"])
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
    table = sources.weiss_from_csv(tmp_path / "w.csv", ["train"])
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
        sources.weiss_from_csv(path, ["train"])


# -------------------------------------------------------------------- writing


def test_write_corpus_applies_the_limit_and_records_metadata(tmp_path):
    paths, sums = small_mnist(tmp_path, n_train=6, n_test=4)
    table = sources.mnist_from_idx(paths, sums)
    sources.write_corpus(table, tmp_path / "out.parquet", "mnist", "download", 3)
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
