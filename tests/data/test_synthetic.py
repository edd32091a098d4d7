"""Tests of fastmf.data.datasets.synthetic: sizes, shape of the data, the hidden truth, bad
arguments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fastmf.data.datasets.synthetic import MOVIELENS_SIZES, SyntheticTruth, synthetic


@pytest.fixture(scope="module")
def ml100k_twin() -> tuple[pd.DataFrame, SyntheticTruth]:
    return synthetic(like="ml-100k", return_truth=True)


def _reference_predict(truth: SyntheticTruth, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Plain numpy twin of SyntheticTruth.predict."""
    dot = (truth.user_factors[users] * truth.item_factors[items]).sum(axis=1)
    return truth.mu + truth.user_bias[users] + truth.item_bias[items] + dot


def test_sizes_and_dtypes_match_request() -> None:
    df = synthetic(300, 500, 20_000, random_state=1)
    assert list(df.columns) == ["user", "item", "rating", "timestamp"]
    assert [str(t) for t in df.dtypes] == ["int32", "int32", "float32", "int64"]
    assert len(df) == 20_000
    assert df["user"].nunique() == 300 and df["user"].min() == 0 and df["user"].max() == 299
    assert df["item"].nunique() == 500 and df["item"].min() == 0 and df["item"].max() == 499


def test_like_gives_published_counts(ml100k_twin: tuple[pd.DataFrame, SyntheticTruth]) -> None:
    df, truth = ml100k_twin
    n_ratings, n_users, n_items = MOVIELENS_SIZES["ml-100k"]
    assert len(df) == n_ratings
    assert df["user"].nunique() == n_users == truth.n_users
    assert df["item"].nunique() == n_items == truth.n_items
    assert truth.rank == 16


def test_default_is_the_ml100k_twin(ml100k_twin: tuple[pd.DataFrame, SyntheticTruth]) -> None:
    pd.testing.assert_frame_equal(synthetic(), ml100k_twin[0])


def test_scaled_twin_keeps_ratings_per_user() -> None:
    df = synthetic(like="ml-25m", n_ratings=200_000)
    ref_r, ref_u, ref_i = MOVIELENS_SIZES["ml-25m"]
    assert len(df) == 200_000
    assert df["user"].nunique() == round(ref_u * 200_000 / ref_r)
    per_user = len(df) / df["user"].nunique()
    assert per_user == pytest.approx(ref_r / ref_u, rel=0.01)
    # Scaled down linearly the items would be too few (density 33%); they are raised to 10%.
    assert df["item"].nunique() == int(np.ceil(200_000 / (df["user"].nunique() * 0.1)))
    assert df["item"].nunique() > round(ref_i * 200_000 / ref_r)


def test_scaled_twin_keeps_ratings_per_item_when_sparse_enough() -> None:
    df = synthetic(like="ml-1m", n_ratings=600_000)
    ref_r, ref_u, ref_i = MOVIELENS_SIZES["ml-1m"]
    assert df["user"].nunique() == round(ref_u * 0.6 * 1_000_000 / ref_r)
    assert df["item"].nunique() == round(ref_i * 0.6 * 1_000_000 / ref_r)


def test_tiny_twin_of_a_large_release_stays_sparse_enough() -> None:
    df = synthetic(like="ml-25m", n_ratings=5_000)
    n_users, n_items = df["user"].nunique(), df["item"].nunique()
    assert len(df) == 5_000
    assert len(df) / (n_users * n_items) <= 0.1 + 1e-9
    assert df.groupby("user").size().min() >= 20


def test_no_duplicate_pairs_and_min_ratings(ml100k_twin: tuple[pd.DataFrame, SyntheticTruth]):
    df = ml100k_twin[0]
    assert not df.duplicated(["user", "item"]).any()
    assert df.groupby("user").size().min() >= 20
    assert df.groupby("item").size().min() >= 1


def test_dense_data_uses_every_pair_once() -> None:
    # Every user rates every item: the exact without-replacement path for heavy users.
    df = synthetic(30, 25, 750, random_state=3)
    assert not df.duplicated(["user", "item"]).any()
    assert (df.groupby("user").size() == 25).all()


def test_nearly_dense_mixed_users() -> None:
    df = synthetic(200, 100, 12_000, min_user_ratings=5, random_state=4)
    counts = df.groupby("user").size()
    assert len(df) == 12_000 and counts.min() >= 5 and counts.max() <= 100
    assert not df.duplicated(["user", "item"]).any()


def test_custom_min_user_ratings() -> None:
    df = synthetic(100, 300, 10_000, min_user_ratings=50, random_state=2)
    assert df.groupby("user").size().min() >= 50


def test_ratings_look_like_movielens(ml100k_twin: tuple[pd.DataFrame, SyntheticTruth]) -> None:
    r = ml100k_twin[0]["rating"].to_numpy()
    assert 3.35 < r.mean() < 3.65
    assert 0.9 < r.std() < 1.1
    assert set(np.unique(r)) <= set(np.arange(1, 11) / 2)


def test_whole_star_scale() -> None:
    r = synthetic(100, 200, 5_000, scale="whole")["rating"].to_numpy()
    assert set(np.unique(r)) == {1.0, 2.0, 3.0, 4.0, 5.0}


def test_heavy_tails(ml100k_twin: tuple[pd.DataFrame, SyntheticTruth]) -> None:
    df = ml100k_twin[0]
    users = np.sort(df.groupby("user").size().to_numpy())[::-1]
    items = np.sort(df.groupby("item").size().to_numpy())[::-1]
    # MovieLens: the top 10% of users hold about 40% of ratings; items are more skewed still.
    assert users[: len(users) // 10].sum() / users.sum() > 0.3
    assert users.max() > 10 * np.median(users)
    assert items[: len(items) // 10].sum() / items.sum() > 0.3
    assert items.max() > 20 * np.median(items)


def test_no_skew_gives_flat_activity() -> None:
    df = synthetic(200, 400, 20_000, user_skew=0.0, item_skew=0.0)
    users = df.groupby("user").size().to_numpy()
    assert users.max() < 2 * np.median(users)


def test_truth_predict_matches_reference(ml100k_twin: tuple[pd.DataFrame, SyntheticTruth]) -> None:
    df, truth = ml100k_twin
    u, i = df["user"].to_numpy(), df["item"].to_numpy()
    np.testing.assert_allclose(truth.predict(u, i), _reference_predict(truth, u, i), rtol=1e-12)


def test_truth_rmse_is_the_noise_when_unrounded() -> None:
    df, truth = synthetic(like="ml-100k", noise=0.75, scale=None, return_truth=True)
    assert truth.rmse(df) == pytest.approx(0.75, abs=0.01)
    err = df["rating"].to_numpy(np.float64) - _reference_predict(
        truth, df["user"].to_numpy(), df["item"].to_numpy()
    )
    assert truth.rmse(df) == pytest.approx(np.sqrt(np.mean(err**2)), rel=1e-6)


def test_zero_noise_gives_the_truth_exactly() -> None:
    df, truth = synthetic(100, 200, 5_000, noise=0.0, scale=None, return_truth=True)
    expected = _reference_predict(truth, df["user"].to_numpy(), df["item"].to_numpy())
    np.testing.assert_allclose(df["rating"].to_numpy(), expected.astype(np.float32))
    assert truth.rmse(df) < 1e-6


def test_hidden_model_parameters() -> None:
    _, truth = synthetic(
        2_000,
        3_000,
        60_000,
        rank=8,
        mean=3.0,
        user_bias_std=0.5,
        item_bias_std=0.2,
        factor_std=0.3,
        noise=0.5,
        return_truth=True,
    )
    assert truth.mu == 3.0 and truth.noise == 0.5 and truth.rank == 8
    assert truth.user_bias.std() == pytest.approx(0.5, rel=0.1)
    assert truth.item_bias.std() == pytest.approx(0.2, rel=0.1)
    assert truth.user_factors.std() == pytest.approx(0.3, rel=0.05)
    assert truth.item_factors.shape == (3_000, 8)


def test_rank_zero_is_biases_only() -> None:
    df, truth = synthetic(50, 100, 2_000, rank=0, return_truth=True)
    assert truth.user_factors.shape == (50, 0)
    assert np.isfinite(truth.predict(df["user"].to_numpy(), df["item"].to_numpy())).all()


def test_timestamps_increase_within_each_user(ml100k_twin) -> None:
    df = ml100k_twin[0]
    assert (df.groupby("user")["timestamp"].diff().dropna() >= 0).all()
    assert df["timestamp"].min() > 7e8 and df["timestamp"].max() < 1.8e9
    assert df["user"].is_monotonic_increasing


def test_deterministic_for_a_seed() -> None:
    a, ta = synthetic(200, 300, 8_000, random_state=7, return_truth=True)
    b, tb = synthetic(200, 300, 8_000, random_state=7, return_truth=True)
    pd.testing.assert_frame_equal(a, b)
    np.testing.assert_array_equal(ta.item_factors, tb.item_factors)
    c = synthetic(200, 300, 8_000, random_state=8)
    assert not a.equals(c)
    d = synthetic(200, 300, 8_000, random_state=np.random.default_rng(7))
    pd.testing.assert_frame_equal(a, d)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_users": 0, "n_items": 10, "n_ratings": 100}, ValueError, "n_users must be >= 1"),
        ({"n_users": 2.5, "n_items": 10, "n_ratings": 100}, TypeError, "n_users must be an int"),
        ({"n_users": 10, "n_items": 10}, ValueError, "n_ratings not given"),
        ({"n_users": 10, "n_items": 10, "n_ratings": 150}, ValueError, "min_user_ratings"),
        ({"n_users": 10, "n_items": 30, "n_ratings": 100}, ValueError, "n_users \\* min_user"),
        ({"n_users": 10, "n_items": 30, "n_ratings": 301}, ValueError, "exceeds n_users \\* n_it"),
        ({"n_users": 10, "n_items": 300, "n_ratings": 250}, ValueError, "below n_items=300"),
        ({"like": "ml-5m"}, ValueError, "like must be one of"),
        ({"like": 25}, TypeError, "like must be"),
        ({"rank": -1}, ValueError, "rank must be >= 0"),
        ({"noise": -0.1}, ValueError, "noise must be finite and >= 0"),
        ({"noise": "big"}, TypeError, "noise must be a number"),
        ({"mean": float("nan")}, ValueError, "mean must be finite"),
        ({"item_skew": -1.0}, ValueError, "item_skew must be finite and >= 0"),
        ({"scale": "quarter"}, ValueError, "scale must be 'half', 'whole' or None"),
        ({"scale": 0.5}, TypeError, "scale must be"),
        ({"min_user_ratings": 0}, ValueError, "min_user_ratings must be >= 1"),
        ({"random_state": 1.5}, TypeError, "random_state must be"),
        ({"random_state": -3}, ValueError, "random_state must be >= 0"),
        ({"return_truth": "yes"}, TypeError, "return_truth must be a bool"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        synthetic(**kwargs)


def test_truth_rejects_bad_indices(ml100k_twin: tuple[pd.DataFrame, SyntheticTruth]) -> None:
    truth = ml100k_twin[1]
    with pytest.raises(ValueError, match="items holds indices outside"):
        truth.predict(np.array([0]), np.array([truth.n_items]))
    with pytest.raises(TypeError, match="integer indices"):
        truth.predict(np.array([0.0]), np.array([1]))
    with pytest.raises(ValueError, match="same length"):
        truth.predict(np.array([0, 1]), np.array([1]))
    with pytest.raises(ValueError, match="no column 'rating'"):
        truth.rmse(pd.DataFrame({"user": [0], "item": [0]}))
