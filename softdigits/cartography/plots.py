"""Data-map figures (variability x, confidence y), in the style of allenai/cartography.

`plot_data_map` is general: any numeric column colours the points, an optional
column splits the map into panels, and region boundaries with per-region counts
are drawn when thresholds are given. The cartography stage colours by
correctness; a model data map can colour by human uncertainty.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from softdigits.cartography.maps import Thresholds, assign_regions  # noqa: E402
from softdigits.constants import REGIONS  # noqa: E402
from softdigits.io import save_figure  # noqa: E402


def plot_data_map(
    df: pd.DataFrame,
    path: str | os.PathLike,
    *,
    color: str = "correctness",
    color_label: str | None = None,
    cmap: str = "viridis",
    vmin: float | None = 0.0,
    vmax: float | None = 1.0,
    facet: str | None = None,
    thresholds: Thresholds | Mapping[str, float] | None = None,
    title: str = "",
    footer: str = "",
    max_points: int | None = None,
    seed: int = 0,
) -> None:
    """Scatter of variability (x) against confidence (y), one panel per value of `facet`.

    With `thresholds`, the easy, hard and ambiguous regions are outlined and each
    panel lists the images per region (all images, also when the scatter shows a
    random subsample of `max_points`, seeded for a reproducible figure).
    """
    for col in ("confidence", "variability", color, *([facet] if facet else [])):
        if col not in df.columns:
            raise KeyError(f"data map has no column {col!r} (columns: {list(df.columns)})")
    if isinstance(thresholds, Mapping):
        thresholds = Thresholds(**thresholds)
    panels = [(None, df)] if facet is None else list(df.groupby(facet, sort=True))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels) + 0.8, 4.6), squeeze=False, sharey=True)
    x_max = max(0.5, float(df["variability"].max()) * 1.05) if len(df) else 0.5
    points = None
    for ax, (key, sub) in zip(axes[0], panels):
        shown = sub
        if max_points is not None and len(sub) > max_points:
            shown = sub.sample(n=max_points, random_state=seed)
        points = ax.scatter(
            shown["variability"],
            shown["confidence"],
            c=shown[color],
            s=3,
            cmap=cmap,
            vmin=vmin,
            vmax=vmax,
            linewidths=0,
            rasterized=True,
        )
        ax.set_xlim(0, x_max)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("variability (population std of p(gold))")
        ax.set_title(f"{facet} = {key} (n={len(sub)})" if facet else f"n = {len(sub)}", fontsize=9)
        if thresholds is not None:
            _draw_regions(ax, sub, thresholds, x_max)
    axes[0, 0].set_ylabel("confidence (mean p(gold))")
    if points is not None:
        fig.colorbar(points, ax=list(axes[0]), shrink=0.8, label=color_label or color)
    if title:
        fig.suptitle(title, fontsize=10)
    if footer:
        fig.text(0.5, -0.02, footer, ha="center", va="top", fontsize=8, style="italic")
    save_figure(fig, path)


def _draw_regions(ax, df: pd.DataFrame, t: Thresholds, x_max: float) -> None:
    """Outline the regions and write the number of images in each."""
    style = dict(color="black", lw=0.9, ls="--")
    ax.plot([0, t.variability_low, t.variability_low], [t.confidence_high, t.confidence_high, 1.02], **style)
    ax.plot([0, t.variability_low, t.variability_low], [t.confidence_low, t.confidence_low, -0.02], **style)
    ax.axvline(t.variability_high, **style)
    region = df["region"] if "region" in df.columns else assign_regions(df["confidence"], df["variability"], t)
    counts = pd.Series(np.asarray(region)).value_counts().reindex(list(REGIONS), fill_value=0)
    box = dict(boxstyle="round", fc="white", ec="grey", alpha=0.85)
    ax.text(0.01, 0.99, f"easy {counts['easy']}", va="top", fontsize=8, bbox=box)
    ax.text(0.01, 0.01, f"hard {counts['hard']}", va="bottom", fontsize=8, bbox=box)
    ax.text(
        min(t.variability_high + 0.01, x_max * 0.7),
        0.5,
        f"ambiguous {counts['ambiguous']}",
        va="center",
        fontsize=8,
        bbox=box,
    )
    ax.text(
        (t.variability_low + t.variability_high) / 2,
        0.5,
        f"other {counts['other']}",
        ha="center",
        va="center",
        fontsize=8,
        rotation=90,
        bbox=box,
    )
