"""Cartography, step 1: the training dynamics of a small network, and their table's contract.

A small classifier (the one-hidden-layer FFN by default) is trained on a whole
de-duplicated corpus for a few epochs and several seeds. For every epoch and image
the probability it gives the gold label is recorded from the training forward pass
(softdigits.training.loop.fit, as allenai/cartography does); `softdigits.cartography.maps`
pools those values into the data map.

Gold is the label the network is trained toward (as in Swayamdipta et al., where the
gold is the instance's training label). Per target (a per-corpus config choice):

- label_dist:    the corpus's distribution; gold = the `label` column (the original
                 label for MNIST/ARDIS, the argmax of `label_dist` for Ambiguous-MNIST);
- label:         the one-hot of the `label` column; gold = that label;
- sampled_label: the one-hot of the recipe's FIRST sampled label (`sampled_labels[:, 0]`,
                 one draw from `label_dist` made when the corpus was built, as one of the
                 ten labels DDU trains on per image); gold = that drawn label. p(gold) is
                 then the probability the network gives the label the image was trained
                 with, which can be a minority class of its distribution: those images
                 are the map's hard ones. Only corpora that carry `sampled_labels`
                 (Ambiguous-MNIST, generated or the DDU release) allow it; for any other
                 corpus it is an error, never a silent fallback.

Every table also keeps `digit`, the corpus's `label` column (the image's digit by its
recipe or original label), which the selection stratifies by; it equals gold unless the
target is sampled_label.

The dynamics contract is `DYNAMICS_SCHEMA`, written by `write_dynamics` and read by
`read_dynamics`. Torch (and softdigits.training.models / softdigits.training.loop) is imported inside
`train_dynamics` only, so the contract and `check_unique_images` load without torch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from softdigits.constants import N_DIGITS
from softdigits.io import DataContractError, pixels_array, vectors_array, vectors_column, write_table

log = logging.getLogger(__name__)

TARGETS = ("label_dist", "label", "sampled_label")
SAMPLED_DRAW = 0  # which of the recipe's sampled labels sampled_label trains on (the first)

# results/cartography/{corpus}/dynamics.parquet: one row per (seed, epoch, image)
DYNAMICS_SCHEMA = pa.schema(
    [
        ("seed", pa.int64()),  # the training seed (cartography.seeds)
        ("epoch", pa.int64()),  # 1-based
        ("image_id", pa.string()),  # the images contract's id
        ("digit", pa.int64()),  # the corpus's `label` column, which selection stratifies by
        ("gold", pa.int64()),  # the label trained toward (per target, see the module docstring)
        ("p_gold", pa.float32()),  # probability of gold in that epoch's training forward pass
        ("correct", pa.bool_()),  # the argmax equals gold
        ("probs", pa.list_(pa.float32(), N_DIGITS)),  # the predicted distribution
    ]
)
DYNAMICS_COLUMNS = DYNAMICS_SCHEMA.names


def gold_and_targets(images: pa.Table, target: str, where: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(digit, gold, targets): the `label` column, the gold labels and the training targets (n, 10).

    See the module docstring for what each target trains on and what gold means.
    """
    if target not in TARGETS:
        raise ValueError(f"cartography target must be one of {TARGETS}, got {target!r}")
    digit = images.column("label").to_numpy()
    ids = images.column("image_id")
    unlabelled = np.flatnonzero((digit < 0) | (digit >= N_DIGITS))
    if len(unlabelled):
        raise DataContractError(
            f"{where}{len(unlabelled)} image(s) have no gold label 0-9 (label column), "
            f"first {ids[int(unlabelled[0])].as_py()!r}: cartography needs a gold label for every image"
        )
    if target == "label":
        return digit, digit, np.eye(N_DIGITS, dtype=np.float32)[digit]
    if target == "sampled_label":
        gold = sampled_gold(images, where)
        return digit, gold, np.eye(N_DIGITS, dtype=np.float32)[gold]
    dist = vectors_array(images, "label_dist").astype(np.float32)
    sums = dist.sum(axis=1)
    bad = np.flatnonzero((np.abs(sums - 1.0) > 1e-3) | (dist < 0).any(axis=1))
    if len(bad):
        i = int(bad[0])
        raise DataContractError(
            f"{where}label_dist of image {ids[i].as_py()!r} is not a distribution "
            f"(sum {sums[i]:.4f}); {len(bad)} such row(s)"
        )
    return digit, digit, dist / sums[:, None]


def sampled_gold(images: pa.Table, where: str = "") -> np.ndarray:
    """The recipe's first sampled label of every image (target sampled_label)."""
    if "sampled_labels" not in images.column_names:
        raise DataContractError(
            f"{where}cartography target 'sampled_label' needs a `sampled_labels` column (the labels "
            "the Ambiguous-MNIST recipe draws per image), and this corpus has none: set its "
            "cartography target to label_dist or label"
        )
    sampled = vectors_array(images, "sampled_labels")
    if sampled.ndim != 2 or sampled.shape[1] <= SAMPLED_DRAW:
        raise DataContractError(
            f"{where}sampled_labels has {sampled.shape[-1]} draws per image; " f"draw {SAMPLED_DRAW} is needed"
        )
    gold = sampled[:, SAMPLED_DRAW].astype(np.int64)
    bad = np.flatnonzero((gold < 0) | (gold >= N_DIGITS))
    if len(bad):
        raise DataContractError(
            f"{where}sampled_labels of image {images.column('image_id')[int(bad[0])].as_py()!r} is "
            f"{gold[bad[0]]} at draw {SAMPLED_DRAW}, not a digit 0-9; {len(bad)} such row(s)"
        )
    return gold


def check_unique_images(images: pa.Table, where: str = "") -> None:
    """Cartography and selection expect de-duplicated input: no two images with equal pixels."""
    sha = images.column("sha256").to_pandas()
    dup = sha.duplicated(keep="first")
    if dup.any():
        ids = images.column("image_id").to_pandas()
        first = ids[sha == sha[dup].iloc[0]].tolist()
        raise DataContractError(
            f"{where}{int(dup.sum())} image(s) repeat another's pixels, e.g. {first[:2]}: "
            "use the de-duplicated corpus (results/dedup/)"
        )


def train_dynamics(
    images: pa.Table,
    *,
    model: str,
    seeds: list[int],
    epochs: int,
    batch_size: int,
    lr: float,
    target: str,
    where: str = "",
) -> pa.Table:
    """Train `model` on every image of the corpus once per seed; one row per (seed, epoch, image).

    Returns a table in `DYNAMICS_SCHEMA`. Inputs are standardised with the corpus's own
    pixel mean and std.
    """
    from softdigits.training.loop import TrainSettings, normalise, pixel_stats
    from softdigits.training.models import build_model
    from softdigits.training.stack import fit_stacked

    check_unique_images(images, where)
    digit, gold, targets = gold_and_targets(images, target, where)
    pixels = pixels_array(images)
    mean, std = pixel_stats(pixels)
    x = normalise(pixels, mean, std)
    import torch

    y = torch.from_numpy(targets)
    settings = TrainSettings(lr=lr, batch_size=batch_size, max_epochs=epochs)
    n = len(gold)
    ids = images.column("image_id").combine_chunks()
    parts = []
    # Every seed in one stack (training.stack): each trains as `loop.fit` trains it alone.
    stacked = fit_stacked(
        [build_model(model, seed) for seed in seeds], list(seeds), x, y, [settings], track_dynamics=[True]
    )
    for seed, [(result, _)] in zip(seeds, stacked):
        probs = result.train_probs  # (epochs, n, 10)
        log.info("seed %d: train accuracy per epoch %s", seed, [round(a, 4) for a in result.history["train_acc"]])
        for epoch, p in enumerate(probs, start=1):
            parts.append(
                pa.table(
                    {
                        "seed": pa.array(np.full(n, seed, dtype=np.int64)),
                        "epoch": pa.array(np.full(n, epoch, dtype=np.int64)),
                        "image_id": ids,
                        "digit": pa.array(digit.astype(np.int64)),
                        "gold": pa.array(gold.astype(np.int64)),
                        "p_gold": pa.array(p[np.arange(n), gold].astype(np.float32)),
                        "correct": pa.array(p.argmax(axis=1) == gold),
                        "probs": vectors_column(p.astype(np.float32)),
                    },
                    schema=DYNAMICS_SCHEMA,
                )
            )
    return pa.concat_tables(parts)


# ------------------------------------------------------------------ the dynamics contract


def check_dynamics(table: pa.Table, where: str = "") -> None:
    """Raise DataContractError when `table` lacks a `DYNAMICS_SCHEMA` column, or holds some with
    another type (naming every such column)."""
    missing = [c for c in DYNAMICS_COLUMNS if c not in table.column_names]
    if missing:
        raise DataContractError(f"{where}dynamics table lacks column(s) {missing}")
    got = table.schema
    retyped = [
        f"{f.name} {got.field(f.name).type} (expected {f.type})"
        for f in DYNAMICS_SCHEMA
        if got.field(f.name).type != f.type
    ]
    if retyped:
        raise DataContractError(f"{where}dynamics column type(s) differ from the contract: {'; '.join(retyped)}")


def write_dynamics(table: pa.Table, path: str | os.PathLike, metadata: Mapping[str, object]) -> None:
    """Write a dynamics table (checked against `DYNAMICS_SCHEMA`) with the run's metadata."""
    check_dynamics(table, f"{path}: ")
    write_table(table, path, metadata=metadata)


def read_dynamics(path: str | os.PathLike) -> pa.Table:
    """A dynamics file, checked against `DYNAMICS_SCHEMA`; errors name the file."""
    table = pq.read_table(path)
    check_dynamics(table, f"{path}: ")
    return table
