"""What every corpus reader shares: its error, the pixel check, the subsample and the writer.

A reader (`softdigits.corpora.<corpus>.read`) returns its corpus as a table in the images
contract plus any metadata of its own; `write_corpus` subsamples it (`limit_per_split`) and
writes it with metadata saying where it came from. Malformed input raises SourceFormatError
naming the file and the problem (one line; the job exits with code 2).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from softdigits import io
from softdigits.constants import N_PIXELS
from softdigits.errors import KnownError

log = logging.getLogger(__name__)


class SourceFormatError(KnownError, ValueError):
    """A source file is malformed; the message names the file and what is wrong."""


def pixel_matrix(values: np.ndarray, where: str, cell: Callable[[int, int], str]) -> np.ndarray:
    """Check (n, 784) integral values in 0-255 and return them as uint8.

    `values` are the parsed numbers (NaN where a value did not parse); `cell(row, col)`
    names the first bad value's place and shows it as the file has it, for the message
    "`where`: `cell`: is not an integer pixel in 0-255".
    """
    if values.ndim != 2 or values.shape[1] != N_PIXELS:
        raise SourceFormatError(f"{where}: {values.shape[-1]} values per row, expected {N_PIXELS}")
    bad = ~np.isfinite(values) | (values != np.round(values)) | (values < 0) | (values > 255)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise SourceFormatError(f"{where}: {cell(row, col)} is not an integer pixel in 0-255")
    return values.astype(np.uint8)


def split_table(source: str, split: str, pixels: np.ndarray, labels: np.ndarray) -> pa.Table:
    """One split of a corpus in the images contract, indexed in file order."""
    return io.images_table(
        source=source, source_split=split, source_index=np.arange(len(pixels)), pixels=pixels, label=labels
    )


def limit_per_split(table: pa.Table, limit: int | None) -> pa.Table:
    """Keep at most `limit` images per source split (all when None).

    The kept images are those whose sha256(image_id) sorts first: deterministic,
    independent of row order, and nested (a smaller limit keeps a subset of a
    larger one). Rows stay in their original order.
    """
    if limit is None:
        return table
    import pandas as pd  # deferred: the registry imports this module (the Snakefile reads it)

    keys = pd.DataFrame(
        {
            "split": table.column("source_split").to_pandas(),
            "key": [hashlib.sha256(i.encode()).hexdigest() for i in table.column("image_id").to_pylist()],
        }
    )
    rank = keys.groupby("split")["key"].rank(method="first")
    return table.filter(pa.array((rank <= limit).to_numpy()))


def write_corpus(table: pa.Table, path, corpus: str, origin: str, limit: int | None, **extra) -> pa.Table:
    """Apply `limit_per_split` and write the corpus table with metadata saying where it came from."""
    if table.num_rows == 0:
        raise SourceFormatError(f"{corpus}: the source has no images; nothing to write to {path}")
    table = limit_per_split(table, limit)
    counts = pc.value_counts(table.column("source_split")).to_pylist()
    metadata = {
        "corpus": corpus,
        "origin": origin,
        "limit_per_split": limit,
        "n_images": table.num_rows,
        "n_per_split": {c["values"]: c["counts"] for c in counts},
        **extra,
    }
    io.write_table(table, path, metadata=metadata)
    log.info("%s: %d images from %s (%s)", corpus, table.num_rows, origin, metadata["n_per_split"])
    return table
