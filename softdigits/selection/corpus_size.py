"""Corpus-size sensitivity (paper Appendix A.1, Table 5).

LeNet (padding 2) is trained on stratified random subsets of the MNIST training
split, k images per digit drawn without replacement, and evaluated on the MNIST
test split; repeated with different seeds. Repetition r uses seed `seed + r` for
the subset, the initial weights and the batch order. Inputs are standardised
with the training subset's pixel mean and std. Table 5 reports, per k, the mean
test accuracy and its sample standard deviation (ddof=1) over repetitions, in percent.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import pyarrow as pa

from softdigits.constants import N_DIGITS
from softdigits.io import markdown_table, pixels_array

log = logging.getLogger(__name__)

RUN_COLUMNS = ["samples_per_digit", "repetition", "seed", "n_train", "n_test", "epochs", "test_accuracy"]


def stratified_subset(labels: np.ndarray, per_digit: int, seed: int) -> np.ndarray:
    """Indices of `per_digit` images of each digit 0-9, drawn without replacement, sorted."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = []
    for digit in range(N_DIGITS):
        pool = np.flatnonzero(labels == digit)
        if len(pool) < per_digit:
            raise ValueError(
                f"corpus size: {per_digit} training images per digit requested, but digit {digit} "
                f"has only {len(pool)} in the training split"
            )
        chosen.append(rng.choice(pool, size=per_digit, replace=False))
    return np.sort(np.concatenate(chosen))


def split_images(images: pa.Table, where: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train pixels, train labels, test pixels, test labels) by `source_split`."""
    split = images.column("source_split").to_numpy(zero_copy_only=False)
    labels = images.column("label").to_numpy()
    pixels = pixels_array(images)
    train, test = split == "train", split == "test"
    if not train.any() or not test.any():
        raise ValueError(f"{where}corpus size needs source_split train and test images; found {sorted(set(split))}")
    if (labels[train | test] < 0).any():
        raise ValueError(f"{where}corpus size needs a label 0-9 for every train/test image")
    return pixels[train], labels[train], pixels[test], labels[test]


def run_size(
    images: pa.Table,
    *,
    samples_per_digit: int,
    repetitions: int,
    seed: int,
    epochs: int,
    batch_size: int,
    lr: float,
    model: str = "lenet",
    where: str = "",
) -> pd.DataFrame:
    """Train and test `repetitions` models on k = `samples_per_digit` images per digit."""
    import torch

    from softdigits.training.loop import TrainSettings, evaluate, normalise, pixel_stats
    from softdigits.training.models import build_model
    from softdigits.training.stack import fit_stacked

    x_pool, y_pool, x_test_raw, y_test_raw = split_images(images, where)
    settings = TrainSettings(lr=lr, batch_size=batch_size, max_epochs=epochs)
    eye = np.eye(N_DIGITS, dtype=np.float32)
    seeds = [seed + repetition for repetition in range(repetitions)]
    subsets = [stratified_subset(y_pool, samples_per_digit, run_seed) for run_seed in seeds]
    stats = [pixel_stats(x_pool[idx]) for idx in subsets]
    # The repetitions train in one stack (training.stack), each on its own subset, as `loop.fit`
    # trains it alone; each is standardised with its own subset's statistics.
    start = time.perf_counter()
    trained = fit_stacked(
        [build_model(model, run_seed) for run_seed in seeds],
        seeds,
        torch.stack([normalise(x_pool[idx], *st) for idx, st in zip(subsets, stats)]),
        torch.from_numpy(np.stack([eye[y_pool[idx]] for idx in subsets])),
        [settings],
    )
    seconds = time.perf_counter() - start
    rows = []
    for repetition, (run_seed, idx, st, [(_, net)]) in enumerate(zip(seeds, subsets, stats, trained)):
        _, accuracy = evaluate(net, normalise(x_test_raw, *st), torch.from_numpy(eye[y_test_raw]))
        log.info(
            "k=%d repetition %d (seed %d): test accuracy %.4f (the %d repetitions trained together in %.1f s)",
            samples_per_digit,
            repetition,
            run_seed,
            accuracy,
            repetitions,
            seconds,
        )
        rows.append((samples_per_digit, repetition, run_seed, len(idx), len(y_test_raw), epochs, accuracy))
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def table5(runs: pd.DataFrame) -> pd.DataFrame:
    """The paper's layout: a header row of sizes, then Avg. Acc. and Avg. Std. (percent)."""
    g = runs.groupby("samples_per_digit")["test_accuracy"].agg(["mean", "std", "count"]).sort_index()
    label = "Samples per digit (class):"
    table = pd.DataFrame(
        [["Avg. Acc.", *(100 * g["mean"])], ["Avg. Std.", *(100 * g["std"])]],
        columns=[label, *[str(k) for k in g.index]],
    )
    return table


def table5_markdown(table: pd.DataFrame, runs: pd.DataFrame) -> str:
    """Table 5 in Markdown with a note on what was run."""
    reps = runs.groupby("samples_per_digit")["repetition"].nunique()
    epochs = sorted(runs["epochs"].unique())
    acc = table.iloc[[0]].copy()
    std = table.iloc[[1]].copy()
    body = (
        markdown_table(acc, floatfmt="{:.3f}")
        + "\n".join(markdown_table(std, floatfmt="{:.4f}").splitlines()[2:])
        + "\n"
    )
    note = (
        f"\nLeNet on k MNIST training images per digit, tested on the MNIST test split "
        f"({int(runs['n_test'].iloc[0])} images); {', '.join(map(str, sorted(set(reps))))} repetitions per size, "
        f"{', '.join(map(str, epochs))} epochs. Accuracy in percent: mean and sample std (ddof=1) over repetitions. "
        "Labels: the original MNIST labels.\n"
    )
    return "# Table 5: corpus-size sensitivity (MNIST)\n\n" + body + note
