"""Step 3 of the generator (rule generator_pool): the scored candidate pool.

Groups of 2-4 training images of different classes have their encoder means mixed with
Dirichlet weightings; each mixture is decoded, re-standardised, quantised to uint8 and
scored by the ensemble, and only the candidates passing the mutual-information /
entropy filter are kept, written chunk by chunk. The ensemble scores the uint8 image
that is stored, so every label distribution belongs exactly to the pixels of its image.

Speed: a chunk is decoded and scored in blocks of `ensemble.SCORE_BATCH` mixtures (decode,
quantise and score one block while its maps are in the caches), the blocks shared among
`threads` worker threads, each running torch on one thread of its own. A mixture's pixels
and scores do not depend on the block, the chunk or the thread that computed them (each
row's arithmetic is the same in any batch), so neither `chunk_size` nor `threads` changes a
byte of the pool.
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from softdigits import io
from softdigits.generator.ensemble import SCORE_BATCH, Ensemble, Member, uncertainty
from softdigits.generator.inputs import POOL_SCHEMA, GeneratorError, MnistSplits, pool_pixels_column
from softdigits.generator.vae import TrainedVae

log = logging.getLogger(__name__)

# The pool's sub-stream of the generator's seed (the selection's is select.SELECT_STREAM).
POOL_STREAM = 1


@dataclass(frozen=True)
class MixSettings:
    group_sizes: tuple[int, ...] = (2, 3, 4)
    weightings_per_group: int = 64
    dirichlet_alpha: float = 1.0
    pool_size: int = 300_000  # mixtures scored; rounded up to whole groups
    chunk_size: int = 50_000  # mixtures decoded and scored at a time (bounds memory)
    contrast: float = 1.2  # final image: clamp(contrast * x - offset, 0, 1)
    offset: float = 0.15


@dataclass(frozen=True)
class FilterSettings:
    max_mutual_information: float = 0.05
    min_entropy: float = 0.05
    max_entropy: float = 3.0  # exclusive


@dataclass
class MixingPlan:
    """Every mixture of the pool: group g's parents mixed with weights[g, j]."""

    parents: np.ndarray  # (groups, max_k) int64 positions in the training split, -1 = none
    weights: np.ndarray  # (groups, weightings, max_k) float32, 0 where no parent

    @property
    def n_mixtures(self) -> int:
        return self.weights.shape[0] * self.weights.shape[1]


def mixing_plan(train_labels: np.ndarray, mix: MixSettings, seed: int) -> MixingPlan:
    """Groups of k training images of k different classes (k drawn from group_sizes),
    each with `weightings_per_group` Dirichlet(alpha) weightings. Drawn up front, so the
    chunk size changes memory only, never which mixtures are made."""
    classes_present = np.unique(train_labels)
    max_k = max(mix.group_sizes)
    if max_k > len(classes_present):
        raise GeneratorError(
            f"generator.mixing.group_sizes: groups of {max_k} different classes need {max_k} "
            f"digit classes; the MNIST training split has {len(classes_present)}"
        )
    rng = np.random.default_rng([seed, POOL_STREAM])
    n_groups = math.ceil(mix.pool_size / mix.weightings_per_group)
    by_class = {c: np.flatnonzero(train_labels == c) for c in classes_present}
    sizes = rng.choice(np.asarray(mix.group_sizes), size=n_groups)
    parents = np.full((n_groups, max_k), -1, dtype=np.int64)
    weights = np.zeros((n_groups, mix.weightings_per_group, max_k), dtype=np.float32)
    for g, k in enumerate(sizes):
        for j, c in enumerate(rng.choice(classes_present, size=k, replace=False)):
            parents[g, j] = rng.choice(by_class[c])
        weights[g, :, :k] = rng.dirichlet(np.full(k, mix.dirichlet_alpha), size=mix.weightings_per_group)
    return MixingPlan(parents, weights)


def build_pool(
    vae: TrainedVae,
    members: list[Member],
    mnist: MnistSplits,
    mix: MixSettings,
    keep: FilterSettings,
    seed: int,
    path: str | Path,
    threads: int = 1,
) -> dict:
    """Score the whole mixing plan chunk by chunk; write the candidates passing the
    filter to the Parquet `path` (atomically); return counts for the summary."""
    plan = mixing_plan(mnist.train_labels, mix, seed)
    latents = vae.encode_means(mnist.train_pixels)  # (n_train, z)
    scorer = Ensemble(members)
    per_group = mix.weightings_per_group
    counts = {"mixtures": 0, "kept": 0, "mi_too_high": 0, "entropy_too_low": 0, "entropy_too_high": 0}
    entropy_hist = np.zeros(60, dtype=np.int64)  # all scored candidates, 0.05-nat bins on [0, 3)
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # each worker thread runs torch on one thread of its own
    try:
        with (
            io.atomic_path(path) as tmp,
            pq.ParquetWriter(tmp, POOL_SCHEMA) as writer,
            ThreadPoolExecutor(max(1, threads)) as workers,
        ):
            for start in range(0, plan.n_mixtures, mix.chunk_size):
                mixture = np.arange(start, min(start + mix.chunk_size, plan.n_mixtures))
                group, weighting = mixture // per_group, mixture % per_group
                parents, w = plan.parents[group], plan.weights[group, weighting]
                z = torch.einsum("nk,nkd->nd", torch.from_numpy(w), latents[np.maximum(parents, 0)])
                blocks = [z[i : i + SCORE_BATCH] for i in range(0, len(z), SCORE_BATCH)]
                scored = list(workers.map(lambda block: score_block(vae, scorer, block, mix), blocks))
                pixels, mean, entropy, mi = (np.concatenate(part) for part in zip(*scored))
                passed = _tally(entropy, mi, keep, counts)
                entropy_hist += np.histogram(entropy, bins=60, range=(0.0, 3.0))[0]
                counts["mixtures"] += len(mixture)
                idx = np.flatnonzero(passed)
                writer.write_table(
                    _pool_chunk(mixture[idx], pixels[idx], mean[idx], entropy[idx], mi[idx], parents[idx], w[idx])
                )
                log.info("pool: %d/%d mixtures scored, %d kept", counts["mixtures"], plan.n_mixtures, counts["kept"])
    finally:
        torch.set_num_threads(torch_threads)
    return {**counts, "entropy_histogram_all": {"edges": np.linspace(0, 3, 61), "counts": entropy_hist}}


def score_block(vae: TrainedVae, scorer: Ensemble, z: torch.Tensor, mix: MixSettings):
    """Decode a block of mixed latents to uint8 images and score them: (pixels, mean, entropy, MI)."""
    pixels = vae.decode_images(z, mix.contrast, mix.offset)
    return (pixels, *uncertainty(scorer.probs(pixels, batch=len(pixels) or 1)))


def _tally(entropy, mi, keep: FilterSettings, counts: dict) -> np.ndarray:
    mi_ok = mi <= keep.max_mutual_information
    low = entropy < keep.min_entropy
    high = entropy >= keep.max_entropy
    passed = mi_ok & ~low & ~high
    counts["kept"] += int(passed.sum())
    counts["mi_too_high"] += int((~mi_ok).sum())
    counts["entropy_too_low"] += int((mi_ok & low).sum())
    counts["entropy_too_high"] += int((mi_ok & high).sum())
    return passed


def _pool_chunk(mixture, pixels, mean, entropy, mi, parents, weights) -> pa.Table:
    has = parents >= 0  # parents fill each row from the left; -1 pads the shorter groups
    offsets = pa.array(np.concatenate([[0], np.cumsum(has.sum(axis=1))]).astype(np.int32))
    return pa.table(
        {
            "mixture": pa.array(mixture, pa.int64()),
            "pixels": pool_pixels_column(pixels),
            "probs": io.vectors_column(mean.astype(np.float32)),
            "entropy": pa.array(entropy, pa.float64()),
            "mutual_information": pa.array(mi, pa.float64()),
            "parents": pa.ListArray.from_arrays(offsets, pa.array(parents[has], pa.int64())),
            "mix_weights": pa.ListArray.from_arrays(offsets, pa.array(weights[has], pa.float32())),
        },
        schema=POOL_SCHEMA,
    )
