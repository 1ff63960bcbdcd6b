"""Cartography, step 2: the data map (numpy, no torch), its regions and their acceptance check.

Per image, pooling the p(gold) values that `softdigits.cartography.train` recorded for
every (seed, epoch):

- confidence  = mean of p(gold)
- variability = population standard deviation (ddof=0) of p(gold)
- correctness = fraction of (seed, epoch) in which the argmax was the gold label
- mean_probs  = mean predicted distribution (10 values)

Regions, with thresholds per corpus, in this order (the first rule that holds wins,
so the regions never overlap):
  ambiguous: variability >= variability_high
  easy:      confidence >= confidence_high and variability <= variability_low
  hard:      confidence <= confidence_low  and variability <= variability_low
  other:     everything else

The data-map contract is `DATA_MAP_SCHEMA`, written by `data_map_table` (with
`io.write_table`) and read by `read_data_map`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from softdigits.constants import N_DIGITS, REGIONS
from softdigits.errors import KnownError
from softdigits.io import DataContractError, vectors_array, vectors_column

# The dynamics columns the map pools: every column of cartography.train.DYNAMICS_SCHEMA, named
# here rather than imported, so that this module (and the figures and findings that import it)
# never depend on the torch training code. tests/test_cartography.py keeps the two equal.
DYNAMICS_INPUT = ("seed", "epoch", "image_id", "digit", "gold", "p_gold", "correct", "probs")

# results/cartography/{corpus}/data_map.parquet: one row per image, pooled over every (seed, epoch)
DATA_MAP_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),  # the images contract's id
        ("digit", pa.int64()),  # the corpus's `label` column, which selection stratifies by
        ("gold", pa.int64()),  # the label trained toward (cartography.corpora.*.target)
        ("confidence", pa.float64()),  # mean p(gold)
        ("variability", pa.float64()),  # population std (ddof=0) of p(gold)
        ("correctness", pa.float64()),  # fraction of (seed, epoch) whose argmax is gold
        ("region", pa.string()),  # easy / ambiguous / hard / other (assign_regions)
        ("mean_probs", pa.list_(pa.float32(), N_DIGITS)),  # the mean predicted distribution
    ]
)


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


def pooled_map(p_gold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The data map of (values, images) p(gold): confidence (mean) and variability (population
    std, ddof 0) of each image's pooled values. The one formula of the corpus maps here and the
    model data maps of the evaluation (`evaluation.dynamics`)."""
    p_gold = np.asarray(p_gold, dtype=np.float64)
    return p_gold.mean(axis=0), p_gold.std(axis=0, ddof=0)


def data_map(dynamics: pa.Table, thresholds: Thresholds, where: str = "") -> pd.DataFrame:
    """Per image: digit, gold, confidence, variability, correctness, region, mean_probs.

    Every image must have a value for every (seed, epoch) pooled; rows come out in
    order of first appearance in `dynamics`.
    """
    missing = [c for c in DYNAMICS_INPUT if c not in dynamics.column_names]
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
    # every image has one value per (seed, epoch): a (runs, images) matrix of each column
    run = pd.MultiIndex.from_arrays([dynamics.column(c).to_numpy() for c in ("seed", "epoch")]).factorize()[0]
    p_gold = np.zeros((n_runs, len(ids)))
    p_gold[run, codes] = dynamics.column("p_gold").to_numpy()
    correct = np.zeros((n_runs, len(ids)))
    correct[run, codes] = dynamics.column("correct").to_numpy(zero_copy_only=False)
    probs = np.zeros((n_runs, len(ids), N_DIGITS))
    probs[run, codes] = vectors_array(dynamics, "probs")
    confidence, variability = pooled_map(p_gold)
    correctness = correct.mean(axis=0)
    mean_probs = probs.mean(axis=0)
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


# ------------------------------------------------------------------ the data-map contract


def data_map_table(df: pd.DataFrame) -> pa.Table:
    """The data map (`data_map`'s frame) in `DATA_MAP_SCHEMA`: `mean_probs` as a fixed-size
    list of 10 float32, every other column cast to its contract type."""
    mean_probs = vectors_column(np.stack(df["mean_probs"].to_numpy()).astype(np.float32))
    return pa.table(
        [mean_probs if f.name == "mean_probs" else pa.array(df[f.name], f.type) for f in DATA_MAP_SCHEMA],
        schema=DATA_MAP_SCHEMA,
    )


def read_data_map(path: str | os.PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    """These columns (default: all) of a data map file as a DataFrame, checked: present and of
    the `DATA_MAP_SCHEMA` type; errors name the file."""
    columns = DATA_MAP_SCHEMA.names if columns is None else list(columns)
    unknown = [c for c in columns if c not in DATA_MAP_SCHEMA.names]
    if unknown:
        raise ValueError(f"data map columns are {DATA_MAP_SCHEMA.names}, not {unknown}")
    schema = pq.read_schema(path)
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise DataContractError(f"{path}: data map lacks column(s) {missing}: rerun cartography")
    contract = DATA_MAP_SCHEMA
    retyped = [
        f"{c} {schema.field(c).type} (expected {contract.field(c).type})"
        for c in columns
        if schema.field(c).type != contract.field(c).type
    ]
    if retyped:
        raise DataContractError(f"{path}: data map column type(s) differ from the contract: {'; '.join(retyped)}")
    return pq.read_table(path, columns=columns).to_pandas()


# ------------------------------------------------------------------ regions


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


class RegionShareError(KnownError, ValueError):
    """A data map has fewer images in a region than its corpus's config requires."""
