"""Training targets: the two controls of issue 15 (entropy-matched label smoothing,
human labels shuffled within each majority class), on hand-made study tables."""

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


def test_shuffle_changes_every_label_where_possible():
    s, human, control = shuffled()
    changed = (control.values != human.values).any(axis=1)
    cls = s.soft_label_argmax
    train = s.rows("train")
    assert changed[train & (cls == 3)].all()  # 6 images, no value more than 3 times
    assert changed[train & (cls == 8)].all()
    # Class 5: 4 identical labels + 1 other: at most 2 * (5 - 4) = 2 images can change.
    assert changed[train & (cls == 5)].sum() == 2
    assert not changed[train & (cls == 1)].any()  # alone in its class
    assert changed[s.rows("val")].all()  # val is shuffled within val: A <-> B
    assert control.details["n_changed"] == {"train": 10, "val": 2}
    assert control.details["shuffle_seed"] == 0


def test_shuffle_is_seeded():
    rows = [("train", 3, [0, 0, 0, 1 - w, w]) for w in np.linspace(0.05, 0.45, 12)]
    _, _, a = shuffled(7, rows)
    _, _, b = shuffled(7, rows)
    _, _, c = shuffled(8, rows)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)


def test_shuffle_carries_unusable_labels_along():
    # Majority not-a-digit: one label has digit mass, one none; under renormalise they swap.
    rows = [
        ("train", 10, [0, 0, 0.2, 0, 0, 0, 0, 0, 0, 0, 0.8]),
        ("train", 10, [0] * 10 + [1.0]),
        ("train", 2, [0, 0, 1.0]),
        ("val", 2, [0, 0, 1.0]),
    ]
    _, human, control = shuffled(0, rows)
    assert human.usable.tolist() == [True, False, True, True]
    assert control.usable.tolist() == [False, True, True, True]
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
