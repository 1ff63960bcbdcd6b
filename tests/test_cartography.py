"""Cartography: metric definitions against a hand-computed case, regions, input checks, training."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from softdigits import cartography as C
from softdigits.io import DataContractError, images_table, vectors_column

TH = C.Thresholds(confidence_high=0.8, confidence_low=0.3, variability_low=0.1, variability_high=0.2)


def dynamics_table(rows):
    """rows: (seed, epoch, image_id, gold, probs)."""
    probs = np.array([r[4] for r in rows], dtype=np.float32)
    gold = np.array([r[3] for r in rows])
    return pa.table({
        "seed": [r[0] for r in rows], "epoch": [r[1] for r in rows], "image_id": [r[2] for r in rows],
        "gold": gold, "p_gold": probs[np.arange(len(rows)), gold],
        "correct": probs.argmax(1) == gold, "probs": vectors_column(probs),
    })


def dist(p_gold, gold, other, p_other):
    """A 10-class distribution with p_gold on `gold`, p_other on `other`, the rest spread evenly."""
    v = np.full(10, (1 - p_gold - p_other) / 8, dtype=np.float64)
    v[gold], v[other] = p_gold, p_other
    return v


def test_metrics_match_a_hand_computed_case():
    # Image a (gold 3): p(gold) over (seed, epoch) = 0.2, 0.6 | 0.9, 0.9 (pooled across 2 seeds).
    # Image b (gold 7): 0.95 in every run.
    rows = [
        (0, 1, "a", 3, dist(0.2, 3, 5, 0.7)), (0, 1, "b", 7, dist(0.95, 7, 1, 0.01)),
        (0, 2, "a", 3, dist(0.6, 3, 5, 0.3)), (0, 2, "b", 7, dist(0.95, 7, 1, 0.01)),
        (1, 1, "a", 3, dist(0.9, 3, 5, 0.05)), (1, 1, "b", 7, dist(0.95, 7, 1, 0.01)),
        (1, 2, "a", 3, dist(0.9, 3, 5, 0.05)), (1, 2, "b", 7, dist(0.95, 7, 1, 0.01)),
    ]
    dm = C.data_map(dynamics_table(rows), TH).set_index("image_id")
    # confidence = mean = (0.2 + 0.6 + 0.9 + 0.9) / 4 = 0.65
    assert dm.loc["a", "confidence"] == pytest.approx(0.65, abs=1e-6)
    # population variance = ((-.45)^2 + (-.05)^2 + .25^2 + .25^2) / 4 = 0.33 / 4 = 0.0825
    assert dm.loc["a", "variability"] == pytest.approx(np.sqrt(0.0825), abs=1e-6)
    # argmax is class 5 in the first run (0.7 > 0.2), gold afterwards: 3 of 4 right
    assert dm.loc["a", "correctness"] == pytest.approx(0.75)
    assert dm.loc["a", "digit"] == 3
    assert dm.loc["a", "region"] == "ambiguous"  # variability 0.287 >= 0.2
    expected_mean = np.mean([r[4] for r in rows if r[2] == "a"], axis=0)
    np.testing.assert_allclose(dm.loc["a", "mean_probs"], expected_mean, atol=1e-6)
    assert dm.loc["b", "confidence"] == pytest.approx(0.95, abs=1e-6)
    assert dm.loc["b", "variability"] == pytest.approx(0.0, abs=1e-6)
    assert dm.loc["b", "correctness"] == 1.0
    assert dm.loc["b", "region"] == "easy"
    table = C.data_map_table(dm.reset_index())
    assert table.schema.field("mean_probs").type == pa.list_(pa.float32(), 10)


def test_regions_follow_the_stated_rule_and_order():
    conf = [0.9, 0.8, 0.9, 0.1, 0.3, 0.31, 0.5, 0.9, 0.1]
    var = [0.05, 0.1, 0.11, 0.0, 0.1, 0.05, 0.05, 0.2, 0.25]
    assert list(C.assign_regions(conf, var, TH)) == [
        "easy", "easy", "other", "hard", "hard", "other", "other", "ambiguous", "ambiguous"]
    # equal variability cut-offs: ambiguous wins, so the regions still never overlap
    same = C.Thresholds(0.8, 0.3, 0.2, 0.2)
    assert list(C.assign_regions([0.9, 0.1], [0.2, 0.2], same)) == ["ambiguous", "ambiguous"]


def test_thresholds_must_be_ordered():
    with pytest.raises(ValueError, match="confidence_low"):
        C.Thresholds(0.5, 0.6, 0.1, 0.2)
    with pytest.raises(ValueError, match="variability_low"):
        C.Thresholds(0.8, 0.3, 0.3, 0.2)


def tiny_images(n=40, seed=0, label=None, label_dist=None):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10 if label is None else np.asarray(label)
    pixels = rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
    pixels[np.arange(n), labels * 50] = 255  # a learnable cue per digit
    return images_table(source="toy", source_split="train", source_index=np.arange(n), pixels=pixels,
                        label=labels, label_dist=label_dist)


def test_gold_and_targets():
    dist10 = np.full((20, 10), 0.02, dtype=np.float32)
    dist10[np.arange(20), np.arange(20) % 10] = 0.82
    images = tiny_images(20, label_dist=dist10)
    gold, soft = C.gold_and_targets(images, "label_dist")
    np.testing.assert_array_equal(gold, np.arange(20) % 10)
    np.testing.assert_allclose(soft, dist10, atol=1e-6)
    _, hard = C.gold_and_targets(images, "label")
    np.testing.assert_array_equal(hard.argmax(1), gold)
    assert hard.sum() == 20 and hard.max() == 1
    with pytest.raises(ValueError, match="target"):
        C.gold_and_targets(images, "soft_label")


def test_unlabelled_or_broken_distribution_is_named():
    labels = np.arange(20) % 10
    labels[7] = -1
    with pytest.raises(DataContractError, match=r"toy:train:7"):
        C.gold_and_targets(tiny_images(20, label=labels), "label_dist", where="x.parquet: ")
    bad = np.eye(10, dtype=np.float32)[np.arange(20) % 10]
    bad[4] *= 2
    with pytest.raises(DataContractError, match=r"x\.parquet: .*toy:train:4.*not a distribution"):
        C.gold_and_targets(tiny_images(20, label_dist=bad), "label_dist", where="x.parquet: ")


def test_duplicate_pixels_are_refused():
    images = tiny_images(20)
    pixels = np.stack(images.column("pixels").to_numpy(zero_copy_only=False))
    pixels[5] = pixels[2]
    dup = images_table(source="toy", source_split="train", source_index=np.arange(20), pixels=pixels,
                       label=np.arange(20) % 10)
    with pytest.raises(DataContractError, match="toy:train:2"):
        C.check_unique_images(dup)


def test_data_map_needs_every_seed_and_epoch():
    rows = [(0, 1, "a", 1, dist(0.9, 1, 2, 0.05)), (0, 2, "a", 1, dist(0.9, 1, 2, 0.05)),
            (0, 1, "b", 2, dist(0.9, 2, 1, 0.05))]
    with pytest.raises(DataContractError, match="'b' has 1 .* expected 2"):
        C.data_map(dynamics_table(rows), TH)


def test_train_dynamics_is_deterministic_and_consistent():
    images = tiny_images(60)
    kwargs = dict(model="simple_ffn", seeds=[0, 1], epochs=3, batch_size=16, lr=1e-2, target="label_dist")
    dyn = C.train_dynamics(images, **kwargs)
    assert dyn.column_names == C.DYNAMICS_COLUMNS
    assert dyn.num_rows == 2 * 3 * 60
    again = C.train_dynamics(images, **kwargs)
    assert dyn.equals(again)
    df = dyn.to_pandas()
    probs = np.stack(df["probs"].to_numpy())
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(probs[np.arange(len(df)), df["gold"]], df["p_gold"], atol=1e-7)
    np.testing.assert_array_equal(probs.argmax(1) == df["gold"], df["correct"])
    # the cue is learnable: the last epoch is mostly right
    assert df[df["epoch"] == 3]["correct"].mean() > 0.8
    dm = C.data_map(dyn, TH)
    assert len(dm) == 60 and set(dm["region"]) <= set(C.REGIONS)
