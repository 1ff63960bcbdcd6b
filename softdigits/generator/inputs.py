"""What the generator's steps read, checked: the MNIST splits, settings from the config,
checkpoints and the candidate pool; `GeneratorError` names the file or the setting that
is wrong."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from softdigits import io
from softdigits.constants import N_DIGITS, N_PIXELS
from softdigits.errors import KnownError


class GeneratorError(KnownError, ValueError):
    """Bad input to the generator; the message names the file or the setting."""


def settings(cls, values: dict):
    """A settings dataclass from a config dict (lists become tuples)."""
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


@dataclass
class MnistSplits:
    train_ids: list[str]
    train_pixels: np.ndarray  # (n, 784) uint8
    train_labels: np.ndarray  # (n,) int64
    test_pixels: np.ndarray
    test_labels: np.ndarray


def read_mnist(path: str | Path) -> MnistSplits:
    """The train and test splits of the canonical MNIST table."""
    table = io.read_images(path)
    split = np.asarray(table.column("source_split").to_pylist(), dtype=object)
    labels = table.column("label").to_numpy()
    pixels = io.pixels_array(table)
    ids = table.column("image_id").to_pylist()
    train, test = split == "train", split == "test"
    for name, mask in (("train", train), ("test", test)):
        if not mask.any():
            raise GeneratorError(f"{path}: no MNIST images with source_split {name!r}")
    bad = np.flatnonzero((labels < 0) | (labels > 9))
    if len(bad):
        raise GeneratorError(f"{path}: row {bad[0]} ({ids[bad[0]]}) has label {labels[bad[0]]}, not a digit")
    return MnistSplits(
        train_ids=[i for i, keep in zip(ids, train) if keep],
        train_pixels=pixels[train],
        train_labels=labels[train].astype(np.int64),
        test_pixels=pixels[test],
        test_labels=labels[test].astype(np.int64),
    )


def load_checkpoint(path, keys: tuple[str, ...]) -> dict:
    """A torch checkpoint (a dict holding at least `keys`), read on the CPU."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad file
        raise GeneratorError(f"{path}: not a readable checkpoint ({err})") from None
    missing = [k for k in keys if not isinstance(state, dict) or k not in state]
    if missing:
        raise GeneratorError(f"{path}: checkpoint lacks {missing}")
    return state


# The candidate pool's table: written by pool.build_pool, read by select.select_corpus.
# Its pixels are 784 raw bytes per image (`pool_pixels_column`, `pool_pixels`), not the images
# contract's list of 784 uint8: a DDU-size pool keeps about 750,000 images, and Parquet writes
# and reads a fixed-size binary column about 6x faster than a list column (bench/README.md).
POOL_SCHEMA = pa.schema(
    [
        ("mixture", pa.int64()),  # index of the mixture in the mixing plan
        ("pixels", pa.binary(N_PIXELS)),
        ("probs", pa.list_(pa.float32(), N_DIGITS)),  # ensemble mean softmax
        ("entropy", pa.float64()),
        ("mutual_information", pa.float64()),
        ("parents", pa.list_(pa.int64())),  # positions in the MNIST training split
        ("mix_weights", pa.list_(pa.float32())),
    ]
)


def pool_pixels_column(pixels: np.ndarray) -> pa.FixedSizeBinaryArray:
    """(n, 784) uint8 images as the pool's `pixels` column."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(N_PIXELS), len(pixels), [None, pa.py_buffer(pixels)])


def pool_pixels(table: pa.Table) -> np.ndarray:
    """The pool's `pixels` column as an (n, 784) uint8 array (a copy, without a Python loop)."""
    col = table.column("pixels").combine_chunks()
    data = np.frombuffer(col.buffers()[1], dtype=np.uint8)
    return data[col.offset * N_PIXELS : (col.offset + len(col)) * N_PIXELS].reshape(-1, N_PIXELS).copy()


def read_pool(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """The pool `pool.build_pool` wrote (`columns` of it, or all), checked for every pool column."""
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as err:
        raise GeneratorError(f"{path}: not a readable candidate pool ({err})") from None
    missing = [f.name for f in POOL_SCHEMA if f.name not in schema.names]
    if missing:
        raise GeneratorError(f"{path}: candidate pool lacks column(s) {missing}")
    if schema.field("pixels").type != POOL_SCHEMA.field("pixels").type:
        raise GeneratorError(
            f"{path}: pool column pixels is {schema.field('pixels').type}, not {POOL_SCHEMA.field('pixels').type} "
            "(a pool from an older version: rerun generator_pool)"
        )
    return pq.read_table(path, columns=columns)
