"""A condition's evidence: intervals, outcomes (holds / fails / inconclusive), stability and power."""

import numpy as np
import pytest
from scipy import stats as sps

from softdigits.evaluation import conditions as C


def test_intervals_match_scipy():
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 2.0, 7)
    low, high = C.t_interval(x)
    expected = sps.t.interval(0.95, 6, loc=x.mean(), scale=sps.sem(x))
    assert (low, high) == pytest.approx(expected)
    a, b = rng.normal(1, 1, 6), rng.normal(0, 3, 6)
    low, high = C.welch_interval(a, b)
    res = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (low, high) == pytest.approx((res.low, res.high))
    # along the last axis, as the stability resamples use them
    lows, highs = C.t_interval(np.stack([x, x + 1]))
    assert lows == pytest.approx([low_x := C.t_interval(x)[0], low_x + 1])
    assert np.isnan(C.t_interval(x[:1])[0])


def test_paired_p_matches_scipy_and_handles_no_spread():
    rng = np.random.default_rng(1)
    d = rng.normal(0.3, 1, 6)
    assert C.paired_p(d) == pytest.approx(sps.ttest_1samp(d, 0).pvalue)
    assert C.paired_p(np.full(4, 0.2)) == 0.0 and C.paired_p(np.zeros(4)) == 1.0
    assert np.isnan(C.paired_p(np.array([1.0])))


@pytest.mark.parametrize(
    "estimate, p, sign, outcome",
    [
        (-0.2, 0.01, -1.0, "holds"),
        (0.2, 0.01, -1.0, "fails"),  # as clear, the other way
        (-0.2, 0.2, -1.0, "inconclusive"),  # the right way, not significant after Holm
        (0.2, 0.2, -1.0, "inconclusive"),
        (0.0, 0.01, 1.0, "inconclusive"),
        (0.3, np.nan, 1.0, "inconclusive"),  # no test
    ],
)
def test_directed_outcomes(estimate, p, sign, outcome):
    assert C.directed(estimate, p, sign, alpha=0.05) == outcome


@pytest.mark.parametrize(
    "interval, outcome",
    [
        ((0.5, 1.8), "holds"),
        ((0.5, 2.0), "holds"),  # (0, 2]: the bound itself is modest
        ((1.5, 2.4), "inconclusive"),  # straddles the upper bound
        ((-0.3, 1.0), "inconclusive"),  # straddles 0
        ((2.1, 3.0), "fails"),
        ((-1.0, -0.1), "fails"),
        ((-1.0, 0.0), "fails"),  # no gain at all
        ((np.nan, 1.0), "inconclusive"),
    ],
)
def test_a_bound_is_an_equivalence_test(interval, outcome):
    assert C.bounded(*interval, 0.0, 2.0, closed_upper=True) == outcome


def test_negligible_correlation_needs_the_whole_interval_inside():
    # |rho| = 0.05 with few images is not shown negligible; with many it is
    assert C.correlation_outcome(*C.spearman_interval(0.05, 60), "negligible", 0.2) == "inconclusive"
    assert C.correlation_outcome(*C.spearman_interval(0.05, 2000), "negligible", 0.2) == "holds"
    assert C.correlation_outcome(*C.spearman_interval(0.45, 2000), "negligible", 0.2) == "fails"
    assert C.correlation_outcome(*C.spearman_interval(-0.4, 500), "negative", 0.2) == "holds"
    assert C.correlation_outcome(*C.spearman_interval(0.4, 500), "negative", 0.2) == "fails"
    assert C.correlation_outcome(*C.spearman_interval(-0.02, 500), "negative", 0.2) == "inconclusive"


def test_spearman_interval_is_fisher_z_with_the_spearman_variance():
    low, high = C.spearman_interval(0.3, 103)
    half = 1.959964 * np.sqrt(1.06 / 100)
    assert (low, high) == pytest.approx((np.tanh(np.arctanh(0.3) - half), np.tanh(np.arctanh(0.3) + half)))
    assert np.isnan(C.spearman_interval(0.3, 3)[0])


def test_dependent_difference_interval():
    # two correlations of 0.5 and 0.2 with u, whose other variables correlate 0.6: the interval
    # excludes 0 with many images, not with few; a stronger overlap (r12) narrows it
    low, high = C.dependent_difference_interval(-0.5, -0.2, 0.6, 1000)
    assert low < -0.3 < high < 0
    assert C.dependent_difference_interval(-0.5, -0.2, 0.6, 30)[1] > 0
    wide = np.subtract(*C.dependent_difference_interval(-0.5, -0.2, 0.0, 500)[::-1])
    narrow = np.subtract(*C.dependent_difference_interval(-0.5, -0.2, 0.9, 500)[::-1])
    assert narrow < wide


def test_stability_is_high_for_a_clear_effect_and_low_for_none():
    rng = np.random.default_rng(2)
    clear = rng.normal(-0.5, 0.1, 6)
    none = rng.normal(0.0, 0.1, 6)
    assert C.paired_stability(clear, -1.0, 0.05, 1.0, seed=0) > 0.95
    assert C.paired_stability(none, -1.0, 0.05, 1.0, seed=0) < 0.3
    # a strict Holm factor makes a condition more fragile
    borderline = rng.normal(-0.1, 0.1, 6)
    assert C.paired_stability(borderline, -1.0, 0.05, 20.0, 0) <= C.paired_stability(borderline, -1.0, 0.05, 1.0, 0)
    # seeded
    assert C.paired_stability(borderline, -1.0, 0.05, 1.0, 3) == C.paired_stability(borderline, -1.0, 0.05, 1.0, 3)


def test_seeds_for_power():
    # Cohen's d = 1 at alpha 0.05 two-sided with 80% power: 10 pairs (the textbook value)
    assert C.seeds_for_power(1.0, 1.0, 0.05) == 10
    assert C.seeds_for_power(0.5, 1.0, 0.05) == 34
    assert C.seeds_for_power(1.0, 1.0, 0.01) > 10  # a stricter level needs more
    assert np.isnan(C.seeds_for_power(0.0, 1.0, 0.05)) and C.seeds_for_power(1e-4, 1.0, 0.05) == np.inf


def test_a_paired_condition_carries_its_numbers():
    diff = np.array([-0.2, -0.25, -0.18, -0.22, -0.3, -0.21])
    c = C.paired({"x": 1}, "lower", diff, sign=-1.0, p_holm=0.003, p_raw=0.001, alpha=0.05, seed=0, paper=-0.4)
    assert c.outcome == "holds" and c.estimate == pytest.approx(diff.mean())
    assert c.ci_low < c.estimate < c.ci_high < 0 and c.stability > 0.9
    assert c.ratio == pytest.approx(diff.mean() / -0.4)
    assert C.paired({}, "s", diff[:1], sign=-1.0, p_holm=np.nan, p_raw=np.nan, alpha=0.05, seed=0).outcome == (
        "inconclusive"
    )
    d = c.as_dict()
    assert d["outcome"] == "holds" and d["ratio"] == pytest.approx(c.ratio)
