"""One condition of a findings claim: its estimate, 95% interval, p-value, stability and outcome.

A claim's rule is a list of conditions (one per corpus, model or comparison cell). Each
condition comes out as one of three outcomes, decided by its evidence, not by a point
estimate against a threshold:

- paired difference over seeds (`paired`): the mean of treatment − control per seed, its
  two-sided paired t interval (95%), and the Holm-adjusted p of its family. It **holds**
  when the mean lies in the paper's direction with Holm p < alpha, **fails** when it lies
  in the opposite direction with Holm p < alpha, and is **inconclusive** otherwise.
- a bound, as an equivalence test (`bounded`): holds when the whole interval lies inside
  the bound, fails when the whole interval lies outside it, inconclusive when it straddles
  a bound. "Negligible" correlations use (-0.2, 0.2); a "modest" gain (0, 2] points.
- a correlation (`correlation`): Spearman's rho with a Fisher z interval (variance 1.06 / (n - 3),
  Fieller et al. 1957, for Spearman's rho), in a direction (negative / positive: holds when
  the interval excludes 0 on that side, fails when it excludes 0 on the other) or as an
  equivalence test (negligible).

Stability: the share of `N_RESAMPLES` seeded bootstrap resamples of the seeds (drawn with
replacement; the same draw for treatment and control) in which the condition still holds,
re-decided by the same rule (a paired p is scaled by the observed Holm factor p_holm / p).
Resamples repeat seeds, which narrows their spread: stability is a robustness score (how
much the verdict depends on which seeds were drawn), not a probability.

Power: the number of seeds a paired t-test needs to detect an effect of a given size at
the family's Holm-adjusted level with 80% power, from the observed sd of the per-seed
differences; the effect is the paper's where the paper gives a number, else this run's own.

scipy.stats is imported inside the functions that use it: rules/common.smk imports this
module (through evaluation.tables), and scipy.stats adds about a second to every Snakemake start.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

OUTCOMES = ("holds", "fails", "inconclusive")
LEVEL = 0.95
N_RESAMPLES = 1000
POWER = 0.8
MAX_SEEDS = 1000  # power: "more than this" beyond it
SPEARMAN_VARIANCE = 1.06  # Fieller, Hartley & Pearson (1957): var(atanh rho_s) ~ 1.06 / (n - 3)


@dataclass
class Condition:
    """One cell of a claim's rule, with the numbers behind its outcome."""

    cell: dict  # what the condition is about (corpus, model, comparison, ...)
    statement: str  # the rule for this cell, in words
    outcome: str  # holds / fails / inconclusive
    estimate: float = np.nan
    ci_low: float = np.nan
    ci_high: float = np.nan
    p: float = np.nan  # Holm-adjusted where the test has a family
    stability: float = np.nan  # share of seed resamples in which it holds
    paper: float = np.nan  # the paper's value of the estimate, where it gives one
    seeds_needed: float = np.nan  # seeds for 80% power at the paper's effect (else this run's)
    unit: str = ""
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """This run's estimate over the paper's (NaN where the paper gives none)."""
        return self.estimate / self.paper if np.isfinite(self.paper) and self.paper != 0 else np.nan

    def as_dict(self) -> dict:
        d = asdict(self) | {"ratio": self.ratio}
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in d.items()}


def untestable(cell: dict, statement: str, why: str) -> Condition:
    """A condition this run has no test for (a target not trained, one seed): inconclusive."""
    return Condition(cell, statement, "inconclusive", note=why)


# ------------------------------------------------------------------ intervals and decisions


def _scalar(low, high):
    return (float(low), float(high)) if np.ndim(low) == 0 else (low, high)


def t_interval(values: np.ndarray, level: float = LEVEL):
    """Two-sided t interval of the mean of `values` along the last axis (NaN with fewer than 2)."""
    from scipy import stats as sps  # not at the top: see the module docstring

    values = np.asarray(values, dtype=np.float64)
    n = values.shape[-1]
    if n < 2:
        return _scalar(np.full(values.shape[:-1], np.nan), np.full(values.shape[:-1], np.nan))
    mean = values.mean(axis=-1)
    half = sps.t.ppf(0.5 + level / 2, n - 1) * values.std(axis=-1, ddof=1) / np.sqrt(n)
    return _scalar(mean - half, mean + half)


def welch_interval(a: np.ndarray, b: np.ndarray, level: float = LEVEL):
    """Two-sided Welch interval of mean(a) - mean(b) of two independent samples, along the last axis."""
    from scipy import stats as sps  # not at the top: see the module docstring

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    na, nb = a.shape[-1], b.shape[-1]
    if na < 2 or nb < 2:
        shape = np.broadcast_shapes(a.shape[:-1], b.shape[:-1])
        return _scalar(np.full(shape, np.nan), np.full(shape, np.nan))
    va, vb = a.var(axis=-1, ddof=1) / na, b.var(axis=-1, ddof=1) / nb
    se = np.sqrt(va + vb)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(se > 0, (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1)), np.inf)
    half = np.where(se > 0, sps.t.ppf(0.5 + level / 2, np.where(se > 0, df, 1)) * se, 0.0)
    d = a.mean(axis=-1) - b.mean(axis=-1)
    return _scalar(d - half, d + half)


def paired_p(diff: np.ndarray) -> float | np.ndarray:
    """Two-sided paired t-test p of per-seed differences along the last axis (NaN with fewer
    than 2; no spread: 0 for a non-zero mean, 1 for a zero one)."""
    from scipy import stats as sps  # not at the top: see the module docstring

    diff = np.asarray(diff, dtype=np.float64)
    n = diff.shape[-1]
    if n < 2:
        return np.full(diff.shape[:-1], np.nan) if diff.ndim > 1 else np.nan
    mean, sd = diff.mean(axis=-1), diff.std(axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.abs(mean) / (sd / np.sqrt(n))
    p = np.where(sd > 0, 2 * sps.t.sf(t, n - 1), np.where(mean != 0, 0.0, 1.0))
    return float(p) if diff.ndim == 1 else p


def directed(estimate: float, p: float, sign: float, alpha: float) -> str:
    """holds / fails / inconclusive of a directed test (sign +1: the paper expects > 0)."""
    if not (np.isfinite(estimate) and np.isfinite(p)) or p >= alpha or estimate == 0:
        return "inconclusive"
    return "holds" if sign * estimate > 0 else "fails"


def inside(low, high, lower: float, upper: float, *, closed_upper: bool = False):
    """Whether [low, high] lies inside (lower, upper) (upper included when `closed_upper`); elementwise."""
    low, high = np.asarray(low), np.asarray(high)
    return (low > lower) & ((high <= upper) if closed_upper else (high < upper))


def bounded(low: float, high: float, lower: float, upper: float, *, closed_upper: bool = False) -> str:
    """Equivalence: holds when [low, high] lies inside (lower, upper) (upper included when
    `closed_upper`), fails when it lies entirely outside, inconclusive when it straddles."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "inconclusive"
    if inside(low, high, lower, upper, closed_upper=closed_upper):
        return "holds"
    outside_upper = low > upper if closed_upper else low >= upper
    if high <= lower or outside_upper:
        return "fails"
    return "inconclusive"


def spearman_interval(rho, n: int, level: float = LEVEL):
    """Fisher z interval of Spearman's rho over n images (variance 1.06 / (n - 3)); elementwise."""
    from scipy import stats as sps  # not at the top: see the module docstring

    rho = np.asarray(rho, dtype=np.float64)
    if n <= 3:
        rho = np.full(rho.shape, np.nan)
    z = np.arctanh(np.clip(rho, -0.999999, 0.999999))
    half = sps.norm.ppf(0.5 + level / 2) * np.sqrt(SPEARMAN_VARIANCE / max(n - 3, 1))
    low, high = np.tanh(z - half), np.tanh(z + half)
    return (float(low), float(high)) if rho.ndim == 0 else (low, high)


def correlation_outcome(low: float, high: float, expected: str, bound: float) -> str:
    """negative / positive: the interval excludes 0 on that side (holds) or the other (fails);
    negligible: an equivalence test inside (-bound, bound)."""
    if expected == "negligible":
        return bounded(low, high, -bound, bound)
    if not (np.isfinite(low) and np.isfinite(high)):
        return "inconclusive"
    sign = -1.0 if expected == "negative" else 1.0
    if sign * high > 0 and sign * low > 0:
        return "holds"
    if sign * high < 0 and sign * low < 0:
        return "fails"
    return "inconclusive"


def dependent_difference_interval(r1, r2, r12, n: int, level: float = LEVEL):
    """Interval of r1 - r2 for two correlations that share a variable (Zou 2007), from each
    correlation's Fisher z interval; r12 is the correlation between their other variables.
    Works elementwise on arrays."""
    r1, r2, r12 = (np.asarray(v, dtype=np.float64) for v in (r1, r2, r12))
    l1, u1 = spearman_interval(r1, n, level)
    l2, u2 = spearman_interval(r2, n, level)
    c = ((r12 - r1 * r2 / 2) * (1 - r1**2 - r2**2 - r12**2) + r12**3) / ((1 - r1**2) * (1 - r2**2))
    d = r1 - r2
    low = d - np.sqrt(np.maximum((r1 - l1) ** 2 + (u2 - r2) ** 2 - 2 * c * (r1 - l1) * (u2 - r2), 0.0))
    high = d + np.sqrt(np.maximum((u1 - r1) ** 2 + (r2 - l2) ** 2 - 2 * c * (u1 - r1) * (r2 - l2), 0.0))
    return (float(low), float(high)) if low.ndim == 0 else (low, high)


# ------------------------------------------------------------------ stability and power


def resamples(n_seeds: int, seed: int, n_resamples: int | None = None) -> np.ndarray:
    """(n_resamples, n_seeds) seed indices drawn with replacement, seeded (N_RESAMPLES by default)."""
    size = (N_RESAMPLES if n_resamples is None else n_resamples, n_seeds)
    return np.random.default_rng(seed).integers(0, n_seeds, size=size)


def paired_stability(diff: np.ndarray, sign: float, alpha: float, holm_factor: float, seed: int) -> float:
    """Share of seed resamples in which the paired condition holds (p scaled by the Holm factor)."""
    diff = np.asarray(diff, dtype=np.float64)
    if len(diff) < 2:
        return np.nan
    d = diff[resamples(len(diff), seed)]
    p = np.minimum(1.0, paired_p(d) * holm_factor)
    return float(np.mean((sign * d.mean(axis=1) > 0) & (p < alpha)))


def seeds_for_power(effect: float, sd: float, alpha: float, power: float = POWER) -> float:
    """Seeds a two-sided paired t-test needs to detect a mean difference `effect` with sd `sd`
    of the per-seed differences at level `alpha` with `power` (NaN when undefined; inf beyond
    MAX_SEEDS)."""
    from scipy import stats as sps  # not at the top: see the module docstring

    if not (np.isfinite(effect) and np.isfinite(sd)) or effect == 0 or sd <= 0:
        return np.nan
    n = np.arange(2, MAX_SEEDS + 1)
    crit = sps.t.ppf(1 - alpha / 2, n - 1)
    nc = abs(effect) / sd * np.sqrt(n)
    reached = sps.nct.sf(crit, n - 1, nc) + sps.nct.cdf(-crit, n - 1, nc) >= power
    return float(n[np.argmax(reached)]) if reached.any() else float("inf")


def paired(
    cell: dict,
    statement: str,
    diff: np.ndarray,
    *,
    sign: float,
    p_holm: float,
    p_raw: float,
    alpha: float,
    seed: int,
    paper: float = np.nan,
    unit: str = "",
) -> Condition:
    """A paired-over-seeds condition: estimate, t interval, Holm p, stability, power."""
    diff = np.asarray(diff, dtype=np.float64)
    if len(diff) < 2 or not np.isfinite(p_holm):
        return untestable(cell, statement, "no paired test (fewer than 2 seeds)")
    low, high = t_interval(diff)
    factor = p_holm / p_raw if np.isfinite(p_raw) and p_raw > 0 else 1.0
    effect = paper if np.isfinite(paper) else diff.mean()
    return Condition(
        cell,
        statement,
        directed(diff.mean(), p_holm, sign, alpha),
        estimate=float(diff.mean()),
        ci_low=low,
        ci_high=high,
        p=float(p_holm),
        stability=paired_stability(diff, sign, alpha, factor, seed),
        paper=paper,
        seeds_needed=seeds_for_power(effect, diff.std(ddof=1), alpha / max(factor, 1.0)),
        unit=unit,
    )
