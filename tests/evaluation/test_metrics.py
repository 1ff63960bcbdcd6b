"""Metric functions against values computed by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from softdigits import study_table
from softdigits.evaluation import metrics as M
from softdigits.evaluation import runs as E
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
    soft[0, 3] = 1.0  # NoHLV, digit 3
    soft[1, [1, 7]] = [0.6, 0.4]  # HLV, majority 1
    soft[2, [5, 10]] = [0.5, 0.5]  # HLV, some not-a-digit mass
    soft[3, 10] = 1.0  # pure not-a-digit
    label_dist = np.eye(10)[[3, 7, 5, 2]]
    return pd.DataFrame(
        {
            "image_id": ["a", "b", "c", "d"],
            "split": "test",
            "label": [3, 7, 5, 2],
            "label_dist": list(label_dist),
            "soft_label": list(soft),
            "soft_label_yes_unc_equal": list(soft),
            "soft_label_argmax": [3, 1, 5, 10],
            "human_uncert_mean": [0.0, 0.1, 0.2, 0.3],
            "pct_ann_unsure": [0.0, 0.5, 0.5, 1.0],
            "hlv": [False, True, True, True],
            "simulated": True,
        }
    )


def test_evaluate_predictions_renormalise_counts_not_a_digit_wrong():
    refs = E.References(study_frame(), "soft_label", "renormalise")
    probs = np.full((4, 10), 0.0)
    probs[0, 3] = probs[1, 1] = probs[2, 5] = probs[3, 2] = 1.0
    got, bins = E.evaluate_predictions(refs, np.array(["a", "b", "c", "d"]), probs, n_bins=15, eps=1e-8, where="t")
    val = got.set_index(["eval_set", "stratum", "metric"])["value"]
    n = got.set_index(["eval_set", "stratum", "metric"])["n_images"]
    assert val["orig", "all", "accuracy"] == pytest.approx(0.75)  # b predicted 1, original 7
    assert val["human", "all", "accuracy"] == pytest.approx(0.75)  # d is not a digit: wrong
    assert val["human", "HLV", "accuracy"] == pytest.approx(2 / 3)
    assert n["human_soft", "all", "kl"] == 3  # d has no digit mass
    # b: KL((.6,.4) || (1, eps)) with eps clipping; c: renormalised to one-hot 5 -> ~0
    kl_b = M.kl_divergence(np.eye(10)[1] * 0.6 + np.eye(10)[7] * 0.4, probs[[1]], 1e-8)[0]
    assert val["human_soft", "HLV", "kl"] == pytest.approx(kl_b / 2, rel=1e-6)
    assert val["human", "all", "brier"] == pytest.approx((0 + 0 + 0 + 2) / 4)
    assert set(bins["stratum"]) == {"all", "HLV", "NoHLV"}


def test_evaluate_predictions_exclude_drops_not_a_digit_images():
    refs = E.References(study_frame(), "soft_label", "exclude")
    probs = np.eye(10)[[3, 1, 5, 2]]
    got, _ = E.evaluate_predictions(refs, np.array(["a", "b", "c", "d"]), probs, n_bins=15, eps=1e-8, where="t")
    val = got.set_index(["eval_set", "stratum", "metric"])
    assert val.loc[("human", "all", "accuracy"), "value"] == 1.0
    assert val.loc[("human", "all", "accuracy"), "n_images"] == 3


def test_evaluate_predictions_errors_name_the_problem():
    refs = E.References(study_frame(), "soft_label", "renormalise")
    with pytest.raises(ValueError, match="run.parquet: image_id 'zz'"):
        E.evaluate_predictions(refs, np.array(["zz"]), np.eye(10)[[0]], n_bins=15, eps=1e-8, where="run.parquet")
    bad = np.full((1, 10), 0.2)
    with pytest.raises(ValueError, match="row 0 is not a probability vector"):
        E.evaluate_predictions(refs, np.array(["a"]), bad, n_bins=15, eps=1e-8, where="run.parquet")


def test_read_study_and_labels_origin(tmp_path):
    path = tmp_path / "study.parquet"
    write_table(study_frame(), path, metadata={"labels_origin": "simulated"})
    assert len(study_table.read_study_frame(path)) == 4
    assert study_table.labels_origin(path) == "simulated"
    assert "SIMULATED" in study_table.labels_sentence({"mnist": "simulated"})
    write_table(study_frame(), path, metadata={"labels_origin": "campaign"})
    with pytest.raises(ValueError, match="disagrees with the 'simulated' column"):
        study_table.labels_origin(path)
    write_table(study_frame().drop(columns="hlv"), path, metadata={"labels_origin": "simulated"})
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['hlv'\]"):
        study_table.read_study_frame(path)


# ------------------------------------------------- post-hoc views


def posthoc_case(tmp_path, target, sharpen=2.0, shuffle_seed=0, label_seed=None):
    """A synthetic study and one run whose val/test probabilities are the run's own
    val targets sharpened by `sharpen` (so the fitted T is about `sharpen`)."""

    from study_fixture import write_study

    from softdigits.io import write_table as write
    from softdigits.training import run_outputs, targets

    study_path = write_study(tmp_path / "mnist.parquet", sizes={"train": 60, "val": 80, "test": 80})
    study = study_table.read_study(study_path)
    seed = shuffle_seed if label_seed is None else label_seed
    values, _ = targets.target_distributions(study, target, "renormalise", {"shuffle_seed": seed})
    scored = ~study.rows("train")
    # Images without a target (no digit mass, NoHLV in the fixture) get a confident one-hot.
    base = np.where(values[scored].sum(axis=1, keepdims=True) > 0, values[scored], np.eye(10)[0])
    with np.errstate(divide="ignore"):  # a zero stays zero; log(probs) floors it again
        probs = np.exp(sharpen * np.log(base))
    probs /= probs.sum(axis=1, keepdims=True)
    path = tmp_path / "predictions.parquet"
    write(run_outputs.predictions_table(study.image_id[scored], study.split[scored], probs), path)
    frames = E.posthoc_evaluation(
        study_path,
        [("simple_ffn", target, 0, path)],
        human_column="soft_label",
        not_a_digit="renormalise",
        target_params={target: {"shuffle_seed": shuffle_seed}},
        splits=["test", "val"],
        n_bins=15,
        eps=1e-8,
    )
    return frames, study_path, path


def test_posthoc_fits_t_on_the_run_s_own_val_targets(tmp_path):
    frames, study_path, path = posthoc_case(tmp_path, "human_uncertainty")
    t = frames["temperature"].iloc[0]
    assert t["temperature"] == pytest.approx(2.0, abs=1e-3)
    assert t["val_nll_after"] < t["val_nll_before"] and not t["at_bound"]
    # The scaled metrics share the layout of evaluate_runs' metrics, row for row.
    plain, _ = E.evaluate_runs(
        study_path,
        [("simple_ffn", "human_uncertainty", 0, path)],
        human_column="soft_label",
        not_a_digit="renormalise",
        splits=["test", "val"],
        n_bins=15,
        eps=1e-8,
    )
    scaled = frames["metrics_temperature"]
    assert list(scaled.columns) == list(plain.columns)
    key = ["split", "eval_set", "stratum", "metric"]
    assert scaled[key].equals(plain[key])
    both = plain.merge(scaled, on=key, suffixes=("", "_t")).set_index(key)
    acc = both.xs("accuracy", level="metric")
    np.testing.assert_allclose(acc["value"], acc["value_t"])  # T never changes the argmax
    kl = both.loc[("test", "human_soft", "all", "kl")]
    assert kl["value_t"] < kl["value"]  # un-sharpening moves the predictions back to the labels


def test_posthoc_fits_human_shuffled_on_the_shuffled_val_labels(tmp_path):
    right, *_ = posthoc_case(tmp_path / "a", "human_shuffled", shuffle_seed=3)
    assert right["temperature"]["temperature"].iloc[0] == pytest.approx(2.0, abs=1e-3)
    # Predictions made from another shuffle: the fit against seed 3's labels is worse.
    wrong, *_ = posthoc_case(tmp_path / "b", "human_shuffled", shuffle_seed=3, label_seed=4)
    assert wrong["temperature"]["val_nll_after"].iloc[0] > right["temperature"]["val_nll_after"].iloc[0] + 0.05


def test_posthoc_selective_and_disagreement_rows(tmp_path):
    frames, *_ = posthoc_case(tmp_path, "human_uncertainty")
    sel = frames["selective"].set_index(["split", "calibration", "stratum", "metric"])["value"]
    for calibration in E.CALIBRATIONS:
        for stratum in ("all", "HLV", "NoHLV"):
            assert 0 <= sel["test", calibration, stratum, "eaurc"] <= sel["test", calibration, stratum, "aurc"] <= 1
    curve = frames["risk_coverage"].query("split == 'test' and calibration == 'none' and stratum == 'all'")
    assert curve["coverage"].iloc[-1] == 1.0 and len(curve) == 80
    assert curve["risk"].mean() == pytest.approx(sel["test", "none", "all", "aurc"])
    dis = frames["disagreement"].set_index(["split", "calibration", "metric"])["value"]
    # Predictions are the human labels sharpened: entropy ranks follow the human entropy.
    assert dis["test", "none", "entropy_spearman"] > 0.9
    assert dis["test", "none", "hlv_auroc"] == 1.0  # every HLV image is less certain than every NoHLV one
