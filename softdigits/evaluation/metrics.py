"""Test-set metrics of a model's predicted distributions against reference labels, and the
registry of every metric the evaluation reports (`METRICS`).

Conventions, stated once and applied by every function here:
- KL(p || q) is in nats, p the reference (human) distribution, q the model's.
  Terms with p_k = 0 contribute 0 (0 log 0 = 0). q is clipped below at `eps`
  and renormalised, so a class the model gives numerically zero probability
  costs a large but finite penalty instead of an infinite one.
- Brier score is the multiclass one, summed over classes: sum_k (q_k - t_k)^2,
  in [0, 2] per image, averaged over images.
- ECE uses equal-width bins of the top-class probability (right-closed, the
  first bin also holds 0): sum_b n_b / N * |accuracy_b - mean confidence_b|.
- The model has 10 outputs; a reference class 10 ("not a digit") can never be
  predicted, so it counts as wrong for accuracy and ECE, and for Brier the
  model's output is padded with a zero not-a-digit probability.

A `METRICS` entry is the one home of a metric's facts: its score of a run's predictions
against one reference (`Reference`: class labels and/or a distribution per image), the
evaluation sets it is scored on (`runs.EVAL_SETS`: orig, human, human_soft), and its
direction for the paired tests. The post-hoc views (selective prediction, disagreement
detection) are scored by their own code (`evaluation.runs`, `evaluation.selective`) and have
entries with no evaluation sets, for their direction and names. To add a metric: one entry
here, plus its test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_EPS = 1e-8


def clip_probs(q: np.ndarray, eps: float = DEFAULT_EPS) -> np.ndarray:
    """Model probabilities clipped below at `eps` and renormalised per row."""
    q = np.maximum(np.asarray(q, dtype=np.float64), eps)
    return q / q.sum(axis=1, keepdims=True)


def entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy in nats along `axis`, 0 log 0 = 0 (no renormalisation: pass distributions)."""
    p = np.asarray(p)
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=axis)


def kl_divergence(p: np.ndarray, q: np.ndarray, eps: float = DEFAULT_EPS) -> np.ndarray:
    """Per-row KL(p || q) in nats, with 0 log 0 = 0 and q clipped at `eps`."""
    p = np.asarray(p, dtype=np.float64)
    q = clip_probs(q, eps)
    safe_p = np.where(p > 0, p, 1.0)  # log(1) = 0 where p_k = 0: the term vanishes
    return np.sum(np.where(p > 0, p * (np.log(safe_p) - np.log(q)), 0.0), axis=1)


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their average rank (as scipy.stats.rankdata's default)."""
    _, inverse, counts = np.unique(np.asarray(x), return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2)[inverse.reshape(-1)]


def spearman_rho(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho (Pearson correlation of average ranks); NaN when either is constant.
    numpy only: the training jobs that report it never import scipy."""
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = np.sqrt((ra @ ra) * (rb @ rb))
    return float(ra @ rb / denominator) if denominator > 0 else float("nan")


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-row Jensen-Shannon divergence in bits (base 2): a divergence in [0, 1].

    JSD = KL(p || m)/2 + KL(q || m)/2 with m = (p + q)/2; not scipy's
    `jensenshannon`, which returns the square root (a distance). No clipping
    is needed: m_k > 0 wherever p_k > 0 or q_k > 0.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    m = (p + q) / 2

    def kl2(a):
        ratio = np.where(a > 0, a / np.where(m > 0, m, 1.0), 1.0)
        return np.sum(np.where(a > 0, a * np.log2(ratio), 0.0), axis=1)

    return np.clip((kl2(p) + kl2(q)) / 2, 0.0, 1.0)


def pad_classes(q: np.ndarray, width: int) -> np.ndarray:
    """Append zero-probability columns to `q` up to `width` classes."""
    q = np.asarray(q, dtype=np.float64)
    if q.shape[1] > width:
        raise ValueError(f"cannot pad {q.shape[1]} classes down to {width}")
    return np.pad(q, ((0, 0), (0, width - q.shape[1])))


def one_hot(labels: np.ndarray, width: int) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    out = np.zeros((len(labels), width))
    out[np.arange(len(labels)), labels] = 1.0
    return out


def brier(q: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-row multiclass Brier score, summed over classes (q padded to the target's width)."""
    target = np.asarray(target, dtype=np.float64)
    q = pad_classes(q, target.shape[1])
    return np.sum((q - target) ** 2, axis=1)


def correct(q: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-row top-1 correctness; a label the model cannot output (e.g. 10) is wrong."""
    return np.argmax(q, axis=1) == np.asarray(labels)


def reliability_bins(q: np.ndarray, labels: np.ndarray, n_bins: int) -> pd.DataFrame:
    """Equal-width bins of top-class probability: count, mean confidence, accuracy per bin."""
    q = np.asarray(q, dtype=np.float64)
    confidence = q.max(axis=1)
    hit = correct(q, labels).astype(np.float64)
    index = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(index, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(index, weights=hit, minlength=n_bins) / count
    import pandas as pd  # here: the training jobs import this module and never need pandas

    return pd.DataFrame(
        {
            "bin": np.arange(n_bins),
            "lower": np.arange(n_bins) / n_bins,
            "upper": np.arange(1, n_bins + 1) / n_bins,
            "count": count,
            "mean_confidence": mean_conf,
            "accuracy": accuracy,
        }
    )


def expected_calibration_error(q: np.ndarray, labels: np.ndarray, n_bins: int) -> float:
    bins = reliability_bins(q, labels, n_bins)
    filled = bins[bins["count"] > 0]
    gap = (filled["accuracy"] - filled["mean_confidence"]).abs()
    return float((filled["count"] * gap).sum() / max(len(q), 1))


# ------------------------------------------------------------------ the registry


@dataclass(frozen=True)
class Reference:
    """One evaluation set's reference for a run's images: the class of each image (None
    where the set has none) and its distribution (None where it has none)."""

    labels: np.ndarray | None  # (n,) int, 10 = not a digit
    dist: np.ndarray | None  # (n, k) float64, k = 10 or 11


@dataclass(frozen=True)
class Metric:
    # (q (n, 10) float64, reference, settings {"eps", "n_bins"}) -> the mean over the images
    score: Callable[[np.ndarray, Reference, dict], float] | None
    higher_is_better: bool
    eval_sets: tuple[str, ...] = ()  # the evaluation sets evaluate_runs scores it on
    display: str = ""  # its name in table captions


METRICS = {
    "accuracy": Metric(lambda q, ref, s: float(np.mean(correct(q, ref.labels))), True, ("orig", "human"), "accuracy"),
    "kl": Metric(
        lambda q, ref, s: float(np.mean(kl_divergence(ref.dist, q, s["eps"]))), False, ("orig", "human_soft"), "KL"
    ),
    "brier": Metric(
        lambda q, ref, s: float(np.mean(brier(q, ref.dist))), False, ("orig", "human", "human_soft"), "Brier"
    ),
    "ece": Metric(
        lambda q, ref, s: expected_calibration_error(q, ref.labels, s["n_bins"]), False, ("orig", "human"), "ECE"
    ),
    # post-hoc views, scored in evaluation.runs (selective prediction, disagreement detection)
    "aurc": Metric(None, False, display="AURC"),
    "eaurc": Metric(None, False, display="E-AURC"),
    "hlv_auroc": Metric(None, True, display="HLV AUROC"),
    "entropy_spearman": Metric(None, True, display="entropy Spearman"),
}


def higher_is_better(metric: str) -> bool:
    """The direction of a metric in the registry; an error naming it, never a silent NaN."""
    if metric not in METRICS:
        raise KeyError(f"metric {metric!r} is not in evaluation.metrics.METRICS (known: {sorted(METRICS)})")
    return METRICS[metric].higher_is_better
