"""Temperature scaling (Guo et al., 2017): one scalar T per run, fitted post hoc.

The scaled prediction is softmax(z / T). T is fitted on the validation split by
the mean negative log-likelihood against the soft labels that run was trained
on (a one-hot label makes it the usual NLL). The NLL is convex in 1/T, so a
bounded 1-D search over log T finds its one minimum.

The training grid saves probabilities, not logits. log(p) differs from the
logits z only by a per-image constant, which softmax ignores, so log(p) serves
as the logits; a probability that underflowed to 0 in float32 is floored at the
smallest normal float32 (its logit was lower still; the change is below 1e-30).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

# T is searched in [0.01, 100] on a log scale: far outside what a trained
# classifier needs (typically 0.5-5); a fit at a bound is flagged, not hidden.
LOG_T_BOUNDS = (np.log(0.01), np.log(100.0))
XATOL = 1e-9  # on log T: T itself to ~1e-9 relative
LOGIT_FLOOR = float(np.finfo(np.float32).tiny)


def logits_from_probs(probs: np.ndarray) -> np.ndarray:
    """Logits (up to a per-row constant) of saved probabilities: log(max(p, tiny))."""
    return np.log(np.maximum(np.asarray(probs, dtype=np.float64), LOGIT_FLOOR))


def scaled_probs(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T), row by row."""
    return np.exp(log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1))


def nll(logits: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    """Mean over rows of -sum_k t_k log softmax(z / T)_k (nats)."""
    log_q = log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
    return float(-(np.asarray(targets, dtype=np.float64) * log_q).sum(axis=1).mean())


@dataclass(frozen=True)
class TemperatureFit:
    temperature: float
    nll_before: float  # at T = 1
    nll_after: float
    at_bound: bool  # a bound of LOG_T_BOUNDS fits as well: no interior minimum
    n_images: int


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> TemperatureFit:
    """The T minimising the NLL of `targets` (rows summing to 1) under softmax(logits / T)."""
    logits = np.asarray(logits, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if logits.shape != targets.shape or len(logits) == 0:
        raise ValueError(f"logits {logits.shape} and targets {targets.shape} must be the same non-empty shape")
    result = minimize_scalar(
        lambda log_t: nll(logits, targets, np.exp(log_t)),
        bounds=LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": XATOL},
    )
    temperature = float(np.exp(result.x))
    after = nll(logits, targets, temperature)
    # No interior minimum when a bound does as well: e.g. val images all right by wide
    # margins, where the NLL keeps falling with T until it rounds to 0 (a flat stretch).
    at_bound = min(nll(logits, targets, float(np.exp(b))) for b in LOG_T_BOUNDS) <= after
    return TemperatureFit(temperature, nll(logits, targets, 1.0), after, bool(at_bound), len(logits))
