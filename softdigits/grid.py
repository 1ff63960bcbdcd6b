"""One cell of the training grid: a (corpus, model, target, seed) in both regimes.

- `read_study`: the study table's training inputs as arrays, checked.
- `target_distributions`: the 10-class training target of every image for one
  label regime, and which images can be trained on it (the not-a-digit rule).
- `prepare_cell`: those images as normalised tensors on the device.
- `train_regime`: regime 1 (test-set performance: early stopping, ReduceLROnPlateau,
  best checkpoint, predictions for every val and test image) or regime 2
  (training dynamics: fixed epochs, every training image's prediction per epoch).
- `run`: the job: both regimes, each written atomically when done, then the manifest.

Both regimes run in one process: a job pays the Python + torch start-up once
for two trainings (see bench/training_speed.py for the measured share).
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from softdigits import io
from softdigits.io import N_DIGITS, N_HUMAN_CLASSES, NOT_A_DIGIT, DataContractError
from softdigits.models import build_model
from softdigits.training import TrainSettings, fit, normalise, pixel_stats, predict, resolve_device

# Target name -> the study-table column it is built from.
TARGET_COLUMNS = {
    "original": "label_dist",
    "human_equal": "soft_label_yes_unc_equal",
    "human_uncertainty": "soft_label",
    "human_majority": "soft_label_argmax",
}
HUMAN_TARGETS = ("human_equal", "human_uncertainty", "human_majority")
NOT_A_DIGIT_MODES = ("renormalise", "exclude")
REGIMES = ("test_performance", "dynamics")
SPLITS = ("train", "val", "test")
OUTPUTS = (
    "test_performance_history",
    "test_performance_predictions",
    "dynamics_history",
    "dynamics_predictions",
    "manifest",
)
# Probabilities of every training image in every epoch are the bulk of the grid's
# output; byte-stream-split float encoding + zstd store them ~30% smaller than the
# default (snappy), losslessly (measured on a 40-epoch LeNet run).
DYNAMICS_PARQUET = {"compression": "zstd", "use_dictionary": ["image_id"],
                    "use_byte_stream_split": ["probs.list.element"]}


# ------------------------------------------------------------------ study table


@dataclass(frozen=True)
class Study:
    path: str
    image_id: np.ndarray  # (n,) str
    split: np.ndarray  # (n,) str: train / val / test
    pixels: np.ndarray  # (n, 784) uint8
    vectors: dict[str, np.ndarray]  # label_dist (n, 10), soft_label* (n, 11), float64
    soft_label_argmax: np.ndarray  # (n,) int, 10 = not a digit
    labels_origin: str | None  # simulated / campaign / released (the table's metadata)

    def rows(self, split: str) -> np.ndarray:
        return self.split == split


_WIDTHS = {"label_dist": N_DIGITS, "soft_label": N_HUMAN_CLASSES, "soft_label_yes_unc_equal": N_HUMAN_CLASSES}


def read_study(path: str | os.PathLike) -> Study:
    """The study table's columns that training needs; errors name the file, row and column."""
    columns = ["image_id", "split", "pixels", "soft_label_argmax", *_WIDTHS]
    present = set(pq.read_schema(path).names)
    missing = [c for c in columns if c not in present]
    if missing:
        raise DataContractError(f"{path}: study table lacks column(s) {missing}")
    table = pq.read_table(path, columns=columns)
    image_id = np.asarray(table.column("image_id").to_pylist(), dtype=object)
    split = np.asarray(table.column("split").to_pylist(), dtype=object)
    bad = ~np.isin(split, SPLITS)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataContractError(f"{path}: row {row} ({image_id[row]}): split {split[row]!r} not in {SPLITS}")
    dup = pd.Index(image_id).duplicated()
    if dup.any():
        raise DataContractError(f"{path}: image_id {image_id[np.flatnonzero(dup)[0]]!r} occurs more than once")
    pixels = _vectors(table, "pixels", 784, path)
    if pixels.dtype != np.uint8:
        raise DataContractError(f"{path}: column 'pixels' must hold uint8, got {pixels.dtype}")
    vectors = {name: _vectors(table, name, width, path).astype(np.float64) for name, width in _WIDTHS.items()}
    for name, values in vectors.items():
        bad = ~np.isfinite(values).all(axis=1) | (values < 0).any(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataContractError(
                f"{path}: row {row} ({image_id[row]}): {name} has a negative or non-finite value"
            )
    argmax = table.column("soft_label_argmax").to_numpy(zero_copy_only=False)
    bad = ~((argmax >= 0) & (argmax <= NOT_A_DIGIT))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataContractError(f"{path}: row {row} ({image_id[row]}): soft_label_argmax {argmax[row]} not in 0-10")
    return Study(
        path=str(path),
        image_id=image_id,
        split=split,
        pixels=pixels,
        vectors=vectors,
        soft_label_argmax=argmax.astype(np.int64),
        labels_origin=io.read_metadata(path).get("labels_origin"),
    )


def _vectors(table: pa.Table, column: str, width: int, path) -> np.ndarray:
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


# ---------------------------------------------------------------------- targets


def target_distributions(study: Study, target: str, not_a_digit: str) -> tuple[np.ndarray, np.ndarray]:
    """(targets (n, 10) float32, usable (n,) bool) of one label regime.

    A 10-output model cannot predict the human not-a-digit class, so the human
    targets drop its mass and renormalise over the ten digits; an image whose
    human label has no digit mass at all (every annotator rejected every digit;
    for `human_majority`: majority not-a-digit) has no target and is not usable.
    With `not_a_digit="exclude"` every image whose human majority is not a digit
    is unusable for every human target as well. `original` uses every image.
    """
    if target not in TARGET_COLUMNS:
        raise ValueError(f"unknown target {target!r}; known: {sorted(TARGET_COLUMNS)}")
    if not_a_digit not in NOT_A_DIGIT_MODES:
        raise ValueError(f"not_a_digit must be one of {NOT_A_DIGIT_MODES}, got {not_a_digit!r}")
    if target == "original":
        dist = study.vectors["label_dist"]
    elif target == "human_majority":
        dist = np.eye(N_HUMAN_CLASSES)[study.soft_label_argmax][:, :N_DIGITS]
    else:
        dist = study.vectors[TARGET_COLUMNS[target]][:, :N_DIGITS]
    mass = dist.sum(axis=1)
    usable = mass > 0
    if target == "original":
        if not usable.all():
            row = int(np.flatnonzero(~usable)[0])
            raise DataContractError(f"{study.path}: row {row} ({study.image_id[row]}): label_dist is all zeros")
    elif not_a_digit == "exclude":
        usable &= study.soft_label_argmax != NOT_A_DIGIT
    targets = np.divide(dist, np.where(usable, mass, 1.0)[:, None])
    targets[~usable] = 0.0
    return targets.astype(np.float32), usable


# ------------------------------------------------------------------- settings


def regime_settings(config: dict, regime: str) -> TrainSettings:
    """The TrainSettings of a regime from the `training` config section."""
    if regime == "test_performance":
        r = config["test_performance"]
        return TrainSettings(
            lr=config["lr"],
            batch_size=config["batch_size"],
            max_epochs=r["max_epochs"],
            early_stopping_patience=r["early_stopping_patience"],
            plateau_factor=r["plateau_factor"],
            plateau_patience=r["plateau_patience"],
            min_delta=r["min_delta"],
        )
    if regime == "dynamics":
        return TrainSettings(lr=config["lr"], batch_size=config["batch_size"], max_epochs=config["dynamics"]["epochs"])
    raise ValueError(f"unknown regime {regime!r}; known: {REGIMES}")


def configure_torch(threads: int) -> None:
    """Per-process torch settings every run uses (before any tensor work)."""
    torch.set_num_threads(max(1, int(threads)))
    # Denormal floats are very slow on x86 CPUs and too small to matter here.
    torch.set_flush_denormal(True)
    # On a GPU, the same seed must still give the same outputs.
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


# -------------------------------------------------------------------- one cell


@dataclass
class Cell:
    """The tensors of one (corpus, target) on one device: what every regime trains on."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_scored: torch.Tensor  # every val and test image, for regime 1's predictions
    train_ids: np.ndarray
    scored_ids: np.ndarray
    scored_split: np.ndarray
    info: dict  # counts and normalisation statistics, for the manifest


def prepare_cell(study: Study, target: str, not_a_digit: str, device: torch.device) -> Cell:
    """Targets, the usable train/val images and the normalised tensors of one target.

    Validation targets are of the same kind as the training targets and follow
    the same not-a-digit rule; predictions cover every val and test image.
    Images are standardised with the mean and std of the usable training images.
    """
    targets, usable = target_distributions(study, target, not_a_digit)
    train = study.rows("train") & usable
    val = study.rows("val") & usable
    if not train.any() or not val.any():
        raise DataContractError(
            f"{study.path}: target {target!r} leaves {int(train.sum())} train and {int(val.sum())} val images"
        )
    scored = study.rows("val") | study.rows("test")
    mean, std = pixel_stats(study.pixels[train])

    def images(rows: np.ndarray) -> torch.Tensor:
        return normalise(study.pixels[rows], mean, std).to(device)

    def labels(rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(targets[rows]).to(device)

    info = {
        "labels_origin": study.labels_origin,
        "n_train": int(train.sum()),
        "n_val": int(val.sum()),
        "n_scored": int(scored.sum()),
        "n_left_out": {split: int((study.rows(split) & ~usable).sum()) for split in ("train", "val")},
        "normalisation": {"mean": mean, "std": std},
    }
    return Cell(images(train), labels(train), images(val), labels(val), images(scored),
                study.image_id[train], study.image_id[scored], study.split[scored], info)


def train_regime(cell: Cell, regime: str, *, model: str, seed: int, config: dict) -> tuple[dict[str, pa.Table], dict]:
    """Train one regime from fresh seeded weights: ({output name: table}, manifest entry)."""
    started = time.perf_counter()
    settings = regime_settings(config, regime)
    device = cell.x_train.device
    net = build_model(model, seed).to(device)
    result = fit(net, cell.x_train, cell.y_train, settings, seed, cell.x_val, cell.y_val,
                 track_dynamics=regime == "dynamics")
    if regime == "test_performance":
        predictions = predictions_table(cell.scored_ids, cell.scored_split, predict(net, cell.x_scored).cpu().numpy())
    else:
        predictions = dynamics_table(cell.train_ids, result.train_probs)
    tables = {f"{regime}_history": history_table(result.history), f"{regime}_predictions": predictions}
    entry = {
        "settings": asdict(settings),
        "epochs_trained": len(result.history),
        "best_epoch": result.best_epoch,
        "wall_time_s": round(time.perf_counter() - started, 3),
    }
    return tables, entry


def history_table(history: pd.DataFrame) -> pa.Table:
    return pa.table(
        {
            "epoch": pa.array(history["epoch"], pa.int32()),
            **{c: pa.array(history[c], pa.float64()) for c in ("train_loss", "train_acc", "val_loss", "val_acc", "lr")},
        }
    )


def predictions_table(image_id: np.ndarray, split: np.ndarray, probs: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "image_id": pa.array(image_id, pa.string()),
            "split": pa.array(split, pa.string()),
            "probs": io.vectors_column(probs.astype(np.float32)),
        }
    )


def dynamics_table(image_id: np.ndarray, probs: np.ndarray) -> pa.Table:
    """Long format: one row per (epoch, training image), epochs 1..E."""
    epochs, n, _ = probs.shape
    return pa.table(
        {
            "epoch": pa.array(np.repeat(np.arange(1, epochs + 1, dtype=np.int32), n)),
            "image_id": pa.array(np.tile(image_id, epochs), pa.string()),
            "probs": io.vectors_column(probs.reshape(epochs * n, -1).astype(np.float32)),
        }
    )


def write_output(name: str, table: pa.Table, path: str) -> None:
    io.write_table(table, path, **(DYNAMICS_PARQUET if name == "dynamics_predictions" else {}))


# ------------------------------------------------------------------ provenance


def code_fingerprint(files: list[str]) -> dict:
    """SHA-256 over the source files a run executed (sorted by name), and each file's own."""
    each = {Path(f).name: hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in sorted(files)}
    total = hashlib.sha256("".join(f"{k}:{v}\n" for k, v in sorted(each.items())).encode()).hexdigest()
    return {"sha256": total, "files": each}


def library_versions() -> dict:
    import pyarrow

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "pyarrow": pyarrow.__version__,
        "platform": sys.platform,
        "machine": platform.machine(),
    }


def run(*, study_path, outputs: dict[str, str], model: str, target: str, seed: int, config: dict,
        threads: int, code_files: list[str]) -> dict:
    """The training job of one cell: both regimes, then the manifest. Returns the manifest.

    `config` is the `training` section without the grid lists (models, targets,
    seeds). Each regime's files are written as soon as it ends, each atomically;
    the manifest comes last, so a run without one did not finish.
    """
    started = time.perf_counter()
    configure_torch(threads)
    device = resolve_device(config["device"])
    cell = prepare_cell(read_study(study_path), target, config["not_a_digit"], device)
    regimes = {}
    for regime in REGIMES:
        tables, regimes[regime] = train_regime(cell, regime, model=model, seed=seed, config=config)
        for name, table in tables.items():
            write_output(name, table, outputs[name])
    manifest = {
        "corpus_study": str(study_path),
        "model": model,
        "target": target,
        "seed": int(seed),
        "config": config,
        "regimes": regimes,
        "data": cell.info,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "libraries": library_versions(),
        "code_fingerprint": code_fingerprint(code_files),
        "wall_time_s": round(time.perf_counter() - started, 3),
    }
    io.write_json(manifest, outputs["manifest"])
    return manifest
