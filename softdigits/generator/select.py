"""Step 4 of the generator (rule generator_select): the corpus, drawn from the pool.

Entropy-stratified subsampling of the pool, with replacement by default as DDU did (so
thin high-entropy bins are filled by exact repeats, as in the release), or without; a
train/test split, label draws from the ensemble's mean softmax, and one generation
record per image.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from softdigits import io
from softdigits.allocation import allocate
from softdigits.generator.inputs import GeneratorError, MnistSplits, pool_pixels, read_pool

log = logging.getLogger(__name__)

# The selection's sub-stream of the generator's seed (the pool's is pool.POOL_STREAM).
SELECT_STREAM = 2


@dataclass(frozen=True)
class StratifySettings:
    n_images: int = 12_000
    n_bins: int = 50
    low: float = 0.05
    high: float = 1.6
    power: float = 0.2  # target count of a bin ~ (its pool count) ** power
    n_label_draws: int = 10
    # Draw with replacement (DDU): every non-empty bin meets its target, thin bins by
    # repeating images. False: no image twice, thin bins give their share to the others.
    replace: bool = True


def bin_targets(pool: np.ndarray, strat: StratifySettings) -> np.ndarray:
    """Images to draw from each entropy bin, given its distinct pool candidates.

    The shape is the DDU recipe's: a bin's share is proportional to its pool count to
    the power `power` (0.2 flattens the pool's steep fall-off, so the high-entropy tail
    gets far more than its pool share but still less than the low-entropy bulk).
    With replacement a bin is no longer capped by its distinct candidates, so the
    shape is met exactly in every non-empty bin: a tail bin holding 3 candidates gets
    its full share as repeats of those 3, which is how the release came to carry exact
    duplicates. We keep the shape rather than, say, a flat target over the bins: a flat
    target would fill 1-candidate bins with hundreds of copies of one image, whereas
    the power rule ties each bin's share to the evidence the pool holds for it. Empty
    bins get nothing (there is nothing to repeat). Without replacement a bin gives at
    most its distinct candidates and its unmet share goes to the others.

    (With replacement no bin is capped and `allocate` is a single largest-remainder
    rounding. Without replacement it now fills the capped bins exactly first and rounds
    once: a bin's count can differ by one from the per-pass rounding used before.)
    """
    pool = np.asarray(pool, dtype=np.int64)
    weight = np.where(pool > 0, pool.astype(np.float64) ** strat.power, 0.0)
    capacity = np.where(pool > 0, strat.n_images, 0) if strat.replace else pool
    return allocate(capacity, weight, strat.n_images)


@dataclass
class Selection:
    rows: np.ndarray  # pool rows, in corpus order (train half first); repeats when drawn with replacement
    n_train: int
    bin_edges: np.ndarray
    available: np.ndarray  # distinct pool images per bin
    target: np.ndarray  # counts per bin
    drawn: np.ndarray  # rows drawn per bin (counted from `rows`)
    unique: np.ndarray  # distinct images among them

    def bins(self) -> pd.DataFrame:
        """The per-bin table: edges, target, pool (distinct candidates), drawn, unique drawn."""
        return pd.DataFrame(
            {
                "low": self.bin_edges[:-1],
                "high": self.bin_edges[1:],
                "target": self.target,
                "pool": self.available,
                "drawn": self.drawn,
                "unique": self.unique,
            }
        )


def select(entropy: np.ndarray, sha256: list[str], strat: StratifySettings, seed: int) -> Selection:
    """Entropy-stratified subsample of the pool's distinct images, first half train.

    With `strat.replace` an image may be drawn several times (exact repeats);
    without, no image twice.
    """
    rng = np.random.default_rng([seed, SELECT_STREAM])
    entropy = np.asarray(entropy)
    first_copy = ~pd.Series(sha256).duplicated().to_numpy()  # identical pixels count once
    edges = np.linspace(strat.low, strat.high, strat.n_bins + 1)
    in_range = first_copy & (entropy >= strat.low) & (entropy <= strat.high)
    # bin b holds edges[b] <= H < edges[b+1]; the last bin also holds H == high
    which = np.clip(np.searchsorted(edges, entropy, side="right") - 1, 0, strat.n_bins - 1)
    available = np.bincount(which[in_range], minlength=strat.n_bins)
    target = bin_targets(available, strat)
    chosen = [
        rng.choice(np.flatnonzero(in_range & (which == b)), size=target[b], replace=strat.replace)
        for b in range(strat.n_bins)
        if target[b]
    ]
    rows = rng.permutation(np.concatenate(chosen)) if chosen else np.empty(0, np.int64)
    if len(rows) < strat.n_images:
        log.warning(
            "the filtered pool holds %d distinct images in [%.2f, %.2f] nats: " "the corpus has %d images, not %d",
            available.sum(),
            strat.low,
            strat.high,
            len(rows),
            strat.n_images,
        )
    drawn = np.bincount(which[rows], minlength=strat.n_bins)
    unique = np.bincount(which[np.unique(rows)], minlength=strat.n_bins)
    return Selection(rows, (len(rows) + 1) // 2, edges, available, target, drawn, unique)


def draw_labels(probs: np.ndarray, n_draws: int, seed: int) -> np.ndarray:
    """(n, n_draws) int64 labels drawn from each row's distribution."""
    rng = np.random.default_rng([seed, SELECT_STREAM, 1])
    cdf = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    u = rng.random((len(probs), n_draws))
    return np.minimum((cdf[:, None, :] < u[:, :, None]).sum(axis=2), probs.shape[1] - 1).astype(np.int64)


def select_corpus(
    pool_path: str | Path, mnist: MnistSplits, strat: StratifySettings, seed: int
) -> tuple[pa.Table, pa.Table, dict]:
    """The corpus (images contract + `sampled_labels`), its generation records, and a summary."""
    stats = read_pool(pool_path, ["entropy", "pixels"])
    if stats.num_rows == 0:
        raise GeneratorError(f"{pool_path}: the candidate pool is empty: no mixture passed the filter")
    sha = io.pixel_sha256(pool_pixels(stats))
    sel = select(stats.column("entropy").to_numpy(), sha, strat, seed)
    if len(sel.rows) == 0:
        raise GeneratorError(f"{pool_path}: no candidate has entropy in [{strat.low}, {strat.high}] nats")
    pool = read_pool(pool_path).take(pa.array(sel.rows))
    n = pool.num_rows
    probs = io.vectors_array(pool, "probs").astype(np.float64)
    probs /= probs.sum(axis=1, keepdims=True)
    split = np.where(np.arange(n) < sel.n_train, "train", "test").astype(object)
    index = np.where(np.arange(n) < sel.n_train, np.arange(n), np.arange(n) - sel.n_train)
    corpus = io.images_table(
        source="mukhoti",
        source_split=split,
        source_index=index,
        pixels=pool_pixels(pool),
        label=probs.argmax(axis=1),
        label_dist=probs,
    )
    sampled = draw_labels(probs, strat.n_label_draws, seed)
    corpus = corpus.append_column("sampled_labels", io.vectors_column(sampled, pa.int64()))
    parents = pool.column("parents").to_pylist()
    records = pa.table(
        {
            "image_id": corpus.column("image_id"),
            "parent_image_ids": pa.array([[mnist.train_ids[p] for p in ps] for ps in parents], pa.list_(pa.string())),
            "parent_labels": pa.array(
                [[int(mnist.train_labels[p]) for p in ps] for ps in parents], pa.list_(pa.int64())
            ),
            "mix_weights": pool.column("mix_weights"),
            "entropy": pool.column("entropy"),
            "mutual_information": pool.column("mutual_information"),
        }
    )
    bins = sel.bins()
    log.info(
        "entropy-stratified draw %s replacement, per bin (pool = distinct candidates):\n%s\n"
        "total: target %d, pool %d, drawn %d, unique %d (%d exact repeats)",
        "with" if strat.replace else "without",
        bins.to_string(index=False, float_format="%.3f"),
        bins["target"].sum(),
        bins["pool"].sum(),
        bins["drawn"].sum(),
        bins["unique"].sum(),
        bins["drawn"].sum() - bins["unique"].sum(),
    )
    summary = {
        "n_images": n,
        "n_train": sel.n_train,
        "n_test": n - sel.n_train,
        "n_requested": strat.n_images,
        "replace": strat.replace,
        "n_distinct": int(sel.unique.sum()),
        "n_repeats": int(n - sel.unique.sum()),
        "pool_candidates": stats.num_rows,
        "pool_distinct_in_range": int(sel.available.sum()),
        "bins": bins,
    }
    return corpus, records, summary
