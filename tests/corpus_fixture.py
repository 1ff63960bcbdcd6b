"""Small image corpora, selections and source files made in the test."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from softdigits import io
from softdigits.corpora.ardis import ARDIS_MEMBERS
from softdigits.corpora.download import digest_bytes
from softdigits.corpora.mnist import idx_bytes


def make_corpus(source: str, n: int, seed: int = 0) -> pa.Table:
    """A small images table: noisy class prototypes so that pixel k-NN has structure."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    prototypes = rng.integers(0, 256, size=(10, 784))
    pixels = np.clip(prototypes[labels] + rng.normal(0, 40, size=(n, 784)), 0, 255).astype(np.uint8)
    return io.images_table(source=source, source_split="train", source_index=np.arange(n), pixels=pixels, label=labels)


def make_selection_and_map(images: pa.Table, n_selected: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = np.asarray(images.column("image_id").to_pylist())
    labels = images.column("label").to_numpy()
    chosen = np.sort(rng.choice(len(ids), n_selected, replace=False))
    selection = pd.DataFrame(
        {
            "image_id": ids[chosen],
            "digit": labels[chosen],
            "region": rng.choice(["easy", "ambiguous", "hard"], n_selected),
            "split": rng.choice(["train", "val", "test"], n_selected, p=[0.7, 0.15, 0.15]),
        }
    )
    data_map = pd.DataFrame(
        {
            "image_id": ids,
            "confidence": rng.random(len(ids)),
            "variability": rng.random(len(ids)) * 0.3,
            "correctness": 1.0,
            "region": "easy",
        }
    )
    return selection, data_map


def weiss_frame(rng: np.random.Generator, n: int = 6, splits=("train", "train", "test")) -> pd.DataFrame:
    class_1 = rng.integers(0, 10, size=n)
    class_2 = (class_1 + 1 + rng.integers(0, 9, size=n)) % 10
    p1 = rng.uniform(0.3, 0.7, size=n).round(4)
    df = pd.DataFrame(
        {
            "index": np.arange(n) + 100,
            "dataset": "mnist",
            "split": [splits[i % len(splits)] for i in range(n)],
            "class_1": class_1,
            "class_2": class_2,
            "p(class_1)": p1,
            "p(class_2)": (1 - p1).round(4),
            "det_label": np.where(p1 >= 0.5, class_1, class_2),
            "autoencoder_id": 0,
        }
    )
    pixels = rng.integers(0, 256, size=(n, 784))
    pixel_df = pd.DataFrame(pixels, columns=[f"x_({r}, {c})" for r in range(28) for c in range(28)])
    return pd.concat([df, pixel_df], axis=1)


# ------------------------------------------------ source files of each corpus format


def write_stored_rar(path: Path, members: dict[str, bytes]) -> Path:
    """A RAR 1.5-4.x archive whose entries are stored (method 0x30, uncompressed).

    Layout (RAR technote): marker block, archive header, one file header + data per
    member, end-of-archive block. Each header's CRC is the low 16 bits of the
    CRC32 of the header bytes after the CRC field.
    """

    def block(head_type: int, flags: int, body: bytes) -> bytes:
        rest = struct.pack("<BHH", head_type, flags, 7 + len(body)) + body
        return struct.pack("<H", zlib.crc32(rest) & 0xFFFF) + rest

    dos_time = (2020 - 1980) << 25 | 1 << 21 | 1 << 16  # 2020-01-01 00:00:00
    out = bytearray(b"Rar!\x1a\x07\x00")
    out += block(0x73, 0, b"\x00" * 6)  # archive header: two reserved fields
    for name, data in members.items():
        encoded = name.encode()
        body = (
            struct.pack(
                "<IIBIIBBHI", len(data), len(data), 3, zlib.crc32(data), dos_time, 20, 0x30, len(encoded), 0o100644
            )
            + encoded
        )
        out += block(0x74, 0x8000, body) + data  # 0x8000: a data area follows
    out += block(0x7B, 0x4000, b"")
    path.write_bytes(bytes(out))
    return path


def ardis_text(pixels: np.ndarray, as_float: bool = True) -> bytes:
    fmt = "%.7e" if as_float else "%d"
    return "\n".join(" ".join(fmt % v for v in row) for row in pixels).encode() + b"\n"


def write_ardis_archive(path: Path, rng: np.random.Generator, n_train=4, n_test=3, prefix="", **override) -> dict:
    """An ARDIS IV-like archive; returns the arrays written (override replaces member bytes)."""
    arrays = {}
    members = {}
    for split, n in (("train", n_train), ("test", n_test)):
        pixels = rng.integers(0, 256, size=(n, 784))
        labels = rng.integers(0, 10, size=n)
        arrays[split] = (pixels.astype(np.uint8), labels)
        images_name, labels_name = ARDIS_MEMBERS[split]
        members[prefix + images_name] = ardis_text(pixels)
        members[prefix + labels_name] = ardis_text(np.eye(10)[labels])
    members.update(override)
    write_stored_rar(path, members)
    return arrays


def write_idx_gz(folder: Path, arrays: dict[str, np.ndarray]) -> dict[str, Path]:
    paths = {}
    for name, array in arrays.items():
        paths[name] = folder / f"{name}.gz"
        with gzip.open(paths[name], "wb", compresslevel=1) as f:
            f.write(idx_bytes(array, name.split("_")[1]))
    return paths


def small_mnist(tmp_path: Path, n_train=5, n_test=3, **replace) -> tuple[dict[str, Path], dict[str, str]]:
    """Tiny IDX .gz files and the checksums of their uncompressed content."""
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 784), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 784), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    raw = {name: idx_bytes(a, name.split("_")[1]) for name, a in arrays.items()}
    raw.update(replace)
    paths = {}
    for name, data in raw.items():
        paths[name] = tmp_path / f"{name}.gz"
        paths[name].write_bytes(gzip.compress(data))
    return paths, {name: "md5:" + digest_bytes(data, "md5") for name, data in raw.items()}


def write_mukhoti_release(tmp_path: Path, n=8, samples=None, labels=None, predictions=None) -> dict[str, Path]:
    import torch

    g = torch.Generator().manual_seed(0)
    tensors = {
        "samples": torch.rand(n, 1, 28, 28, generator=g) if samples is None else samples,
        "labels": torch.randint(0, 10, (n, 10), generator=g) if labels is None else labels,
        "predictions": torch.softmax(torch.randn(n, 10, generator=g), dim=1) if predictions is None else predictions,
    }
    paths = {}
    for name, tensor in tensors.items():
        paths[name] = tmp_path / f"amnist_{name}.pt"
        torch.save(tensor, paths[name])
    return paths
