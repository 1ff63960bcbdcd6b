"""Small image corpora, selections and source files made in the test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from softdigits import io


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
