"""The explorer's table: one row per study image, and every number in it equals its source file.

The expected values are read here straight from the files (the study table, the raw answers
and qc.json, each run's predictions and dynamics, the evaluation stage's data maps), not
through softdigits.explorer. `mismatches` is the comparison; it is shown to catch a table
whose image ids were shuffled, and build_explorer itself refuses inputs joined wrongly.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from explorer_fixture import (  # noqa: F401 (fixtures)
    EXCLUDED,
    LAST_EPOCHS,
    MODELS,
    SEEDS,
    TARGETS,
    Inputs,
    explorer_fixture,
    inputs_fixture,
    page_path_fixture,
)

from softdigits import io, study_table
from softdigits.annotation.aggregation import WEIGHTINGS, annotator_soft_labels
from softdigits.explorer.data import build_explorer, cell_column
from softdigits.io import DataContractError, vectors_array


def read_vectors(path, column="probs") -> tuple[np.ndarray, np.ndarray]:
    table = pq.read_table(path)
    return table.column("image_id").to_numpy(zero_copy_only=False), vectors_array(table, column).astype(np.float64)


def expected_predictions(inputs, model, target) -> pd.Series:
    """image_id -> the mean over seeds: val/test from test_performance, train from the last epoch."""
    per_seed = []
    for seed in SEEDS:
        ids, probs = read_vectors(inputs.predictions[(model, target, seed)])
        dyn = pq.read_table(inputs.dynamics[(model, target, seed)]).to_pandas()
        last = dyn[dyn["epoch"] == dyn["epoch"].max()]
        rows = dict(zip(ids, probs)) | {i: np.asarray(p, float) for i, p in zip(last["image_id"], last["probs"])}
        per_seed.append(pd.Series(rows))
    frame = pd.concat(per_seed, axis=1)
    return frame.apply(lambda r: np.mean(np.stack(r.to_numpy()), axis=0), axis=1)


def expected_p_gold(inputs, model, target, gold: pd.Series) -> pd.Series:
    """image_id -> mean over seeds of p(gold) per epoch, for the images with a data map point."""
    per_seed = []
    for seed in SEEDS:
        dyn = pq.read_table(inputs.dynamics[(model, target, seed)]).to_pandas()
        dyn = dyn[dyn["image_id"].isin(gold.index)]
        dyn["p"] = [p[gold[i]] for i, p in zip(dyn["image_id"], dyn["probs"])]
        per_seed.append(dyn.pivot(index="image_id", columns="epoch", values="p"))
    return sum(per_seed) / len(per_seed)


def close(got, expected) -> bool:
    return got is not None and np.allclose(got, expected, atol=1e-6)


def mismatches(table: pd.DataFrame, inputs) -> list[str]:
    """One line per number of `table` that differs from the files it was built from."""
    problems = []
    study = pq.read_table(inputs.study).to_pandas().set_index("image_id")
    if sorted(table["image_id"]) != sorted(study.index) or table["image_id"].duplicated().any():
        problems.append("the rows are not the study images, one each")
    t = table.set_index("image_id")
    s = study.loc[t.index]
    for column in ("split", "region", "label", "soft_label_argmax", "hlv", "human_uncert_mean", "pct_ann_unsure"):
        if not (t[column].to_numpy() == s[column].to_numpy()).all():
            problems.append(f"study column {column} differs")
    for column in ("pixels", "label_dist", "soft_label", "soft_label_yes_unc_equal", "soft_label_yes_only"):
        if not np.array_equal(np.stack(t[column].to_numpy()), np.stack(s[column].to_numpy())):
            problems.append(f"study column {column} differs")
    qc = json.loads(inputs.qc.read_text())
    raw = pq.read_table(inputs.raw_answers).to_pandas()
    raw = raw[~raw["is_attention_check"]].sort_values(["image_id", "annotator_id", "class"])
    letters = {"no": "n", "unsure": "u", "yes": "y"}
    for image_id, answers in raw.groupby("image_id"):
        by_annotator = answers.groupby("annotator_id")["response"].agg(lambda r: "".join(letters[x] for x in r))
        row = t.loc[image_id]
        if list(row["annotators"]) != list(by_annotator.index) or list(row["answers"]) != list(by_annotator):
            problems.append(f"{image_id}: answers differ from the raw file")
        if list(row["excluded"]) != [a in qc["excluded_annotators"] for a in by_annotator.index]:
            problems.append(f"{image_id}: excluded flags differ from qc.json")
    for model in MODELS:
        maps = pd.read_parquet(inputs.data_maps[model])
        for target in TARGETS:
            points = maps[maps["target"] == target].set_index("image_id")
            conf = t[cell_column(model, target, "confidence")]
            for quantity in ("confidence", "variability", "gold"):
                got = t[cell_column(model, target, quantity)].reindex(points.index).to_numpy()
                if not np.array_equal(got, points[quantity].to_numpy()):
                    problems.append(f"{model}/{target}: {quantity} differs from {inputs.data_maps[model]}")
            if conf.drop(points.index).notna().any():
                problems.append(f"{model}/{target}: a point the data map does not have")
            mean = expected_predictions(inputs, model, target)
            got = t[cell_column(model, target, "probs")]
            if not all(close(got[i], mean[i]) for i in t.index):
                problems.append(f"{model}/{target}: mean predictions differ from the runs")
            p_gold = expected_p_gold(inputs, model, target, points["gold"])
            got = t[cell_column(model, target, "p_gold")]
            if not all(close(got[i], p_gold.loc[i].to_numpy()) for i in points.index):
                problems.append(f"{model}/{target}: p(gold) per epoch differs from the runs")
    return problems


def test_one_row_per_study_image_in_the_study_order(explorer, inputs):
    study = pq.read_table(inputs.study, columns=["image_id"]).column("image_id").to_pylist()
    assert explorer.table["image_id"].tolist() == study
    assert explorer.models == MODELS and explorer.targets == TARGETS and explorer.seeds == SEEDS
    assert explorer.labels_origin == "simulated" and "SIMULATED" in explorer.labels_sentence


def test_every_number_equals_its_source(explorer, inputs):
    assert mismatches(explorer.table, inputs) == []


def test_a_table_with_shuffled_ids_fails_the_comparison(explorer, inputs):
    shuffled = explorer.table.copy()
    shuffled["image_id"] = np.random.default_rng(1).permutation(shuffled["image_id"].to_numpy())
    problems = mismatches(shuffled, inputs)
    assert "study column pixels differs" in problems
    assert any("data map" not in p and "confidence differs" in p for p in problems)
    assert any("answers differ from the raw file" in p for p in problems)


def test_the_excluded_annotator_is_marked_and_left_out_of_the_soft_labels(explorer):
    t = explorer.table
    seen = [row for row in t.itertuples() if EXCLUDED in row.annotators]
    assert seen and explorer.n_excluded == 1
    for row in t.itertuples():
        kept = [a for a, e in zip(row.answers, row.excluded) if not e]
        assert [a == EXCLUDED for a in row.annotators] == list(row.excluded)
        assert len(kept) == row.n_annotators
        codes = np.array([["nuy".index(ch) for ch in a] for a in kept])
        for column, weights in WEIGHTINGS.items():
            rebuilt = annotator_soft_labels(codes, weights).mean(axis=0)
            assert np.allclose(rebuilt, getattr(row, column), atol=1e-6), (row.image_id, column)


def test_confidence_is_the_mean_of_the_last_epochs_p_gold(explorer):
    for model in MODELS:
        for target in TARGETS:
            conf = explorer.cell(model, target, "confidence")
            p_gold = explorer.cell(model, target, "p_gold")
            on_map = conf.notna()
            assert on_map.sum() > 0
            window = np.stack(p_gold[on_map].to_numpy())[:, -LAST_EPOCHS:].mean(axis=1)
            assert np.allclose(window, conf[on_map], atol=1e-6)
            assert p_gold[~on_map].isna().all()
            assert (explorer.table.loc[on_map, "split"] == "train").all()


def test_kl_is_table_3s_kl_of_the_mean_prediction(explorer):
    for model in MODELS:
        probs = np.stack(explorer.cell(model, "original", "probs").to_numpy())
        soft = np.stack(explorer.table["soft_label"].to_numpy()).astype(float)[:, :10]
        has = soft.sum(axis=1) > 0
        p = soft[has] / soft[has].sum(axis=1, keepdims=True)
        q = np.maximum(probs[has], 1e-8)
        q /= q.sum(axis=1, keepdims=True)
        expected = np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1) / q), 0), axis=1)
        kl = explorer.cell(model, "original", "kl").to_numpy()
        assert np.allclose(kl[has], expected) and np.isnan(kl[~has]).all()


def test_regions_follow_the_thresholds(explorer):
    conf = explorer.cell("lenet", "original", "confidence")
    var = explorer.cell("lenet", "original", "variability")
    region = explorer.cell("lenet", "original", "map_region")
    assert (region[conf.isna()] == "").all()
    assert (region[conf.notna() & (var >= 0.2)] == "ambiguous").all()
    assert (region[conf.notna() & (var < 0.2) & (var > 0.1)] == "other").all()


# ------------------------------------------------------------------ joins build_explorer refuses


def copy_inputs(inputs, tmp_path):
    results = tmp_path / "results-test"
    shutil.copytree(inputs.results, results)
    moved = Inputs(
        inputs.corpus,
        results,
        results / inputs.study.relative_to(inputs.results),
        results / inputs.raw_answers.relative_to(inputs.results),
        results / inputs.qc.relative_to(inputs.results),
    )
    moved.data_maps = {m: results / p.relative_to(inputs.results) for m, p in inputs.data_maps.items()}
    moved.predictions = {k: results / p.relative_to(inputs.results) for k, p in inputs.predictions.items()}
    moved.dynamics = {k: results / p.relative_to(inputs.results) for k, p in inputs.dynamics.items()}
    return moved


def test_a_data_map_with_shuffled_ids_is_refused(inputs, tmp_path):
    moved = copy_inputs(inputs, tmp_path)
    path = moved.data_maps["lenet"]
    maps = pd.read_parquet(path)
    rng = np.random.default_rng(0)
    maps["image_id"] = maps.groupby("target")["image_id"].transform(lambda ids: rng.permutation(ids.to_numpy()))
    io.write_table(maps, path)
    with pytest.raises(DataContractError, match="data map and runs do not match"):
        build_explorer(moved.corpus, **moved.kwargs())


def test_dynamics_with_shuffled_ids_are_refused(inputs, tmp_path):
    moved = copy_inputs(inputs, tmp_path)
    path = moved.dynamics[("simple_ffn", "original", 1)]
    table = pq.read_table(path)
    ids = np.asarray(table.column("image_id").to_pylist(), dtype=object)
    train = np.unique(ids)
    mapping = dict(zip(train, np.random.default_rng(0).permutation(train)))
    io.write_table(table.set_column(1, "image_id", pa.array([mapping[i] for i in ids])), path)
    with pytest.raises(DataContractError, match=r"confidence .* but the runs' p\(gold\)"):
        build_explorer(moved.corpus, **moved.kwargs())


def test_a_prediction_in_the_wrong_split_is_refused(inputs, tmp_path):
    moved = copy_inputs(inputs, tmp_path)
    path = moved.predictions[("lenet", "human_majority", 0)]
    table = pq.read_table(path)
    split = table.column("split").to_pylist()
    split[0] = "val" if split[0] == "test" else "test"
    io.write_table(table.set_column(1, "split", pa.array(split)), path)
    with pytest.raises(DataContractError, match="is predicted as split"):
        build_explorer(moved.corpus, **moved.kwargs())


def test_answers_of_another_corpus_are_refused(inputs, tmp_path):
    moved = copy_inputs(inputs, tmp_path)
    raw = pq.read_table(moved.raw_answers).to_pandas()
    raw.loc[~raw["is_attention_check"], "image_id"] = raw.loc[~raw["is_attention_check"], "image_id"].str.replace(
        "mnist:", "mukhoti:"
    )
    io.write_table(pa.Table.from_pandas(raw, preserve_index=False), moved.raw_answers)
    with pytest.raises(DataContractError, match="is not in the study table"):
        build_explorer(moved.corpus, **moved.kwargs())


def test_released_labels_have_no_answers(inputs, tmp_path):
    moved = copy_inputs(inputs, tmp_path)
    frame = pq.read_table(moved.study).to_pandas().assign(simulated=False, n_annotators=None)
    study_table.write_study(study_table.to_arrow(frame), moved.study, origin="released", info={})
    explorer = build_explorer(moved.corpus, **(moved.kwargs() | {"raw_answers": None, "qc": None}))
    assert not explorer.has_answers and explorer.table["annotators"].map(len).eq(0).all()
    assert "released soft-digits labels" in explorer.labels_sentence
    with pytest.raises(DataContractError, match="needs its raw answers"):
        build_explorer(moved.corpus, **(moved.kwargs() | {"study": inputs.study, "raw_answers": None, "qc": None}))
