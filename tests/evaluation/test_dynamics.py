"""Training dynamics: successive-epoch JSD, data maps, Spearman with ties."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats as sps

from softdigits import study_table
from softdigits.cartography.maps import pooled_map
from softdigits.evaluation import dynamics as D
from softdigits.io import vectors_column, write_table
from softdigits.training import run_outputs, targets


def write_dynamics(path, epochs, ids, probs):
    """probs: (E, n, 10)."""
    e, n, _ = probs.shape
    table = pa.table(
        {
            "epoch": pa.array(np.repeat(epochs, n), pa.int64()),
            "image_id": pa.array(np.tile(ids, e)),
            "probs": vectors_column(probs.reshape(-1, 10).astype(np.float32)),
        }
    )
    write_table(table, path)


def test_successive_jsd_is_zero_for_constant_and_one_for_flip():
    probs = np.zeros((3, 2, 10))
    probs[:, 0, 0] = 1.0  # image 0 never changes
    probs[0, 1, 1] = probs[1, 1, 2] = probs[2, 1, 2] = 1.0  # image 1 flips once
    jsd = D.successive_jsd(probs)
    assert jsd.shape == (2, 2)
    assert jsd[:, 0] == pytest.approx([0, 0])
    assert jsd[:, 1] == pytest.approx([1, 0])
    table = D.jsd_by_stratum(np.array([1, 2, 3]), jsd, {"all": np.array([True, True]), "HLV": np.array([False, True])})
    assert table.query("stratum == 'all' and epoch == 2")["jsd"].item() == pytest.approx(0.5)
    assert table.query("stratum == 'HLV' and epoch == 2")["jsd"].item() == pytest.approx(1.0)


def test_data_map_pools_last_epochs_over_seeds_with_population_std():
    seed_a = np.array([[0.2], [0.4]])
    seed_b = np.array([[0.6], [0.8]])
    conf, var = pooled_map(np.concatenate([seed_a, seed_b]))
    assert conf[0] == pytest.approx(0.5)
    assert var[0] == pytest.approx(np.std([0.2, 0.4, 0.6, 0.8]))  # ddof 0
    p = np.arange(60, dtype=float).reshape(6, 1, 10) / 100
    assert D.gold_probabilities(p, np.array([3]), 5)[:, 0] == pytest.approx(p[1:, 0, 3])


def test_spearman_with_ties_matches_scipy_and_permutation_is_valid():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 4, 200).astype(float)  # heavily tied, like u_prop
    y = -x + rng.normal(0, 1.0, 200)
    res = D.spearman(x, {"confidence": y, "noise": rng.normal(size=200)}, n_permutations=999, seed=0)
    by = res.set_index("variable")
    assert by.loc["confidence", "rho"] == pytest.approx(sps.spearmanr(x, y).statistic)
    assert by.loc["confidence", "p_permutation"] == pytest.approx(1 / 1000)
    assert by.loc["noise", "p_permutation"] > 0.01
    assert by.loc["confidence", "tie_share_x"] == pytest.approx(1 - 4 / 200)
    # deterministic for a seed
    noise = rng.normal(size=200)
    first = D.spearman(x, {"n": noise}, n_permutations=199, seed=3)
    again = D.spearman(x, {"n": noise}, n_permutations=199, seed=3)
    pd.testing.assert_frame_equal(first, again)


def test_spearman_constant_or_nan_input_gives_nan():
    x = np.array([0.0, 0.0, 0.0, 0.0])
    res = D.spearman(x, {"c": np.array([1.0, 2, 3, 4])}, n_permutations=10, seed=0)
    assert np.isnan(res["rho"].item())
    x = np.array([np.nan, 1, 2, 3, 4])
    res = D.spearman(x, {"c": np.array([9.0, 1, 2, 3, 4])}, n_permutations=10, seed=0)
    assert res["n"].item() == 4 and res["rho"].item() == pytest.approx(1.0)


def study(ids, gold, hlv):
    n = len(ids)
    soft = np.eye(11)[gold]
    return pd.DataFrame(
        {
            "image_id": ids,
            "soft_label_argmax": gold,
            "hlv": hlv,
            "label": np.clip(gold, 0, 9),
            "label_dist": list(np.eye(10)[np.clip(gold, 0, 9)]),
            "soft_label": list(soft),
            "soft_label_yes_unc_equal": list(soft),
            "human_uncert_mean": np.linspace(0, 0.3, n),
            "pct_ann_unsure": np.linspace(0, 1, n),
        }
    )


def written(tmp_path, frame) -> str:
    """The study table of a partial frame (study_fixture.completed), written; its path."""
    from study_fixture import completed, write_study

    path = tmp_path / "gold_study.parquet"
    write_study(path, frame=completed(frame))
    return str(path)


def gold_study():
    """Four images where the trained targets' argmax, the original label and the human majority differ."""
    soft = np.zeros((4, 11))
    soft[0, [3, 5]] = [0.7, 0.3]  # uncertainty-weighted soft label: argmax 3
    soft[1, [2, 10]] = [0.2, 0.8]  # mostly not a digit: majority 10, soft argmax 2
    soft[2, 10] = 1.0  # only not a digit: no digit mass, no soft gold
    soft[3, [4, 6]] = [0.5, 0.5]  # a tie goes to the lower digit (np.argmax)
    equal = soft.copy()
    equal[0, [3, 5]] = [0.4, 0.6]  # equally weighted: argmax 5
    return pd.DataFrame(
        {
            "image_id": ["a", "b", "c", "d"],
            "label": [8, 2, 1, 9],
            "label_dist": list(np.eye(10)[[8, 2, 1, 9]]),
            "soft_label": list(soft),
            "soft_label_yes_unc_equal": list(equal),
            "soft_label_argmax": [5, 10, 10, 6],  # the human majority as aggregation gives it (not argmax of soft)
            "hlv": [True] * 4,
            "human_uncert_mean": [0.1] * 4,
            "pct_ann_unsure": [0.2] * 4,
        }
    )


@pytest.mark.parametrize(
    "target, expected",
    [
        ("original", [8, 2, 1, 9]),  # the corpus's original label, not the human majority
        ("human_uncertainty", [3, 2, -1, 4]),
        ("human_equal", [5, 2, -1, 4]),
        ("human_majority", [5, -1, -1, 6]),
    ],
)
def test_gold_is_the_argmax_of_the_trained_target(target, expected, tmp_path):
    study = study_table.read_study(written(tmp_path, gold_study()))
    assert D.gold_labels(study, target, "trained_target", "renormalise", {}).tolist() == expected


def test_gold_human_majority_option_uses_the_majority_for_every_target(tmp_path):
    study = study_table.read_study(written(tmp_path, gold_study()))
    for target in ("original", "human_uncertainty", "human_equal", "human_majority"):
        assert D.gold_labels(study, target, "human_majority", "renormalise", {}).tolist() == [5, -1, -1, 6]
    with pytest.raises(ValueError, match="data_map_gold"):
        D.gold_labels(study, "original", "majority", "renormalise", {})


def test_gold_agrees_with_the_training_targets(tmp_path):
    """Every target's gold is the argmax of what targets.target_distributions trains on."""
    study = study_table.read_study(written(tmp_path, gold_study()))
    for target in targets.TARGETS:
        params = {"shuffle_seed": 0}
        dist, usable = targets.target_distributions(study, target, "renormalise", params)
        gold = D.gold_labels(study, target, "trained_target", "renormalise", params)
        assert ((gold != D.NO_GOLD) == usable).all()
        assert (gold[usable] == dist[usable].argmax(axis=1)).all()


def test_gold_of_the_controls_is_what_they_trained_toward(tmp_path):
    """label_smoothing keeps the majority's mode; human_shuffled's gold follows the shuffle."""
    from study_fixture import write_study

    study = study_table.read_study(written(tmp_path, gold_study()))
    assert D.gold_labels(study, "label_smoothing", "trained_target", "renormalise", {}).tolist() == [5, -1, -1, 6]
    with pytest.raises(ValueError, match="shuffle_seed"):
        D.gold_labels(study, "human_shuffled", "trained_target", "renormalise", {})
    path = tmp_path / "study.parquet"
    write_study(path)
    study = study_table.read_study(path)
    gold = D.gold_labels(study, "human_shuffled", "trained_target", "renormalise", {"shuffle_seed": 3})
    dist, usable = targets.target_distributions(study, "human_shuffled", "renormalise", {"shuffle_seed": 3})
    assert ((gold != D.NO_GOLD) == usable).all()
    assert (gold[usable] == dist[usable].argmax(axis=1)).all()
    own = np.where(usable, targets.target_distributions(study, "human_uncertainty", "renormalise")[0].argmax(1), -1)
    assert (gold != own).any()  # the shuffle moved some images' gold


def test_data_map_of_the_synthetic_target_uses_the_original_label(tmp_path):
    frame = gold_study()
    probs = np.zeros((3, 4, 10))
    probs[:, :, 8] = 0.9  # the model learns the original label 8 everywhere
    probs[:, :, 0] = 0.1
    path = tmp_path / "o.parquet"
    write_dynamics(path, np.arange(1, 4), frame["image_id"].to_numpy(), probs)
    runs = {("original", 0): path}
    study_path = written(tmp_path, frame)
    common = dict(last_epochs=2, n_permutations=99, seed=0, not_a_digit="renormalise", target_params={})
    _, maps, _, _ = D.evaluate_dynamics(study_path, runs, gold="trained_target", **common)
    a = maps.set_index("image_id").loc["a"]
    assert a["gold"] == 8 and a["confidence"] == pytest.approx(0.9)
    _, maps, _, _ = D.evaluate_dynamics(study_path, runs, gold="human_majority", **common)
    assert set(maps["image_id"]) == {"a", "d"}  # no digit majority for b, c
    assert maps.set_index("image_id").loc["a", "confidence"] == pytest.approx(0.0)  # p(5) = 0


def test_evaluate_dynamics_end_to_end(tmp_path):
    ids = np.array([f"m:train:{i}" for i in range(8)])
    gold = np.array([0, 1, 2, 3, 4, 5, 6, 10])  # the last is not a digit: no data-map point
    rng = np.random.default_rng(0)
    runs = {}
    for target in ("human_majority", "human_uncertainty"):
        for seed in (0, 1):
            probs = rng.dirichlet(np.ones(10), size=(7, 8))
            path = tmp_path / f"{target}{seed}.parquet"
            write_dynamics(path, np.arange(1, 8), ids, probs)
            runs[(target, seed)] = path
    jsd, maps, rho, moments = D.evaluate_dynamics(
        written(tmp_path, study(ids, gold, np.arange(8) % 2 == 0)),
        runs,
        last_epochs=5,
        n_permutations=99,
        seed=0,
        gold="trained_target",
        not_a_digit="renormalise",
        target_params={},
    )
    assert set(jsd["epoch"]) == set(range(2, 8))
    assert jsd["jsd"].between(0, 1).all()
    assert len(maps) == 2 * 7 and (maps["n_values"] == 10).all()
    assert set(rho["uncertainty"]) == {"u_mean", "u_prop"}
    assert set(rho["stratum"]) == {"all", "HLV", "NoHLV"}
    # reading back a seed gives the same confidence as computing it by hand
    _, _, p0 = run_outputs.read_dynamics(runs[("human_majority", 0)])
    _, _, p1 = run_outputs.read_dynamics(runs[("human_majority", 1)])
    hand = np.concatenate([p0[-5:, 2, 2], p1[-5:, 2, 2]]).mean()
    got = maps.query("target == 'human_majority' and image_id == 'm:train:2'")["confidence"].item()
    assert got == pytest.approx(hand, rel=1e-6)
    # the per-seed moments give back the pooled map, for every target
    for target, m in moments.groupby("target"):
        wide = {c: m.pivot(index="seed", columns="image_id", values=c) for c in ("p_mean", "p_sq_mean")}
        conf, var = D.pooled_from_moments(wide["p_mean"].to_numpy(), wide["p_sq_mean"].to_numpy())
        pooled = maps[maps["target"] == target].set_index("image_id").loc[wide["p_mean"].columns]
        np.testing.assert_allclose(conf, pooled["confidence"], rtol=1e-12)
        np.testing.assert_allclose(var, pooled["variability"], rtol=1e-6, atol=1e-9)


def test_read_dynamics_rejects_ragged_epochs(tmp_path):
    path = tmp_path / "d.parquet"
    table = pa.table(
        {
            "epoch": pa.array([1, 1, 2], pa.int64()),
            "image_id": pa.array(["a", "b", "a"]),
            "probs": vectors_column(np.full((3, 10), 0.1, np.float32)),
        }
    )
    write_table(table, path)
    with pytest.raises(ValueError, match="d.parquet: the epochs do not all hold the same images"):
        run_outputs.read_dynamics(path)
