"""Training targets: the two controls (entropy-matched label smoothing, human labels shuffled
within each majority class), on hand-made study tables."""

from __future__ import annotations

import numpy as np
import pytest

from softdigits import study_table
from softdigits.io import DataContractError
from softdigits.training import targets


def study(rows: list[tuple[str, int, list[float]]]) -> targets.Study:
    """A Study from (split, majority class, 11-class human soft label) rows."""
    n = len(rows)
    soft = np.zeros((n, 11))
    for i, (_, _, label) in enumerate(rows):
        soft[i, : len(label)] = label
    majority = np.array([c for _, c, _ in rows])
    return study_table.Study(
        path="hand.parquet",
        image_id=np.array([f"img{i}" for i in range(n)], dtype=object),
        split=np.array([s for s, _, _ in rows], dtype=object),
        pixels=np.zeros((n, 784), np.uint8),
        vectors={
            "label_dist": np.eye(10)[np.minimum(majority, 9)],
            "soft_label": soft,
            "soft_label_yes_unc_equal": soft,
        },
        soft_label_argmax=majority,
        labels_origin="simulated",
    )


def hand_entropy(p):
    p = np.asarray(p, dtype=np.float64)
    return float(-np.sum(p[p > 0] * np.log(p[p > 0])))


# ----------------------------------------------------------------- label smoothing


def test_epsilon_matches_the_mean_human_entropy_of_two_train_images():
    # Train: 0.8/0.2 on digits 3/5 and 0.5/0.5 on digits 7/1. By hand:
    # H1 = -(0.8 ln 0.8 + 0.2 ln 0.2) = 0.500402, H2 = ln 2 = 0.693147, mean 0.596775.
    s = study(
        [
            ("train", 3, [0, 0, 0, 0.8, 0, 0.2]),
            ("train", 7, [0, 0.5, 0, 0, 0, 0, 0, 0.5]),
            ("val", 2, [0, 0, 1.0]),
            ("test", 4, [0, 0, 0, 0, 1.0]),
        ]
    )
    built = targets.build_targets(s, "label_smoothing", "renormalise")
    assert built.details["matched_mean_entropy"] == pytest.approx(0.596775, abs=1e-6)
    eps = built.details["epsilon"]
    assert eps == pytest.approx(0.124447, abs=1e-6)
    # Every smoothed target: 1 - eps + eps/10 on the majority, eps/10 elsewhere.
    major, minor = 1 - eps + eps / 10, eps / 10
    for row, digit in ((0, 3), (1, 7), (2, 2)):
        expected = np.full(10, minor)
        expected[digit] = major
        np.testing.assert_allclose(built.values[row], expected, atol=1e-7)
    train_entropy = np.mean([hand_entropy(built.values[r].astype(np.float64)) for r in (0, 1)])
    assert abs(train_entropy - 0.5967748020) < 1e-6
    assert built.usable.all()


def test_epsilon_ignores_val_and_test_labels_and_not_a_digit_mass():
    base = [("train", 3, [0, 0, 0, 0.8, 0, 0.2]), ("train", 7, [0, 0.5, 0, 0, 0, 0, 0, 0.5])]
    a = targets.build_targets(study(base + [("val", 2, [0.1] * 10)]), "label_smoothing", "renormalise")
    # A not-a-digit share is dropped before the entropy, as training drops it.
    b = targets.build_targets(
        study([("train", 3, [0, 0, 0, 0.4, 0, 0.1, 0, 0, 0, 0, 0.5]), base[1]]), "label_smoothing", "renormalise"
    )
    assert a.details["epsilon"] == pytest.approx(b.details["epsilon"], abs=1e-12)


def test_epsilon_is_matched_over_the_images_the_run_trains_on():
    """A train image with a not-a-digit majority has no smoothed target, so its soft label
    (which has digit mass) must not enter the matched entropy either."""
    base = [("train", 3, [0, 0, 0, 0.8, 0, 0.2]), ("train", 7, [0, 0.5, 0, 0, 0, 0, 0, 0.5])]
    with_rejected = base + [("train", 10, [0, 0, 0.25, 0.25, 0, 0, 0, 0, 0, 0, 0.5])]
    a = targets.build_targets(study(base), "label_smoothing", "renormalise")
    b = targets.build_targets(study(with_rejected), "label_smoothing", "renormalise")
    assert b.details["n_matched_train_images"] == 2
    assert a.details["epsilon"] == pytest.approx(b.details["epsilon"], abs=1e-12)


def test_a_not_a_digit_majority_has_no_smoothed_target():
    s = study(
        [("train", 3, [0, 0, 0, 0.9, 0.1]), ("train", 10, [0, 0, 0.3, 0, 0, 0, 0, 0, 0, 0, 0.7]), ("val", 1, [0, 1.0])]
    )
    built = targets.build_targets(s, "label_smoothing", "renormalise")
    assert built.usable.tolist() == [True, False, True]
    assert not built.values[1].any()


def test_matched_epsilon_bounds_and_a_one_hot_corpus():
    assert targets.matched_epsilon(0.0) == 0.0
    assert targets.matched_epsilon(np.log(10)) == pytest.approx(0.9)
    for h in (0.01, 0.5, 1.5, 2.2):
        assert targets.smoothed_entropy(targets.matched_epsilon(h)) == pytest.approx(h, abs=1e-10)
    with pytest.raises(ValueError, match="log 10"):
        targets.matched_epsilon(3.0)
    s = study([("train", 3, [0, 0, 0, 1.0]), ("val", 1, [0, 1.0])])
    assert targets.build_targets(s, "label_smoothing", "renormalise").details["epsilon"] == 0.0


# ----------------------------------------------------------------- shuffled labels

A, B, C, D = ([0, 0, 0, 0.9, 0.1], [0, 0, 0, 0.6, 0.4], [0, 0, 0.3, 0.7], [0, 0, 0, 0.5, 0, 0.5])
SHUFFLE_ROWS = (
    [("train", 3, x) for x in (A, A, B, C, D, B)]  # most frequent value twice of 6: all can change
    + [("train", 8, [0] * 8 + [0.8, 0.2]), ("train", 8, [0] * 8 + [0.7, 0.3])]  # two distinct: swap
    + [("train", 5, x) for x in ([0] * 5 + [1.0],) * 4 + ([0] * 5 + [0.6, 0.4],)]  # 4 of 5 identical
    + [("train", 1, [0, 1.0])]  # alone in its class
    + [("val", 3, A), ("val", 3, B), ("test", 3, A), ("test", 3, C)]
)


def shuffled(seed=0, rows=SHUFFLE_ROWS, mode="renormalise"):
    s = study(rows)
    return (
        s,
        targets.build_targets(s, "human_uncertainty", mode),
        targets.build_targets(s, "human_shuffled", mode, {"shuffle_seed": seed}),
    )


def test_shuffle_keeps_each_class_label_multiset_and_its_entropies():
    s, human, control = shuffled()
    for split in ("train", "val"):
        for c in np.unique(s.soft_label_argmax):
            rows = s.rows(split) & (s.soft_label_argmax == c)
            before = sorted(map(tuple, human.values[rows].tolist()))
            assert sorted(map(tuple, control.values[rows].tolist())) == before
            ent = sorted(hand_entropy(v) for v in control.values[rows])
            assert ent == pytest.approx(sorted(hand_entropy(v) for v in human.values[rows]))
    # Test images keep their own labels: evaluation never trains on them.
    np.testing.assert_array_equal(control.values[s.rows("test")], human.values[s.rows("test")])


def test_shuffle_is_a_uniform_permutation_within_each_class():
    """Over many seeds, each train image of class 3 receives each of its class's six labels
    about equally often (a uniform permutation), and one of the others never."""
    s = study(SHUFFLE_ROWS)
    train3 = np.flatnonzero(s.rows("train") & (s.soft_label_argmax == 3))
    counts = np.zeros((len(train3), len(train3)))
    rng = np.random.default_rng(0)
    for _ in range(3000):
        source = targets.permute_within_classes(s.soft_label_argmax[s.rows("train")], rng)
        for i, row in enumerate(train3):
            counts[i, np.flatnonzero(train3 == source[row])[0]] += 1
    assert counts.sum(axis=1).tolist() == [3000] * len(train3)
    assert np.abs(counts / 3000 - 1 / 6).max() < 0.035  # 1/6 each, within sampling noise
    _, _, control = shuffled()
    assert control.details["n_images"] == {"train": 14, "val": 2}
    assert 0 <= control.details["n_changed"]["train"] <= 14


def mixed_classes(n=400, seed=0):
    """Classes where most labels are one-hot and a few soft, as in the study tables."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        digit = i % 4
        label = [0.0] * 10
        if rng.random() < 0.3:
            other = (digit + 1 + rng.integers(9)) % 10
            w = rng.uniform(0.5, 0.9)
            label[digit], label[other] = w, 1 - w
        else:
            label[digit] = 1.0
        rows.append(("train", digit, label))
    return study(rows + [("val", 0, [1.0])])


def most_changed(classes, rng):
    """The construction a neutral control must not be: within each class, rows sorted by
    label and shifted by the most frequent label's count (as many labels change as possible)."""
    source = np.arange(len(classes))
    labels = mixed_classes().vectors["soft_label"][: len(classes)]
    for c in np.unique(classes):
        rows = np.flatnonzero(classes == c)
        rows = rows[rng.permutation(len(rows))]
        _, kind, counts = np.unique(labels[rows], axis=0, return_inverse=True, return_counts=True)
        rows = rows[np.argsort(rng.permutation(len(counts))[kind.reshape(-1)], kind="stable")]
        source[rows] = rows[(np.arange(len(rows)) + counts.max()) % len(rows)]
    return source


def test_the_shuffle_leaves_softness_unpaired_and_the_check_flags_one_that_reverses_it():
    s = mixed_classes()
    train = s.rows("train")
    human = targets.build_targets(s, "human_uncertainty", "renormalise")
    rhos = [
        targets.build_targets(s, "human_shuffled", "renormalise", {"shuffle_seed": seed}).details[
            "entropy_spearman_train"
        ]
        for seed in range(20)
    ]
    assert abs(np.mean(rhos)) < 0.05 and np.std(rhos) < 0.1
    # a permutation that changes as many labels as possible gives one-hot labels to the soft
    # images and the reverse: strongly negative, which the same statistic shows
    source = most_changed(s.soft_label_argmax[train], np.random.default_rng(0))
    own = human.values[train]
    assert targets.entropy_pairing(own, own[source]) < -0.3


def test_shuffle_is_seeded():
    rows = [("train", 3, [0, 0, 0, 1 - w, w]) for w in np.linspace(0.05, 0.45, 12)]
    _, _, a = shuffled(7, rows)
    _, _, b = shuffled(7, rows)
    _, _, c = shuffled(8, rows)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)


def test_shuffle_carries_unusable_labels_along():
    # Majority not-a-digit: one label has digit mass, one none; the usable flag moves with its label.
    rows = [
        ("train", 10, [0, 0, 0.2, 0, 0, 0, 0, 0, 0, 0, 0.8]),
        ("train", 10, [0] * 10 + [1.0]),
        ("train", 2, [0, 0, 1.0]),
        ("val", 2, [0, 0, 1.0]),
    ]
    seen = set()
    for seed in range(10):
        _, human, control = shuffled(seed, rows)
        assert human.usable.tolist() == [True, False, True, True]
        assert (control.usable == control.values.any(axis=1)).all()  # no usable row without a label
        seen.add(tuple(control.usable[:2]))
    assert seen == {(True, False), (False, True)}  # the two rows of class 10 swap under some seeds
    _, human, control = shuffled(0, rows, mode="exclude")
    assert control.usable.tolist() == human.usable.tolist() == [False, False, True, True]


def test_shuffled_target_needs_its_seed_and_unknown_targets_are_named():
    s = study(SHUFFLE_ROWS)
    with pytest.raises(ValueError, match="shuffle_seed"):
        targets.build_targets(s, "human_shuffled", "renormalise")
    with pytest.raises(ValueError, match="label_smoothing"):
        targets.target_distributions(s, "smoothed", "renormalise")


def test_no_train_label_to_match_is_an_error():
    s = study([("train", 10, [0] * 10 + [1.0]), ("val", 1, [0, 1.0])])
    with pytest.raises(DataContractError, match="hand.parquet"):
        targets.build_targets(s, "label_smoothing", "renormalise")
