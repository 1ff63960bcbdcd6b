"""Corpus size (Table 5): stratified subsets, the table's layout and numbers, a tiny real run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from softdigits.io import images_table
from softdigits.selection import corpus_size as CS


def test_stratified_subset_draws_k_per_digit_without_replacement():
    labels = np.repeat(np.arange(10), 30)
    idx = CS.stratified_subset(labels, 7, seed=3)
    assert len(idx) == 70 and len(set(idx)) == 70
    assert (np.bincount(labels[idx], minlength=10) == 7).all()
    np.testing.assert_array_equal(idx, CS.stratified_subset(labels, 7, seed=3))
    assert not np.array_equal(idx, CS.stratified_subset(labels, 7, seed=4))
    with pytest.raises(ValueError, match="digit 9 has only 5"):
        CS.stratified_subset(np.concatenate([labels[labels < 9], np.full(5, 9)]), 7, seed=0)


def test_table5_layout_and_numbers():
    runs = pd.DataFrame(
        {
            "samples_per_digit": [100, 100, 50, 50, 50],
            "repetition": [0, 1, 0, 1, 2],
            "seed": [0, 1, 0, 1, 2],
            "n_train": [1000, 1000, 500, 500, 500],
            "n_test": 10000,
            "epochs": 25,
            "test_accuracy": [0.94, 0.96, 0.88, 0.90, 0.92],
        }
    )
    table = CS.table5(runs)
    assert list(table.columns) == ["Samples per digit (class):", "50", "100"]
    assert list(table.iloc[:, 0]) == ["Avg. Acc.", "Avg. Std."]
    assert table.loc[0, "50"] == pytest.approx(90.0) and table.loc[0, "100"] == pytest.approx(95.0)
    # sample std (ddof=1) in percent: 50 -> std(88, 90, 92) = 2; 100 -> std(94, 96) = sqrt(2)
    assert table.loc[1, "50"] == pytest.approx(2.0) and table.loc[1, "100"] == pytest.approx(np.sqrt(2))
    md = CS.table5_markdown(table, runs)
    assert "| Samples per digit (class): | 50 | 100 |" in md
    assert "| Avg. Acc. | 90.000 | 95.000 |" in md and "| Avg. Std. | 2.0000 | 1.4142 |" in md
    assert "2, 3 repetitions" in md


def toy_mnist(per_digit=12, n_test=40, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.repeat(np.arange(10), per_digit), np.arange(n_test) % 10])
    pixels = rng.integers(0, 40, size=(len(labels), 784), dtype=np.uint8)
    for d in range(10):  # a bright bar per digit: learnable in a few steps
        pixels[labels == d, d * 70 : d * 70 + 28] = 255
    splits = ["train"] * (10 * per_digit) + ["test"] * n_test
    return images_table(
        source="mnist", source_split=splits, source_index=np.arange(len(labels)), pixels=pixels, label=labels
    )


def test_run_size_is_deterministic_and_learns():
    images = toy_mnist()
    kwargs = dict(samples_per_digit=8, repetitions=2, seed=5, epochs=8, batch_size=16, lr=3e-3, model="simple_ffn")
    runs = CS.run_size(images, **kwargs)
    assert list(runs.columns) == CS.RUN_COLUMNS
    assert runs["repetition"].tolist() == [0, 1] and runs["seed"].tolist() == [5, 6]
    assert (runs["n_train"] == 80).all() and (runs["n_test"] == 40).all()
    assert (runs["test_accuracy"] > 0.5).all()
    pd.testing.assert_frame_equal(runs, CS.run_size(images, **kwargs))


@pytest.mark.parametrize("model", ["simple_ffn", "lenet"])
def test_run_size_in_a_stack_is_bit_for_bit_each_repetition_alone(model, seeds_alone, monkeypatch):
    """The repetitions train in one stack, each on its own subset; each is the model trained alone.

    Compared by each trained model's test loss (a float that moves with any weight), not only
    its accuracy."""
    from softdigits.training import loop

    losses = []

    def evaluate(net, x, y):
        loss, accuracy = evaluate_once(net, x, y)
        losses.append(loss)
        return loss, accuracy

    evaluate_once = loop.evaluate
    monkeypatch.setattr(loop, "evaluate", evaluate)
    images = toy_mnist()
    kwargs = dict(samples_per_digit=6, repetitions=3, seed=5, epochs=3, batch_size=16, lr=3e-3, model=model)
    stacked = CS.run_size(images, **kwargs)
    seeds_alone()
    pd.testing.assert_frame_equal(stacked, CS.run_size(images, **kwargs))
    assert len(losses) == 6 and losses[:3] == losses[3:]
    CS.run_size(images, **{**kwargs, "lr": 2e-3})
    assert losses[6:] != losses[:3]  # the check can fail: another rate, other weights


def test_run_size_needs_train_and_test_splits():
    images = toy_mnist(n_test=0)
    with pytest.raises(ValueError, match="source_split train and test"):
        CS.run_size(images, samples_per_digit=2, repetitions=1, seed=0, epochs=1, batch_size=8, lr=1e-3)
