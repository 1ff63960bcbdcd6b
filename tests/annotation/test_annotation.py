"""Campaign export, raw-answer import and validation, released import, study table."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from answers_fixture import GOOD, answers, bad_variants, write_answers
from corpus_fixture import make_corpus, make_selection_and_map
from PIL import Image

from softdigits import io, study_table
from softdigits.annotation.aggregation import aggregate, labels_table, read_labels
from softdigits.annotation.answers import RAW_SCHEMA, RawAnnotationError, raw_table, read_raw_annotations
from softdigits.annotation.campaign import choose_gold, design_campaign, png_bytes, read_campaign, run_export
from softdigits.annotation.released import ReleasedTableError, match_released_ids, read_released
from softdigits.annotation.study import run_study

# ------------------------------------------------------------------ fixtures (also used by
# tests/test_annotator_simulation.py and tests/test_workflow_annotation.py)


# ------------------------------------------------------------------ campaign design


def test_design_every_image_gets_k_distinct_tasks_with_checks():
    ids = [f"x:{i}" for i in range(300)]
    gold = pd.DataFrame({"image_id": [f"g:{d}" for d in range(10)], "gold_label": range(10)})
    tasks = design_campaign(ids, gold, annotators_per_image=6, images_per_task=70, checks_per_task=3, seed=1)
    study = tasks[~tasks["is_attention_check"]]
    per_image = study.groupby("image_id")["task_id"].nunique()
    assert set(per_image.index) == set(ids) and (per_image == 6).all()
    assert (study.groupby("image_id").size() == 6).all()  # never twice in one task
    sizes = tasks.groupby("task_id").size()
    assert sizes.between(60, 70).all()  # 300 images in 5 tasks of 60 study images + 3 checks
    checks = tasks[tasks["is_attention_check"]].groupby("task_id")
    assert (checks.size() == 3).all() and (checks["image_id"].nunique() == 3).all()
    assert (tasks.loc[tasks["is_attention_check"], "gold_label"].between(0, 9)).all()
    again = design_campaign(ids, gold, annotators_per_image=6, images_per_task=70, checks_per_task=3, seed=1)
    pd.testing.assert_frame_equal(tasks, again)
    other = design_campaign(ids, gold, annotators_per_image=6, images_per_task=70, checks_per_task=3, seed=2)
    assert not tasks.equals(other)


def test_choose_gold_takes_most_confident_easy_outside_selection():
    images = make_corpus("mnist", 60)
    meta = images.select(["image_id", "label"]).to_pandas()
    data_map = pd.DataFrame(
        {
            "image_id": meta["image_id"],
            "confidence": np.linspace(0, 1, 60),
            "variability": 0.0,
            "correctness": 1.0,
            "region": "easy",
        }
    )
    top = "mnist:train:59"
    gold = choose_gold(data_map, meta, exclude={top}, per_digit=2)
    assert len(gold) == 20 and top not in set(gold["image_id"])
    assert sorted(gold["gold_label"].unique()) == list(range(10))
    assert "mnist:train:58" in set(gold["image_id"])  # most confident of digit 8


def test_png_decodes_to_the_same_greyscale_pixels():
    pixels = np.arange(784, dtype=np.uint16).astype(np.uint8)  # every grey level, 0 and 255 included
    data = png_bytes(pixels)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(BytesIO(data))
    assert (image.format, image.mode, image.size) == ("PNG", "L", (28, 28))
    np.testing.assert_array_equal(np.asarray(image).reshape(-1), pixels)


def test_export_writes_folder_atomically(tmp_path):
    images = make_corpus("mnist", 80)
    selection, data_map = make_selection_and_map(images, 40)
    paths = {name: tmp_path / f"{name}.parquet" for name in ("sel", "img", "map")}
    selection.to_parquet(paths["sel"])
    io.write_table(images, paths["img"])
    data_map.to_parquet(paths["map"])
    out = tmp_path / "campaign"
    campaign = {
        "annotators_per_image": 3,
        "images_per_task": 23,
        "checks_per_task": 3,
        "gold_corpus": "mnist",
        "gold_per_digit": 1,
    }
    run_export(
        corpus="mnist",
        selection_path=paths["sel"],
        images_path=paths["img"],
        gold_images_path=paths["img"],
        gold_data_map_path=paths["map"],
        out_dir=out,
        campaign=campaign,
        seed=0,
    )
    tasks, gold = read_campaign(out)
    assert len(gold) == 10 and not set(gold["image_id"]) & set(selection["image_id"])
    assert (tasks[~tasks["is_attention_check"]].groupby("image_id").size() == 3).all()
    task_files = sorted(p.name for p in (out / "tasks").iterdir())
    assert task_files == sorted(f"{t}.csv" for t in tasks["task_id"].unique())
    one = pd.read_csv(out / "tasks" / task_files[0])
    assert list(one.columns) == ["trial", "image_id", "image_file", "is_attention_check"]
    assert all((out / f).exists() for f in one["image_file"])
    assert "gold_label" not in one.columns  # the annotator-facing list hides the answers
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".campaign")]


# ------------------------------------------------------------------ raw import


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_good_file_reads_in_both_formats(tmp_path, fmt):
    path = write_answers(GOOD, tmp_path / f"raw.{fmt}", fmt)
    table, report = read_raw_annotations(path, known_image_ids={"img1", "g1"})
    assert len(table) == 30 and report["bad_rows"] == 0
    assert table["class"].dtype == np.int64
    assert table["is_attention_check"].sum() == 10
    assert table.loc[table["is_attention_check"], "gold_label"].eq(0).all()
    assert not table["simulated"].any()
    labels, qc = aggregate(table)
    assert qc.n_excluded == 0 and labels["n_annotators"].tolist() == [2]


def test_raw_table_writes_the_raw_schema(tmp_path):
    path = write_answers(GOOD, tmp_path / "raw.csv", "csv")
    table, _ = read_raw_annotations(path, known_image_ids={"img1", "g1"})
    raw = raw_table(table)
    assert raw.schema == RAW_SCHEMA
    assert raw.column("gold_label").null_count == 20  # null on study images, the gold digit on checks
    io.write_table(raw, tmp_path / "raw.parquet")
    assert pq.read_schema(tmp_path / "raw.parquet").remove_metadata() == RAW_SCHEMA


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("case", sorted(bad_variants()))
def test_bad_rows_named_with_file_row_and_reason(tmp_path, fmt, case):
    rows, row, reason = bad_variants()[case]
    path = write_answers(rows, tmp_path / f"raw.{fmt}", fmt)
    with pytest.raises(RawAnnotationError) as err:
        read_raw_annotations(path, known_image_ids={"img1", "g1"})
    message = str(err.value)
    assert str(path) in message and f"{row}" in message and reason in message
    if fmt == "csv":
        line = int(row.split()[1]) + 1
        assert f"(line {line})" in message


def test_drop_mode_counts_by_reason(tmp_path):
    rows = [dict(r) for r in GOOD]
    rows[2]["response"] = "maybe"  # a1/img1 is now incomplete too -> its 10 rows go
    rows += [dict(GOOD[25])]  # duplicate of an a2 row
    path = write_answers(rows, tmp_path / "raw.csv", "csv")
    table, report = read_raw_annotations(path, on_bad_rows="drop")
    assert report["bad_rows"] == 11
    assert report["bad_rows_by_reason"] == {"did not answer": 9, "duplicate answer": 1, "response": 1}
    assert len(table) == 20 and set(table["annotator_id"] + table["image_id"]) == {"a1g1", "a2img1"}


def test_missing_columns_and_file_type(tmp_path):
    path = tmp_path / "raw.csv"
    pd.DataFrame(GOOD).drop(columns=["response"]).to_csv(path, index=False)
    with pytest.raises(RawAnnotationError, match=r"raw.csv: missing column\(s\) \['response'\]"):
        read_raw_annotations(path)
    path = tmp_path / "raw.csv"
    pd.DataFrame(GOOD).drop(columns=["gold_label"]).to_csv(path, index=False)
    with pytest.raises(RawAnnotationError, match="no 'gold_label' column"):
        read_raw_annotations(path)
    with pytest.raises(RawAnnotationError, match="unsupported file type '.xlsx'"):
        read_raw_annotations(tmp_path / "raw.xlsx")


def test_many_bad_rows_are_summarised(tmp_path):
    rows = [dict(r, response="?") for r in GOOD]
    path = write_answers(rows, tmp_path / "raw.csv", "csv")
    with pytest.raises(
        RawAnnotationError,
        match=r"(?s)row 1 \(line 2\): response .\?. is not.*30 bad row\(s\) in all: 30 response.*and 20 more bad row",
    ):
        read_raw_annotations(path)


# ------------------------------------------------------------------ released + study table


def released_fixture(path, images: pa.Table, n_extra: int = 2):
    """A file in the released soft-digits layout: strings for soft labels, floats in [0, 1]."""
    pix = io.pixels_array(images)[:5].astype(float) / 255.0
    extra = np.random.default_rng(0).random((n_extra, 784))
    soft = np.zeros(11)
    soft[[2, 3]] = [0.75, 0.25]
    rows = []
    for k, p in enumerate(np.vstack([pix, extra])):
        rows.append(
            {
                "images": p.tolist(),
                "indices": k,
                "original_labels": np.eye(10)[k % 10].tolist(),
                "file_name": f"{k}.png",
                "human_uncert_mean": 0.05,
                "pct_ann_unsure": 0.5,
                "soft_label": str((soft if k == 0 else np.eye(11)[k % 10]).tolist()),
                "soft_label_yes_unc_equal": str(np.eye(11)[k % 10].tolist()),
                "soft_label_yes_only": str(np.eye(11)[k % 10].tolist()),
                "soft_label_argmax": 2 if k == 0 else k % 10,
                "split": ["train", "val", "test"][k % 3],
                "source": "mnist",
            }
        )
    rows.append(dict(rows[0], source="mukhoti", indices=99))
    pd.DataFrame(rows).to_parquet(path)
    return path


def test_released_rows_match_corpus_ids_by_pixels(tmp_path):
    images = make_corpus("mnist", 20)
    path = released_fixture(tmp_path / "released.parquet", images)
    released = read_released(path, "mnist")
    assert len(released) == 7 and released["n_annotators"].isna().all()
    assert released.loc[0, "hlv"] and not released.loc[1, "hlv"]
    matched = match_released_ids(released, images)
    assert matched["image_id"].tolist()[:5] == [f"mnist:train:{i}" for i in range(5)]
    assert matched["image_id"].tolist()[5:] == ["mnist:released:5", "mnist:released:6"]


def test_released_errors_name_file_and_column(tmp_path):
    path = tmp_path / "released.parquet"
    pd.DataFrame({"images": [[0] * 784]}).to_parquet(path)
    with pytest.raises(ReleasedTableError, match="released.parquet: missing column"):
        read_released(path, "mnist")
    images = make_corpus("mnist", 20)
    released_fixture(path, images)
    df = pd.read_parquet(path)
    df.loc[3, "soft_label"] = "[0.5, 0.5]"
    df.to_parquet(path)
    with pytest.raises(ReleasedTableError, match="row 4: column 'soft_label' should hold 11"):
        read_released(path, "mnist")


def test_run_study_released_and_simulated_paths(tmp_path):
    images = make_corpus("mnist", 30)
    img_path = tmp_path / "images.parquet"
    io.write_table(images, img_path)
    selection, data_map = make_selection_and_map(images, 6)
    data_map.to_parquet(tmp_path / "map.parquet")
    released_fixture(tmp_path / "released.parquet", images)
    out = tmp_path / "study_released.parquet"
    run_study(
        origin="released",
        corpus="mnist",
        images_path=img_path,
        data_map_path=tmp_path / "map.parquet",
        released_path=tmp_path / "released.parquet",
        out_path=out,
    )
    study = pq.read_table(out)
    assert io.read_metadata(out)["labels_origin"] == "released"
    assert study.column_names == study_table.COLUMNS
    assert study.schema.field("soft_label").type == pa.list_(pa.float32(), 11)
    assert study.column("region").to_pylist().count("unknown") == 2

    # Simulated-style path: labels for all but one selected image.
    rows = []
    for k, image_id in enumerate(selection["image_id"][1:]):
        rows += answers("a", image_id, yes=[k % 10])
    raw = pd.DataFrame(rows).assign(gold_label=pd.NA, simulated=True)
    labels, _ = aggregate(raw)
    io.write_table(labels_table(labels), tmp_path / "labels.parquet")
    selection.to_parquet(tmp_path / "sel.parquet")
    out = tmp_path / "study.parquet"
    run_study(
        origin="simulated",
        corpus="mnist",
        images_path=img_path,
        data_map_path=tmp_path / "map.parquet",
        selection_path=tmp_path / "sel.parquet",
        labels_path=tmp_path / "labels.parquet",
        out_path=out,
    )
    meta = io.read_metadata(out)
    assert meta["labels_origin"] == "simulated" and meta["simulated"]
    assert meta["n_unlabelled_dropped"] == 1
    study = pq.read_table(out)
    assert study.num_rows == 5 and all(study.column("simulated").to_pylist())
    back = read_labels(tmp_path / "labels.parquet").set_index("image_id")
    first = study.column("image_id")[0].as_py()
    np.testing.assert_array_equal(io.vectors_array(study, "soft_label")[0], back.loc[first, "soft_label"])
    row = images.column("image_id").to_pylist().index(first)
    np.testing.assert_array_equal(io.pixels_array(study)[0], io.pixels_array(images)[row])
