"""Weiss & Tonella's ambiguous MNIST (AmbiGuess): its CSV release, the rows of the splits kept.

`label_dist` puts p(class_1) and p(class_2) on their classes; `label` is `det_label`;
`source_index` is the CSV's `index` column. Image ids: `weiss:{split}:{index}`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from softdigits import io
from softdigits.constants import SIDE
from softdigits.corpora.base import SourceFormatError, pixel_matrix

WEISS_COLUMNS = ("index", "split", "class_1", "class_2", "p(class_1)", "p(class_2)", "det_label")
WEISS_PIXEL = re.compile(r"x_\((\d+),\s*(\d+)\)")


def read(inputs: Mapping[str, str], origin: str, keep_splits: list[str]) -> tuple[pa.Table, dict]:
    """The downloaded CSV's rows whose split is in `keep_splits` (recorded in the metadata)."""
    return weiss_from_csv(inputs["csv"], keep_splits), {"keep_splits": list(keep_splits)}


def check(path: str | os.PathLike, name: str, file_key: str) -> None:
    """A first download's content: every split the file has (which ones a run keeps is the reader's choice)."""
    import pandas as pd  # deferred: the registry imports this module (the Snakefile reads it)

    try:
        splits = pd.read_csv(path, usecols=["split"], dtype=str)["split"].unique().tolist()
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise SourceFormatError(f"{name}: not a readable CSV file ({err})") from None
    weiss_from_csv(path, splits)


def weiss_from_csv(path: str | os.PathLike, keep_splits: list[str]) -> pa.Table:
    """Weiss & Tonella's ambiguous MNIST CSV: the rows whose `split` is in `keep_splits`.

    `label_dist` puts p(class_1) and p(class_2) on their classes; `label` is
    `det_label`; `source_index` is the CSV's `index` column.
    """
    import pandas as pd  # deferred: the registry imports this module (the Snakefile reads it)

    try:
        df = pd.read_csv(path, low_memory=False)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise SourceFormatError(f"{path}: not a readable CSV file ({err})") from None
    missing = [c for c in WEISS_COLUMNS if c not in df.columns]
    if missing:
        raise SourceFormatError(f"{path}: missing column(s) {missing}")
    pixel_cols = {}
    for col in df.columns:
        if m := WEISS_PIXEL.fullmatch(str(col).strip()):
            pixel_cols[(int(m.group(1)), int(m.group(2)))] = col
    expected = [(r, c) for r in range(SIDE) for c in range(SIDE)]
    if sorted(pixel_cols) != expected:
        absent = [f"x_({r}, {c})" for r, c in expected if (r, c) not in pixel_cols][:5]
        raise SourceFormatError(
            f"{path}: expected 784 pixel columns x_(row, col); {len(pixel_cols)} found, missing e.g. {absent}"
        )

    split = df["split"].astype(str)
    keep = split.isin(keep_splits).to_numpy()
    if not keep.any():
        raise SourceFormatError(
            f"{path}: no rows with split in {list(keep_splits)} (splits found: {sorted(split.unique())})"
        )
    df = df.loc[keep]
    first_row = 2  # CSV line of the first data row (after the header)
    lines = df.index.to_numpy() + first_row

    columns = [pixel_cols[k] for k in expected]
    block = df[columns]
    values = block.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    pixels = pixel_matrix(
        values, str(path), lambda r, c: f"line {lines[r]}, column {columns[c]!r}: '{block.iat[r, c]}'"
    )
    ints = {}
    for col in ("index", "class_1", "class_2", "det_label"):
        ints[col] = _integer_column(df[col], lines, path, col)
    for col in ("class_1", "class_2", "det_label"):
        bad = (ints[col] < 0) | (ints[col] > 9)
        if bad.any():
            raise SourceFormatError(f"{path}: line {lines[np.argmax(bad)]}: {col} is not a digit")
    repeated = pd.DataFrame({"split": split[keep].to_numpy(), "index": ints["index"]}).duplicated().to_numpy()
    if repeated.any():
        i = int(np.argmax(repeated))
        raise SourceFormatError(f"{path}: line {lines[i]}: index {ints['index'][i]} repeats within its split")
    p1 = pd.to_numeric(df["p(class_1)"], errors="coerce").to_numpy()
    p2 = pd.to_numeric(df["p(class_2)"], errors="coerce").to_numpy()
    bad = ~np.isfinite(p1) | ~np.isfinite(p2) | (p1 < 0) | (p2 < 0) | (np.abs(p1 + p2 - 1) > 0.01)
    if bad.any():
        raise SourceFormatError(f"{path}: line {lines[np.argmax(bad)]}: p(class_1) + p(class_2) is not a distribution")
    n = len(df)
    dist = np.zeros((n, 10))
    np.add.at(dist, (np.arange(n), ints["class_1"]), p1)
    np.add.at(dist, (np.arange(n), ints["class_2"]), p2)
    dist /= dist.sum(axis=1, keepdims=True)
    splits = split[keep].to_numpy(dtype=object)
    return io.images_table(
        source="weiss",
        source_split=splits,
        source_index=ints["index"],
        pixels=pixels,
        label=ints["det_label"],
        label_dist=dist,
    )


def _integer_column(series, lines: np.ndarray, path, name: str) -> np.ndarray:
    import pandas as pd

    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        i = int(np.argmax(bad))
        raise SourceFormatError(f"{path}: line {lines[i]}: {name} {series.iloc[i]!r} is not an integer")
    return values.astype(np.int64)
