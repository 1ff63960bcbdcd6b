"""Largest-remainder allocation: real shares under bounds, then integers with the same total.

The generator's entropy bins and the selection's (digit, region) strata both split an
integer budget in proportion to weights, with per-item floors and caps.
"""

from __future__ import annotations

import numpy as np


def water_fill(weights, lo, hi, total: float) -> np.ndarray:
    """Values clip(lam * w, lo, hi) summing to `total` (lam found by bisection).

    Requires sum(lo) <= total <= sum(hi); items with weight 0 stay at lo.
    """
    w, lo, hi = (np.asarray(a, dtype=np.float64) for a in (weights, lo, hi))
    if lo.sum() > total + 1e-9 or hi.sum() < total - 1e-9:
        raise ValueError(f"water_fill: total {total} outside [{lo.sum()}, {hi.sum()}]")
    if not (w > 0).any():
        return lo.copy()
    left, right = 0.0, 1.0
    while np.clip(right * w, lo, hi).sum() < total and right < 1e15:
        right *= 2
    for _ in range(200):
        mid = (left + right) / 2
        if np.clip(mid * w, lo, hi).sum() < total:
            left = mid
        else:
            right = mid
    return np.clip(right * w, lo, hi)


def round_to_total(values: np.ndarray, total: int) -> np.ndarray:
    """Floor or ceiling of each value, summing to `total` (largest remainders round up; ties in order)."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    floor = np.floor(flat + 1e-9)
    extra = int(round(total - floor.sum()))
    order = np.argsort(-(flat - floor), kind="stable")
    floor[order[:extra]] += 1
    return floor.astype(np.int64).reshape(np.shape(values))


def allocate(capacity, weight, total: int) -> np.ndarray:
    """Integer counts as close to `total * weight / sum(weight)` as the capacities allow.

    An item that cannot take its share gives all it has and the rest is shared among the
    others in proportion to their weights; the real shares are then rounded once by
    largest remainders. No item gets more than its capacity or anything at weight 0; the
    result sums to min(total, capacity of the weighted items).
    """
    capacity = np.asarray(capacity, dtype=np.int64)
    weight = np.asarray(weight, dtype=np.float64)
    cap = np.where(weight > 0, capacity, 0)
    total = int(min(total, cap.sum()))
    share = np.zeros(len(cap))
    capped = cap == 0
    while True:  # exact shares (no bisection): ties between equal remainders stay ties
        open_ = ~capped
        share[open_] = (total - cap[capped].sum()) * weight[open_] / weight[open_].sum() if open_.any() else 0.0
        share[capped] = cap[capped]
        over = open_ & (share > cap)
        if not over.any():
            return round_to_total(share, total)
        capped |= over
