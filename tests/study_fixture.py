"""A synthetic study table in the annotation stage's contract, for training tests.

Each digit is a fixed random template plus pixel noise, so the models can learn
it; the soft labels mix the true digit with a second one, and a few images get
not-a-digit mass (some all of it). SIMULATED labels, marked as such.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from softdigits import io, study_table

SPLIT_SIZES = {"train": 200, "val": 60, "test": 60}


def study_frame(seed: int = 0, sizes: dict[str, int] = SPLIT_SIZES, ink: float | None = None) -> pd.DataFrame:
    """`ink`: the share of each template's pixels that are not background (zero), as a digit
    has (about 0.2); None: every pixel drawn (the tests' default)."""
    rng = np.random.default_rng(seed)
    templates = rng.uniform(0, 255, size=(10, 784))
    if ink is not None:
        templates[rng.uniform(size=templates.shape) >= ink] = -1000.0  # background after the noise and clip
    rows = []
    for split, n in sizes.items():
        for k in range(n):
            digit = int(rng.integers(10))
            other = (digit + 1 + int(rng.integers(9))) % 10
            pixels = np.clip(templates[digit] + rng.normal(0, 60, 784), 0, 255).astype(np.uint8)
            soft = np.zeros(11)
            soft[digit], soft[other] = 0.8, 0.2
            if k % 17 == 0:
                soft = np.zeros(11)
                soft[10] = 1.0  # every annotator rejected every digit
            elif k % 11 == 0:
                soft[[digit, 10]] = 0.3, 0.5  # a not-a-digit share
            argmax = int(np.argmax(soft))
            rows.append(
                {
                    "image_id": f"synthetic:{split}:{k}",
                    "source": "synthetic",
                    "split": split,
                    "region": "easy",
                    "pixels": pixels,
                    "label": digit,
                    "label_dist": np.eye(10)[digit].astype(np.float32),
                    "soft_label": soft,
                    "soft_label_yes_unc_equal": soft,
                    "soft_label_yes_only": soft,
                    "soft_label_argmax": argmax,
                    "human_uncert_mean": 0.1,
                    "pct_ann_unsure": 0.1,
                    "n_annotators": 6,
                    "hlv": bool((soft > 0).sum() > 1),
                    "simulated": True,
                }
            )
    return pd.DataFrame(rows)


def write_study(path, seed: int = 0, sizes: dict[str, int] = SPLIT_SIZES, frame: pd.DataFrame | None = None):
    frame = study_frame(seed, sizes) if frame is None else frame
    io.write_table(study_table.to_arrow(frame), path, metadata={"labels_origin": "simulated", "simulated": True})
    return path


def completed(frame: pd.DataFrame) -> pd.DataFrame:
    """A partial study frame (the columns a test cares about) with every other column of the
    contract filled in: train images, blank pixels, SIMULATED labels."""
    n = len(frame)
    defaults = {
        "source": "synthetic",
        "split": "train",
        "region": "easy",
        "pixels": list(np.zeros((n, 784), np.uint8)),
        "soft_label_yes_unc_equal": frame["soft_label"] if "soft_label" in frame else None,
        "soft_label_yes_only": frame["soft_label"] if "soft_label" in frame else None,
        "human_uncert_mean": 0.1,
        "pct_ann_unsure": 0.1,
        "n_annotators": 6,
        "hlv": True,
        "simulated": True,
    }
    return frame.assign(**{k: v for k, v in defaults.items() if k not in frame})
