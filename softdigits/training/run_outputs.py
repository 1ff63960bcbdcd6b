"""The outputs of one training run (a `train_run` job), their writers and readers.

- `*_history`: one row per epoch (losses, accuracies, learning rate).
- `test_performance_predictions`: image_id, split (val / test), probs (10, float32).
- `dynamics_predictions`: epoch (1..E), image_id, probs, for every training image.
- `manifest` (JSON, written last): settings, timings, code fingerprint, library versions.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from softdigits import io
from softdigits.constants import N_DIGITS
from softdigits.io import DataContractError, vectors_array

# Each output's file name in a cell's folder (rules/common.smk builds the rule's paths from it).
FILES = {
    "test_performance_history": "test_performance_history.parquet",
    "test_performance_predictions": "test_performance_predictions.parquet",
    "dynamics_history": "dynamics_history.parquet",
    "dynamics_predictions": "dynamics_predictions.parquet",
    "manifest": "manifest.json",
}
OUTPUTS = tuple(FILES)
# Probabilities of every training image in every epoch are the bulk of the grid's
# output; byte-stream-split float encoding + zstd store them ~30% smaller than the
# default (snappy), losslessly (measured on a 40-epoch LeNet run).
DYNAMICS_PARQUET = {
    "compression": "zstd",
    "use_dictionary": ["image_id"],
    "use_byte_stream_split": ["probs.list.element"],
}


def cell_files(folder: str | os.PathLike) -> dict[str, str]:
    """{output name: path} of one cell's files in `folder`."""
    return {name: os.path.join(folder, file) for name, file in FILES.items()}


HISTORY_SCHEMA = pa.schema(
    [
        ("epoch", pa.int32()),  # 1-based
        ("train_loss", pa.float64()),  # mean soft cross-entropy over the training images
        ("train_acc", pa.float64()),  # argmax agreement with the target's argmax
        ("val_loss", pa.float64()),  # the same on the validation split (NaN where none)
        ("val_acc", pa.float64()),
        ("lr", pa.float64()),  # learning rate in that epoch
    ]
)
PREDICTIONS_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("split", pa.string()),  # val / test
        ("probs", pa.list_(pa.float32(), N_DIGITS)),  # softmax of the best checkpoint
    ]
)
RUN_DYNAMICS_SCHEMA = pa.schema(
    [
        ("epoch", pa.int32()),  # 1..E
        ("image_id", pa.string()),  # every training image, every epoch
        ("probs", pa.list_(pa.float32(), N_DIGITS)),  # softmax after that epoch
    ]
)


def history_table(rows: list[dict]) -> pa.Table:
    """One row per epoch (training.FitResult.rows); NaN is stored as null, as from a DataFrame."""
    return pa.table(
        {
            name: pa.array([row[name] for row in rows], HISTORY_SCHEMA.field(name).type, from_pandas=True)
            for name in HISTORY_SCHEMA.names
        },
        schema=HISTORY_SCHEMA,
    )


def predictions_table(image_id: np.ndarray, split: np.ndarray, probs: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "image_id": pa.array(image_id, pa.string()),
            "split": pa.array(split, pa.string()),
            "probs": io.vectors_column(probs.astype(np.float32)),
        },
        schema=PREDICTIONS_SCHEMA,
    )


def dynamics_table(image_id: np.ndarray, probs: np.ndarray) -> pa.Table:
    """Long format: one row per (epoch, training image), epochs 1..E."""
    epochs, n, _ = probs.shape
    return pa.table(
        {
            "epoch": pa.array(np.repeat(np.arange(1, epochs + 1, dtype=np.int32), n)),
            "image_id": pa.array(np.tile(image_id, epochs), pa.string()),
            "probs": io.vectors_column(probs.reshape(epochs * n, -1).astype(np.float32)),
        },
        schema=RUN_DYNAMICS_SCHEMA,
    )


def write_output(name: str, table: pa.Table, path: str) -> None:
    io.write_table(table, path, **(DYNAMICS_PARQUET if name == "dynamics_predictions" else {}))


# ------------------------------------------------------------------ reading


def check_probs(probs: np.ndarray, where: str, tol: float = 1e-3) -> None:
    """Model outputs must be finite, non-negative rows of 10 that sum to 1."""
    if probs.ndim != 2 or probs.shape[1] != N_DIGITS:
        raise ValueError(f"{where}: probs must have {N_DIGITS} columns, got shape {probs.shape}")
    bad = ~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1)
    bad |= np.abs(probs.sum(axis=1) - 1) > tol
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where}: row {row} is not a probability vector: {probs[row].tolist()}")


def read_predictions(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image_id, split, probs (n, 10)) of a run's test_performance_predictions file."""
    table = pq.read_table(path, columns=["image_id", "split", "probs"])
    return (
        table.column("image_id").to_numpy(zero_copy_only=False),
        table.column("split").to_numpy(zero_copy_only=False),
        vectors_array(table, "probs"),
    )


def read_dynamics(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(epochs (E,), image_ids (n,), probs (E, n, 10)) of a dynamics_predictions file.

    Every epoch must hold the same images; rows are put in the first epoch's order.
    """
    table = pq.read_table(path, columns=["epoch", "image_id", "probs"])
    epoch = table.column("epoch").to_numpy()
    image_id = table.column("image_id").to_numpy(zero_copy_only=False)
    probs = vectors_array(table, "probs")
    check_probs(probs.astype(np.float64), str(path))
    epochs = np.unique(epoch)
    if len(epochs) == 0:
        raise DataContractError(f"{path}: no epochs")
    order = np.lexsort((image_id, epoch))
    image_id, probs = image_id[order], probs[order]
    n = len(image_id) // len(epochs)
    first = image_id[:n]
    if n * len(epochs) != len(image_id) or not (image_id.reshape(len(epochs), n) == first).all():
        raise DataContractError(f"{path}: the epochs do not all hold the same images")
    return epochs, first, probs.reshape(len(epochs), n, N_DIGITS)
