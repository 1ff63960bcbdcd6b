"""The study table contract: one row per annotated image, the input of training and evaluation.

- `SCHEMA` / `to_arrow`: the columns and the writer (`annotation` builds the rows);
  the file's metadata says where the human labels come from (`labels_origin`).
- `read_table`: the one reader. It checks every column it returns, once, and converts each
  to an array once; errors name the file, the row and the column. `read_study` (arrays for training, `Study`) and
  `read_study_frame` (a DataFrame for evaluation) are two views of what it returns.
- `labels_origin` / `labels_sentence`: simulated, campaign or released, for captions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from softdigits import io
from softdigits.constants import N_DIGITS, N_HUMAN_CLASSES, N_PIXELS, NOT_A_DIGIT, STUDY_SPLITS
from softdigits.io import DataContractError

if TYPE_CHECKING:  # pandas only in type hints here: a training job never imports it (~0.4 CPU-s)
    import pandas as pd

SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("source", pa.string()),
        ("split", pa.string()),  # train / val / test
        ("region", pa.string()),  # the corpus data map's region (selection stratum)
        ("pixels", pa.list_(pa.uint8(), N_PIXELS)),
        ("label", pa.int64()),  # the original label (argmax of label_dist)
        ("label_dist", pa.list_(pa.float32(), N_DIGITS)),  # the original label distribution
        ("soft_label", pa.list_(pa.float32(), N_HUMAN_CLASSES)),  # human, uncertainty-weighted (s_u)
        ("soft_label_yes_unc_equal", pa.list_(pa.float32(), N_HUMAN_CLASSES)),  # human, unsure = yes
        ("soft_label_yes_only", pa.list_(pa.float32(), N_HUMAN_CLASSES)),  # human, yes answers only
        ("soft_label_argmax", pa.int64()),  # human majority; 10 = not a digit
        ("human_uncert_mean", pa.float64()),  # u_mean
        ("pct_ann_unsure", pa.float64()),  # u_prop
        ("n_annotators", pa.int64()),  # null for released labels
        ("hlv", pa.bool_()),  # annotators disagree
        ("simulated", pa.bool_()),  # the labels come from the simulated panel
    ]
)
COLUMNS = SCHEMA.names
VECTORS = {
    name: SCHEMA.field(name).type.list_size for name in COLUMNS if pa.types.is_fixed_size_list(SCHEMA.field(name).type)
}
LABELS_ORIGINS = ("simulated", "campaign", "released")


def to_arrow(df: pd.DataFrame) -> pa.Table:
    """The study table as Arrow, sorted by image_id (vector columns as fixed-size lists)."""
    df = df.sort_values("image_id").reset_index(drop=True)

    def stack(column: str) -> np.ndarray:
        width = VECTORS[column]
        return np.stack(df[column].to_numpy()).reshape(len(df), width) if len(df) else np.zeros((0, width))

    return pa.table(
        {
            "image_id": pa.array(df["image_id"], pa.string()),
            "source": pa.array(df["source"], pa.string()),
            "split": pa.array(df["split"], pa.string()),
            "region": pa.array(df["region"], pa.string()),
            "pixels": io.vectors_column(stack("pixels").astype(np.uint8), pa.uint8()),
            "label": pa.array(df["label"].astype(np.int64), pa.int64()),
            "label_dist": io.vectors_column(stack("label_dist").astype(np.float32)),
            "soft_label": io.vectors_column(stack("soft_label").astype(np.float32)),
            "soft_label_yes_unc_equal": io.vectors_column(stack("soft_label_yes_unc_equal").astype(np.float32)),
            "soft_label_yes_only": io.vectors_column(stack("soft_label_yes_only").astype(np.float32)),
            "soft_label_argmax": pa.array(df["soft_label_argmax"].astype(np.int64), pa.int64()),
            "human_uncert_mean": pa.array(df["human_uncert_mean"].astype(float), pa.float64()),
            "pct_ann_unsure": pa.array(df["pct_ann_unsure"].astype(float), pa.float64()),
            "n_annotators": pa.array(df["n_annotators"].astype("Int64"), pa.int64(), from_pandas=True),
            "hlv": pa.array(df["hlv"].astype(bool), pa.bool_()),
            "simulated": pa.array(df["simulated"].astype(bool), pa.bool_()),
        },
        schema=SCHEMA,  # a column added here but not to the schema (or the reverse) fails
    )


def write_study(table: pa.Table, path: str | os.PathLike, *, origin: str, info: dict) -> None:
    """Write the table with its `labels_origin` metadata (and the builder's counts)."""
    if origin not in LABELS_ORIGINS:
        raise ValueError(f"labels origin {origin!r} not in {LABELS_ORIGINS}")
    simulated = bool(np.any(table.column("simulated").to_numpy(zero_copy_only=False)))
    io.write_table(table, path, metadata={"labels_origin": origin, "simulated": simulated, **info})


# ------------------------------------------------------------------ reading


def read_table(path: str | os.PathLike, columns: list[str]) -> tuple[pa.Table, dict[str, np.ndarray]]:
    """These columns of a study table, checked: present, vectors of the contract's width,
    splits known, soft_label_argmax 0-10, image_id unique, no negative or non-finite mass.
    Returns the table and the checked columns as arrays (each converted once)."""
    parquet = pq.ParquetFile(path)  # not pq.read_table: it imports pandas (~0.25 s per training job)
    missing = [c for c in columns if c not in parquet.schema_arrow.names]
    if missing:
        raise DataContractError(f"{path}: study table lacks column(s) {missing}")
    table = parquet.read(columns=columns)
    arrays: dict[str, np.ndarray] = {}
    image_id = np.asarray(table.column("image_id").to_pylist(), dtype=object) if "image_id" in columns else None
    where = (lambda row: f"row {row} ({image_id[row]})") if image_id is not None else (lambda row: f"row {row}")
    if image_id is not None:
        arrays["image_id"] = image_id
        seen = set()
        for value in image_id:  # the first image_id seen twice, in row order
            if value in seen:
                raise DataContractError(f"{path}: image_id {value!r} occurs more than once")
            seen.add(value)
    if "split" in columns:
        split = arrays["split"] = np.asarray(table.column("split").to_pylist(), dtype=object)
        bad = ~np.isin(split, STUDY_SPLITS)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataContractError(f"{path}: {where(row)}: split {split[row]!r} not in {STUDY_SPLITS}")
    if "soft_label_argmax" in columns:
        argmax = arrays["soft_label_argmax"] = table.column("soft_label_argmax").to_numpy(zero_copy_only=False)
        bad = ~((argmax >= 0) & (argmax <= NOT_A_DIGIT))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataContractError(f"{path}: {where(row)}: soft_label_argmax {argmax[row]} not in 0-10")
    for column in (c for c in columns if c in VECTORS):
        values = arrays[column] = _vectors(table, column, path)
        if column == "pixels":
            if values.dtype != np.uint8:
                raise DataContractError(f"{path}: column 'pixels' must hold uint8, got {values.dtype}")
            continue
        bad = ~np.isfinite(values).all(axis=1) | (values < 0).any(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataContractError(f"{path}: {where(row)}: {column} has a negative or non-finite value")
    return table, arrays


def _vectors(table: pa.Table, column: str, path) -> np.ndarray:
    width = VECTORS[column]
    col = table.column(column).combine_chunks()
    if pa.types.is_fixed_size_list(col.type):
        if col.type.list_size != width:
            raise DataContractError(f"{path}: column {column!r} holds {col.type.list_size} values, expected {width}")
    else:
        lengths = col.value_lengths().to_numpy(zero_copy_only=False)
        bad = lengths != width
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataContractError(f"{path}: row {row}: {column!r} has {lengths[row]} values, expected {width}")
    return io.vectors_array(table.select([column]).combine_chunks(), column)


@dataclass(frozen=True)
class Study:
    """The training view: what a trainer needs, as arrays."""

    path: str
    image_id: np.ndarray  # (n,) str
    split: np.ndarray  # (n,) str: train / val / test
    pixels: np.ndarray  # (n, 784) uint8
    vectors: dict[str, np.ndarray]  # label_dist (n, 10), soft_label* (n, 11), float64
    soft_label_argmax: np.ndarray  # (n,) int, 10 = not a digit
    labels_origin: str | None  # simulated / campaign / released (the table's metadata)

    def rows(self, split: str) -> np.ndarray:
        return self.split == split


# Every label vector: a training target may be built from any of them (training.targets.TARGETS).
TRAINING_VECTORS = tuple(name for name in VECTORS if name != "pixels")


def read_study(path: str | os.PathLike) -> Study:
    """The columns training needs, as arrays."""
    _, arrays = read_table(path, ["image_id", "split", "pixels", "soft_label_argmax", *TRAINING_VECTORS])
    return Study(
        path=str(path),
        image_id=arrays["image_id"],
        split=arrays["split"],
        pixels=arrays["pixels"],
        vectors={name: arrays[name].astype(np.float64) for name in TRAINING_VECTORS},
        soft_label_argmax=arrays["soft_label_argmax"].astype(np.int64),
        labels_origin=io.read_metadata(path).get("labels_origin"),
    )


EVALUATION_COLUMNS = [
    "image_id",
    "split",
    "label",
    "soft_label_argmax",
    "human_uncert_mean",
    "pct_ann_unsure",
    "hlv",
    "simulated",
    "label_dist",
    "soft_label",
    "soft_label_yes_unc_equal",  # the human soft references evaluation.human_soft_label may name
]


def read_study_frame(path: str | os.PathLike) -> pd.DataFrame:
    """The columns evaluation needs (no pixels) as a DataFrame; vector columns hold arrays."""
    return read_table(path, EVALUATION_COLUMNS)[0].to_pandas()


# ------------------------------------------------------------ labels origin


def labels_origin(path: str | os.PathLike) -> str:
    """Where a study table's human labels come from: simulated, campaign or released.

    The metadata `labels_origin` and the per-row `simulated` flags must agree;
    a table that mixes them, or says nothing, is an error (a caption must
    never call simulated labels human).
    """
    origin = io.read_metadata(path).get("labels_origin")
    if origin not in LABELS_ORIGINS:
        raise DataContractError(f"{path}: metadata labels_origin is {origin!r}, expected one of {LABELS_ORIGINS}")
    flags = pq.read_table(path, columns=["simulated"]).column("simulated").to_numpy()
    if flags.any() != (origin == "simulated") or (origin == "simulated" and not flags.all()):
        raise DataContractError(f"{path}: metadata labels_origin={origin!r} disagrees with the 'simulated' column")
    return origin


def labels_sentence(origins: dict[str, str]) -> str:
    """One sentence for captions and reports: are the human labels real or simulated?"""
    words = {
        "simulated": "SIMULATED (a simulated annotator panel, not human data)",
        "campaign": "real human annotations (imported annotation campaign)",
        "released": "real human annotations (the released soft-digits labels)",
    }
    if not origins:
        return "Human labels: not yet known (the study tables have not been built)."
    kinds = set(origins.values())
    if len(kinds) == 1:
        return f"Human labels: {words[kinds.pop()]}."
    parts = "; ".join(f"{corpus}: {words[o]}" for corpus, o in sorted(origins.items()))
    return f"Human labels: {parts}."


def study_origins(paths: dict[str, str | os.PathLike]) -> dict[str, str]:
    """Corpus -> labels origin, for the study tables that exist (empty before they are built)."""
    return {corpus: labels_origin(p) for corpus, p in paths.items() if Path(p).exists()}
