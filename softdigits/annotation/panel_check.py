"""Does the simulated panel look at the image? Its majority labels of generated digits must be
learnt from the pixels far better than from the generation records (which parents were mixed,
with which weights): otherwise the "human" labels carry no information a model could learn
from the image, and the study's comparisons mean nothing (DESIGN.md, honesty rules).

The test suite runs the check on panels that pass and fail it; bench/annotation_calibration.py
reports it for the default run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from softdigits.annotation.simulation import record_class_distribution


def ridge_accuracy(features: np.ndarray, target: np.ndarray, seed: int = 0, ridge: float = 1000.0) -> float:
    """Held-out accuracy of a one-vs-rest ridge classifier predicting `target`.

    Two folds (a seeded random half each way), features standardised on the
    training half. The strong default ridge suits 784 correlated pixels and about a
    thousand images per fold (on the default run's Ambiguous-MNIST selection any
    ridge from 100 to 10,000 gives the same picture). The same simple learner is given pixels or records, so that the
    two accuracies differ only in what the features carry.
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(target)
    classes = np.unique(y)
    order = np.random.default_rng(seed).permutation(len(y))
    halves = (order[: len(y) // 2], order[len(y) // 2 :])
    correct = 0
    for train, test in (halves, halves[::-1]):
        mean, sd = x[train].mean(axis=0), x[train].std(axis=0) + 1e-6
        xt = np.hstack([(x[train] - mean) / sd, np.ones((len(train), 1))])
        xs = np.hstack([(x[test] - mean) / sd, np.ones((len(test), 1))])
        onehot = (y[train][:, None] == classes[None, :]).astype(np.float64)
        w = np.linalg.solve(xt.T @ xt + ridge * np.eye(xt.shape[1]), xt.T @ onehot)
        correct += int((classes[(xs @ w).argmax(axis=1)] == y[test]).sum())
    return correct / len(y)


def pixel_vs_record_predictability(
    pixels: np.ndarray, records: pd.DataFrame, majority: np.ndarray, seed: int = 0
) -> dict[str, float]:
    """How well the panel's majority labels of generated images are learnt from what.

    `pixels` (n, 784), `records` (parent_labels, mix_weights) and `majority` (the
    panel's label of each image) are row-aligned. Returns the held-out accuracy of
    the same ridge classifier (`ridge_accuracy`) on the pixels and on the record's
    class weights, and the accuracy of the record's dominant parent class as is.
    """
    record = record_class_distribution(records["parent_labels"], records["mix_weights"])
    majority = np.asarray(majority)
    return {
        "n_images": int(len(majority)),
        "pixels_acc": ridge_accuracy(pixels, majority, seed),
        "record_acc": ridge_accuracy(record, majority, seed),
        "record_argmax_acc": float(np.mean(record.argmax(axis=1) == majority)),
    }


def looks_at_the_image(scores: dict[str, float], margin: float) -> bool:
    """True when pixels predict the panel by at least `margin` over the best record baseline."""
    return scores["pixels_acc"] >= max(scores["record_acc"], scores["record_argmax_acc"]) + margin
