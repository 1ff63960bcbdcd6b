"""ARDIS dataset IV (Swedish historical digits): four text files in one RAR archive.

Each images file has 784 pixel values (0-255, written as floats) per row; each labels file
one-hot rows. Image ids: `ardis:{train|test}:{row in the file}` (6,600 + 1,000 images).
"""

from __future__ import annotations

import io as _io
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa

from softdigits.corpora.base import SourceFormatError, pixel_matrix, split_table

ARDIS_MEMBERS = {
    "train": ("ARDIS_train_2828.csv", "ARDIS_train_labels.csv"),
    "test": ("ARDIS_test_2828.csv", "ARDIS_test_labels.csv"),
}


def read(inputs: Mapping[str, str], origin: str) -> tuple[pa.Table, dict]:
    """ARDIS IV from its downloaded archive (the only origin)."""
    return ardis_from_archive(inputs["archive"]), {}


def check(path: str | os.PathLike, name: str, file_key: str) -> None:
    """A first download's content: the reader reads every member (rarfile checks each CRC)."""
    ardis_from_archive(path)


def ardis_from_archive(path: str | os.PathLike) -> pa.Table:
    """ARDIS IV from `ARDIS_DATASET_IV.rar` (6,600 train + 1,000 test images)."""
    texts = _read_rar_members(path, [m for pair in ARDIS_MEMBERS.values() for m in pair])
    parts = []
    for split, (images_name, labels_name) in ARDIS_MEMBERS.items():
        images_where, labels_where = f"{path}!{images_name}", f"{path}!{labels_name}"
        values = _numeric_text(texts[images_name], images_where)
        pixels = pixel_matrix(values, images_where, lambda r, c, v=values: f"row {r + 1}, pixel {c}: '{v[r, c]:g}'")
        onehot = _numeric_text(texts[labels_name], labels_where)
        if onehot.shape != (len(pixels), 10):
            raise SourceFormatError(
                f"{labels_where}: shape {onehot.shape}, expected ({len(pixels)}, 10) one-hot labels"
            )
        bad = ~(np.isin(onehot, (0, 1)).all(axis=1) & (onehot.sum(axis=1) == 1))
        if bad.any():
            raise SourceFormatError(f"{labels_where}: row {int(np.argmax(bad)) + 1} is not one-hot")
        parts.append(split_table("ardis", split, pixels, onehot.argmax(axis=1)))
    return pa.concat_tables(parts)


def _read_rar_members(path, names: list[str]) -> dict[str, str]:
    """The text of each named member (matched by base name, in any folder of the archive)."""
    import rarfile  # deferred: only this reader needs it

    try:
        archive = rarfile.RarFile(path)
    except (rarfile.Error, OSError) as err:
        raise SourceFormatError(f"{path}: not a readable RAR archive ({err})") from None
    with archive:
        by_base: dict[str, list[str]] = {}
        for info in archive.infolist():
            if not info.is_dir():
                by_base.setdefault(Path(info.filename.replace("\\", "/")).name, []).append(info.filename)
        texts = {}
        for name in names:
            found = by_base.get(name, [])
            if len(found) != 1:
                problem = "lacks" if not found else f"has {len(found)} copies of"
                raise SourceFormatError(f"{path}: archive {problem} {name} (members: {sorted(by_base)})")
            try:
                texts[name] = archive.read(found[0]).decode("ascii")
            except rarfile.RarCannotExec:
                raise SourceFormatError(
                    f"{path}: {name} is compressed, and reading compressed RAR entries needs an "
                    "unrar tool: install `unrar`, `unar`, or `bsdtar` (Debian: apt-get install "
                    "libarchive-tools)"
                ) from None
            except (rarfile.Error, UnicodeDecodeError) as err:
                raise SourceFormatError(f"{path}: cannot read {name} ({err})") from None
    return texts


def _numeric_text(text: str, where: str) -> np.ndarray:
    """A 2-D float array from whitespace- or comma-separated numbers."""
    first = text.lstrip().split("\n", 1)[0]
    try:
        delimiter = "," if "," in first else None  # the release is whitespace-separated
        values = np.loadtxt(_io.StringIO(text), dtype=np.float64, delimiter=delimiter, ndmin=2)
    except ValueError as err:
        raise SourceFormatError(f"{where}: {err}") from None
    return values
