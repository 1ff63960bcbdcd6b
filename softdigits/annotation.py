"""The annotation campaign: export, import and validation of answers, the study table.

- `design_campaign` / `export_campaign`: task lists of about 70 images (with gold
  attention checks) so that every selected image is shown to a fixed number of
  annotators; PNG files and CSVs an experiment builder (e.g. Gorilla) can take.
- `read_raw_annotations`: a real campaign's answers (CSV or Parquet, one row per
  annotator x image x class asked), validated; bad rows stop the job with the file,
  row and reason, or are dropped and counted (`on_bad_rows`).
- `read_released`: the released soft-digits Parquet (image-level aggregates only).
- `study_table`: selection + images + labels, the one table training reads.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from softdigits import io, study_table
from softdigits.aggregation import LABEL_COLUMNS, WEIGHTINGS, is_one_hot
from softdigits.constants import N_DIGITS, N_HUMAN_CLASSES, RESPONSES

log = logging.getLogger(__name__)

RAW_COLUMNS = ["annotator_id", "image_id", "class", "response", "is_attention_check", "reaction_time_ms"]
ON_BAD_ROWS = ("error", "drop")
MAX_LISTED_ERRORS = 10  # problems listed in an error; the rest are counted


class RawAnnotationError(ValueError):
    """A raw annotation file has bad rows; the message names file, row and reason."""


class ReleasedTableError(ValueError):
    """The released soft-digits file does not have the expected columns or values."""


# ------------------------------------------------------------------ campaign


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
    """A 28x28 8-bit greyscale PNG (uncompressed filter 0; zlib level 9), stdlib only."""
    img = np.asarray(pixels, dtype=np.uint8).reshape(28, 28)
    raw = b"".join(b"\x00" + row.tobytes() for row in img)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def export_campaign(
    tasks: pd.DataFrame, gold: pd.DataFrame, images: pa.Table, out_dir: str | os.PathLike, manifest: dict
) -> None:
    """Write the campaign folder atomically.

    Layout: images/<file>.png (every study and gold image), tasks/<task_id>.csv (one
    spreadsheet per annotator: trial, image_id, image_file, is_attention_check),
    tasks.csv (all tasks, with gold_label for checks), gold.csv and manifest.json.
    """
    shown = set(tasks["image_id"])
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


# ------------------------------------------------------------------ raw answers


def raw_table(df: pd.DataFrame) -> pa.Table:
    """The raw annotations contract as an Arrow table (column order and types fixed)."""
    return pa.table(
        {
            "annotator_id": pa.array(df["annotator_id"].astype(str), pa.string()),
            "image_id": pa.array(df["image_id"].astype(str), pa.string()),
            "class": pa.array(df["class"].astype(np.int64), pa.int64()),
            "response": pa.array(df["response"].astype(str), pa.string()),
            "is_attention_check": pa.array(df["is_attention_check"].astype(bool), pa.bool_()),
            "reaction_time_ms": pa.array(df["reaction_time_ms"].astype(float), pa.float64(), from_pandas=True),
            "gold_label": pa.array(df["gold_label"].astype("Int64"), pa.int64(), from_pandas=True),
            "simulated": pa.array(df["simulated"].astype(bool), pa.bool_()),
        }
    )


def refuse_overwrite(inputs: list, outputs: list) -> None:
    """Raise RawAnnotationError when an output would overwrite an input, another output,
    or a folder: raw answers cannot be regenerated, so they are never written over."""
    seen: dict[str, str] = {}
    for label, path in inputs:
        seen[os.path.realpath(path)] = f"the {label} file"
    for label, path in outputs:
        if path is None:
            continue
        path = Path(path)
        real = os.path.realpath(path)
        clash = seen.get(real)
        if clash is None and path.exists():
            clash = next(
                (what for other, what in seen.items() if os.path.exists(other) and os.path.samefile(other, path)), None
            )
        if clash:
            raise RawAnnotationError(
                f"{path}: the {label} path is {clash}; refusing to write over it " "(choose another output path)"
            )
        if path.is_dir():
            raise RawAnnotationError(f"{path}: the {label} path is a folder; give a file name")
        seen[real] = f"the {label} file"


def _read_any(path: Path) -> pd.DataFrame:
    """The file as a DataFrame (CSV: every cell a string); unreadable -> RawAnnotationError."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise RawAnnotationError(f"{path}: unsupported file type {suffix!r} (use .csv or .parquet)")
    if path.is_dir():
        raise RawAnnotationError(f"{path}: is a folder, expected a {suffix} file")
    if not path.exists():
        raise RawAnnotationError(f"{path}: no such file")
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        return pq.read_table(path).to_pandas()
    except pd.errors.EmptyDataError:
        raise RawAnnotationError(f"{path}: the file is empty (not even a header row)") from None
    except UnicodeDecodeError:
        raise RawAnnotationError(_not_utf8(path)) from None
    except (pd.errors.ParserError, pa.ArrowException, OSError) as err:
        kind = "CSV" if suffix == ".csv" else "Parquet"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RawAnnotationError(f"{path}: not a readable {kind} file ({first})") from None


def _not_utf8(path: Path) -> str:
    """Where the first byte that is not UTF-8 sits (line and byte offset)."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
        offset = 0
    except UnicodeDecodeError as err:
        offset = err.start
    line = data.count(b"\n", 0, offset) + 1
    return (
        f"{path}: line {line} (byte {offset}): byte 0x{data[offset]:02x} is not UTF-8 text; "
        "save the file as UTF-8 (e.g. from a spreadsheet: CSV UTF-8)"
    )


def _as_int(values: pd.Series) -> pd.Series:
    """Integers where the value is a whole number, NaN elsewhere."""
    num = pd.to_numeric(values.astype(str).str.strip().replace("", np.nan), errors="coerce")
    return num.where(num == np.floor(num))


_TRUE = {"true", "1", "t"}
_FALSE = {"false", "0", "f", ""}
_MISSING = ["", "nan", "None", "<NA>"]
# Kinds of bad row, root causes first: a bad row makes its (annotator, image) pair
# incomplete too, so the per-row checks come before duplicates and completeness.
ROW_KINDS = (
    "empty annotator_id",
    "empty image_id",
    "class",
    "response",
    "is_attention_check",
    "attention-check",
    "reaction_time_ms",
    "unknown image_id",
)
DROP_HINT = (
    "to drop bad rows instead, set config annotation.on_bad_rows: drop " "(softdigits aggregate: --on-bad-rows drop)"
)


def read_raw_annotations(
    path: str | os.PathLike,
    *,
    known_image_ids: set[str] | None = None,
    on_bad_rows: str = "error",
) -> tuple[pd.DataFrame, dict]:
    """Read and validate a raw answers file (CSV or Parquet).

    Checks per row: non-empty annotator and image ids, image known (when
    `known_image_ids` is given), class a digit 0-9, response yes/no/unsure (case and
    surrounding spaces ignored), is_attention_check a boolean, gold_label a digit on
    attention-check rows, reaction_time_ms empty or a finite number >= 0. Then
    duplicate answers to the same (annotator, image, class), then (annotator, image)
    pairs that do not answer all ten classes.

    With `on_bad_rows='error'` the first stage that finds bad rows stops the read
    (fail fast: duplicates and completeness are only checked on clean rows), raising
    RawAnnotationError whose first line names the file, the first bad row and its
    reason, followed by the first MAX_LISTED_ERRORS problems and counts per reason.
    With 'drop' the bad rows are dropped (an incomplete pair entirely) and counted by
    reason in the report. Row numbers are 1-based data rows; for CSV files the line
    number is given too. Messages are only built for the rows listed, so a file of
    a million bad rows is rejected in seconds.
    """
    if on_bad_rows not in ON_BAD_ROWS:
        raise ValueError(f"on_bad_rows must be one of {ON_BAD_ROWS}, got {on_bad_rows!r}")
    path = Path(path)
    df = _read_any(path)
    missing = [c for c in RAW_COLUMNS if c not in df.columns]
    if missing:
        raise RawAnnotationError(f"{path}: missing column(s) {missing}; a raw annotation file needs {RAW_COLUMNS}")
    n = len(df)
    kind = np.full(n, "", dtype=object)

    def flag(mask, name: str) -> None:
        kind[np.asarray(mask, dtype=bool) & (kind == "")] = name

    annotator = df["annotator_id"].astype(str).str.strip()
    image = df["image_id"].astype(str).str.strip()
    flag(annotator.isin(_MISSING), "empty annotator_id")
    flag(image.isin(_MISSING), "empty image_id")
    cls = _as_int(df["class"])
    flag(~cls.between(0, N_DIGITS - 1), "class")
    response = df["response"].astype(str).str.strip().str.lower()
    flag(~response.isin(RESPONSES), "response")
    check_text = df["is_attention_check"].astype(str).str.strip().str.lower()
    flag(~check_text.isin(_TRUE | _FALSE), "is_attention_check")
    is_check = check_text.isin(_TRUE).to_numpy()
    if is_check.any() and "gold_label" not in df.columns:
        raise RawAnnotationError(f"{path}: attention-check rows present but no 'gold_label' column (the gold digit)")
    gold = _as_int(df["gold_label"]) if "gold_label" in df.columns else pd.Series(np.nan, index=df.index)
    flag(is_check & ~gold.between(0, N_DIGITS - 1).to_numpy(), "attention-check")
    rt_text = df["reaction_time_ms"].astype(str).str.strip()
    rt_empty = rt_text.isin(_MISSING)
    rt = pd.to_numeric(rt_text.where(~rt_empty, np.nan), errors="coerce")
    flag(~rt_empty & ~(np.isfinite(rt) & (rt >= 0)), "reaction_time_ms")
    if known_image_ids is not None:
        flag(~image.isin(known_image_ids), "unknown image_id")

    table = pd.DataFrame(
        {
            "annotator_id": annotator,
            "image_id": image,
            "class": cls,
            "response": response,
            "is_attention_check": is_check,
            "reaction_time_ms": rt,
            "gold_label": gold.where(is_check),
            "simulated": _simulated_flags(df),
        }
    )
    raw_text = {
        "class": df["class"],
        "response": df["response"],
        "is_attention_check": df["is_attention_check"],
        "reaction_time_ms": rt_text,
    }
    stop = on_bad_rows == "error"

    if not (stop and (kind != "").any()):
        ok = kind == ""
        dup = table[ok].duplicated(["annotator_id", "image_id", "class"], keep="first")
        flag(pd.Series(dup, index=table.index[ok]).reindex(table.index, fill_value=False), "duplicate answer")
    if not (stop and (kind != "").any()):
        ok = kind == ""
        n_classes = table[ok].groupby(["annotator_id", "image_id"])["class"].transform("nunique")
        flag(ok & (n_classes.reindex(table.index).fillna(N_DIGITS).to_numpy() < N_DIGITS), "did not answer")

    bad = kind != ""
    counts = Counter(kind[bad])
    report = {
        "file": str(path),
        "rows": n,
        "bad_rows": int(bad.sum()),
        "bad_rows_by_reason": dict(sorted(counts.items())),
        "on_bad_rows": on_bad_rows,
    }
    if bad.any():
        if stop:
            raise RawAnnotationError(_bad_rows_message(path, table, kind, raw_text, counts))
        log.warning("%s: dropping %d bad row(s): %s", path, bad.sum(), report["bad_rows_by_reason"])
    table = table[~bad].reset_index(drop=True)
    table["class"] = table["class"].astype(np.int64)
    table["gold_label"] = table["gold_label"].astype("Int64")
    report["rows_kept"] = len(table)
    return table, report


def _bad_rows_message(path: Path, table: pd.DataFrame, kind: np.ndarray, raw_text: dict, counts: Counter) -> str:
    """First line: the file, the first root-cause row and its reason; then a capped list."""
    order = [*ROW_KINDS, "duplicate answer", "did not answer"]
    csv = path.suffix.lower() == ".csv"
    listed: dict = {}  # key -> (message, rows); an incomplete pair's rows share one entry
    for name in order:
        for i in np.flatnonzero(kind == name):
            message = _row_reason(name, int(i), table, raw_text)
            key = message if name == "did not answer" else (message, int(i))
            if key not in listed and len(listed) == MAX_LISTED_ERRORS:
                break
            listed.setdefault(key, (message, []))[1].append(int(i))
        if len(listed) == MAX_LISTED_ERRORS:
            break

    def where(rows: list[int]) -> str:
        first = rows[0] + 1
        text = f"row {first}" + (f" (line {first + 1})" if csv else "")
        return text + (f" and {len(rows) - 1} more row(s)" if len(rows) > 1 else "")

    lines = [f"{path}: {where(rows)}: {message}" for message, rows in listed.values()]
    total = int(sum(counts.values()))
    by_reason = ", ".join(f"{counts[k]} {k}" for k in order if counts.get(k))
    shown = sum(len(rows) for _, rows in listed.values())
    more = [f"... and {total - shown} more bad row(s)"] if total > shown else []
    return "\n  ".join([f"{lines[0]} ({total} bad row(s) in all: {by_reason}; {DROP_HINT})", *lines[1:], *more])


def _row_reason(name: str, i: int, table: pd.DataFrame, raw_text: dict) -> str:
    """The reason one row is bad, in words (built only for the rows a message lists)."""
    row = table.iloc[i]
    if name in ("class", "response", "is_attention_check"):
        allowed = {"class": "a digit 0-9", "response": "yes/no/unsure", "is_attention_check": "a boolean"}[name]
        return f"{name} {str(raw_text[name].iloc[i])!r} is not {allowed}"
    if name == "reaction_time_ms":
        return f"reaction_time_ms {raw_text[name].iloc[i]!r} is not a finite number >= 0"
    if name == "attention-check":
        return "attention-check row without a gold_label digit 0-9"
    if name == "unknown image_id":
        return f"unknown image_id {row['image_id']!r}"
    if name == "duplicate answer":
        same = (
            (table["annotator_id"] == row["annotator_id"])
            & (table["image_id"] == row["image_id"])
            & (table["class"] == row["class"])
        )
        return (
            f"duplicate answer of annotator {row['annotator_id']!r} to image "
            f"{row['image_id']!r} class {int(row['class'])} (first in row "
            f"{int(np.flatnonzero(same.to_numpy())[0]) + 1})"
        )
    if name == "did not answer":
        pair = (table["annotator_id"] == row["annotator_id"]) & (table["image_id"] == row["image_id"])
        got = set(table.loc[pair, "class"].dropna().astype(int))
        lacking = sorted(set(range(N_DIGITS)) - got)
        return f"annotator {row['annotator_id']!r} did not answer class(es) {lacking} " f"for image {row['image_id']!r}"
    return name  # empty annotator_id / image_id


def _simulated_flags(df: pd.DataFrame) -> pd.Series:
    """The file's `simulated` column if it has one (a real campaign has none: False)."""
    if "simulated" not in df.columns:
        return pd.Series(False, index=df.index)
    return df["simulated"].astype(str).str.strip().str.lower().isin(_TRUE)


# ------------------------------------------------------------------ released table

RELEASED_COLUMNS = [
    "images",
    "indices",
    "original_labels",
    "human_uncert_mean",
    "pct_ann_unsure",
    "soft_label",
    "soft_label_yes_unc_equal",
    "soft_label_yes_only",
    "soft_label_argmax",
    "split",
    "source",
]


def _vectors(values: pd.Series, width: int, column: str, path: Path) -> np.ndarray:
    """A column of lists, arrays or strings like "[0.1, 0.9, ...]" as an (n, width) array."""
    out = np.empty((len(values), width), dtype=np.float64)
    for k, v in enumerate(values):
        if isinstance(v, str):
            v = v.replace("[", " ").replace("]", " ").replace(",", " ").split()
        arr = np.asarray(v, dtype=np.float64).reshape(-1)
        if arr.size != width or not np.all(np.isfinite(arr)):
            raise ReleasedTableError(
                f"{path}: row {k + 1}: column {column!r} should hold {width} finite numbers, " f"got {arr.size}"
            )
        out[k] = arr
    return out


def _read_released_table(path: Path) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise ReleasedTableError(f"{path}: not a readable Parquet file ({err})") from None
    missing = [c for c in RELEASED_COLUMNS if c not in table.column_names]
    if missing:
        raise ReleasedTableError(f"{path}: missing column(s) {missing} of the released table")
    if table.num_rows == 0:
        raise ReleasedTableError(f"{path}: the released table has no rows")
    return table


def check_released(path: str | os.PathLike) -> None:
    """Raise ReleasedTableError unless every source's rows of the released file parse."""
    path = Path(path)
    for source in sorted(set(_read_released_table(path).column("source").to_pylist())):
        read_released(path, str(source))


def read_released(path: str | os.PathLike, source: str) -> pd.DataFrame:
    """The released soft-digits rows of one source, in the study table's columns.

    Pixels: 784 (or 28x28) values, 0-255, or 0-1 floats (scaled by 255 and rounded).
    `label_dist` is `original_labels` normalised; `label` its argmax. `hlv` is
    recomputed from `soft_label` as in aggregation; `n_annotators` is unknown (null).
    image_id is `{source}:released:{indices}` (matched to corpus ids later by pixels).
    """
    path = Path(path)
    df = _read_released_table(path).to_pandas()
    df = df[df["source"].astype(str) == source].reset_index(drop=True)
    if df.empty:
        raise ReleasedTableError(f"{path}: no rows with source == {source!r}")
    pixels = _vectors(df["images"], 784, "images", path)
    if pixels.max() <= 1.0:
        pixels = pixels * 255.0
    pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    original = _vectors(df["original_labels"], N_DIGITS, "original_labels", path)
    label_dist = original / original.sum(axis=1, keepdims=True)
    soft = {name: _vectors(df[name], N_HUMAN_CLASSES, name, path) for name in WEIGHTINGS}
    split = df["split"].astype(str)
    bad_split = ~split.isin(["train", "val", "test"])
    if bad_split.any():
        k = int(np.flatnonzero(bad_split)[0])
        raise ReleasedTableError(f"{path}: row {k + 1}: split {split[k]!r} is not train/val/test")
    ids = [f"{source}:released:{int(i)}" for i in df["indices"]]
    if len(set(ids)) != len(ids):
        dup = pd.Series(ids)[pd.Series(ids).duplicated()].iloc[0]
        raise ReleasedTableError(f"{path}: index {dup!r} occurs twice for source {source!r}")
    return pd.DataFrame(
        {
            "image_id": ids,
            "source": source,
            "split": split,
            "pixels": list(pixels),
            "label": label_dist.argmax(axis=1).astype(np.int64),
            "label_dist": list(label_dist.astype(np.float32)),
            **{name: list(v.astype(np.float32)) for name, v in soft.items()},
            "soft_label_argmax": df["soft_label_argmax"].astype(np.int64).to_numpy(),
            "human_uncert_mean": df["human_uncert_mean"].astype(float).to_numpy(),
            "pct_ann_unsure": df["pct_ann_unsure"].astype(float).to_numpy(),
            "n_annotators": pd.array([None] * len(df), dtype="Int64"),
            "hlv": ~is_one_hot(soft["soft_label"]),
            "simulated": False,
        }
    )


# ------------------------------------------------------------------ study table


def build_study(selection: pd.DataFrame, images: pa.Table, labels: pd.DataFrame) -> tuple[pa.Table, dict]:
    """Join selection (image_id, region, split), images and aggregated labels.

    Selected images that no kept annotator labelled (all excluded) are dropped and
    counted in the returned info.
    """
    ids = set(selection["image_id"])
    meta = images.select(["image_id", "source", "label", "label_dist"]).to_pandas()
    pix = io.pixels_array(images)
    row_of = {image_id: k for k, image_id in enumerate(images.column("image_id").to_pylist())}
    unknown = sorted(ids - set(row_of))
    if unknown:
        raise ValueError(f"selected images missing from the images table: {unknown[:5]}")
    joined = selection[["image_id", "split", "region"]].merge(meta, on="image_id")
    joined = joined.merge(labels[LABEL_COLUMNS], on="image_id", how="left")
    unlabelled = joined["soft_label"].isna()
    dropped = joined.loc[unlabelled, "image_id"].tolist()
    joined = joined[~unlabelled].reset_index(drop=True)
    joined["pixels"] = list(pix[[row_of[i] for i in joined["image_id"]]])
    return study_table.to_arrow(joined), {
        "n_images": len(joined),
        "n_unlabelled_dropped": len(dropped),
        "unlabelled_dropped": dropped[:50],
    }


def match_released_ids(released: pd.DataFrame, images: pa.Table) -> pd.DataFrame:
    """Give released rows the corpus image_id where their pixels match byte for byte."""
    by_hash = dict(zip(images.column("sha256").to_pylist(), images.column("image_id").to_pylist()))
    hashes = io.pixel_sha256(np.stack(released["pixels"].to_numpy()))
    matched = [by_hash.get(h) for h in hashes]
    out = released.copy()
    out["image_id"] = [m or orig for m, orig in zip(matched, out["image_id"])]
    return out


# ------------------------------------------------------------------ jobs


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


def run_import(*, answers_path, campaign_dir, raw_out, report_out, on_bad_rows: str) -> None:
    """Rule annotation_import: validate a real campaign's answers into the raw table."""
    refuse_overwrite([("answers", answers_path)], [("raw table", raw_out), ("import report", report_out)])
    tasks, _ = read_campaign(campaign_dir)
    table, report = read_raw_annotations(answers_path, known_image_ids=set(tasks["image_id"]), on_bad_rows=on_bad_rows)
    if table["simulated"].any():
        log.warning("%s: %d rows are marked simulated", answers_path, int(table["simulated"].sum()))
    io.write_json(report, report_out)
    io.write_table(
        raw_table(table),
        raw_out,
        metadata={"origin": "campaign", "simulated": bool(table["simulated"].any()), "import": report},
    )
    log.info(
        "imported %d rows (%d bad rows, %s)", report["rows_kept"], report["bad_rows"], report["bad_rows_by_reason"]
    )


def run_study(
    *,
    origin: str,
    images_path,
    data_map_path,
    out_path,
    selection_path=None,
    labels_path=None,
    released_path=None,
    corpus: str = "",
) -> None:
    """Rule study_table: the study table of one corpus, with `labels_origin` metadata."""
    from softdigits.aggregation import read_labels

    images = io.read_images(images_path)
    data_map = pd.read_parquet(data_map_path, columns=["image_id", "region"])
    if origin == "released":
        released = match_released_ids(read_released(released_path, corpus), images)
        region = data_map.set_index("image_id")["region"]
        released["region"] = region.reindex(released["image_id"]).fillna("unknown").to_numpy()
        n_matched = int((released["region"] != "unknown").sum())
        log.warning(
            "%s: released labels carry image-level aggregates only: per-annotator "
            "statistics (annotators per image, reaction times, QC) are not available",
            corpus,
        )
        log.info("%s: %d of %d released images matched a corpus image by pixels", corpus, n_matched, len(released))
        table = study_table.to_arrow(released)
        info = {"n_images": len(released), "n_matched_to_corpus": n_matched}
    else:
        selection = pd.read_parquet(selection_path)
        table, info = build_study(selection, images, read_labels(labels_path))
        if info["n_unlabelled_dropped"]:
            log.warning(
                "%s: %d selected image(s) had no annotator left after QC and are " "dropped: %s",
                corpus,
                info["n_unlabelled_dropped"],
                info["unlabelled_dropped"],
            )
    study_table.write_study(table, out_path, origin=origin, info=info)
