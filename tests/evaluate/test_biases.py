"""fastmf._biases.damped_biases against a plain-python reference and the estimator's biases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmf._biases import damped_biases
from fastmf.model import fixed_biases
from fastmf.ratings import Ratings


def reference_biases(users, items, values, mu, damping, n_sweeps, n_users, n_items):
    """Plain python: alternate damped means over the ratings, items first, then users."""
    b_u, b_i = [0.0] * n_users, [0.0] * n_items
    for _ in range(n_sweeps):
        for j in range(n_items):
            rows = [k for k in range(len(values)) if items[k] == j]
            b_i[j] = sum(values[k] - mu - b_u[users[k]] for k in rows) / (len(rows) + damping)
        for u in range(n_users):
            rows = [k for k in range(len(values)) if users[k] == u]
            b_u[u] = sum(values[k] - mu - b_i[items[k]] for k in rows) / (len(rows) + damping)
    return np.array(b_u), np.array(b_i)


def random_ratings(seed: int, n: int = 400, n_users: int = 30, n_items: int = 40):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n)
    items = rng.integers(0, n_items, n)
    values = rng.integers(1, 11, n) / 2.0
    return users, items, values


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    damping=st.sampled_from([0.5, 1.0, 5.0, 25.0]),
    n_sweeps=st.integers(0, 4),
)
def test_matches_the_reference(seed: int, damping: float, n_sweeps: int) -> None:
    users, items, values = random_ratings(seed, n=120, n_users=9, n_items=12)
    mu = float(values.mean())
    b_u, b_i = damped_biases(users, items, values, mu, damping, n_sweeps, n_users=9, n_items=12)
    ref_u, ref_i = reference_biases(users, items, values, mu, damping, n_sweeps, 9, 12)
    np.testing.assert_allclose(b_u, ref_u, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b_i, ref_i, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("damping", [0.0, 3.0, 25.0])
def test_one_sweep_is_the_estimators_fixed_biases_bit_for_bit(seed: int, damping: float) -> None:
    users, items, values = random_ratings(seed)
    ratings = Ratings.from_arrays(users * 7 + 3, items, values, duplicates="last")
    mu = float(ratings.values.mean())
    want_u, want_i = fixed_biases(ratings, mu, damping)
    b_u, b_i = damped_biases(
        ratings.users,
        ratings.items,
        ratings.values,
        mu,
        damping,
        1,
        n_users=ratings.n_users,
        n_items=ratings.n_items,
    )
    assert b_u.dtype == want_u.dtype and b_i.dtype == want_i.dtype
    np.testing.assert_array_equal(b_u, want_u)
    np.testing.assert_array_equal(b_i, want_i)


def test_more_sweeps_reach_least_squares_without_damping() -> None:
    users, items, values = random_ratings(5)
    mu = float(values.mean())
    design = np.zeros((len(values), 30 + 40))
    design[np.arange(len(values)), users] = 1.0
    design[np.arange(len(values)), 30 + items] = 1.0
    coef = np.linalg.lstsq(design, values - mu, rcond=None)[0]
    best = np.sqrt(np.mean((values - mu - design @ coef) ** 2))
    errors = []
    for n_sweeps in (1, 5, 400):
        b_u, b_i = damped_biases(users, items, values, mu, 0.0, n_sweeps)
        errors.append(np.sqrt(np.mean((values - mu - b_u[users] - b_i[items]) ** 2)))
    assert errors[0] >= errors[1] >= errors[2]
    assert errors[2] == pytest.approx(best, rel=1e-6)


def test_damping_shrinks_toward_zero() -> None:
    users, items, values = random_ratings(8)
    mu = float(values.mean())
    sizes = [np.abs(np.concatenate(damped_biases(users, items, values, mu, d, 3))).sum()
             for d in (0.0, 5.0, 50.0)]  # fmt: skip
    assert sizes[0] > sizes[1] > sizes[2] > 0


def test_lengths_default_to_the_largest_index() -> None:
    b_u, b_i = damped_biases(np.array([0, 4]), np.array([2, 2]), np.array([3.0, 4.0]), 3.5, 1.0, 1)
    assert b_u.shape == (5,) and b_i.shape == (3,)
    assert b_u[1] == 0.0 and b_i[0] == 0.0


def test_bad_arguments() -> None:
    u, i, r = np.array([0, 1]), np.array([0, 1]), np.array([3.0, 4.0])
    with pytest.raises(ValueError, match="mismatched lengths"):
        damped_biases(u, i[:1], r, 3.5, 1.0, 1)
    with pytest.raises(ValueError, match="damping must be finite and >= 0"):
        damped_biases(u, i, r, 3.5, -1.0, 1)
    with pytest.raises(TypeError, match="n_sweeps must be an integer"):
        damped_biases(u, i, r, 3.5, 1.0, 1.5)
    with pytest.raises(ValueError, match="n_users=1 is too small for index 1"):
        damped_biases(u, i, r, 3.5, 1.0, 1, n_users=1)
