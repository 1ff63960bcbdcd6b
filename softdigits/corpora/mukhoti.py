"""Ambiguous-MNIST (Mukhoti et al., DDU): the release's `.pt` tensors, or the generator stage's table.

The release's first half is the training split, its second half the test split (6000 + 6000);
the generator stage (`softdigits.generator`) makes the same contract offline. Image ids:
`mukhoti:{train|test}:{index within the split}`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from softdigits import io
from softdigits.constants import N_PIXELS, SIDE, SOURCE_SPLITS
from softdigits.corpora.base import SourceFormatError

RELEASE_FILES = ("samples", "labels", "predictions")


def read(inputs: Mapping[str, str], origin: str) -> tuple[pa.Table, dict]:
    """The generator stage's table (origin generate, with its metadata) or the downloaded release."""
    if origin == "generate":
        return mukhoti_from_generator(inputs["generated"]), {"generator": io.read_metadata(inputs["generated"])}
    return mukhoti_from_release(*(inputs[name] for name in RELEASE_FILES)), {}


def check(path: str | os.PathLike, name: str, file_key: str) -> None:
    """A first download's content: torch's format is a zip archive, so every member's CRC is checked."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError) as err:
        raise SourceFormatError(f"{name}: not a complete torch file ({err})") from None
    if damaged:
        raise SourceFormatError(f"{name}: member {damaged} is damaged")


def mukhoti_from_release(
    samples: str | os.PathLike, labels: str | os.PathLike, predictions: str | os.PathLike
) -> pa.Table:
    """Ambiguous-MNIST from the DDU release tensors, without the loader's added noise.

    samples (n,1,28,28) floats in [0,1] -> pixels round(x*255); predictions (n,10)
    softmax -> `label_dist`, its argmax -> `label`; labels (n,10) are the ten
    labels sampled per image, kept as the extra column `sampled_labels`.
    The first half is the training split, the second half the test split
    (6000 + 6000 in the release).
    """
    x = _load_tensor(samples).astype(np.float64)
    sampled = _load_tensor(labels)
    probs = _load_tensor(predictions).astype(np.float64)
    n = len(x)
    if x.shape not in ((n, 1, SIDE, SIDE), (n, SIDE, SIDE)):
        raise SourceFormatError(f"{samples}: shape {x.shape}, expected (n, 1, 28, 28)")
    if n == 0 or n % 2:
        raise SourceFormatError(f"{samples}: {n} images; expected an even, non-zero count (train half + test half)")
    if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise SourceFormatError(f"{samples}: pixel values outside [0, 1]")
    if sampled.shape != (n, 10) or not np.issubdtype(sampled.dtype, np.integer):
        raise SourceFormatError(f"{labels}: shape {sampled.shape} dtype {sampled.dtype}, expected ({n}, 10) integers")
    if sampled.min() < 0 or sampled.max() > 9:
        raise SourceFormatError(f"{labels}: sampled labels outside 0-9")
    if probs.shape != (n, 10):
        raise SourceFormatError(f"{predictions}: shape {probs.shape}, expected ({n}, 10)")
    sums = probs.sum(axis=1)
    if not np.isfinite(probs).all() or probs.min() < 0 or np.abs(sums - 1).max() > 1e-3:
        row = int(np.argmax(~np.isfinite(sums) | (np.abs(sums - 1) > 1e-3) | (probs.min(axis=1) < 0)))
        raise SourceFormatError(f"{predictions}: row {row} is not a probability distribution (sums to {sums[row]:.6f})")
    probs = probs / sums[:, None]
    half = n // 2
    table = io.images_table(
        source="mukhoti",
        source_split=np.repeat(np.array(SOURCE_SPLITS, dtype=object), half),
        source_index=np.concatenate([np.arange(half), np.arange(half)]),
        pixels=np.rint(x.reshape(n, N_PIXELS) * 255).astype(np.uint8),
        label=probs.argmax(axis=1),
        label_dist=probs,
    )
    return table.append_column("sampled_labels", io.vectors_column(sampled.astype(np.int64), pa.int64()))


def _load_tensor(path: str | os.PathLike) -> np.ndarray:
    import torch  # deferred: only this reader needs it, and the registry must import without it

    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad file
        raise SourceFormatError(f"{path}: not a readable torch tensor file ({err})") from None
    if not isinstance(value, torch.Tensor):
        raise SourceFormatError(f"{path}: holds a {type(value).__name__}, expected a tensor")
    return value.numpy()


def mukhoti_from_generator(path: str | os.PathLike) -> pa.Table:
    """The generator stage's Ambiguous-MNIST table, checked against the images contract."""
    table = io.read_images(path)
    if table.num_rows == 0:
        raise SourceFormatError(f"{path}: the images table has no rows")
    sources = set(table.column("source").to_pylist())
    if sources - {"mukhoti"}:
        raise SourceFormatError(f"{path}: source must be 'mukhoti', found {sorted(sources)}")
    _check_ids(table, path)
    return table


def _check_ids(table: pa.Table, path) -> None:
    splits = set(table.column("source_split").to_pylist())
    if splits - set(SOURCE_SPLITS):
        raise SourceFormatError(f"{path}: source_split must be train or test, found {sorted(splits)}")
    expected = [
        f"{s}:{sp}:{i}"
        for s, sp, i in zip(
            table.column("source").to_pylist(),
            table.column("source_split").to_pylist(),
            table.column("source_index").to_pylist(),
        )
    ]
    ids = table.column("image_id").to_pylist()
    for row, (got, want) in enumerate(zip(ids, expected)):
        if got != want:
            raise SourceFormatError(f"{path}: row {row}: image_id {got!r}, expected {want!r}")
