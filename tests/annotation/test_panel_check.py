"""The panel check: a panel that reads the image passes it, one that answers from the record fails."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from test_simulation import CLEAN

from softdigits.annotation import panel_check as check
from softdigits.annotation import simulation as sim
from softdigits.annotation.aggregation import aggregate
from softdigits.annotation.campaign import design_campaign

NOISY = dataclasses.replace(CLEAN, yes_sd=0.05, unsure_sd=0.1, noise_mean=0.06, noise_sd=0.02, lapse_rate=0.001)


def generated_like(n=400, seed=0):
    """Real digits (10 noisy prototypes) and generated-like images with records.

    Each generated image has two parents of different classes with Dirichlet mixing
    weights, but shows one of them picked by a coin that ignores the weights (a latent
    mixture is not a pixel blend), with a faint trace of the other.
    """
    rng = np.random.default_rng(seed)
    protos = (rng.random((10, 784)) < 0.25) * 220.0
    ref_labels = np.repeat(np.arange(10), 30)
    ref_pixels = np.clip(protos[ref_labels] + rng.normal(0, 30, (300, 784)), 0, 255).astype(np.uint8)
    reference = pd.DataFrame({"image_id": [f"r:{i}" for i in range(300)], "label": ref_labels})
    parents = np.array([rng.choice(10, 2, replace=False) for _ in range(n)])
    weights = rng.dirichlet([1.0, 1.0], n)
    shown = np.where(rng.random(n) < 0.5, parents[:, 0], parents[:, 1])
    other = np.where(shown == parents[:, 0], parents[:, 1], parents[:, 0])
    pixels = np.clip(0.8 * protos[shown] + 0.2 * protos[other] + rng.normal(0, 30, (n, 784)), 0, 255)
    ids = [f"x:{i}" for i in range(n)]
    images = pd.DataFrame({"image_id": ids, "label": weights.argmax(axis=1)})
    records = pd.DataFrame({"image_id": ids, "parent_labels": list(parents), "mix_weights": list(weights)})
    return images, pixels.astype(np.uint8), records, reference, ref_pixels


def panel_majority(record_weight, k=4):
    images, pixels, records, reference, ref_pixels = generated_like()
    ids = images["image_id"].tolist()
    gold = pd.DataFrame({"image_id": [f"g:{d}" for d in range(10)], "gold_label": range(10)})
    tasks = design_campaign(ids, gold, annotators_per_image=k, images_per_task=23, checks_per_task=3, seed=0)
    signal = sim.image_signal(
        images,
        pixels,
        ids,
        reference,
        ref_pixels,
        k=10,
        knn_tau=0.0,
        label_weight=0.0,
        record_weight=record_weight,
        records=records,
    )
    signal.update({f"g:{d}": np.eye(10)[d] for d in range(10)})
    labels, _ = aggregate(sim.simulate_panel(tasks, signal, NOISY, seed=0))
    labels = labels.set_index("image_id").loc[ids]
    keep = (labels["soft_label_argmax"] < 10).to_numpy()
    return pixels[keep], records[keep].reset_index(drop=True), labels["soft_label_argmax"].to_numpy()[keep]


def test_panel_labels_are_learnt_from_pixels_not_from_the_record():
    scores = check.pixel_vs_record_predictability(*panel_majority(record_weight=0.1))
    assert scores["n_images"] > 350
    assert scores["pixels_acc"] > 0.9
    assert max(scores["record_acc"], scores["record_argmax_acc"]) < 0.7
    assert check.looks_at_the_image(scores, margin=0.2)


def test_a_panel_answering_from_the_record_fails_the_check():
    scores = check.pixel_vs_record_predictability(*panel_majority(record_weight=1.0))
    assert scores["record_argmax_acc"] > 0.9
    assert not check.looks_at_the_image(scores, margin=0.2)


def test_ridge_accuracy_is_chance_on_unrelated_features():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 4, 400)
    assert check.ridge_accuracy(rng.normal(size=(400, 20)), target) < 0.4
    assert check.ridge_accuracy(np.eye(4)[target] + rng.normal(0, 0.1, (400, 4)), target) > 0.95
