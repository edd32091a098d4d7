"""Every bad input gets a clear error, naming what was wrong, before any kernel runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fastmf import MatrixFactorization, Ratings

QUIET = {"n_factors": 2, "n_epochs": 1, "verbose": 0, "random_state": 0}


def _df(**cols):
    base = {"user": [1, 2, 3], "item": [10, 20, 30], "rating": [4.0, 3.5, 5.0]}
    base.update(cols)
    return pd.DataFrame(base)


@pytest.mark.parametrize(
    "ratings,match",
    [
        ([4.0, np.nan, 5.0], r"rating has 1 NaN and 0 infinite values \(first at rows 1\)"),
        ([4.0, 3.0, np.inf], r"rating has 0 NaN and 1 infinite values \(first at rows 2\)"),
    ],
)
def test_non_finite_ratings(ratings, match):
    with pytest.raises(ValueError, match=match):
        MatrixFactorization(**QUIET).fit(_df(rating=ratings))


def test_non_numeric_ratings():
    with pytest.raises(TypeError, match="rating must be numeric, got dtype object"):
        MatrixFactorization(**QUIET).fit(_df(rating=["4", "3", "x"]))


def test_missing_column_names_it():
    with pytest.raises(ValueError, match=r"no column 'rating'.*rating_col="):
        MatrixFactorization(**QUIET).fit(pd.DataFrame({"user": [1], "item": [2], "score": [3.0]}))


def test_other_column_names():
    df = pd.DataFrame({"u": [1, 2], "m": [5, 6], "stars": [3.0, 4.0]})
    r = Ratings.from_dataframe(df, user_col="u", item_col="m", rating_col="stars")
    assert len(r) == 2 and r.n_users == 2


def test_empty_data():
    with pytest.raises(ValueError, match="no ratings given: the data is empty"):
        MatrixFactorization(**QUIET).fit(_df().iloc[:0])


def test_mismatched_lengths():
    with pytest.raises(
        ValueError, match="mismatched lengths: user has 3, item has 3, rating has 2"
    ):
        Ratings.from_arrays([1, 2, 3], [4, 5, 6], [1.0, 2.0])
    with pytest.raises(ValueError, match="X has 3 pairs|mismatched lengths"):
        MatrixFactorization(**QUIET).fit(np.array([[1, 2], [2, 3], [3, 4]]), [1.0, 2.0])


def test_missing_ids():
    with pytest.raises(ValueError, match=r"user has missing or infinite ids \(first at rows 1\)"):
        MatrixFactorization(**QUIET).fit(_df(user=[1.0, np.nan, 3.0]))
    with pytest.raises(ValueError, match=r"item has missing ids"):
        MatrixFactorization(**QUIET).fit(_df(item=["a", None, "c"]))


def test_fractional_ids():
    with pytest.raises(
        ValueError, match=r"user ids must be integers or strings; found 1.5 at row 0"
    ):
        MatrixFactorization(**QUIET).fit(_df(user=[1.5, 2.0, 3.0]))


@pytest.mark.parametrize(
    "users,match,kind",
    [
        ([0, -1, 2], r"users must hold non-negative indices; found -1 at row 1", ValueError),
        ([0.0, 1.0, 2.0], r"users must hold integer indices, got dtype float64", TypeError),
        ([0, 1, 7], r"users holds index 7 at row 2, but indices must be below 5", ValueError),
    ],
)
def test_bad_indices(users, match, kind):
    with pytest.raises(kind, match=match):
        Ratings.from_indices(users, [0, 1, 2], [1.0, 2.0, 3.0], n_users=5)


def test_duplicate_pairs_error_names_the_rows():
    df = _df(user=[1, 2, 1], item=[10, 20, 10], rating=[4.0, 3.0, 2.0])
    with pytest.raises(
        ValueError,
        match=r"1 duplicate \(user, item\) pairs: the pair \(1, 10\) is at rows 0 and 2; "
        r"pass duplicates='last'",
    ):
        MatrixFactorization(**QUIET).fit(df)


def test_duplicates_last_keeps_the_last_rating():
    df = _df(user=[1, 2, 1, 1], item=[10, 20, 10, 10], rating=[4.0, 3.0, 2.0, 1.0])
    r = Ratings.from_dataframe(df, duplicates="last")
    assert len(r) == 2
    kept = r.to_dataframe()
    assert kept.loc[kept.user == 1, "rating"].item() == 1.0
    m = MatrixFactorization(**QUIET, duplicates="last").fit(df)
    assert m.global_mean_ == pytest.approx(2.0)


@pytest.mark.parametrize(
    "params,kind,match",
    [
        ({"n_factors": 0}, ValueError, "n_factors must be >= 1, got 0"),
        ({"n_factors": 2.5}, TypeError, "n_factors must be an integer, got 2.5"),
        ({"reg": -0.1}, ValueError, "reg must be finite and >= 0.0, got -0.1"),
        ({"learning_rate": 0}, ValueError, "learning_rate must be finite and > 0.0, got 0.0"),
        (
            {"optimizer": "rmsprop"},
            ValueError,
            (
                "optimizer must be one of 'auto', 'sgd', 'adagrad', 'adam', 'row_adagrad', "
                "'damped_sgd'; got 'rmsprop'"
            ),
        ),
        ({"biases": "yes"}, ValueError, "biases must be one of"),
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1, got 0"),
        ({"n_jobs": 0}, ValueError, "n_jobs must be -1"),
        ({"dtype": "float16"}, ValueError, "dtype must be one of 'float32', 'float64'"),
        ({"lr_schedule": "cosine"}, ValueError, "lr_schedule must be one of"),
        ({"validation_fraction": 1.5}, ValueError, "validation_fraction must be below 1"),
        ({"callbacks": [3]}, TypeError, "callbacks must be callables"),
        ({"duplicates": "first"}, ValueError, "duplicates must be one of 'error', 'last'"),
    ],
)
def test_invalid_parameters(params, kind, match):
    with pytest.raises(kind, match=match):
        MatrixFactorization(**{**QUIET, **params}).fit(_df())


def test_bad_shapes_of_x():
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        MatrixFactorization(**QUIET).fit(np.zeros((3, 3)), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="pass the ratings as y"):
        MatrixFactorization(**QUIET).fit(np.zeros((3, 2)))


def test_empty_validation_set():
    with pytest.raises(ValueError, match="the validation set is empty"):
        MatrixFactorization(**QUIET).fit(_df(), validation=_df().iloc[:0])


def test_validation_with_unseen_ids_uses_the_fallback():
    val = pd.DataFrame({"user": [99], "item": [98], "rating": [1.0]})
    m = MatrixFactorization(**QUIET).fit(_df(), validation=val)
    assert m.history_.val_rmse.iloc[0] == pytest.approx(abs(m.global_mean_ - 1.0), rel=1e-6)


def test_errors_leave_a_fitted_model_untouched():
    m = MatrixFactorization(**QUIET).fit(_df())
    before = m.user_factors_.copy()
    with pytest.raises(ValueError):
        m.fit(_df(rating=[1.0, np.nan, 2.0]))
    np.testing.assert_array_equal(m.user_factors_, before)
