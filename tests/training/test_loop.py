"""The training loop: soft-target loss, early stopping, the scheduler, dynamics, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from softdigits.training.loop import (
    TrainSettings,
    evaluate,
    fit,
    fit_shared,
    normalise,
    pixel_stats,
    predict,
    soft_cross_entropy,
)
from softdigits.training.models import build_model


def test_soft_cross_entropy_equals_hand_computed_value():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    targets = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    # log softmax of (1, 2, 3) = (1, 2, 3) - log(e + e^2 + e^3); of (0, 0, 0) = -log 3
    lse = math.log(math.e + math.e**2 + math.e**3)
    first = -(0.2 * (1 - lse) + 0.3 * (2 - lse) + 0.5 * (3 - lse))
    second = math.log(3)
    assert float(soft_cross_entropy(logits, targets)) == pytest.approx((first + second) / 2, rel=1e-6)


def test_soft_cross_entropy_with_one_hot_is_cross_entropy():
    logits = torch.randn(7, 10, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(7)
    one_hot = torch.nn.functional.one_hot(labels, 10).float()
    torch.testing.assert_close(soft_cross_entropy(logits, one_hot), torch.nn.functional.cross_entropy(logits, labels))


def blobs(n: int, seed: int, flip: bool = False):
    """Two separable classes in 784 dims; `flip` swaps the targets (a validation set that gets worse)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    x = torch.randn(n, 784, generator=g) + (labels[:, None] * 2 - 1) * 0.5
    y = torch.nn.functional.one_hot(1 - labels if flip else labels, 10).float()
    return x, y


def test_early_stopping_stops_after_patience_and_restores_the_best_epoch():
    x, y = blobs(128, 0)
    x_val, y_val = blobs(64, 1, flip=True)  # learning the training set makes this worse every epoch
    settings = TrainSettings(max_epochs=30, early_stopping_patience=3)
    model = build_model("simple_ffn", 0)
    result = fit(model, x, y, settings, seed=0, x_val=x_val, y_val=y_val)
    assert result.best_epoch == 1
    assert len(result.history) == 1 + 3  # the best epoch, then three without improvement
    assert result.history["val_loss"].is_monotonic_increasing
    # The model holds the epoch-1 weights: the same as a run of exactly one epoch.
    one_epoch = build_model("simple_ffn", 0)
    fit(one_epoch, x, y, TrainSettings(max_epochs=1), seed=0)
    torch.testing.assert_close(predict(model, x_val), predict(one_epoch, x_val), rtol=0, atol=0)
    assert evaluate(model, x_val, y_val)[0] == pytest.approx(result.history["val_loss"].iloc[0], rel=1e-5)


def test_scheduler_reduces_the_learning_rate_on_a_plateau():
    x, y = blobs(128, 0)
    x_val, y_val = blobs(64, 1, flip=True)
    settings = TrainSettings(lr=1e-3, max_epochs=8, plateau_factor=0.5, plateau_patience=1)
    result = fit(build_model("simple_ffn", 0), x, y, settings, seed=0, x_val=x_val, y_val=y_val)
    assert len(result.history) == 8  # no early stopping configured
    # Epoch 1 sets the best; epochs 2 and 3 are bad; after the second bad epoch
    # (more than patience 1) the rate halves, and again every two bad epochs.
    assert result.history["lr"].tolist() == pytest.approx([1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4, 1.25e-4])


def test_improving_validation_set_keeps_training_and_the_rate():
    x, y = blobs(256, 0)
    x_val, y_val = blobs(128, 1)
    settings = TrainSettings(max_epochs=4, early_stopping_patience=2, plateau_factor=0.1, plateau_patience=1)
    result = fit(build_model("simple_ffn", 0), x, y, settings, seed=0, x_val=x_val, y_val=y_val)
    assert len(result.history) == 4
    assert result.best_epoch == 4
    assert set(result.history["lr"]) == {1e-3}


def test_validation_is_required_for_early_stopping():
    x, y = blobs(16, 0)
    with pytest.raises(ValueError, match="validation"):
        fit(build_model("simple_ffn", 0), x, y, TrainSettings(early_stopping_patience=2), seed=0)


def test_dynamics_are_each_image_prediction_in_its_own_row():
    """With a zero learning rate the weights never change, so the per-epoch
    dynamics must equal a plain prediction for every image, in input order."""
    x, y = blobs(100, 0)
    model = build_model("lenet", 0)
    result = fit(model, x, y, TrainSettings(lr=0.0, max_epochs=3, batch_size=32), seed=5, track_dynamics=True)
    assert result.train_probs.shape == (3, 100, 10)
    expected = predict(model, x).numpy()
    for epoch in range(3):
        np.testing.assert_allclose(result.train_probs[epoch], expected, atol=1e-6)


def test_history_columns_and_running_train_metrics():
    x, y = blobs(64, 0)
    result = fit(build_model("simple_ffn", 0), x, y, TrainSettings(max_epochs=2), seed=0, x_val=x[:8], y_val=y[:8])
    h = result.history
    assert list(h.columns) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr"]
    assert h["epoch"].tolist() == [1, 2]
    assert h[["train_loss", "val_loss"]].notna().all().all()
    assert ((h["train_acc"] >= 0) & (h["train_acc"] <= 1)).all()


def test_same_seed_same_run_and_other_seed_differs():
    x, y = blobs(96, 0)

    def run(seed):
        result = fit(
            build_model("deeper_ffn", seed),
            x,
            y,
            TrainSettings(max_epochs=2, batch_size=16),
            seed=seed,
            track_dynamics=True,
        )
        return result.train_probs

    a, b, c = run(0), run(0), run(1)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_normalise_uses_the_given_statistics():
    pixels = np.array([[0, 255] * 392, [255, 255] * 392], dtype=np.uint8)
    mean, std = pixel_stats(pixels)
    assert mean == pytest.approx(0.75)
    x = normalise(pixels, mean, std)
    assert x.dtype == torch.float32 and x.shape == (2, 784)
    assert float(x.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(x.std(unbiased=False)) == pytest.approx(1.0, abs=1e-5)


def test_fused_adam_is_torch_adam_bit_for_bit():
    from softdigits.training.loop import FusedAdam

    x, y = blobs(64, 0)
    ours, theirs = build_model("lenet", 0), build_model("lenet", 0)
    opt_ours = FusedAdam(ours.parameters(), lr=1e-3)
    opt_theirs = torch.optim.Adam(theirs.parameters(), lr=1e-3, fused=True)
    for step in range(5):
        for model, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            opt.zero_grad()
            soft_cross_entropy(model(x[step * 8 : step * 8 + 16]), y[step * 8 : step * 8 + 16]).backward()
            opt.step()
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)


def test_plateau_matches_torch_reduce_lr_on_plateau():
    from softdigits.training.loop import FusedAdam, Plateau

    rng = np.random.default_rng(0)
    losses = list(1.0 - np.cumsum(rng.uniform(-0.01, 0.012, size=60)))  # noisy, slowly improving
    losses[20:30] = [losses[19] * (1 - 5e-5)] * 10  # below the relative threshold: not an improvement
    param = torch.nn.Parameter(torch.zeros(1))
    ours = FusedAdam([param], lr=1e-3)
    plateau = Plateau(ours, factor=0.3, patience=2)
    reference = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(reference, factor=0.3, patience=2)
    got, expected = [], []
    for loss in losses:
        plateau.step(float(loss))
        scheduler.step(float(loss))
        got.append(ours.lr)
        expected.append(reference.param_groups[0]["lr"])
    assert got == expected
    assert len(set(got)) > 2  # the sequence did reduce, more than once


def test_training_does_not_import_torch_dynamo():
    """torch.optim imports torch._dynamo (~2 s); a training job must not pay it."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from softdigits.training.models import build_model\n"
        "from softdigits.training.loop import TrainSettings, fit\n"
        "x = torch.randn(32, 784); y = torch.softmax(torch.randn(32, 10), 1)\n"
        "fit(build_model('lenet', 0), x, y, TrainSettings(max_epochs=2, early_stopping_patience=1,"
        " plateau_factor=0.5), 0, x, y, track_dynamics=True)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------ shared trajectories


def _same_fit(a, b) -> bool:
    (ra, ma), (rb, mb) = a, b
    return (
        ra.history.equals(rb.history)
        and ra.best_epoch == rb.best_epoch
        and (ra.train_probs is None) == (rb.train_probs is None)
        and (ra.train_probs is None or np.array_equal(ra.train_probs, rb.train_probs))
        and all(torch.equal(x, y) for x, y in zip(ma.state_dict().values(), mb.state_dict().values()))
    )


@pytest.mark.parametrize("name", ["simple_ffn", "lenet"])
def test_regimes_sharing_a_trajectory_get_bit_for_bit_what_they_get_alone(name):
    """The speed-up of train_run (both regimes on one trajectory until regime 1 first lowers its
    rate or stops) changes no number: every history, dynamics array, best epoch and final weight
    equals that of the regime trained alone from the same seed."""
    g = torch.Generator().manual_seed(0)
    x, xv = torch.randn(200, 784, generator=g), torch.randn(60, 784, generator=g)
    y = torch.softmax(2 * torch.randn(200, 10, generator=g), 1)
    yv = torch.softmax(2 * torch.randn(60, 10, generator=g), 1)
    first = TrainSettings(max_epochs=25, early_stopping_patience=4, plateau_factor=0.5, plateau_patience=1)
    second = TrainSettings(max_epochs=9)
    shared = fit_shared(build_model(name, 3), x, y, [first, second], 3, xv, yv, [False, True])
    alone = []
    for settings, track in ((first, False), (second, True)):
        model = build_model(name, 3)
        alone.append((fit(model, x, y, settings, 3, xv, yv, track_dynamics=track), model))
    lr = shared[0][0].history["lr"].to_numpy()
    assert (lr < lr[0]).any() and len(shared[0][0].history) < 25  # the regimes did part: a plateau, then a stop
    assert _same_fit(shared[0], alone[0]) and _same_fit(shared[1], alone[1])
    # and the comparison can fail: another seed is another trajectory
    other = build_model(name, 4)
    assert not _same_fit(shared[1], (fit(other, x, y, second, 4, xv, yv, track_dynamics=True), other))


def test_regimes_with_different_rates_never_share():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 784, generator=g), torch.softmax(torch.randn(64, 10, generator=g), 1)
    a, b = TrainSettings(lr=1e-3, max_epochs=3), TrainSettings(lr=1e-2, max_epochs=3)
    shared = fit_shared(build_model("simple_ffn", 0), x, y, [a, b], 0)
    for settings, got in zip((a, b), shared):
        model = build_model("simple_ffn", 0)
        assert _same_fit(got, (fit(model, x, y, settings, 0), model))
    assert shared[0][1] is not shared[1][1]
