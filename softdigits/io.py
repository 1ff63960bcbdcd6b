"""Atomic file output and the Parquet data contracts shared by every stage.

Every writer in the package goes through `atomic_path` (`atomic_dir` for a
folder): the output is written under a temporary name in the same folder and
renamed into place only when complete, so a killed job never leaves a
half-written output behind, and a write that fails for lack of space raises
`DiskFullError` naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from softdigits.constants import N_DIGITS, N_PIXELS
from softdigits.errors import KnownError, disk_full, disk_full_error

if TYPE_CHECKING:  # pandas only in type hints here: a training job never imports it (~0.4 CPU-s)
    import pandas as pd


class DataContractError(KnownError, ValueError):
    """A table does not have the columns, types or shapes its contract requires."""


@contextlib.contextmanager
def _disk_full_named(path: Path) -> Iterator[None]:
    """A write of `path` that fails for lack of space says "disk full" and names the file
    (torch's own message is "basic_ios::clear: iostream error"). Checked before the
    temporary file is removed, while the space it took is still taken."""
    try:
        yield
    except KnownError:
        raise
    except Exception as err:
        if disk_full(err, path):
            raise disk_full_error(path) from err
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` on success.

    On any exception the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    with _disk_full_named(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    tmp = Path(tmp)
    try:
        with _disk_full_named(path):
            yield tmp
            # mkstemp creates 0600; outputs are ordinary files others may read.
            if tmp.exists():
                tmp.chmod(0o644)
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty folder beside `path`; it replaces `path` only on success."""
    path = Path(path)
    with _disk_full_named(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        with _disk_full_named(path):
            yield tmp
            tmp.chmod(0o755)  # mkdtemp makes 0700
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(obj, path: str | os.PathLike) -> None:
    write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n", path)


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_table(
    table: pa.Table | pd.DataFrame,
    path: str | os.PathLike,
    metadata: Mapping[str, object] | None = None,
    **parquet_options,
) -> None:
    """Write a Parquet file atomically; `metadata` is stored as JSON under b"softdigits".

    `parquet_options` go to `pyarrow.parquet.write_table` (e.g. compression).
    """
    if not isinstance(table, pa.Table):  # a DataFrame
        table = pa.Table.from_pandas(table, preserve_index=False)
    if metadata:
        existing = dict(table.schema.metadata or {})
        existing[b"softdigits"] = json.dumps(metadata, sort_keys=True, default=_json_default).encode()
        table = table.replace_schema_metadata(existing)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **parquet_options)


FIGURE_DPI = 110


def save_figure(fig, path: str | os.PathLike) -> None:
    """Every figure of the pipeline: PNG, one dpi, trimmed, no software tag (same bytes on rerun)."""
    import matplotlib.pyplot as plt  # figures only: keep matplotlib out of the other stages' imports

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=FIGURE_DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def read_metadata(path: str | os.PathLike) -> dict:
    """The JSON metadata written by `write_table` (empty dict when none)."""
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(b"softdigits")
    return json.loads(raw) if raw else {}


# ---------------------------------------------------------------- images table

IMAGES_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("source", pa.string()),
        ("source_split", pa.string()),
        ("source_index", pa.int64()),
        ("pixels", pa.list_(pa.uint8(), N_PIXELS)),
        ("label", pa.int64()),
        ("label_dist", pa.list_(pa.float32(), N_DIGITS)),
        ("sha256", pa.string()),
    ]
)


def pixel_sha256(pixels: np.ndarray) -> list[str]:
    """Hex SHA-256 of each image's 784 uint8 pixels (row-major bytes)."""
    import hashlib

    pixels = np.ascontiguousarray(pixels, dtype=np.uint8).reshape(-1, N_PIXELS)
    return [hashlib.sha256(row.tobytes()).hexdigest() for row in pixels]


def images_table(
    *,
    source: str,
    source_split: np.ndarray | list[str],
    source_index: np.ndarray,
    pixels: np.ndarray,
    label: np.ndarray,
    label_dist: np.ndarray | None = None,
    image_id: list[str] | None = None,
) -> pa.Table:
    """Build a table in the images contract from arrays.

    `image_id` defaults to "{source}:{source_split}:{source_index}".
    `label_dist` defaults to the one-hot of `label` (all zeros where label is -1).
    """
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise DataContractError(f"pixels must be uint8, got {pixels.dtype}")
    pixels = pixels.reshape(len(pixels), N_PIXELS)
    n = len(pixels)
    source_split = np.broadcast_to(np.asarray(source_split, dtype=object), (n,))
    source_index = np.asarray(source_index, dtype=np.int64)
    label = np.asarray(label, dtype=np.int64)
    if label_dist is None:
        label_dist = np.zeros((n, N_DIGITS), dtype=np.float32)
        has = label >= 0
        label_dist[np.flatnonzero(has), label[has]] = 1.0
    label_dist = np.asarray(label_dist, dtype=np.float32).reshape(n, N_DIGITS)
    if image_id is None:
        image_id = [f"{source}:{s}:{i}" for s, i in zip(source_split, source_index)]
    table = pa.table(
        {
            "image_id": pa.array(image_id, pa.string()),
            "source": pa.array([source] * n, pa.string()),
            "source_split": pa.array(list(source_split), pa.string()),
            "source_index": pa.array(source_index, pa.int64()),
            "pixels": _fixed_list(pixels.reshape(-1), pa.uint8(), N_PIXELS),
            "label": pa.array(label, pa.int64()),
            "label_dist": _fixed_list(label_dist.reshape(-1), pa.float32(), N_DIGITS),
            "sha256": pa.array(pixel_sha256(pixels), pa.string()),
        },
        schema=IMAGES_SCHEMA,
    )
    validate_images(table)
    return table


def _fixed_list(flat: np.ndarray, value_type: pa.DataType, size: int) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(flat, value_type), size)


def validate_images(table: pa.Table, path: str | os.PathLike | None = None) -> None:
    """Raise DataContractError naming the file and the column when `table` breaks the contract."""
    where = f"{path}: " if path else ""
    missing = [f.name for f in IMAGES_SCHEMA if f.name not in table.column_names]
    if missing:
        raise DataContractError(f"{where}images table lacks column(s) {missing}")
    for field in IMAGES_SCHEMA:
        got = table.schema.field(field.name).type
        if got != field.type:
            raise DataContractError(f"{where}column {field.name!r} has type {got}, expected {field.type}")
    ids = table.column("image_id").to_pandas()
    if ids.duplicated().any():
        dup = ids[ids.duplicated()].iloc[0]
        raise DataContractError(f"{where}image_id {dup!r} occurs more than once")


def read_images(path: str | os.PathLike, columns: list[str] | None = None) -> pa.Table:
    """Read and validate an images table (all contract columns are read)."""
    table = pq.read_table(path)
    validate_images(table, path)
    return table.select(columns) if columns else table


def pixels_array(table: pa.Table) -> np.ndarray:
    """The `pixels` column as an (n, 784) uint8 array, without a Python loop."""
    col = table.column("pixels").combine_chunks()
    return col.flatten().to_numpy(zero_copy_only=False).reshape(-1, N_PIXELS)


def vectors_array(table: pa.Table, column: str) -> np.ndarray:
    """A fixed-size list column (e.g. `label_dist`, `soft_label`) as a 2-D float array."""
    col = table.column(column).combine_chunks()
    if pa.types.is_fixed_size_list(col.type):
        width = col.type.list_size
    else:
        width = len(col[0].as_py()) if len(col) else 0
    return col.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)


def vectors_column(values: np.ndarray, value_type: pa.DataType = pa.float32()) -> pa.FixedSizeListArray:
    """A 2-D array as a fixed-size list column (the inverse of `vectors_array`)."""
    values = np.asarray(values)
    return _fixed_list(values.reshape(-1), value_type, values.shape[1])


def markdown_table(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    """A GitHub-flavoured Markdown table of `df` (index dropped; floats formatted)."""

    def cell(v) -> str:
        if isinstance(v, float | np.floating):
            return "" if np.isnan(v) else floatfmt.format(v)
        return str(v)

    header = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"
