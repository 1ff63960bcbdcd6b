"""One grid cell: reading the study table, targets per regime, both regimes, outputs, determinism."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from study_fixture import study_frame, write_study

from softdigits import io, provenance, study_table
from softdigits.io import DataContractError
from softdigits.training import ink_linear, run_outputs, targets, train_run
from softdigits.training.loop import pixel_stats

SMALL = {"train": 96, "val": 40, "test": 30}
CONFIG = {
    "not_a_digit": "renormalise",
    "device": "cpu",
    "lr": 1e-3,
    "batch_size": 32,
    "test_performance": {
        "max_epochs": 6,
        "early_stopping_patience": 2,
        "plateau_factor": 0.5,
        "plateau_patience": 1,
        "min_delta": 0.0,
    },
    "dynamics": {"epochs": 3},
}
CODE = [str(provenance.module_path(m)) for m in ("io", "training.models", "training.loop", "training.train_run")]


@pytest.fixture(scope="module")
def study_path(tmp_path_factory) -> Path:
    return write_study(tmp_path_factory.mktemp("study") / "mnist.parquet", sizes=SMALL)


def outputs(folder: Path) -> dict[str, str]:
    return run_outputs.cell_files(folder)


def run(study_path, folder, model="simple_ffn", target="human_uncertainty", seed=0, config=CONFIG):
    paths = outputs(folder)
    train_run.run(
        study_path=study_path,
        outputs={seed: paths},
        model=model,
        target=target,
        config=config,
        threads=1,
        code_files=CODE,
    )
    return paths


# ------------------------------------------------------------------ reading


def test_read_study_arrays(study_path):
    study = study_table.read_study(study_path)
    n = sum(SMALL.values())
    assert study.pixels.shape == (n, 784) and study.pixels.dtype == np.uint8
    assert study.vectors["soft_label"].shape == (n, 11)
    assert study.vectors["label_dist"].shape == (n, 10)
    assert study.labels_origin == "simulated"
    assert study.rows("val").sum() == SMALL["val"]


def small_frame():
    return study_frame(0, {"train": 5, "val": 2, "test": 2})


def test_read_study_names_a_missing_column(tmp_path):
    path = tmp_path / "bad.parquet"
    io.write_table(study_table.to_arrow(small_frame()).drop_columns(["soft_label"]), path)
    with pytest.raises(DataContractError, match=rf"{path}: study table lacks column\(s\) \['soft_label'\]"):
        study_table.read_study(path)


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("split", "holdout", r"\(synthetic:train:3\): split 'holdout'"),
        ("soft_label_argmax", 11, r"\(synthetic:train:3\): soft_label_argmax 11 not in 0-10"),
        (
            "soft_label_yes_unc_equal",
            np.array([-0.1] + [0.1] * 10),
            r"\(synthetic:train:3\): soft_label_yes_unc_equal has a negative",
        ),
        (
            "soft_label",
            np.array([np.nan] + [0.1] * 10),
            r"\(synthetic:train:3\): soft_label has a negative or non-finite",
        ),
    ],
)
def test_read_study_errors_name_file_row_and_image(tmp_path, column, value, message):
    frame = small_frame()
    row = int(np.flatnonzero(frame["image_id"] == "synthetic:train:3")[0])
    frame.at[row, column] = value
    path = write_study(tmp_path / "bad.parquet", frame=frame)
    with pytest.raises(DataContractError, match=rf"bad.parquet: row \d+ {message}"):
        study_table.read_study(path)


# ------------------------------------------------------------------ targets


def tiny_study(tmp_path):
    """Four images with hand-set labels: a soft digit label, a part not-a-digit, all not-a-digit, a tie."""
    frame = study_frame(0, {"train": 4, "val": 0, "test": 0})
    soft = [
        [0.0, 0.6, 0.4] + [0.0] * 8,
        [0.5, 0.0, 0.0, 0.25] + [0.0] * 6 + [0.25],
        [0.0] * 10 + [1.0],
        [0.0, 0.2] + [0.0] * 8 + [0.8],  # majority not-a-digit, some digit mass
    ]
    frame["soft_label"] = [np.array(s) for s in soft]
    frame["soft_label_yes_unc_equal"] = [np.array(s) for s in soft]
    frame["soft_label_argmax"] = [1, 0, 10, 10]
    return study_table.read_study(write_study(tmp_path / "tiny.parquet", frame=frame))


def test_targets_renormalise_drop_not_a_digit_mass(tmp_path):
    study = tiny_study(tmp_path)
    y, usable = targets.target_distributions(study, "human_uncertainty", "renormalise")
    assert usable.tolist() == [True, True, False, True]
    np.testing.assert_allclose(y[0][:3], [0.0, 0.6, 0.4])
    np.testing.assert_allclose(y[1][[0, 3]], [2 / 3, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(y[3][1], 1.0)
    np.testing.assert_allclose(y[usable].sum(axis=1), 1.0, rtol=1e-6)
    y, usable = targets.target_distributions(study, "human_majority", "renormalise")
    assert usable.tolist() == [True, True, False, False]  # a not-a-digit majority has no digit one-hot
    assert y[0].argmax() == 1 and y[0].max() == 1.0


def test_targets_exclude_drop_not_a_digit_majorities_for_every_human_target(tmp_path):
    study = tiny_study(tmp_path)
    for target in targets.HUMAN_TARGETS:
        _, usable = targets.target_distributions(study, target, "exclude")
        assert usable.tolist() == [True, True, False, False], target
    y, usable = targets.target_distributions(study, "original", "exclude")
    assert usable.all()
    np.testing.assert_array_equal(y, study.vectors["label_dist"].astype(np.float32))


def test_unknown_target_and_mode_are_named(tmp_path):
    study = tiny_study(tmp_path)
    with pytest.raises(ValueError, match="'smoothed'"):
        targets.target_distributions(study, "smoothed", "renormalise")
    with pytest.raises(ValueError, match="'drop'"):
        targets.target_distributions(study, "original", "drop")


def test_regime_settings_follow_the_config():
    tp = train_run.regime_settings(CONFIG, "test_performance")
    assert (tp.max_epochs, tp.early_stopping_patience, tp.plateau_factor, tp.plateau_patience) == (6, 2, 0.5, 1)
    dyn = train_run.regime_settings(CONFIG, "dynamics")
    assert (dyn.max_epochs, dyn.early_stopping_patience, dyn.plateau_factor) == (3, None, None)
    assert dyn.batch_size == tp.batch_size == 32


# ------------------------------------------------------------------ one run


def test_run_writes_every_output_in_its_contract(study_path, tmp_path):
    paths = run(study_path, tmp_path / "run")
    study = study_table.read_study(study_path)
    y, usable = targets.target_distributions(study, "human_uncertainty", "renormalise")
    train = study.rows("train") & usable

    for regime in train_run.REGIMES:
        history = pq.read_table(paths[f"{regime}_history"]).to_pandas()
        assert list(history.columns) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr"]
        assert history[["train_loss", "val_loss"]].notna().all().all()
    assert len(pq.read_table(paths["dynamics_history"])) == CONFIG["dynamics"]["epochs"]

    predictions = pq.read_table(paths["test_performance_predictions"])
    assert predictions.column_names == ["image_id", "split", "probs"]
    scored = ~study.rows("train")
    assert sorted(predictions.column("image_id").to_pylist()) == sorted(study.image_id[scored])
    assert set(predictions.column("split").to_pylist()) == {"val", "test"}
    probs = io.vectors_array(predictions, "probs")
    assert probs.dtype == np.float32 and probs.shape[1] == 10
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)

    dynamics = pq.read_table(paths["dynamics_predictions"])
    assert dynamics.column_names == ["epoch", "image_id", "probs"]
    assert len(dynamics) == CONFIG["dynamics"]["epochs"] * train.sum()
    assert sorted(set(dynamics.column("image_id").to_pylist())) == sorted(study.image_id[train])
    probs_chunk = pq.ParquetFile(paths["dynamics_predictions"]).metadata.row_group(0).column(2)
    assert probs_chunk.compression == "ZSTD" and "BYTE_STREAM_SPLIT" in probs_chunk.encodings
    assert dynamics.schema.field("probs").type == predictions.schema.field("probs").type  # 10 float32

    manifest = json.loads(Path(paths["manifest"]).read_text())
    assert manifest["model"] == "simple_ffn" and manifest["seed"] == 0
    assert manifest["config"] == CONFIG
    assert manifest["data"]["n_train"] == train.sum()
    assert manifest["data"]["n_left_out"]["train"] == (study.rows("train") & ~usable).sum() > 0
    assert manifest["data"]["labels_origin"] == "simulated"
    mean, std = pixel_stats(study.pixels[train])
    assert manifest["data"]["normalisation"] == {"mean": mean, "std": std}
    tp = manifest["regimes"]["test_performance"]
    assert 1 <= tp["best_epoch"] <= tp["epochs_trained"] <= 6
    assert manifest["regimes"]["dynamics"]["epochs_trained"] == 3
    assert manifest["device"] == "cpu" and manifest["threads"] == 1
    assert manifest["stack"]["conv_pool"] is False  # no convolution to run (LeNet's: test_conv_pool.py)
    assert manifest["stack"]["ink_linear"] is ink_linear.available()  # the first layer's kernel (test_ink_linear.py)
    expected = {
        "softdigits/io.py",
        "softdigits/training/models.py",
        "softdigits/training/loop.py",
        "softdigits/training/train_run.py",
    }
    assert set(manifest["code_fingerprint"]["files"]) == expected
    assert "torch" in manifest["libraries"]


def test_same_config_and_seed_give_byte_identical_predictions(study_path, tmp_path):
    names = ["test_performance_predictions", "dynamics_predictions", "test_performance_history"]
    a = run(study_path, tmp_path / "a", model="lenet", seed=3)
    b = run(study_path, tmp_path / "b", model="lenet", seed=3)
    c = run(study_path, tmp_path / "c", model="lenet", seed=4)
    for name in names:
        assert Path(a[name]).read_bytes() == Path(b[name]).read_bytes(), name
    for name in ("test_performance_predictions", "dynamics_predictions"):
        pa_, pc = (io.vectors_array(pq.read_table(p[name]), "probs") for p in (a, c))
        assert not np.allclose(pa_, pc), name


def test_a_job_trains_each_seed_as_a_process_of_its_own_would(study_path, tmp_path):
    """One job trains every seed of a (model, target): seed 3 trained after seed 4 in one
    process gives the bytes of seed 3 trained alone in a fresh process (nothing a seed
    leaves in the process changes the next); the manifests name their own seeds."""
    names = ["test_performance_predictions", "dynamics_predictions", "test_performance_history", "dynamics_history"]
    job = {seed: outputs(tmp_path / f"job/seed{seed}") for seed in (4, 3)}
    manifests = train_run.run(
        study_path=study_path,
        outputs=job,
        model="lenet",
        target="human_uncertainty",
        config=CONFIG,
        threads=1,
        code_files=CODE,
    )
    assert [m["seed"] for m in manifests] == [4, 3]
    assert json.loads(Path(job[3]["manifest"]).read_text())["seed"] == 3
    alone = outputs(tmp_path / "alone")
    code = (
        "import json, sys\n"
        "from softdigits.training import train_run\n"
        "train_run.run(study_path=sys.argv[1], outputs={3: json.loads(sys.argv[2])}, model='lenet',"
        " target='human_uncertainty', config=json.loads(sys.argv[3]), threads=1, code_files=[])\n"
    )
    subprocess.run([sys.executable, "-c", code, str(study_path), json.dumps(alone), json.dumps(CONFIG)], check=True)
    for name in names:
        assert Path(job[3][name]).read_bytes() == Path(alone[name]).read_bytes(), name
        assert Path(job[4][name]).read_bytes() != Path(alone[name]).read_bytes(), name  # the check can fail


def test_exclude_mode_trains_on_fewer_images(study_path, tmp_path):
    paths = run(study_path, tmp_path / "ex", target="human_equal", config={**CONFIG, "not_a_digit": "exclude"})
    study = study_table.read_study(study_path)
    expected = study.rows("train") & (study.soft_label_argmax != 10)
    manifest = json.loads(Path(paths["manifest"]).read_text())
    assert manifest["data"]["n_train"] == expected.sum()
    predictions = pq.read_table(paths["test_performance_predictions"])
    assert len(predictions) == (~study.rows("train")).sum()  # every val and test image is still scored


def test_a_target_with_no_usable_validation_image_is_an_error(tmp_path):
    frame = study_frame(0, {"train": 10, "val": 3, "test": 2})
    val = frame["split"] == "val"
    frame.loc[val, "soft_label_argmax"] = 10
    path = write_study(tmp_path / "noval.parquet", frame=frame)
    with pytest.raises(DataContractError, match=r"noval.parquet.*'human_majority' leaves \d+ train and 0 val"):
        run(path, tmp_path / "out", target="human_majority")
    assert not any((tmp_path / "out").glob("*"))  # nothing written


def test_code_fingerprint_changes_with_the_code(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("x = 1\n")
    b.write_text("y = 2\n")
    first = provenance.code_fingerprint([str(a), str(b)])
    assert first == provenance.code_fingerprint([str(b), str(a)])  # order does not matter
    a.write_text("x = 2\n")
    assert provenance.code_fingerprint([str(a), str(b)])["sha256"] != first["sha256"]


def test_control_targets_train_and_record_how_they_were_built(study_path, tmp_path):
    study = study_table.read_study(study_path)
    paths = run(study_path, tmp_path / "ls", target="label_smoothing")
    details = json.loads(Path(paths["manifest"]).read_text())["data"]["target_details"]
    y, usable = targets.target_distributions(study, "human_uncertainty", "renormalise")
    _, smoothed = targets.target_distributions(study, "label_smoothing", "renormalise")
    train = study.rows("train") & usable & smoothed  # the images the run trains on
    p = y[train].astype(np.float64)
    mean_entropy = float(np.mean(-np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0), axis=1)))
    assert details["matched_mean_entropy"] == pytest.approx(mean_entropy, abs=1e-6)
    assert 0 < details["epsilon"] < 0.9

    paths = run(study_path, tmp_path / "sh", target="human_shuffled", config={**CONFIG, "shuffle_seed": 5})
    manifest = json.loads(Path(paths["manifest"]).read_text())
    assert manifest["config"]["shuffle_seed"] == 5
    assert manifest["data"]["target_details"]["shuffle_seed"] == 5
    assert manifest["data"]["target_details"]["n_changed"]["train"] > 0
    with pytest.raises(ValueError, match="shuffle_seed"):
        run(study_path, tmp_path / "none", target="human_shuffled")
