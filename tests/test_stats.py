"""Seed summaries, paired tests, Holm correction."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from softdigits import stats as S


def test_seed_summary_uses_sample_std():
    df = pd.DataFrame({"g": ["a"] * 3, "value": [1.0, 2.0, 3.0]})
    out = S.seed_summary(df, ["g"])
    assert out["mean"].item() == 2.0 and out["std"].item() == pytest.approx(1.0) and out["n_seeds"].item() == 3


def test_paired_test_matches_scipy_and_signflip_exact():
    a = np.array([0.50, 0.52, 0.49, 0.55, 0.53, 0.51])
    b = np.array([0.45, 0.47, 0.47, 0.50, 0.49, 0.46])
    res = S.paired_test(a, b)
    ref = sps.ttest_rel(a, b)
    assert res["t"] == pytest.approx(ref.statistic) and res["p_t"] == pytest.approx(ref.pvalue)
    # every difference positive: only the all-positive and all-negative patterns are as extreme
    assert res["p_signflip"] == pytest.approx(2 / 64)
    d = a - b
    assert res["cohen_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert res["ci_low"] < res["mean_diff"] < res["ci_high"]


def test_paired_test_degenerate_cases():
    same = S.paired_test(np.ones(4), np.ones(4))
    assert same["p_t"] == 1.0 and same["mean_diff"] == 0
    one = S.paired_test(np.ones(1), np.zeros(1))
    assert np.isnan(one["p_t"])
    with pytest.raises(ValueError, match="differ in length"):
        S.paired_test(np.ones(3), np.ones(2))


def test_holm_by_hand():
    p = np.array([0.01, 0.04, 0.03, np.nan])
    # sorted 0.01*3=0.03, 0.03*2=0.06, 0.04*1 -> max(0.06, 0.04)=0.06
    assert S.holm(p)[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert np.isnan(S.holm(p)[3])


def test_paired_comparisons_direction_and_family():
    rows = []
    for seed in range(4):
        for target, kl in (("human_uncertainty", 0.5), ("human_majority", 0.9)):
            rows.append(dict(corpus="mnist", model="lenet", target=target, seed=seed, split="test",
                             eval_set="human_soft", stratum="HLV", metric="kl", value=kl + 0.01 * seed * (target == "human_majority")))
    tests = S.paired_comparisons(pd.DataFrame(rows), [("human_uncertainty", "human_majority")], alpha=0.05)
    row = tests.iloc[0]
    assert row["improved"] and row["significant"] and row["mean_diff"] < 0
    assert row["n_pairs"] == 4
