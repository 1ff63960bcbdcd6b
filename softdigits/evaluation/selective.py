"""Selective prediction and disagreement detection from a model's predicted distributions.

- Risk-coverage: images sorted by confidence (max probability), most confident
  first; risk(k) is the error rate among the k most confident images, for
  coverage k/n, k = 1..n. AURC is the mean of risk(k) over k (Geifman et al.,
  2019); E-AURC subtracts the AURC of an oracle that ranks every correct image
  before every error, so it leaves only the ranking's share. Images of equal
  confidence are in no order: risk(k) inside a tie is its expectation over
  the tie's random orderings, so AURC does not depend on row order (saturated
  float32 probabilities of exactly 1.0 are common).
- Disagreement detection: the AUROC of a score (predictive entropy) for telling
  positive (HLV) from negative (NoHLV) images, ties counting one half: the
  Mann-Whitney U of the positives divided by n_pos * n_neg.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def risk_coverage(confidence: np.ndarray, error: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coverage k/n, expected risk of the k most confident) for k = 1..n."""
    confidence = np.asarray(confidence, dtype=np.float64)
    error = np.asarray(error, dtype=np.float64)
    n = len(confidence)
    if n == 0 or error.shape != confidence.shape:
        raise ValueError(f"confidence {confidence.shape} and error {error.shape} must be the same non-empty shape")
    order = np.argsort(-confidence, kind="stable")
    c, e = confidence[order], error[order]
    starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])  # first position of each tie block
    sizes = np.diff(np.r_[starts, n])
    block_errors = np.add.reduceat(e, starts)
    errors_before = np.r_[0.0, np.cumsum(block_errors)[:-1]]
    block = np.repeat(np.arange(len(starts)), sizes)
    k = np.arange(1, n + 1)
    taken = k - starts[block]  # images taken from the current tie block
    expected_errors = errors_before[block] + block_errors[block] * taken / sizes[block]
    return k / n, expected_errors / k


def aurc(confidence: np.ndarray, error: np.ndarray) -> float:
    """Area under the risk-coverage curve: the mean risk over the n coverages."""
    return float(risk_coverage(confidence, error)[1].mean())


def optimal_aurc(error: np.ndarray) -> float:
    """AURC of the oracle ranking (every correct image first), for the same error count."""
    error = np.asarray(error, dtype=bool)
    n, n_correct = len(error), int((~error).sum())
    k = np.arange(1, n + 1)
    return float((np.maximum(k - n_correct, 0) / k).mean())


def excess_aurc(confidence: np.ndarray, error: np.ndarray) -> float:
    """E-AURC = AURC - AURC of the oracle ranking."""
    return aurc(confidence, error) - optimal_aurc(error)


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a positive > score of a negative) + P(tie)/2, from average ranks."""
    score = np.asarray(score, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUROC needs positives and negatives, got {n_pos} and {n_neg}")
    ranks = rankdata(score)  # average ranks: a tie counts one half
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))
