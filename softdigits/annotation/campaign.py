"""The annotation campaign: task lists with gold attention checks, and the folder an
experiment builder (e.g. Gorilla) takes.

- `design_campaign`: task lists of about 70 images, so that every selected image is
  shown to a fixed number of annotators; `choose_gold` picks the attention checks.
- `export_campaign` / `run_export`: PNG files, one CSV per task, tasks.csv, gold.csv and
  a manifest, written atomically; `read_campaign` reads the task and gold tables back.
"""

from __future__ import annotations

import logging
import os
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from softdigits import io
from softdigits.constants import N_DIGITS, SIDE

log = logging.getLogger(__name__)


def design_campaign(
    image_ids: list[str],
    gold: pd.DataFrame,
    *,
    annotators_per_image: int,
    images_per_task: int,
    checks_per_task: int,
    seed: int,
) -> pd.DataFrame:
    """Task lists: one row per (task, trial); each task is done by one annotator.

    Each of `annotators_per_image` rounds shuffles the images and cuts them into
    tasks of `images_per_task - checks_per_task` study images, so every image is in
    exactly that many different tasks. Each task gets `checks_per_task` distinct gold
    images (`gold`: image_id, gold_label) at random positions.
    Columns: task_id, trial (1-based), image_id, is_attention_check, gold_label.
    """
    n_study = images_per_task - checks_per_task
    if n_study < 1:
        raise ValueError("images_per_task must exceed checks_per_task")
    if checks_per_task > len(gold):
        raise ValueError(f"{checks_per_task} attention checks per task but only " f"{len(gold)} gold images")
    rng = np.random.default_rng(seed)
    images = np.asarray(sorted(image_ids), dtype=object)
    n_tasks_per_round = max(1, int(np.ceil(len(images) / n_study)))
    gold_ids = gold["image_id"].to_numpy(dtype=object)
    gold_label = dict(zip(gold["image_id"], gold["gold_label"].astype(int)))
    rows = []
    for round_ in range(annotators_per_image):
        for j, chunk in enumerate(np.array_split(rng.permutation(images), n_tasks_per_round)):
            checks = rng.choice(gold_ids, size=checks_per_task, replace=False)
            trials = np.concatenate([chunk, checks])
            is_check = np.r_[np.zeros(len(chunk), bool), np.ones(len(checks), bool)]
            order = rng.permutation(len(trials))
            task_id = f"r{round_ + 1}-t{j + 1:03d}"
            for trial, k in enumerate(order, start=1):
                rows.append(
                    (task_id, trial, trials[k], bool(is_check[k]), gold_label[trials[k]] if is_check[k] else -1)
                )
    return pd.DataFrame(rows, columns=["task_id", "trial", "image_id", "is_attention_check", "gold_label"])


def choose_gold(data_map: pd.DataFrame, images: pd.DataFrame, exclude: set[str], per_digit: int) -> pd.DataFrame:
    """Gold attention-check images: the most confident 'easy' images of each digit.

    Taken from the cartography data map, outside the selection, and only images whose
    original label is known. Returns image_id, gold_label.
    """
    labels = images[["image_id", "label"]]
    pool = data_map.merge(labels, on="image_id")
    pool = pool[~pool["image_id"].isin(exclude) & (pool["label"] >= 0)]
    easy = pool[pool["region"] == "easy"]
    pool = easy if easy["label"].nunique() == N_DIGITS else pool
    pool = pool.sort_values(["confidence", "image_id"], ascending=[False, True])
    gold = pool.groupby("label", sort=True).head(per_digit)
    gold = gold.rename(columns={"label": "gold_label"})[["image_id", "gold_label"]]
    return gold.sort_values(["gold_label", "image_id"]).reset_index(drop=True)


def image_file_name(image_id: str) -> str:
    """A file name for an image id (':' is not portable in file names)."""
    return image_id.replace(":", "_").replace("/", "_") + ".png"


def png_bytes(pixels: np.ndarray) -> bytes:
    """An 8-bit greyscale PNG of one image (SIDE x SIDE)."""
    from PIL import Image  # only the export writes PNGs: the rules that read a campaign do without Pillow

    buf = BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8).reshape(SIDE, SIDE)).save(buf, format="PNG")
    return buf.getvalue()


def export_campaign(
    tasks: pd.DataFrame, gold: pd.DataFrame, images: pa.Table, out_dir: str | os.PathLike, manifest: dict
) -> None:
    """Write the campaign folder atomically.

    Layout: images/<file>.png (every study image and every image of the gold pool, also
    those no task list uses), tasks/<task_id>.csv (one
    spreadsheet per annotator: trial, image_id, image_file, is_attention_check),
    tasks.csv (all tasks, with gold_label for checks), gold.csv and manifest.json.
    """
    shown = set(tasks["image_id"]) | set(gold["image_id"])  # the whole gold pool: the task's practice uses one
    ids = images.column("image_id").to_pylist()
    pixels = io.pixels_array(images)
    missing = shown - set(ids)
    if missing:
        raise ValueError(f"campaign images missing from the images table: {sorted(missing)[:5]}")
    tasks = tasks.assign(image_file=[f"images/{image_file_name(i)}" for i in tasks["image_id"]])
    with io.atomic_dir(out_dir) as tmp:
        (tmp / "images").mkdir()
        (tmp / "tasks").mkdir()
        for k, image_id in enumerate(ids):
            if image_id in shown:
                (tmp / "images" / image_file_name(image_id)).write_bytes(png_bytes(pixels[k]))
        annotator_view = ["trial", "image_id", "image_file", "is_attention_check"]
        for task_id, task in tasks.groupby("task_id", sort=True):
            task[annotator_view].to_csv(tmp / "tasks" / f"{task_id}.csv", index=False)
        tasks.to_csv(tmp / "tasks.csv", index=False)
        gold.to_csv(tmp / "gold.csv", index=False)
        io.write_json(manifest, tmp / "manifest.json")


def read_campaign(campaign_dir: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The task table and the gold table of an exported campaign."""
    campaign_dir = Path(campaign_dir)
    tasks = pd.read_csv(campaign_dir / "tasks.csv", dtype={"task_id": str, "image_id": str})
    gold = pd.read_csv(campaign_dir / "gold.csv", dtype={"image_id": str})
    return tasks, gold


def run_export(
    *,
    corpus: str,
    selection_path,
    images_path,
    gold_images_path,
    gold_data_map_path,
    out_dir,
    campaign: dict,
    seed: int,
) -> None:
    """Rule annotation_export: design the campaign for the selected images and write it."""
    selection = pd.read_parquet(selection_path)
    images = io.read_images(images_path)
    gold_images = io.read_images(gold_images_path)
    data_map = pd.read_parquet(gold_data_map_path)
    gold = choose_gold(
        data_map,
        gold_images.select(["image_id", "label"]).to_pandas(),
        exclude=set(selection["image_id"]),
        per_digit=int(campaign["gold_per_digit"]),
    )
    tasks = design_campaign(
        selection["image_id"].tolist(),
        gold,
        annotators_per_image=int(campaign["annotators_per_image"]),
        images_per_task=int(campaign["images_per_task"]),
        checks_per_task=int(campaign["checks_per_task"]),
        seed=int(seed),
    )
    shown = pa.concat_tables([images.select(["image_id", "pixels"]), gold_images.select(["image_id", "pixels"])])
    manifest = {
        "corpus": corpus,
        "seed": int(seed),
        "campaign": dict(campaign),
        "n_images": int(len(selection)),
        "n_tasks": int(tasks["task_id"].nunique()),
        "n_gold": int(len(gold)),
    }
    export_campaign(tasks, gold, shown, out_dir, manifest)
    log.info(
        "%s: %d task lists for %d images, %d gold checks in the pool",
        corpus,
        manifest["n_tasks"],
        manifest["n_images"],
        manifest["n_gold"],
    )
