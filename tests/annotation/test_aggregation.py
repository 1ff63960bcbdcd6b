"""QC and aggregation against hand-computed examples (paper section 2.3, Appendix C)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from softdigits.annotation import aggregation
from softdigits.annotation.aggregation import aggregate, labels_table, read_labels
from softdigits.io import write_table


def answers(annotator, image, yes=(), unsure=(), check=False, gold=None, simulated=False):
    """Ten rows: one annotator's answers to every class of one image."""
    rows = []
    for c in range(10):
        response = "yes" if c in yes else "unsure" if c in unsure else "no"
        rows.append(
            {
                "annotator_id": annotator,
                "image_id": image,
                "class": c,
                "response": response,
                "is_attention_check": check,
                "reaction_time_ms": 900.0,
                "gold_label": gold if check else pd.NA,
                "simulated": simulated,
            }
        )
    return rows


def raw(*groups):
    df = pd.DataFrame([row for group in groups for row in group])
    df["gold_label"] = df["gold_label"].astype("Int64")
    return df


def label_row(labels, image):
    return labels.set_index("image_id").loc[image]


def test_single_yes_is_one_hot_and_no_hlv():
    labels, qc = aggregate(raw(answers("a", "img", yes=[3]), answers("b", "img", yes=[3])))
    row = label_row(labels, "img")
    expected = np.eye(11)[3]
    for name in aggregation.WEIGHTINGS:
        np.testing.assert_allclose(row[name], expected)
    assert row["soft_label_argmax"] == 3
    assert not row["hlv"]
    assert row["human_uncert_mean"] == 0 and row["pct_ann_unsure"] == 0
    assert row["n_annotators"] == 2 and qc.n_excluded == 0


def test_all_no_goes_to_not_a_digit_class():
    labels, _ = aggregate(raw(answers("a", "img")))
    row = label_row(labels, "img")
    for name in aggregation.WEIGHTINGS:
        np.testing.assert_allclose(row[name], np.eye(11)[10])
    assert row["soft_label_argmax"] == 10
    assert not row["hlv"]  # unanimous rejection is agreement


def test_all_unsure():
    labels, _ = aggregate(raw(answers("a", "img", unsure=range(10))))
    row = label_row(labels, "img")
    uniform = np.r_[np.full(10, 0.1), 0.0]
    np.testing.assert_allclose(row["soft_label"], uniform, atol=1e-7)
    np.testing.assert_allclose(row["soft_label_yes_unc_equal"], uniform, atol=1e-7)
    # No "yes" at all: the yes-only vector is empty, so it is the not-a-digit class.
    np.testing.assert_allclose(row["soft_label_yes_only"], np.eye(11)[10])
    assert row["human_uncert_mean"] == pytest.approx(1.0)
    assert row["pct_ann_unsure"] == 1.0
    assert row["hlv"]
    # Ten-way tie in soft_label, yes-only mass is zero everywhere: the lowest index.
    assert row["soft_label_argmax"] == 0


def test_mixed_weights_hand_computed():
    # a: yes 4, unsure 9 -> weighted (2/3, 1/3), equal (1/2, 1/2), yes-only (1, 0)
    # b: yes 9           -> one-hot 9 under every weighting
    labels, _ = aggregate(raw(answers("a", "img", yes=[4], unsure=[9]), answers("b", "img", yes=[9])))
    row = label_row(labels, "img")
    np.testing.assert_allclose(row["soft_label"][[4, 9]], [1 / 3, 2 / 3], rtol=1e-6)
    np.testing.assert_allclose(row["soft_label_yes_unc_equal"][[4, 9]], [0.25, 0.75], rtol=1e-6)
    np.testing.assert_allclose(row["soft_label_yes_only"][[4, 9]], [0.5, 0.5], rtol=1e-6)
    for name in aggregation.WEIGHTINGS:
        assert row[name].sum() == pytest.approx(1.0)
    assert row["soft_label_argmax"] == 9
    assert row["human_uncert_mean"] == pytest.approx(0.05)  # (1/10 + 0) / 2
    assert row["pct_ann_unsure"] == pytest.approx(0.5)
    assert row["hlv"]


def test_tie_plain_goes_to_lowest_index():
    labels, _ = aggregate(raw(answers("a", "img", yes=[7]), answers("b", "img", yes=[1])))
    assert label_row(labels, "img")["soft_label_argmax"] == 1


def test_tie_broken_by_yes_only_mass():
    # weighted: 2 -> 0.5 (b's lone unsure, normalised), 8 -> 0.5 (a's yes): a tie.
    # yes-only: 8 -> 0.5, 2 -> 0: the confident "yes" wins over the lower index.
    labels, _ = aggregate(raw(answers("a", "img", yes=[8]), answers("b", "img", unsure=[2])))
    row = label_row(labels, "img")
    np.testing.assert_allclose(row["soft_label"][[2, 8]], [0.5, 0.5])
    assert row["soft_label_argmax"] == 8


def test_attention_failure_excludes_annotator_everywhere():
    data = raw(
        answers("good", "img1", yes=[5]),
        answers("good", "gold1", yes=[0], unsure=[6], check=True, gold=0),  # pass
        answers("bad", "img1", yes=[3]),
        answers("bad", "img2", yes=[2]),
        answers("bad", "gold1", yes=[0, 6], check=True, gold=0),  # extra yes: fail
        answers("lazy", "img1", yes=[5]),
        answers("lazy", "gold1", check=True, gold=0),  # no yes to gold: fail
    )
    labels, qc = aggregate(data)
    assert qc.failed_annotators == ("bad", "lazy")
    assert qc.n_excluded == 2 and qc.n_annotators == 3
    row = label_row(labels, "img1")
    np.testing.assert_allclose(row["soft_label"], np.eye(11)[5])
    assert row["n_annotators"] == 1
    # img2 was seen only by an excluded annotator; gold images are never labelled.
    assert set(labels["image_id"]) == {"img1"}


def test_simulated_flag_is_carried():
    labels, _ = aggregate(raw(answers("s", "img", yes=[1], simulated=True)))
    assert bool(label_row(labels, "img")["simulated"])
    labels, _ = aggregate(raw(answers("h", "img", yes=[1])).drop(columns="simulated"))
    assert not bool(label_row(labels, "img")["simulated"])


def test_labels_table_round_trip(tmp_path):
    labels, _ = aggregate(raw(answers("a", "x", yes=[4], unsure=[9]), answers("b", "y", yes=[2])))
    path = tmp_path / "labels.parquet"
    write_table(labels_table(labels), path)
    back = read_labels(path)
    assert list(back.columns) == aggregation.LABEL_COLUMNS
    for name in aggregation.WEIGHTINGS:
        np.testing.assert_allclose(np.stack(back[name]), np.stack(labels[name]))
    assert back["n_annotators"].tolist() == [1, 1]
