"""Seed summaries, paired tests, Holm correction."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from softdigits.evaluation import stats as S


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
            rows.append(
                dict(
                    corpus="mnist",
                    model="lenet",
                    target=target,
                    seed=seed,
                    split="test",
                    eval_set="human_soft",
                    stratum="HLV",
                    metric="kl",
                    value=kl + 0.01 * seed * (target == "human_majority"),
                )
            )
    tests = S.paired_comparisons(pd.DataFrame(rows), [("human_uncertainty", "human_majority")], alpha=0.05)
    row = tests.iloc[0]
    assert row["improved"] and row["significant"] and row["mean_diff"] < 0
    assert row["n_pairs"] == 4


# ------------------------------------------- post-hoc views: controls and temperature


def posthoc_frames(targets=("human_uncertainty", "label_smoothing", "human_majority"), seeds=range(4)):
    """Per-run frames as evaluate_runs writes them: metrics, metrics after T, selective, disagreement."""
    rng = np.random.default_rng(0)
    base = dict(corpus="mnist", model="lenet", split="test")
    metrics, scaled, selective, disagreement = [], [], [], []
    for target, seed in ((t, s) for t in targets for s in seeds):
        kl = {"human_uncertainty": 0.3, "label_smoothing": 0.6}.get(target, 0.9) + 0.01 * seed
        run = base | dict(target=target, seed=seed)
        metrics.append(run | dict(eval_set="human_soft", stratum="HLV", metric="kl", value=kl))
        scaled.append(run | dict(eval_set="human_soft", stratum="HLV", metric="kl", value=kl - 0.1 - 0.001 * seed))
        for cal in ("none", "temperature"):
            selective.append(run | dict(calibration=cal, stratum="all", metric="aurc", value=rng.uniform(0, 0.1)))
            disagreement.append(run | dict(calibration=cal, metric="hlv_auroc", value=rng.uniform(0.5, 1)))
    return [pd.DataFrame(f) for f in (metrics, scaled, selective, disagreement)]


def test_posthoc_long_labels_calibration_and_reference():
    long = S.posthoc_long(*posthoc_frames())
    assert set(long["calibration"]) == {"none", "temperature"}
    assert set(long.loc[long["metric"] == "aurc", "eval_set"]) == {"human"}
    auroc = long[long["metric"] == "hlv_auroc"]
    assert set(auroc["eval_set"]) == {"human"} and set(auroc["stratum"]) == {"all"}
    assert len(long) == 3 * 4 * (1 + 1 + 2 + 2)


def test_all_paired_tests_families_and_before_after_by_hand():
    long = S.posthoc_long(*posthoc_frames())
    tests = S.all_paired_tests(
        long,
        paper=[("human_uncertainty", "human_majority")],
        controls=[
            ("human_uncertainty", "label_smoothing"),
            ("human_uncertainty", "human_shuffled"),
        ],  # not trained: skipped
        alpha=0.05,
    )
    assert set(tests["family"]) == {"paper", "controls", "temperature"}
    assert "human_shuffled" not in set(tests["control"])
    kl = tests[(tests["metric"] == "kl") & (tests["calibration"] == "none")].set_index("family")
    # human_uncertainty - label_smoothing = -0.3 on every seed (up to rounding): p ~ 0
    assert kl.loc["controls", "mean_diff"] == pytest.approx(-0.3) and kl.loc["controls", "p_t"] < 1e-10
    assert kl.loc["controls", "improved"] and kl.loc["controls", "significant"]
    # after - before T on KL: -0.1 - 0.001 * seed, seeds 0..3 -> mean -0.1015, as ttest_rel says
    after = tests[
        (tests["family"] == "temperature") & (tests["metric"] == "kl") & (tests["treatment"] == "label_smoothing")
    ].iloc[0]
    assert after["calibration"] == S.AFTER_T and after["control"] == "label_smoothing"
    assert after["mean_diff"] == pytest.approx(-0.1015)
    d = -0.1 - 0.001 * np.arange(4)
    assert after["p_t"] == pytest.approx(sps.ttest_1samp(d, 0).pvalue)
    # Holm within the temperature family: the three targets' KL tests of (mnist, test, kl, human_soft)
    fam = tests[(tests["family"] == "temperature") & (tests["metric"] == "kl")]
    assert len(fam) == 3 and fam["p_holm"].tolist() == pytest.approx(S.holm(fam["p_t"].to_numpy()).tolist())
    # the paper family's p-values do not move when the controls family is added or dropped
    alone = S.all_paired_tests(long, paper=[("human_uncertainty", "human_majority")], controls=[], alpha=0.05)
    pd.testing.assert_series_equal(
        alone.query("family == 'paper'")["p_holm"].reset_index(drop=True),
        tests.query("family == 'paper'")["p_holm"].reset_index(drop=True),
    )


def test_all_paired_tests_when_nothing_can_be_compared():
    long = S.posthoc_long(*posthoc_frames(targets=("original",)))
    tests = S.all_paired_tests(long, paper=[("human_uncertainty", "original")], controls=[], alpha=0.05)
    assert set(tests["family"]) == {"temperature"}  # only the before/after tests remain
    empty = S.all_paired_tests(long[long["calibration"] == "none"], paper=[], controls=[], alpha=0.05)
    assert empty.empty and empty["p_holm"].dtype == np.float64


def test_a_target_missing_from_one_cell_is_skipped_there_only():
    long = S.posthoc_long(*posthoc_frames())
    long = pd.concat([long, long.assign(model="simple_ffn")], ignore_index=True)
    long = long[~((long["model"] == "simple_ffn") & (long["target"] == "label_smoothing"))]
    long = long[~((long["seed"] == 0) & (long["target"] == "human_uncertainty"))]  # a seed without a pair
    tests = S.paired_comparisons(long, [("human_uncertainty", "label_smoothing")], alpha=0.05, by=("calibration",))
    assert set(tests["model"]) == {"lenet"} and (tests["n_pairs"] == 3).all()
