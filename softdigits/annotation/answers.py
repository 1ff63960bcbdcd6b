"""The raw-annotations contract, and a real campaign's answers imported into it.

- `RAW_SCHEMA` / `raw_table`: the columns of `raw_annotations.parquet` and their writer
  (the import rule and the simulated panel both write through it).
- `read_raw_annotations`: an answers file (CSV or Parquet, one row per annotator x
  image x class asked), validated; bad rows stop the job with the file, row and reason,
  or are dropped and counted (`on_bad_rows`).
- `refuse_overwrite`: raw answers cannot be regenerated, so no output is written over one.
- `run_import`: the import rule.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from softdigits import io
from softdigits.annotation.campaign import read_campaign
from softdigits.constants import N_DIGITS, RESPONSES
from softdigits.errors import KnownError

log = logging.getLogger(__name__)

RAW_SCHEMA = pa.schema(
    [
        ("annotator_id", pa.string()),  # one participant (one task list each)
        ("image_id", pa.string()),  # the images table's image_id
        ("class", pa.int64()),  # the digit asked about, 0-9
        ("response", pa.string()),  # no / unsure / yes (constants.RESPONSES)
        ("is_attention_check", pa.bool_()),  # the image is a gold attention check
        ("reaction_time_ms", pa.float64()),  # null when not recorded
        ("gold_label", pa.int64()),  # the gold digit of an attention check; null on study images
        ("simulated", pa.bool_()),  # answered by the simulated panel, not a person
    ]
)
# How raw_table casts each column before Arrow takes it ("Int64": nullable).
_PANDAS_DTYPES = {
    "annotator_id": str,
    "image_id": str,
    "class": np.int64,
    "response": str,
    "is_attention_check": bool,
    "reaction_time_ms": float,
    "gold_label": "Int64",
    "simulated": bool,
}
# An answers file may lack gold_label (when it has no attention checks) and simulated (False).
RAW_COLUMNS = [name for name in RAW_SCHEMA.names if name not in ("gold_label", "simulated")]
ON_BAD_ROWS = ("error", "drop")
MAX_LISTED_ERRORS = 10  # problems listed in an error; the rest are counted


class RawAnnotationError(KnownError, ValueError):
    """A raw annotation file has bad rows; the message names file, row and reason."""


def raw_table(df: pd.DataFrame) -> pa.Table:
    """The raw answers as an Arrow table in RAW_SCHEMA (column order and types fixed)."""
    return pa.Table.from_arrays(
        [pa.array(df[f.name].astype(_PANDAS_DTYPES[f.name]), f.type, from_pandas=True) for f in RAW_SCHEMA],
        schema=RAW_SCHEMA,
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
    packed = _packed_as(path)
    if packed:
        raise RawAnnotationError(
            f"{path}: the file is {packed}, not a plain {suffix} file; unpack it first (e.g. gunzip, unzip)"
        )
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


# The first bytes of the compressed or archive formats an answers file may arrive in.
_MAGIC = {
    b"\x1f\x8b": "gzip-compressed",
    b"PK\x03\x04": "a zip archive (or an .xlsx workbook)",
    b"BZh": "bzip2-compressed",
}
_MAGIC[b"\xfd7zXZ\x00"] = "xz-compressed"


def _packed_as(path: Path) -> str | None:
    """What a compressed file is ("gzip-compressed"), or None for anything else."""
    with open(path, "rb") as f:
        head = f.read(6)
    return next((what for magic, what in _MAGIC.items() if head.startswith(magic)), None)


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
# A cell that says "no value", in any case: one rule for ids and reaction times alike (a
# Parquet null too). An annotator id "NaN" is no one, not one participant.
_MISSING = {"", "nan", "na", "n/a", "null", "none", "<na>"}


def _cells(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """The column as stripped text, and which cells hold no value (null, or _MISSING text)."""
    null = values.isna().to_numpy()
    text = values.astype(object).where(~null, "").astype(str).str.strip()
    return text, null | text.str.lower().isin(_MISSING).to_numpy()


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

    annotator, no_annotator = _cells(df["annotator_id"])
    image, no_image = _cells(df["image_id"])
    flag(no_annotator, "empty annotator_id")
    flag(no_image, "empty image_id")
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
    rt_text, rt_empty = _cells(df["reaction_time_ms"])
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
        "annotator_id": df["annotator_id"],
        "image_id": df["image_id"],
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
    column = name.removeprefix("empty ")  # empty annotator_id / image_id
    value = raw_text[column].iloc[i]
    shown = "null" if pd.isna(value) else repr(str(value))
    return f"{column} {shown} is no id (empty, NaN, NA and null are none; each answer needs one)"


def _simulated_flags(df: pd.DataFrame) -> pd.Series:
    """The file's `simulated` column if it has one (a real campaign has none: False)."""
    if "simulated" not in df.columns:
        return pd.Series(False, index=df.index)
    return df["simulated"].astype(str).str.strip().str.lower().isin(_TRUE)


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
