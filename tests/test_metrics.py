"""Metric functions against values computed by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from softdigits import metrics as M
from softdigits.io import write_table


def test_kl_zero_reference_terms_vanish_and_matches_hand_value():
    p = np.array([[0.5, 0.5, 0.0]])
    q = np.array([[0.25, 0.25, 0.5]])
    # 0.5 ln(0.5/0.25) * 2; the zero term contributes nothing
    assert M.kl_divergence(p, q, eps=1e-12)[0] == pytest.approx(math.log(2), rel=1e-9)


def test_kl_clips_model_zeros_at_eps():
    p = np.array([[1.0, 0.0]])
    q = np.array([[0.0, 1.0]])
    eps = 1e-6
    qc = np.array([eps, 1.0]) / (1 + eps)
    assert M.kl_divergence(p, q, eps=eps)[0] == pytest.approx(-math.log(qc[0]))
    assert np.isfinite(M.kl_divergence(p, q, eps=eps)).all()


def test_kl_identical_is_zero():
    p = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    assert M.kl_divergence(p, p) == pytest.approx([0.0, 0.0], abs=1e-7)


def test_jsd_base2_bounds_and_hand_value():
    p = np.array([[1.0, 0.0], [0.5, 0.5], [0.5, 0.5]])
    q = np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]])
    jsd = M.js_divergence(p, q)
    assert jsd[0] == pytest.approx(1.0)  # disjoint supports: exactly one bit
    assert jsd[1] == pytest.approx(0.0)
    # m = (0.75, 0.25): 0.5*[0.5 log2(0.5/0.75) + 0.5 log2(0.5/0.25)] + 0.5*[log2(1/0.75)]
    hand = 0.5 * (0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(2)) + 0.5 * math.log2(1 / 0.75)
    assert jsd[2] == pytest.approx(hand)
    rng = np.random.default_rng(0)
    a, b = rng.dirichlet(np.ones(10) * 0.1, 500), rng.dirichlet(np.ones(10) * 0.1, 500)
    j = M.js_divergence(a, b)
    assert (j >= 0).all() and (j <= 1).all()
    assert j == pytest.approx(M.js_divergence(b, a))


def test_brier_sums_over_classes_and_pads_not_a_digit():
    q = np.array([[0.7, 0.2, 0.1]])
    assert M.brier(q, np.array([[1.0, 0.0, 0.0]]))[0] == pytest.approx(0.09 + 0.04 + 0.01)
    # a 4th (not-a-digit) target class the model cannot output
    assert M.brier(q, np.array([[0, 0, 0, 1.0]]))[0] == pytest.approx(0.49 + 0.04 + 0.01 + 1.0)


def test_correct_counts_unpredictable_class_as_wrong():
    q = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert M.correct(q, np.array([0, 1, 2])).tolist() == [True, True, False]


def test_ece_and_reliability_bins_by_hand():
    q = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.55, 0.45]])
    labels = np.array([0, 1, 0, 0])
    bins = M.reliability_bins(q, labels, n_bins=10)
    top = bins.loc[9]
    assert top["count"] == 2 and top["accuracy"] == 0.5 and top["mean_confidence"] == pytest.approx(0.95)
    # bin (0.5, 0.6]: conf 0.55, accuracy 1
    assert bins.loc[5, "count"] == 2 and bins.loc[5, "accuracy"] == 1.0
    assert M.expected_calibration_error(q, labels, 10) == pytest.approx(0.5 * 0.45 + 0.5 * 0.45)
    assert bins["count"].sum() == 4


def study_frame():
    soft = np.zeros((4, 11))
    soft[0, 3] = 1.0                       # NoHLV, digit 3
    soft[1, [1, 7]] = [0.6, 0.4]           # HLV, majority 1
    soft[2, [5, 10]] = [0.5, 0.5]          # HLV, some not-a-digit mass
    soft[3, 10] = 1.0                      # pure not-a-digit
    label_dist = np.eye(10)[[3, 7, 5, 2]]
    return pd.DataFrame({
        "image_id": ["a", "b", "c", "d"], "split": "test", "label": [3, 7, 5, 2],
        "label_dist": list(label_dist), "soft_label": list(soft), "soft_label_yes_unc_equal": list(soft),
        "soft_label_argmax": [3, 1, 5, 10], "human_uncert_mean": [0.0, 0.1, 0.2, 0.3],
        "pct_ann_unsure": [0.0, 0.5, 0.5, 1.0], "hlv": [False, True, True, True], "simulated": True,
    })


def test_evaluate_predictions_renormalise_counts_not_a_digit_wrong():
    refs = M.References(study_frame(), "soft_label", "renormalise")
    probs = np.full((4, 10), 0.0)
    probs[0, 3] = probs[1, 1] = probs[2, 5] = probs[3, 2] = 1.0
    got, bins = M.evaluate_predictions(refs, np.array(["a", "b", "c", "d"]), probs, n_bins=15, eps=1e-8, where="t")
    val = got.set_index(["eval_set", "stratum", "metric"])["value"]
    n = got.set_index(["eval_set", "stratum", "metric"])["n_images"]
    assert val["orig", "all", "accuracy"] == pytest.approx(0.75)   # b predicted 1, original 7
    assert val["human", "all", "accuracy"] == pytest.approx(0.75)  # d is not a digit: wrong
    assert val["human", "HLV", "accuracy"] == pytest.approx(2 / 3)
    assert n["human_soft", "all", "kl"] == 3                        # d has no digit mass
    # b: KL((.6,.4) || (1, eps)) with eps clipping; c: renormalised to one-hot 5 -> ~0
    kl_b = M.kl_divergence(np.eye(10)[1] * 0.6 + np.eye(10)[7] * 0.4, probs[[1]], 1e-8)[0]
    assert val["human_soft", "HLV", "kl"] == pytest.approx(kl_b / 2, rel=1e-6)
    assert val["human", "all", "brier"] == pytest.approx((0 + 0 + 0 + 2) / 4)
    assert set(bins["stratum"]) == {"all", "HLV", "NoHLV"}


def test_evaluate_predictions_exclude_drops_not_a_digit_images():
    refs = M.References(study_frame(), "soft_label", "exclude")
    probs = np.eye(10)[[3, 1, 5, 2]]
    got, _ = M.evaluate_predictions(refs, np.array(["a", "b", "c", "d"]), probs, n_bins=15, eps=1e-8, where="t")
    val = got.set_index(["eval_set", "stratum", "metric"])
    assert val.loc[("human", "all", "accuracy"), "value"] == 1.0
    assert val.loc[("human", "all", "accuracy"), "n_images"] == 3


def test_evaluate_predictions_errors_name_the_problem():
    refs = M.References(study_frame(), "soft_label", "renormalise")
    with pytest.raises(ValueError, match="run.parquet: image_id 'zz'"):
        M.evaluate_predictions(refs, np.array(["zz"]), np.eye(10)[[0]], n_bins=15, eps=1e-8, where="run.parquet")
    bad = np.full((1, 10), 0.2)
    with pytest.raises(ValueError, match="row 0 is not a probability vector"):
        M.evaluate_predictions(refs, np.array(["a"]), bad, n_bins=15, eps=1e-8, where="run.parquet")


def test_read_study_and_labels_origin(tmp_path):
    path = tmp_path / "study.parquet"
    write_table(study_frame(), path, metadata={"labels_origin": "simulated"})
    assert len(M.read_study(path)) == 4
    assert M.labels_origin(path) == "simulated"
    assert "SIMULATED" in M.labels_sentence({"mnist": "simulated"})
    write_table(study_frame(), path, metadata={"labels_origin": "campaign"})
    with pytest.raises(ValueError, match="disagrees with the 'simulated' column"):
        M.labels_origin(path)
    write_table(study_frame().drop(columns="hlv"), path, metadata={"labels_origin": "simulated"})
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['hlv'\]"):
        M.read_study(path)
