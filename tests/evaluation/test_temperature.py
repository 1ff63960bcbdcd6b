"""Temperature scaling: recovers a known T, flags a bound, and log(probs) serve as logits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from softdigits.evaluation import temperature


def synthetic_logits(n=300, seed=0):
    return np.random.default_rng(seed).normal(0, 3, size=(n, 10))


@pytest.mark.parametrize("true_t", [0.4, 1.0, 2.5, 7.0])
def test_recovers_a_known_temperature_from_soft_targets(true_t):
    # Targets softmax(z / T0): the cross-entropy is minimal exactly where q = p, at T = T0.
    z = synthetic_logits()
    fit = temperature.fit_temperature(z, softmax(z / true_t, axis=1))
    assert abs(fit.temperature - true_t) < 1e-3
    assert fit.nll_after <= fit.nll_before
    assert not fit.at_bound and fit.n_images == 300


def test_recovers_a_known_temperature_from_saved_probabilities():
    # The grid saves float32 probabilities of the logits; log(p) stands in for z.
    z = synthetic_logits(seed=1)
    probs = softmax(z, axis=1).astype(np.float32)
    fit = temperature.fit_temperature(temperature.logits_from_probs(probs), softmax(z / 3.0, axis=1))
    assert abs(fit.temperature - 3.0) < 1e-3
    np.testing.assert_allclose(temperature.scaled_probs(temperature.logits_from_probs(probs), 1.0), probs, rtol=1e-5)


def test_one_hot_targets_give_the_usual_nll_and_hand_value():
    z = np.array([[2.0, 0.0], [0.0, 1.0]])
    y = np.array([[1.0, 0.0], [1.0, 0.0]])
    # By hand at T = 2: -log(e^1 / (e^1 + 1)) = 0.313262 and -log(1 / (1 + e^0.5)) = 0.974077.
    assert temperature.nll(z, y, 2.0) == pytest.approx((0.313262 + 0.974077) / 2, abs=1e-6)


def test_a_fit_at_a_bound_is_flagged():
    # Every image right with a margin: sharper is always better, T runs to the lower bound.
    z = np.tile([5.0, 0.0], (20, 1))
    fit = temperature.fit_temperature(z, np.tile([1.0, 0.0], (20, 1)))
    assert fit.at_bound
    assert fit.nll_after < 1e-20 < fit.nll_before


def test_shapes_must_match():
    with pytest.raises(ValueError, match="same non-empty shape"):
        temperature.fit_temperature(np.zeros((3, 10)), np.zeros((3, 9)))
