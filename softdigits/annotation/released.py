"""The released soft-digits table (image-level aggregates only, no per-annotator answers).

- `check_released`: every source's rows parse (the download's content check).
- `read_released`: one source's rows in the study table's columns.
- `match_released_ids`: released rows get the corpus image_id where the pixels match.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from softdigits import io
from softdigits.annotation.aggregation import WEIGHTINGS, is_one_hot
from softdigits.constants import N_DIGITS, N_HUMAN_CLASSES, N_PIXELS, STUDY_SPLITS
from softdigits.errors import KnownError


class ReleasedTableError(KnownError, ValueError):
    """The released soft-digits file does not have the expected columns or values."""


RELEASED_COLUMNS = [
    "images",
    "indices",
    "original_labels",
    "human_uncert_mean",
    "pct_ann_unsure",
    "soft_label",
    "soft_label_yes_unc_equal",
    "soft_label_yes_only",
    "soft_label_argmax",
    "split",
    "source",
]


def _vectors(values: pd.Series, width: int, column: str, path: Path) -> np.ndarray:
    """A column of lists, arrays or strings like "[0.1, 0.9, ...]" as an (n, width) array."""
    out = np.empty((len(values), width), dtype=np.float64)
    for k, v in enumerate(values):
        if isinstance(v, str):
            v = v.replace("[", " ").replace("]", " ").replace(",", " ").split()
        arr = np.asarray(v, dtype=np.float64).reshape(-1)
        if arr.size != width or not np.all(np.isfinite(arr)):
            raise ReleasedTableError(
                f"{path}: row {k + 1}: column {column!r} should hold {width} finite numbers, " f"got {arr.size}"
            )
        out[k] = arr
    return out


def _read_released_table(path: Path) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise ReleasedTableError(f"{path}: not a readable Parquet file ({err})") from None
    missing = [c for c in RELEASED_COLUMNS if c not in table.column_names]
    if missing:
        raise ReleasedTableError(f"{path}: missing column(s) {missing} of the released table")
    if table.num_rows == 0:
        raise ReleasedTableError(f"{path}: the released table has no rows")
    return table


def check_released(path: str | os.PathLike) -> None:
    """Raise ReleasedTableError unless every source's rows of the released file parse."""
    path = Path(path)
    for source in sorted(set(_read_released_table(path).column("source").to_pylist())):
        read_released(path, str(source))


def read_released(path: str | os.PathLike, source: str) -> pd.DataFrame:
    """The released soft-digits rows of one source, in the study table's columns.

    Pixels: 784 (or 28x28) values, 0-255, or 0-1 floats (scaled by 255 and rounded).
    `label_dist` is `original_labels` normalised; `label` its argmax. `hlv` is
    recomputed from `soft_label` as in aggregation; `n_annotators` is unknown (null).
    image_id is `{source}:released:{indices}` (matched to corpus ids later by pixels).
    """
    path = Path(path)
    df = _read_released_table(path).to_pandas()
    df = df[df["source"].astype(str) == source].reset_index(drop=True)
    if df.empty:
        raise ReleasedTableError(f"{path}: no rows with source == {source!r}")
    pixels = _vectors(df["images"], N_PIXELS, "images", path)
    if pixels.max() <= 1.0:
        pixels = pixels * 255.0
    pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    original = _vectors(df["original_labels"], N_DIGITS, "original_labels", path)
    label_dist = original / original.sum(axis=1, keepdims=True)
    soft = {name: _vectors(df[name], N_HUMAN_CLASSES, name, path) for name in WEIGHTINGS}
    split = df["split"].astype(str)
    bad_split = ~split.isin(STUDY_SPLITS)
    if bad_split.any():
        k = int(np.flatnonzero(bad_split)[0])
        raise ReleasedTableError(f"{path}: row {k + 1}: split {split[k]!r} is not train/val/test")
    ids = [f"{source}:released:{int(i)}" for i in df["indices"]]
    if len(set(ids)) != len(ids):
        dup = pd.Series(ids)[pd.Series(ids).duplicated()].iloc[0]
        raise ReleasedTableError(f"{path}: index {dup!r} occurs twice for source {source!r}")
    return pd.DataFrame(
        {
            "image_id": ids,
            "source": source,
            "split": split,
            "pixels": list(pixels),
            "label": label_dist.argmax(axis=1).astype(np.int64),
            "label_dist": list(label_dist.astype(np.float32)),
            **{name: list(v.astype(np.float32)) for name, v in soft.items()},
            "soft_label_argmax": df["soft_label_argmax"].astype(np.int64).to_numpy(),
            "human_uncert_mean": df["human_uncert_mean"].astype(float).to_numpy(),
            "pct_ann_unsure": df["pct_ann_unsure"].astype(float).to_numpy(),
            "n_annotators": pd.array([None] * len(df), dtype="Int64"),
            "hlv": ~is_one_hot(soft["soft_label"]),
            "simulated": False,
        }
    )


def match_released_ids(released: pd.DataFrame, images: pa.Table) -> pd.DataFrame:
    """Give released rows the corpus image_id where their pixels match byte for byte."""
    by_hash = dict(zip(images.column("sha256").to_pylist(), images.column("image_id").to_pylist()))
    hashes = io.pixel_sha256(np.stack(released["pixels"].to_numpy()))
    matched = [by_hash.get(h) for h in hashes]
    out = released.copy()
    out["image_id"] = [m or orig for m, orig in zip(matched, out["image_id"])]
    return out
