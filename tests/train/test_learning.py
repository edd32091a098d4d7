"""Learning against data whose true answer is known: the synthetic generator's hidden model."""

from __future__ import annotations

import numpy as np
import pytest

from fastmf import MatrixFactorization
from fastmf.datasets import synthetic


@pytest.mark.slow
def test_recovers_hidden_model_to_within_five_percent_of_its_rmse():
    df, truth = synthetic(n_users=3000, n_items=2000, n_ratings=1_000_000, rank=8, noise=0.75,
                          scale=None, random_state=0, return_truth=True)  # fmt: skip
    rng = np.random.default_rng(0)
    test = rng.random(len(df)) < 0.1
    train, held_out = df[~test], df[test]
    m = MatrixFactorization(
        n_factors=8,
        n_epochs=30,
        learning_rate=0.01,
        reg=0.02,
        lr_schedule="exponential",
        lr_decay=0.9,
        random_state=0,
        verbose=0,
    )
    m.fit(train)
    best = truth.rmse(held_out)
    got = -m.score(held_out)
    assert got <= 1.05 * best, f"test RMSE {got:.4f} vs the hidden model's {best:.4f}"
    assert got >= 0.97 * best  # no model beats the noise floor by more than sampling error


def test_small_problem_nears_the_noise_floor():
    df, truth = synthetic(n_users=400, n_items=300, n_ratings=40_000, rank=4, noise=0.3,
                          scale=None, random_state=1, return_truth=True)  # fmt: skip
    df = df.sample(frac=1.0, random_state=0)
    train, test = df.iloc[:36_000], df.iloc[36_000:]
    full = MatrixFactorization(
        n_factors=4, n_epochs=40, learning_rate=0.01, reg=0.02, lr_schedule="constant",
        random_state=0, verbose=0,
    ).fit(train)  # fmt: skip
    mean_only = np.sqrt(np.mean((test.rating - train.rating.mean()) ** 2))
    assert -full.score(test) < 0.5 * mean_only
    assert -full.score(test) < 1.15 * truth.rmse(test)
