"""The one largest-remainder allocator: the generator's entropy bins and the selection's strata."""

import numpy as np
import pytest

from softdigits.allocation import allocate, round_to_total, water_fill


def test_allocate_follows_the_weights_and_never_exceeds_a_bin():
    assert allocate([100, 100, 100], [1, 1, 2], 40).tolist() == [10, 10, 20]
    # the third bin holds only 5: the rest goes to the others in proportion to their weights
    assert allocate([100, 100, 5], [1, 1, 2], 40).tolist() == [18, 17, 5]
    assert allocate([3, 0, 4], [1, 1, 1], 100).tolist() == [3, 0, 4]  # pool too small
    assert allocate([5, 5], [0, 1], 8).tolist() == [0, 5]  # weight 0: never sampled
    rng = np.random.default_rng(0)
    for _ in range(50):
        cap = rng.integers(0, 50, size=12)
        weight = rng.random(12) * (cap > 0)
        total = int(rng.integers(0, 400))
        alloc = allocate(cap, weight, total)
        assert (alloc >= 0).all() and (alloc <= cap).all()
        assert alloc.sum() == min(total, cap[weight > 0].sum())


def test_water_fill_balances_and_respects_bounds():
    np.testing.assert_allclose(water_fill([1, 1, 1], [0, 0, 0], [100, 100, 100], 30), [10, 10, 10])
    # a scarce item gives its share to the others
    np.testing.assert_allclose(water_fill([1, 1, 1], [0, 0, 0], [2, 100, 100], 30), [2, 14, 14])
    # a lower bound above the fair share is kept; weight 0 stays at its lower bound
    np.testing.assert_allclose(water_fill([1, 1, 0], [20, 0, 3], [100, 100, 100], 30), [20, 7, 3])
    with pytest.raises(ValueError):
        water_fill([1, 1], [0, 0], [5, 5], 11)


def test_round_to_total_keeps_the_sum():
    rounded = round_to_total(np.array([1.5, 2.5, 3.0, 0.34, 0.66]), 8)
    assert rounded.sum() == 8
    assert (np.abs(rounded - [1.5, 2.5, 3.0, 0.34, 0.66]) < 1).all()


def test_allocate_without_caps_is_one_largest_remainder_rounding():
    """With replacement no entropy bin is capped: the allocation is the proportional share
    rounded once by largest remainders (what the generator drew before the allocators merged)."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        weight = rng.random(20) * (rng.random(20) > 0.2)
        total = int(rng.integers(1, 5000))
        share = total * weight / weight.sum()
        alloc = allocate(np.where(weight > 0, total, 0), weight, total)
        assert alloc.sum() == total and (np.abs(alloc - share) < 1).all()
        assert (alloc[weight == 0] == 0).all()
