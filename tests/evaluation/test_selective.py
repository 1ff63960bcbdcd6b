"""Risk-coverage, AURC and E-AURC by hand; AUROC against scipy's Mann-Whitney U."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from softdigits.evaluation import selective


def test_aurc_and_eaurc_of_a_hand_example():
    # Most confident first: errors 0, 1, 0, 1 -> risks 0, 1/2, 1/3, 2/4; AURC = 4/3 / 4 = 1/3.
    # Oracle (both correct first): 0, 0, 1/3, 2/4 -> 5/6 / 4 = 5/24; E-AURC = 1/3 - 5/24 = 1/8.
    confidence = np.array([0.6, 0.9, 0.7, 0.8])
    error = np.array([1, 0, 0, 1], dtype=bool)
    coverage, risk = selective.risk_coverage(confidence, error)
    np.testing.assert_allclose(coverage, [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(risk, [0, 1 / 2, 1 / 3, 2 / 4])
    assert selective.aurc(confidence, error) == pytest.approx(1 / 3)
    assert selective.optimal_aurc(error) == pytest.approx(5 / 24)
    assert selective.excess_aurc(confidence, error) == pytest.approx(1 / 8)


def test_a_perfect_ranking_has_zero_eaurc_and_a_reversed_one_does_not():
    error = np.array([0, 0, 0, 1, 1], dtype=bool)
    assert selective.excess_aurc(np.array([5, 4, 3, 2, 1.0]), error) == pytest.approx(0.0)
    # Errors first: risks 1, 1, 2/3, 2/4, 2/5 -> AURC 0.713333; oracle 0, 0, 0, 1/4, 2/5 -> 0.13.
    assert selective.aurc(np.array([1, 2, 3, 4, 5.0]), error) == pytest.approx(0.713333, abs=1e-6)
    assert selective.excess_aurc(np.array([1, 2, 3, 4, 5.0]), error) == pytest.approx(0.583333, abs=1e-6)


def test_ties_take_the_expected_risk_whatever_the_row_order():
    # Three images at confidence 1.0, one of them wrong; then one correct at 0.5.
    # Inside the tie the expected errors after j images are j/3: risks 1/3, 1/3, 1/3, 1/4.
    confidence = np.array([1.0, 1.0, 1.0, 0.5])
    for error in ([1, 0, 0, 0], [0, 0, 1, 0]):
        _, risk = selective.risk_coverage(confidence, np.array(error, dtype=bool))
        np.testing.assert_allclose(risk, [1 / 3, 1 / 3, 1 / 3, 1 / 4])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_agrees_with_mann_whitney_u(seed):
    rng = np.random.default_rng(seed)
    score = np.round(rng.normal(size=80), 1)  # rounded: many ties
    positive = rng.random(80) < 0.3
    u = mannwhitneyu(score[positive], score[~positive]).statistic
    assert selective.auroc(score, positive) == pytest.approx(u / (positive.sum() * (~positive).sum()), abs=1e-12)


def test_auroc_hand_values_and_one_class_is_an_error():
    assert selective.auroc(np.array([3.0, 2, 1, 0]), np.array([1, 1, 0, 0], bool)) == 1.0
    assert selective.auroc(np.array([0.0, 1, 2, 3]), np.array([1, 1, 0, 0], bool)) == 0.0
    assert selective.auroc(np.array([1.0, 1, 1, 1]), np.array([1, 0, 1, 0], bool)) == 0.5
    with pytest.raises(ValueError, match="positives and negatives"):
        selective.auroc(np.array([1.0, 2]), np.array([1, 1], bool))
