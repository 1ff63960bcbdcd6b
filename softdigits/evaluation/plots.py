"""Figures of the evaluation: model data maps, JSD curves, reliability diagram, Table-5 curve,
and the risk-coverage curves of selective prediction.

Each figure carries the human-labels sentence in its footer, so a figure
copied out of the report still says whether the labels were simulated. Every
plot function returns its (closed) figure, so tests can read the plotted data
back from the axes.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from softdigits.corpora import corpus_name  # noqa: E402
from softdigits.io import save_figure  # noqa: E402
from softdigits.training.models import model_name  # noqa: E402

SHOWN_STRATA = ("NoHLV", "HLV")


def _save(fig, path: str | os.PathLike, footer: str) -> None:
    fig.text(0.5, 0.005, footer, ha="center", va="bottom", fontsize=8, style="italic")
    save_figure(fig, path)


def _finish(fig, axes, title: str, path: str | os.PathLike, footer: str):
    """A grid of curves: the legend in the first panel, the title, the footer; saved, returned."""
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title)
    _save(fig, path, footer)
    return fig


def plot_data_maps(
    maps: pd.DataFrame, targets: list[str], *, corpus: str, model: str, gold: str, footer: str, path: str | os.PathLike
) -> None:
    """Rows: targets; columns: NoHLV, HLV; x variability, y confidence, colour u_mean.

    `gold` is the data maps' gold rule (dynamics.DATA_MAP_GOLDS), named in the title."""
    from softdigits.evaluation.dynamics import GOLD_NOTES

    targets = [t for t in targets if t in set(maps["target"])]
    fig, axes = plt.subplots(len(targets), 2, figsize=(8, 3.2 * len(targets)), squeeze=False, sharex=True, sharey=True)
    vmax = max(float(np.nanmax(maps["u_mean"])) if len(maps) else 0.0, 1e-6)
    points = None
    for i, target in enumerate(targets):
        for j, stratum in enumerate(SHOWN_STRATA):
            ax = axes[i, j]
            sub = maps[(maps["target"] == target) & (maps["hlv"] == (stratum == "HLV"))]
            sub = sub.sort_values("u_mean")  # uncertain points drawn last, on top
            points = ax.scatter(
                sub["variability"],
                sub["confidence"],
                c=sub["u_mean"],
                s=6,
                cmap="viridis_r",
                vmin=0,
                vmax=vmax,
                linewidths=0,
            )
            ax.set_title(f"{target} · {stratum} (n={len(sub)})", fontsize=9)
            ax.set_xlim(0, 0.5)
            ax.set_ylim(0, 1)
            if i == len(targets) - 1:
                ax.set_xlabel("variability (std of p(gold))")
            if j == 0:
                ax.set_ylabel("confidence (mean p(gold))")
    fig.suptitle(
        f"Model data maps: {corpus_name(corpus)}, {model_name(model)}\n" f"{GOLD_NOTES[gold]}",
        fontsize=10,
    )
    if points is not None:
        fig.colorbar(points, ax=axes, shrink=0.6, label="human uncertainty u_mean")
    _save(fig, path, footer)
    return fig


def plot_jsd(
    jsd: pd.DataFrame, models: list[str], targets: list[str], *, corpus: str, footer: str, path: str | os.PathLike
) -> None:
    """Rows: models; columns: NoHLV, HLV; mean over seeds of successive-epoch JSD per target (±std band)."""
    models = [m for m in models if m in set(jsd["model"])]
    fig, axes = plt.subplots(len(models), 2, figsize=(9, 3 * len(models)), squeeze=False, sharex=True)
    for i, model in enumerate(models):
        for j, stratum in enumerate(SHOWN_STRATA):
            ax = axes[i, j]
            sub = jsd[(jsd["model"] == model) & (jsd["stratum"] == stratum)]
            for target in targets:
                curve = sub[sub["target"] == target].groupby("epoch")["jsd"].agg(["mean", "std"])
                if curve.empty:
                    continue
                ax.plot(curve.index, curve["mean"], label=target, lw=1.2)
                ax.fill_between(
                    curve.index,
                    curve["mean"] - curve["std"].fillna(0),
                    curve["mean"] + curve["std"].fillna(0),
                    alpha=0.2,
                )
            ax.set_title(f"{model_name(model)} · {stratum}", fontsize=9)
            ax.set_ylabel("JSD(epoch t−1, t) [bits]")
            if i == len(models) - 1:
                ax.set_xlabel("epoch t")
    title = f"Epoch-to-epoch Jensen-Shannon divergence, training images: {corpus_name(corpus)}"
    return _finish(fig, axes, title, path, footer)


def pooled_bins(bins: pd.DataFrame) -> pd.DataFrame:
    """Reliability bins pooled over seeds (count-weighted means)."""
    b = bins[bins["count"] > 0].assign(
        conf_sum=lambda d: d["mean_confidence"] * d["count"], hit_sum=lambda d: d["accuracy"] * d["count"]
    )
    g = b.groupby(["model", "target", "bin"], as_index=False)[["count", "conf_sum", "hit_sum"]].sum()
    return g.assign(mean_confidence=g["conf_sum"] / g["count"], accuracy=g["hit_sum"] / g["count"])


def plot_reliability(
    bins: pd.DataFrame, models: list[str], targets: list[str], *, corpus: str, footer: str, path: str | os.PathLike
) -> None:
    """One panel per model: accuracy against the human majority vs confidence, per target."""
    pooled = pooled_bins(bins)
    models = [m for m in models if m in set(pooled["model"])]
    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 4), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        for target in targets:
            sub = pooled[(pooled["model"] == model) & (pooled["target"] == target)]
            ax.plot(sub["mean_confidence"], sub["accuracy"], marker="o", ms=3, lw=1, label=target)
        ax.set_title(model_name(model), fontsize=9)
        ax.set_xlabel("confidence (top-class probability)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    axes[0, 0].set_ylabel("accuracy vs human majority")
    title = f"Reliability diagram, test set, all seeds pooled: {corpus_name(corpus)}"
    return _finish(fig, axes, title, path, footer)


def plot_corpus_size(runs: pd.DataFrame, *, footer: str, path: str | os.PathLike) -> None:
    """Table 5 as a curve: test accuracy vs samples per digit, mean ± std over repetitions."""
    g = runs.groupby("samples_per_digit")["test_accuracy"].agg(["mean", "std", "count"]).reset_index()
    scale = 100.0 if g["mean"].max() <= 1.0 else 1.0  # accuracy stored as a fraction or in percent
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(g["samples_per_digit"], g["mean"] * scale, yerr=g["std"].fillna(0) * scale, marker="o", capsize=3)
    ax.set_xscale("log")
    ax.set_xlabel("training samples per digit")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Corpus-size sensitivity (Table 5), {int(g['count'].max())} repetitions per size")
    ax.grid(alpha=0.3)
    _save(fig, path, footer)
    return fig


RISK_STRATA = ("all", "NoHLV", "HLV")


def mean_risk_coverage(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean risk over seeds at each coverage, per (model, target, stratum).

    Every run of a corpus scores the same test images, so the coverages k/n are the same
    for every seed and the mean is taken point by point."""
    g = curves.groupby(["model", "target", "stratum", "coverage"], sort=True)["risk"]
    return g.agg(risk="mean", n_seeds="count").reset_index()


def plot_risk_coverage(
    curves: pd.DataFrame, models: list[str], targets: list[str], *, corpus: str, footer: str, path: str | os.PathLike
):
    """Rows: models; columns: all, NoHLV, HLV; one curve per target: the mean over seeds of the
    risk (error against the human majority) among the most confident images, by coverage.
    Returns the (closed) figure, so its plotted data can be read back."""
    mean = mean_risk_coverage(curves)
    models = [m for m in models if m in set(mean["model"])]
    targets = [t for t in targets if t in set(mean["target"])]  # targets not trained: no curve
    colours = {t: plt.get_cmap("tab10")(i) for i, t in enumerate(targets)}
    fig, axes = plt.subplots(
        len(models), len(RISK_STRATA), figsize=(4 * len(RISK_STRATA), 3.2 * len(models)), squeeze=False, sharex=True
    )
    for i, model in enumerate(models):
        for j, stratum in enumerate(RISK_STRATA):
            ax = axes[i, j]
            for target in targets:
                sub = mean[(mean["model"] == model) & (mean["target"] == target) & (mean["stratum"] == stratum)]
                if len(sub):
                    ax.plot(sub["coverage"], sub["risk"], lw=1.2, label=target, color=colours[target])
            ax.set_title(f"{model_name(model)} · {stratum}", fontsize=9)
            ax.set_xlim(0, 1)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel("risk (error vs human majority)")
            if i == len(models) - 1:
                ax.set_xlabel("coverage (most confident first)")
    title = f"Risk-coverage, test set, mean over seeds: {corpus_name(corpus)}"
    return _finish(fig, axes, title, path, footer)
