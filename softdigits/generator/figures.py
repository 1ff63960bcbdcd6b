"""Figures of the regenerated Ambiguous-MNIST (rule generator_figures): samples by
entropy, and the entropy histogram.

Reads only Parquet/CSV outputs of the generator (no torch), so it runs in the plots env.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from softdigits import io  # noqa: E402
from softdigits.evaluation.metrics import entropy  # noqa: E402


def read_corpus(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pixels (n, 784) uint8, label_dist (n, 10), entropy (n,)) of a generated corpus."""
    table = io.read_images(path)
    dist = io.vectors_array(table, "label_dist")
    return io.pixels_array(table), dist, entropy(np.asarray(dist, dtype=np.float64))


def samples_by_entropy(
    corpus_path, out_path, low: float, high: float, seed: int, n_rows: int = 10, per_row: int = 12
) -> None:
    """A grid of generated images: one row per equal-width entropy band on [low, high],
    up to `per_row` images drawn at random from the band, ordered by entropy."""
    pixels, dist, entropy = read_corpus(corpus_path)
    rng = np.random.default_rng(seed)
    edges = np.linspace(low, high, n_rows + 1)
    fig, axes = plt.subplots(n_rows, per_row, figsize=(per_row * 0.9, n_rows * 1.0 + 0.6), squeeze=False)
    for r in range(n_rows):
        last = r == n_rows - 1
        band = np.flatnonzero((entropy >= edges[r]) & ((entropy <= edges[r + 1]) if last else (entropy < edges[r + 1])))
        picked = rng.choice(band, size=min(per_row, len(band)), replace=False) if len(band) else band
        picked = picked[np.argsort(entropy[picked], kind="stable")]
        for c in range(per_row):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if c < len(picked):
                i = picked[c]
                ax.imshow(pixels[i].reshape(28, 28), cmap="gray", vmin=0, vmax=255)
                top = np.argsort(-dist[i])[:2]
                ax.set_title(f"{top[0]}:{dist[i, top[0]]:.2f} {top[1]}:{dist[i, top[1]]:.2f}", fontsize=5, pad=1)
        axes[r, 0].set_ylabel(
            f"{edges[r]:.2f}-{edges[r + 1]:.2f}\n(n={len(band)})", fontsize=6, rotation=0, ha="right", va="center"
        )
    fig.suptitle(
        "Regenerated Ambiguous-MNIST by label entropy (nats); titles: top-2 classes of the " "ensemble's softmax",
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    io.save_figure(fig, out_path)


def entropy_histogram(corpus_path, bins_path, out_path, power: float) -> None:
    """The corpus's label-entropy histogram on the selection bins, against the shape
    the DDU recipe aims at (each bin's target: pool count ** power), the distinct
    images drawn per bin (below the bars where images repeat), and the filtered
    pool's count per bin on a log axis."""
    _, _, entropy = read_corpus(corpus_path)
    bins = pd.read_csv(bins_path)
    edges = np.append(bins["low"].to_numpy(), bins["high"].iloc[-1])
    available = bins["pool"].to_numpy(dtype=np.float64)
    n_unique = int(bins["unique"].sum())
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(entropy, bins=edges, color="tab:blue", alpha=0.7, label=f"regenerated corpus (n={len(entropy):,})")
    ax.stairs(
        bins["unique"].to_numpy(),
        edges,
        color="tab:green",
        linewidth=1,
        fill=True,
        alpha=0.5,
        label=f"distinct images drawn ({n_unique:,}; the rest are exact repeats)",
    )
    ax.stairs(
        bins["target"].to_numpy(),
        edges,
        color="black",
        linewidth=1.2,
        label=f"recipe's target shape: pool count$^{{{power:g}}}$ (DDU)",
    )
    ax.set_xlabel("entropy of the synthetic label distribution (nats)")
    ax.set_ylabel("images per bin")
    pool_ax = ax.twinx()
    # empty bins are left out (gaps) rather than drawn at an arbitrary floor
    pool_ax.stairs(np.where(available > 0, available, np.nan), edges, color="tab:orange", linestyle="--", linewidth=1)
    pool_ax.set_yscale("log")
    pool_ax.set_ylim(bottom=0.5)
    pool_ax.set_ylabel("distinct filtered pool candidates per bin (log)", color="tab:orange")
    ax.plot([], [], color="tab:orange", linestyle="--", label="filtered candidate pool (right axis)")
    share_low = float(np.mean(entropy < 0.5)) if len(entropy) else float("nan")
    ax.set_title(
        f"median {np.median(entropy):.2f} nats, {share_low:.0%} below 0.5 nats, " f"max {entropy.max():.2f}", fontsize=9
    )
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    io.save_figure(fig, out_path)
