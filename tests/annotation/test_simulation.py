"""The simulated panel: its signal, its answers, determinism and QC behaviour."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from softdigits import io
from softdigits.annotation import simulation as sim
from softdigits.annotation.aggregation import aggregate, attention_failures
from softdigits.annotation.campaign import design_campaign

CLEAN = sim.PanelParams(
    sure=0.55,
    floor=0.35,
    yes_mean=0.55,
    yes_sd=0.0,
    unsure_mean=0.3,
    unsure_sd=0.0,
    noise_mean=0.0,
    noise_sd=0.0,
    lapse_rate=0.0,
    inattentive_rate=0.0,
    returned_rate=0.0,
    duplicate_rate=0.0,
    rt_base_ms=400.0,
    rt_speed_sd=0.0,
    rt_conflict=1.0,
    rt_noise_sd=0.0,
)


def campaign(n_images=40, k=4, seed=0):
    ids = [f"x:{i}" for i in range(n_images)]
    gold = pd.DataFrame({"image_id": [f"g:{d}" for d in range(10)], "gold_label": range(10)})
    tasks = design_campaign(ids, gold, annotators_per_image=k, images_per_task=13, checks_per_task=3, seed=seed)
    signal = {i: np.eye(10)[n % 10] for n, i in enumerate(ids)}
    signal.update({f"g:{d}": np.eye(10)[d] for d in range(10)})
    return ids, tasks, signal


def test_knn_excludes_the_image_itself():
    reference = np.array([[0] * 4, [0] * 4, [10] * 4, [11] * 4], dtype=np.uint8)
    labels = np.array([1, 1, 7, 7])
    # query 0 equals reference row 0; without itself its nearest is row 1 (label 1)
    out = sim.knn_class_distribution(reference[[0, 2]], reference, labels, k=1, query_rows=np.array([0, 2]))
    np.testing.assert_allclose(out[0], np.eye(10)[1])
    np.testing.assert_allclose(out[1], np.eye(10)[7])  # row 3 is nearest to row 2
    out = sim.knn_class_distribution(reference[[0]], reference, labels, k=3, query_rows=np.array([0]))
    np.testing.assert_allclose(out[0][[1, 7]], [1 / 3, 2 / 3])


def test_kernel_votes_both_parents_of_a_blend_and_one_class_of_a_clear_digit():
    labels = np.array([[3, 3, 8, 8], [3, 3, 8, 8]])
    # a blend: its 3s and 8s are about as near; a clear 3: the 8s are much farther
    dist2 = np.array([[100.0, 101.0, 102.0, 103.0], [100.0, 101.0, 300.0, 310.0]])
    soft = sim.kernel_class_distribution(labels, dist2, tau=0.2)
    assert 0.4 < soft[0, 8] < 0.5 and soft[0, 3] + soft[0, 8] == pytest.approx(1.0)
    assert soft[1, 3] > 0.99
    np.testing.assert_allclose(sim.kernel_class_distribution(labels, dist2, tau=0.0)[1][[3, 8]], [0.5, 0.5])


def test_nearest_digits_are_sorted_with_true_distances():
    reference = np.array([[0] * 4, [3] * 4, [1] * 4], dtype=np.uint8)
    labels, dist2 = sim.nearest_digits(np.array([[0] * 4], dtype=np.uint8), reference, np.array([5, 6, 7]), k=3)
    assert labels.tolist() == [[5, 7, 6]]
    np.testing.assert_allclose(dist2, [[0.0, 4.0, 36.0]])
    # more neighbours asked than the reference has (a tiny run): all the others
    labels, _ = sim.nearest_digits(reference[[0]], reference, np.array([5, 6, 7]), k=10, query_rows=np.array([0]))
    assert labels.tolist() == [[7, 6]]


def test_nearest_digit_distances_are_exact_so_no_thread_count_changes_them():
    """In float32, `--cores 1` and `--cores 2` gave 2 of 6,440 reaction times that differed:
    BLAS summed the distances' matrix product in another order. On whole-number pixels every
    distance must equal integer arithmetic's, bit for bit, whatever the order of the sums."""
    rng = np.random.default_rng(0)
    query = rng.integers(0, 256, size=(40, 784), dtype=np.uint8)
    reference = rng.integers(0, 256, size=(300, 784), dtype=np.uint8)
    labels = rng.integers(0, 10, size=300)
    got_labels, got = sim.nearest_digits(query, reference, labels, k=5, chunk=16)
    exact = ((query[:, None, :].astype(np.int64) - reference[None].astype(np.int64)) ** 2).sum(-1)
    nearest = np.sort(exact, axis=1)[:, :5]
    assert np.array_equal(got, nearest.astype(np.float64))
    assert (labels[np.argsort(exact, axis=1, kind="stable")[:, :5]] == got_labels).mean() == 1.0


def test_pooled_view_sums_blocks():
    image = np.zeros((1, 784))
    image[0, :2] = 4.0  # row 0, columns 0-1: one 2 x 2 block holds 8
    out = sim.pooled(image, 2)
    assert out.shape == (1, 196) and out[0, 0] == 8.0 and out[0, 1:].sum() == 0
    with pytest.raises(ValueError, match="knn_pool"):
        sim.pooled(image, 3)


def test_record_distribution_weights_parent_classes():
    out = sim.record_class_distribution([[3, 8], [2, 2, 5]], [[0.25, 0.75], [0.2, 0.3, 0.5]])
    np.testing.assert_allclose(out[0][[3, 8]], [0.25, 0.75])
    np.testing.assert_allclose(out[1][[2, 5]], [0.5, 0.5])


def test_reference_digits_are_labelled_training_images():
    pixels = np.arange(4 * 784, dtype=np.int64).reshape(4, 784) % 251
    table = io.images_table(
        source="mnist",
        source_split=["train", "test", "train", "train"],
        source_index=np.arange(4),
        pixels=pixels.astype(np.uint8),
        label=np.array([1, 2, -1, 3]),
    )
    meta, ref_pixels = sim.reference_digits(table)
    assert meta["image_id"].tolist() == ["mnist:train:0", "mnist:train:3"]
    assert meta["label"].tolist() == [1, 3]
    np.testing.assert_array_equal(ref_pixels, pixels[[0, 3]])


def test_image_signal_blends_label_or_record_with_knn_of_real_digits():
    pixels = np.repeat(np.arange(6, dtype=np.uint8)[:, None] * 40, 784, axis=1)
    # the reference (real digits) is i0, i1, i3, i4: i2 is a generated image
    reference = pd.DataFrame({"image_id": ["i0", "i1", "i3", "i4"], "label": [0, 0, 9, 9]})
    images = pd.DataFrame({"image_id": [f"i{k}" for k in range(6)], "label": [0, 0, 6, 9, 9, 9]})
    records = pd.DataFrame({"image_id": ["i2"], "parent_labels": [[4, 5]], "mix_weights": [[0.5, 0.5]]})
    signal = sim.image_signal(
        images,
        pixels,
        ["i0", "i2"],
        reference,
        pixels[[0, 1, 3, 4]],
        k=2,
        knn_tau=0.0,
        label_weight=0.5,
        record_weight=0.2,
        records=records,
    )
    # i0: label 0; its neighbours without itself are i1 (0) and i3 (9)
    np.testing.assert_allclose(signal["i0"], 0.5 * np.eye(10)[0] + 0.5 * (np.eye(10)[0] + np.eye(10)[9]) / 2)
    # i2: 0.2 * record (4: .5, 5: .5) + 0.8 * k-NN (i1 -> 0, i3 -> 9); its label 6 (the
    # labelling ensemble's) is not used
    expected = np.zeros(10)
    expected[[4, 5]] = 0.1
    expected[[0, 9]] = 0.4
    np.testing.assert_allclose(signal["i2"], expected)


def test_clean_panel_on_clear_images_agrees_unanimously():
    ids, tasks, signal = campaign()
    raw = sim.simulate_panel(tasks, signal, CLEAN, seed=0)
    assert raw["simulated"].all()
    assert (raw.groupby(["annotator_id", "image_id"]).size() == 10).all()
    labels, qc = aggregate(raw)
    assert qc.n_excluded == 0
    assert (labels["n_annotators"] == 4).all() and not labels["hlv"].any()
    expected = [int(i.split(":")[1]) % 10 for i in labels["image_id"]]
    assert labels["soft_label_argmax"].tolist() == expected
    assert (raw["reaction_time_ms"] > 0).all()


def test_ambiguous_signal_gives_unsure_and_hlv():
    ids, tasks, signal = campaign()
    two_way = np.zeros(10)
    two_way[[1, 7]] = [0.6, 0.4]
    signal.update({i: two_way for i in ids})
    labels, _ = aggregate(sim.simulate_panel(tasks, signal, CLEAN, seed=0))
    # top class 1 (0.6 >= sure): yes; class 7 (0.4, between unsure and yes): unsure
    np.testing.assert_allclose(np.stack(labels["soft_label"])[:, [1, 7]], [[2 / 3, 1 / 3]] * 40, rtol=1e-6)
    assert labels["hlv"].all() and (labels["pct_ann_unsure"] == 1).all()
    assert labels["human_uncert_mean"].eq(0.1).all()


def test_inattentive_participants_fail_the_checks():
    ids, tasks, signal = campaign()
    params = dataclasses.replace(CLEAN, inattentive_rate=1.0)
    raw = sim.simulate_panel(tasks, signal, params, seed=0)
    qc = attention_failures(raw)
    assert qc.n_excluded >= qc.n_annotators - 1  # a random clicker passes 3 checks ~never


def test_recruitment_spreads_annotators_per_image_and_is_deterministic():
    ids, tasks, signal = campaign(n_images=200, k=6)
    params = dataclasses.replace(CLEAN, returned_rate=0.2, duplicate_rate=0.2, noise_mean=0.1, lapse_rate=0.01)
    raw = sim.simulate_panel(tasks, signal, params, seed=5)
    counts = raw[~raw["is_attention_check"]].groupby("image_id")["annotator_id"].nunique()
    assert counts.min() < 6 < counts.max()
    pd.testing.assert_frame_equal(raw, sim.simulate_panel(tasks, signal, params, seed=5))
    assert not raw.equals(sim.simulate_panel(tasks, signal, params, seed=6))


def test_params_from_config_requires_every_key():
    config = dataclasses.asdict(CLEAN)
    assert sim.PanelParams.from_config(config) == CLEAN
    del config["lapse_rate"]
    with pytest.raises(KeyError):
        sim.PanelParams.from_config(config)
