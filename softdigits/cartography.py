"""Dataset cartography (Swayamdipta et al. 2020): training dynamics -> data map -> regions.

A small classifier (the one-hidden-layer FFN by default) is trained on a whole
de-duplicated corpus for a few epochs and several seeds. For every epoch and image
the probability it gives the gold label is recorded from the training forward pass
(softdigits.training.fit, as allenai/cartography does). Per image, pooling the
values of every (seed, epoch):

- confidence  = mean of p(gold)
- variability = population standard deviation (ddof=0) of p(gold)
- correctness = fraction of (seed, epoch) in which the argmax was the gold label
- mean_probs  = mean predicted distribution (10 values)

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

Regions, with thresholds per corpus, in this order (the first rule that holds wins,
so the regions never overlap):
  ambiguous: variability >= variability_high
  easy:      confidence >= confidence_high and variability <= variability_low
  hard:      confidence <= confidence_low  and variability <= variability_low
  other:     everything else
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from softdigits.constants import N_DIGITS, REGIONS
from softdigits.io import DataContractError, pixels_array, vectors_array, vectors_column

log = logging.getLogger(__name__)

TARGETS = ("label_dist", "label", "sampled_label")
SAMPLED_DRAW = 0  # which of the recipe's sampled labels sampled_label trains on (the first)


@dataclass(frozen=True)
class Thresholds:
    confidence_high: float
    confidence_low: float
    variability_low: float
    variability_high: float

    def __post_init__(self):
        if not self.confidence_low < self.confidence_high:
            raise ValueError(
                f"thresholds: confidence_low ({self.confidence_low}) must be below "
                f"confidence_high ({self.confidence_high})"
            )
        if not self.variability_low <= self.variability_high:
            raise ValueError(
                f"thresholds: variability_low ({self.variability_low}) must not exceed "
                f"variability_high ({self.variability_high})"
            )


def assign_regions(confidence, variability, thresholds: Thresholds) -> np.ndarray:
    """The region of each image (see the module docstring for the rule and its order)."""
    conf = np.asarray(confidence, dtype=np.float64)
    var = np.asarray(variability, dtype=np.float64)
    t = thresholds
    region = np.full(conf.shape, "other", dtype=object)
    stable = var <= t.variability_low
    region[stable & (conf <= t.confidence_low)] = "hard"
    region[stable & (conf >= t.confidence_high)] = "easy"
    region[var >= t.variability_high] = "ambiguous"
    return region


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

    Columns: seed, epoch (1-based), image_id, digit, gold, p_gold, correct, probs (10 float32).
    Inputs are standardised with the corpus's own pixel mean and std.
    """
    from softdigits.models import build_model
    from softdigits.training import TrainSettings, fit, normalise, pixel_stats

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
    for seed in seeds:
        net = build_model(model, seed)
        result = fit(net, x, y, settings, seed=seed, track_dynamics=True)
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
                    }
                )
            )
    return pa.concat_tables(parts)


DYNAMICS_COLUMNS = ["seed", "epoch", "image_id", "digit", "gold", "p_gold", "correct", "probs"]


def data_map(dynamics: pa.Table, thresholds: Thresholds, where: str = "") -> pd.DataFrame:
    """Per image: digit, gold, confidence, variability, correctness, region, mean_probs.

    Every image must have a value for every (seed, epoch) pooled; rows come out in
    order of first appearance in `dynamics`.
    """
    missing = [c for c in DYNAMICS_COLUMNS if c not in dynamics.column_names]
    if missing:
        raise DataContractError(f"{where}dynamics table lacks column(s) {missing}")
    if dynamics.num_rows == 0:
        raise DataContractError(f"{where}dynamics table is empty")
    codes, ids = pd.factorize(dynamics.column("image_id").to_pandas())
    count = np.bincount(codes)
    n_runs = len(dynamics.select(["seed", "epoch"]).group_by(["seed", "epoch"]).aggregate([]))
    short = np.flatnonzero(count != n_runs)
    if len(short):
        i = int(short[0])
        raise DataContractError(f"{where}image {ids[i]!r} has {count[i]} (seed, epoch) values, expected {n_runs}")
    p_gold = dynamics.column("p_gold").to_numpy().astype(np.float64)
    correct = dynamics.column("correct").to_numpy(zero_copy_only=False).astype(np.float64)
    confidence = np.bincount(codes, weights=p_gold) / count
    variability = np.sqrt(np.bincount(codes, weights=(p_gold - confidence[codes]) ** 2) / count)
    correctness = np.bincount(codes, weights=correct) / count
    probs = vectors_array(dynamics, "probs").astype(np.float64)
    mean_probs = (
        np.stack(
            [np.bincount(codes, weights=probs[:, k], minlength=len(ids)) for k in range(probs.shape[1])],
            axis=1,
        )
        / count[:, None]
    )
    digit = np.zeros(len(ids), dtype=np.int64)
    digit[codes] = dynamics.column("digit").to_numpy()
    gold = np.zeros(len(ids), dtype=np.int64)
    gold[codes] = dynamics.column("gold").to_numpy()
    return pd.DataFrame(
        {
            "image_id": ids,
            "digit": digit,
            "gold": gold,
            "confidence": confidence,
            "variability": variability,
            "correctness": correctness,
            "region": assign_regions(confidence, variability, thresholds),
            "mean_probs": list(mean_probs.astype(np.float32)),
        }
    )


def data_map_table(df: pd.DataFrame) -> pa.Table:
    """The data map with `mean_probs` as a fixed-size list of 10 float32."""
    return pa.table(
        {
            "image_id": pa.array(df["image_id"], pa.string()),
            "digit": pa.array(df["digit"], pa.int64()),
            "gold": pa.array(df["gold"], pa.int64()),
            "confidence": pa.array(df["confidence"], pa.float64()),
            "variability": pa.array(df["variability"], pa.float64()),
            "correctness": pa.array(df["correctness"], pa.float64()),
            "region": pa.array(df["region"], pa.string()),
            "mean_probs": vectors_column(np.stack(df["mean_probs"].to_numpy()).astype(np.float32)),
        }
    )


def region_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Images per (digit, region), every region a column (zeros included), plus a total row."""
    counts = pd.crosstab(df["digit"], df["region"]).reindex(columns=list(REGIONS), fill_value=0)
    counts.loc["all"] = counts.sum()
    return counts


def region_shares(df: pd.DataFrame) -> dict[str, float]:
    """Share of the corpus in each region (every region present, zeros included)."""
    counts = df["region"].value_counts().reindex(list(REGIONS), fill_value=0)
    return {r: float(counts[r]) / max(len(df), 1) for r in REGIONS}


def check_region_shares(shares: dict[str, float], min_share: dict[str, float], where: str = "") -> None:
    """Raise naming every region whose share of the corpus is below its configured minimum.

    This is the acceptance check of a data map (e.g. Ambiguous-MNIST: hard >= 1%,
    ambiguous >= 5%); a minimum of 0 asks nothing of that region.
    """
    short = [f"{r} {shares[r]:.2%} < {m:.2%}" for r, m in min_share.items() if shares[r] < m]
    if short:
        raise RegionShareError(
            f"{where}the data map misses its minimum region shares (config cartography.corpora.*.min_share): "
            + "; ".join(short)
            + ". Change the corpus's target, epochs or thresholds, or lower min_share."
        )


class RegionShareError(ValueError):
    """A data map has fewer images in a region than its corpus's config requires."""
