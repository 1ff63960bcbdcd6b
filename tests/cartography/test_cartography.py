"""Cartography: metric definitions against a hand-computed case, regions, input checks, training."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from softdigits import io, provenance
from softdigits.cartography import maps as M
from softdigits.cartography import train as T
from softdigits.constants import REGIONS
from softdigits.io import DataContractError, images_table, vectors_column

TH = M.Thresholds(confidence_high=0.8, confidence_low=0.3, variability_low=0.1, variability_high=0.2)


def dynamics_table(rows, digit=None):
    """rows: (seed, epoch, image_id, gold, probs); digit (the label column) = gold unless given."""
    probs = np.array([r[4] for r in rows], dtype=np.float32)
    gold = np.array([r[3] for r in rows])
    return pa.table(
        {
            "seed": [r[0] for r in rows],
            "epoch": [r[1] for r in rows],
            "image_id": [r[2] for r in rows],
            "digit": gold if digit is None else np.asarray(digit),
            "gold": gold,
            "p_gold": probs[np.arange(len(rows)), gold],
            "correct": probs.argmax(1) == gold,
            "probs": vectors_column(probs),
        }
    )


def dist(p_gold, gold, other, p_other):
    """A 10-class distribution with p_gold on `gold`, p_other on `other`, the rest spread evenly."""
    v = np.full(10, (1 - p_gold - p_other) / 8, dtype=np.float64)
    v[gold], v[other] = p_gold, p_other
    return v


def test_metrics_match_a_hand_computed_case():
    # Image a (gold 3): p(gold) over (seed, epoch) = 0.2, 0.6 | 0.9, 0.9 (pooled across 2 seeds).
    # Image b (gold 7): 0.95 in every run.
    rows = [
        (0, 1, "a", 3, dist(0.2, 3, 5, 0.7)),
        (0, 1, "b", 7, dist(0.95, 7, 1, 0.01)),
        (0, 2, "a", 3, dist(0.6, 3, 5, 0.3)),
        (0, 2, "b", 7, dist(0.95, 7, 1, 0.01)),
        (1, 1, "a", 3, dist(0.9, 3, 5, 0.05)),
        (1, 1, "b", 7, dist(0.95, 7, 1, 0.01)),
        (1, 2, "a", 3, dist(0.9, 3, 5, 0.05)),
        (1, 2, "b", 7, dist(0.95, 7, 1, 0.01)),
    ]
    dm = M.data_map(dynamics_table(rows), TH).set_index("image_id")
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
    table = M.data_map_table(dm.reset_index())
    assert table.schema.field("mean_probs").type == pa.list_(pa.float32(), 10)


def test_regions_follow_the_stated_rule_and_order():
    conf = [0.9, 0.8, 0.9, 0.1, 0.3, 0.31, 0.5, 0.9, 0.1]
    var = [0.05, 0.1, 0.11, 0.0, 0.1, 0.05, 0.05, 0.2, 0.25]
    assert list(M.assign_regions(conf, var, TH)) == [
        "easy",
        "easy",
        "other",
        "hard",
        "hard",
        "other",
        "other",
        "ambiguous",
        "ambiguous",
    ]
    # equal variability cut-offs: ambiguous wins, so the regions still never overlap
    same = M.Thresholds(0.8, 0.3, 0.2, 0.2)
    assert list(M.assign_regions([0.9, 0.1], [0.2, 0.2], same)) == ["ambiguous", "ambiguous"]


def test_thresholds_must_be_ordered():
    with pytest.raises(ValueError, match="confidence_low"):
        M.Thresholds(0.5, 0.6, 0.1, 0.2)
    with pytest.raises(ValueError, match="variability_low"):
        M.Thresholds(0.8, 0.3, 0.3, 0.2)


def tiny_images(n=40, seed=0, label=None, label_dist=None, sampled=None):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10 if label is None else np.asarray(label)
    pixels = rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
    pixels[np.arange(n), labels * 50] = 255  # a learnable cue per digit
    table = images_table(
        source="toy",
        source_split="train",
        source_index=np.arange(n),
        pixels=pixels,
        label=labels,
        label_dist=label_dist,
    )
    if sampled is not None:  # as the generator and the DDU reader append it
        table = table.append_column("sampled_labels", vectors_column(np.asarray(sampled), pa.int64()))
    return table


def test_gold_and_targets():
    dist10 = np.full((20, 10), 0.02, dtype=np.float32)
    dist10[np.arange(20), np.arange(20) % 10] = 0.82
    images = tiny_images(20, label_dist=dist10)
    digit, gold, soft = T.gold_and_targets(images, "label_dist")
    np.testing.assert_array_equal(gold, np.arange(20) % 10)
    np.testing.assert_array_equal(digit, gold)
    np.testing.assert_allclose(soft, dist10, atol=1e-6)
    _, _, hard = T.gold_and_targets(images, "label")
    np.testing.assert_array_equal(hard.argmax(1), gold)
    assert hard.sum() == 20 and hard.max() == 1
    with pytest.raises(ValueError, match="target"):
        T.gold_and_targets(images, "soft_label")


def test_unlabelled_or_broken_distribution_is_named():
    labels = np.arange(20) % 10
    labels[7] = -1
    with pytest.raises(DataContractError, match=r"toy:train:7"):
        T.gold_and_targets(tiny_images(20, label=labels), "label_dist", where="x.parquet: ")
    bad = np.eye(10, dtype=np.float32)[np.arange(20) % 10]
    bad[4] *= 2
    with pytest.raises(DataContractError, match=r"x\.parquet: .*toy:train:4.*not a distribution"):
        T.gold_and_targets(tiny_images(20, label_dist=bad), "label_dist", where="x.parquet: ")


def test_duplicate_pixels_are_refused():
    images = tiny_images(20)
    pixels = np.stack(images.column("pixels").to_numpy(zero_copy_only=False))
    pixels[5] = pixels[2]
    dup = images_table(
        source="toy", source_split="train", source_index=np.arange(20), pixels=pixels, label=np.arange(20) % 10
    )
    with pytest.raises(DataContractError, match="toy:train:2"):
        T.check_unique_images(dup)


def test_data_map_needs_every_seed_and_epoch():
    rows = [
        (0, 1, "a", 1, dist(0.9, 1, 2, 0.05)),
        (0, 2, "a", 1, dist(0.9, 1, 2, 0.05)),
        (0, 1, "b", 2, dist(0.9, 2, 1, 0.05)),
    ]
    with pytest.raises(DataContractError, match="'b' has 1 .* expected 2"):
        M.data_map(dynamics_table(rows), TH)


def test_train_dynamics_is_deterministic_and_consistent():
    images = tiny_images(60)
    kwargs = dict(model="simple_ffn", seeds=[0, 1], epochs=3, batch_size=16, lr=1e-2, target="label_dist")
    dyn = T.train_dynamics(images, **kwargs)
    assert dyn.column_names == T.DYNAMICS_COLUMNS
    assert dyn.column("digit").equals(dyn.column("gold"))  # label_dist: gold is the label column
    assert dyn.num_rows == 2 * 3 * 60
    again = T.train_dynamics(images, **kwargs)
    assert dyn.equals(again)
    df = dyn.to_pandas()
    probs = np.stack(df["probs"].to_numpy())
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(probs[np.arange(len(df)), df["gold"]], df["p_gold"], atol=1e-7)
    np.testing.assert_array_equal(probs.argmax(1) == df["gold"], df["correct"])
    # the cue is learnable: the last epoch is mostly right
    assert df[df["epoch"] == 3]["correct"].mean() > 0.8
    dm = M.data_map(dyn, TH)
    assert len(dm) == 60 and set(dm["region"]) <= set(REGIONS)


@pytest.mark.parametrize("model", ["simple_ffn", "lenet"])
def test_train_dynamics_in_a_stack_is_bit_for_bit_each_seed_alone(model, seeds_alone):
    """The seeds train in one stack (training.stack); the table is the one of each seed trained alone."""
    images = tiny_images(70)
    kwargs = dict(model=model, seeds=[0, 1, 2], epochs=2, batch_size=32, lr=1e-3, target="label_dist")
    stacked = T.train_dynamics(images, **kwargs)
    seeds_alone()
    assert stacked.equals(T.train_dynamics(images, **kwargs))
    assert not stacked.equals(T.train_dynamics(images, **{**kwargs, "seeds": [0, 1, 3]}))  # the check can fail


# ---------------------------------------------------- target sampled_label


def test_sampled_label_trains_on_the_first_draw_and_takes_it_as_gold():
    labels = np.arange(20) % 10
    sampled = np.tile(labels[:, None], (1, 10))
    sampled[3, 0] = 8  # image 3 (label 3) drew an 8 first: its gold is 8, its digit stays 3
    sampled[4, 1:] = 0  # later draws are not used
    images = tiny_images(20, sampled=sampled)
    digit, gold, onehot = T.gold_and_targets(images, "sampled_label")
    np.testing.assert_array_equal(digit, labels)
    assert gold[3] == 8 and gold[4] == 4 and (np.delete(gold, 3) == np.delete(labels, 3)).all()
    np.testing.assert_array_equal(onehot.argmax(1), gold)
    assert onehot.sum() == 20


def test_sampled_label_on_a_corpus_without_sampled_labels_is_an_error():
    # MNIST has no sampled labels: no silent fallback to the label column
    with pytest.raises(DataContractError, match=r"mnist\.parquet: .*'sampled_label'.*no.*label_dist or label"):
        T.gold_and_targets(tiny_images(20), "sampled_label", where="mnist.parquet: ")
    bad = np.zeros((20, 10), dtype=np.int64)
    bad[6, 0] = 10
    with pytest.raises(DataContractError, match=r"toy:train:6.*not a digit"):
        T.gold_and_targets(tiny_images(20, sampled=bad), "sampled_label")


def test_a_minority_draw_becomes_a_hard_image_of_its_digit():
    """Hand-made data map: gold = the drawn label, digit = the image's label column.

    Image m (digit 3) drew a 5; the network keeps predicting 3 (p(5) = 0.1 in all four
    runs): confidence 0.1, variability 0 -> hard, and 0 correct. Image e drew its own
    digit: easy. The data map keeps both the digit (3) and the gold (5).
    """
    rows = [
        (s, e, img, g, dist(p, g, other, 0.85 if img == "m" else 0.01))
        for s in (0, 1)
        for e in (1, 2)
        for img, g, p, other in (("m", 5, 0.1, 3), ("e", 7, 0.95, 1))
    ]
    dm = M.data_map(dynamics_table(rows, digit=[3 if r[2] == "m" else 7 for r in rows]), TH).set_index("image_id")
    assert dm.loc["m", ["digit", "gold", "region"]].tolist() == [3, 5, "hard"]
    assert dm.loc["m", "confidence"] == pytest.approx(0.1, abs=1e-6) and dm.loc["m", "correctness"] == 0
    assert dm.loc["e", ["digit", "gold", "region"]].tolist() == [7, 7, "easy"]
    assert M.data_map_table(dm.reset_index()).column("gold").to_pylist() == [5, 7]


def test_train_dynamics_on_sampled_labels_is_deterministic_and_finds_the_flipped_images():
    n = 100
    labels = np.arange(n) % 10
    sampled = np.tile(labels[:, None], (1, 10))
    flipped = np.arange(0, n, 11)  # one image of each digit drew another digit first
    sampled[flipped, 0] = (labels[flipped] + 5) % 10
    # images of a digit differ only by a faint pixel, so a lone contrary label is not memorised
    pixels = np.zeros((n, 784), dtype=np.uint8)
    for k in range(10):
        pixels[labels == k, k * 60 : k * 60 + 40] = 255
    pixels[np.arange(n), 600 + np.arange(n) // 10] = 1 + np.arange(n) % 10
    images = images_table(
        source="toy", source_split="train", source_index=np.arange(n), pixels=pixels, label=labels
    ).append_column("sampled_labels", vectors_column(sampled, pa.int64()))
    kwargs = dict(model="simple_ffn", seeds=[0], epochs=4, batch_size=16, lr=1e-2, target="sampled_label")
    dyn = T.train_dynamics(images, **kwargs)
    assert dyn.equals(T.train_dynamics(images, **kwargs))
    assert dyn.column_names == T.DYNAMICS_COLUMNS
    dm = M.data_map(dyn, TH).set_index("image_id")
    ids = images.column("image_id").to_pylist()
    flip_ids = [ids[i] for i in flipped]
    np.testing.assert_array_equal(dm.loc[flip_ids, "gold"], sampled[flipped, 0])
    np.testing.assert_array_equal(dm.loc[flip_ids, "digit"], labels[flipped])
    # the cue of the image's digit wins over a lone contrary label: low p(gold) for those
    others = dm.drop(index=flip_ids)
    assert dm.loc[flip_ids, "confidence"].max() < 0.3 < 0.7 < others["confidence"].mean()
    assert (dm.loc[flip_ids, "region"] == "hard").sum() >= 8 and (others["region"] != "hard").all()


# ------------------------------------------------ the acceptance check of a map


def test_region_shares_and_the_acceptance_check_pass_and_fail():
    df = pd.DataFrame({"region": ["easy"] * 90 + ["ambiguous"] * 8 + ["hard"] * 2})
    shares = M.region_shares(df)
    assert shares == {"easy": 0.9, "ambiguous": 0.08, "hard": 0.02, "other": 0.0}
    M.check_region_shares(shares, {"easy": 0.01, "ambiguous": 0.05, "hard": 0.01})  # passes
    M.check_region_shares(shares, {"easy": 0.0, "ambiguous": 0.0, "hard": 0.0})
    # a map with no hard image (the distribution-trained Ambiguous-MNIST) fails, naming it
    none_hard = M.region_shares(pd.DataFrame({"region": ["easy"] * 95 + ["ambiguous"] * 5}))
    assert none_hard["hard"] == 0
    with pytest.raises(M.RegionShareError, match=r"x: .*min_share.*hard 0\.00% < 1\.00%") as err:
        M.check_region_shares(none_hard, {"easy": 0.01, "ambiguous": 0.05, "hard": 0.01}, where="x: ")
    assert "ambiguous" not in str(err.value)  # 5% meets 5%: only the failing region is named
    with pytest.raises(M.RegionShareError, match=r"ambiguous 8\.00% < 10\.00%; hard 2\.00% < 3\.00%"):
        M.check_region_shares(shares, {"easy": 0.0, "ambiguous": 0.1, "hard": 0.03})


# ------------------------------------------------------------------ the two contracts


def test_dynamics_contract_round_trips_and_its_reader_names_a_broken_file(tmp_path):
    images = tiny_images(20)
    dyn = T.train_dynamics(images, model="simple_ffn", seeds=[0], epochs=2, batch_size=8, lr=1e-2, target="label")
    assert dyn.schema.equals(T.DYNAMICS_SCHEMA)
    path = tmp_path / "dynamics.parquet"
    T.write_dynamics(dyn, path, metadata={"corpus": "toy"})
    assert T.read_dynamics(path).equals(dyn)
    # the map pools every column of the contract (maps.py names them, not importing train.py)
    assert list(M.DYNAMICS_INPUT) == T.DYNAMICS_COLUMNS
    io.write_table(dyn.drop_columns(["probs"]), tmp_path / "short.parquet")
    with pytest.raises(DataContractError, match=r"short\.parquet: dynamics table lacks column\(s\) \['probs'\]"):
        T.read_dynamics(tmp_path / "short.parquet")
    recast = dyn.set_column(5, "p_gold", dyn.column("p_gold").cast(pa.float64()))
    with pytest.raises(
        DataContractError, match=r"type\(s\) differ from the contract: p_gold double \(expected float\)"
    ):
        T.write_dynamics(recast, tmp_path / "recast.parquet", metadata={})


def test_data_map_contract_round_trips_and_its_reader_names_a_broken_file(tmp_path):
    rows = [(s, e, img, 3, dist(p, 3, 5, 0.05)) for s in (0, 1) for e in (1, 2) for img, p in (("a", 0.9), ("b", 0.2))]
    dm = M.data_map(dynamics_table(rows), TH)
    table = M.data_map_table(dm)
    assert table.schema.equals(M.DATA_MAP_SCHEMA)
    io.write_table(table, tmp_path / "data_map.parquet", metadata={"corpus": "toy"})
    back = M.read_data_map(tmp_path / "data_map.parquet")
    pd.testing.assert_frame_equal(back, pd.read_parquet(tmp_path / "data_map.parquet"))
    assert M.read_data_map(tmp_path / "data_map.parquet", columns=["image_id", "region"]).columns.tolist() == [
        "image_id",
        "region",
    ]
    io.write_table(table.drop_columns(["region"]), tmp_path / "short.parquet")
    with pytest.raises(DataContractError, match=r"short\.parquet: data map lacks column\(s\) \['region'\]"):
        M.read_data_map(tmp_path / "short.parquet", columns=["image_id", "region"])
    recast = table.set_column(1, "digit", table.column("digit").cast(pa.int32()))
    io.write_table(recast, tmp_path / "recast.parquet")
    with pytest.raises(
        DataContractError, match=r"recast\.parquet: .*differ from the contract: digit int32 \(expected int64\)"
    ):
        M.read_data_map(tmp_path / "recast.parquet", columns=["digit", "region"])


def test_maps_loads_without_torch_and_without_the_training_code():
    # maps.py is the torch-free half: the regions, figures and findings import it
    code = "import sys, softdigits.cartography.maps; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
    files = {Path(f).name for f in provenance.module_files("cartography.maps")}
    assert "train.py" not in files and "training.py" not in files and "models.py" not in files
