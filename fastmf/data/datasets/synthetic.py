"""Synthetic ratings drawn from a hidden biased matrix-factorization model with a known answer.

The hidden model is the one fastmf fits, ``r = mu + b_u + b_i + p_u . q_i``, plus Gaussian noise
of a known standard deviation, optionally rounded to a star scale. Who rates what follows the heavy
tails of MovieLens: user activity is ``min_user_ratings`` plus a lognormal share, item popularity
is lognormal, each user's items are drawn by popularity without replacement (no duplicate pairs)
and every item gets at least one rating. Because the truth is known, ``SyntheticTruth.rmse`` gives
the best RMSE any model can reach on the data, which tests and benchmarks measure against.

Legend: ``mu`` global mean, ``bu``/``bi`` user/item biases, ``P``/``Q`` user/item factors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fastmf._random import as_generator
from fastmf._stats import root_mean_square
from fastmf._validation import check_float, check_int
from fastmf.data.datasets._synthetic_draws import timestamps, who_rates_what
from fastmf.data.datasets._synthetic_sizes import resolve_sizes
from fastmf.data.datasets.releases import MOVIELENS_SIZES

__all__ = ["MOVIELENS_SIZES", "SyntheticTruth", "synthetic"]

_SCALES = {"half": (0.5, 5.0, 0.5), "whole": (1.0, 5.0, 1.0)}

# Variance of the interaction p_u . q_i when factor_std is not given: with the default biases and
# noise this makes the (unrounded) rating standard deviation about 1.0, as in MovieLens.
_INTERACTION_VAR = 0.25


@dataclass
class SyntheticTruth:
    """The hidden model behind a synthetic data set.

    Attributes
    ----------
    mu : float
        Global offset.
    user_bias : ndarray of shape (n_users,), dtype float64
    item_bias : ndarray of shape (n_items,), dtype float64
    user_factors : ndarray of shape (n_users, rank), dtype float64
    item_factors : ndarray of shape (n_items, rank), dtype float64
    noise : float
        Standard deviation of the Gaussian noise added to each rating (before rounding).
    scale : str or None
        The star scale the ratings were rounded to ("half", "whole" or None).
    """

    mu: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    noise: float
    scale: str | None = None

    @property
    def n_users(self) -> int:
        """Number of users of the hidden model."""
        return int(self.user_bias.shape[0])

    @property
    def n_items(self) -> int:
        """Number of items of the hidden model."""
        return int(self.item_bias.shape[0])

    @property
    def rank(self) -> int:
        """Number of latent factors of the hidden model."""
        return int(self.user_factors.shape[1])

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Noise-free, unrounded ratings of the hidden model.

        Parameters
        ----------
        users, items : array-like of int, shape (n,)
            User and item indices (the ``user`` and ``item`` columns of the data).

        Returns
        -------
        ndarray of shape (n,), dtype float64
        """
        users = np.asarray(users)
        items = np.asarray(items)
        if users.shape != items.shape or users.ndim != 1:
            raise ValueError(
                f"users and items must be 1-D of the same length, got shapes {users.shape} and "
                f"{items.shape}"
            )
        for name, idx, n in (("users", users, self.n_users), ("items", items, self.n_items)):
            if idx.size and not np.issubdtype(idx.dtype, np.integer):
                raise TypeError(f"{name} must hold integer indices, got dtype {idx.dtype}")
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise ValueError(
                    f"{name} holds indices outside 0..{n - 1} (min {idx.min()}, max {idx.max()}); "
                    "pass indices of this data set"
                )
        out = np.empty(users.shape[0], dtype=np.float64)
        step = 1 << 20
        for lo in range(0, users.shape[0], step):
            u = users[lo : lo + step]
            i = items[lo : lo + step]
            dot = np.einsum("nk,nk->n", self.user_factors[u], self.item_factors[i])
            out[lo : lo + step] = self.mu + self.user_bias[u] + self.item_bias[i] + dot
        return out

    def rmse(self, df: pd.DataFrame) -> float:
        """RMSE of the hidden model on ``df``'s ratings: the best any model can reach there.

        Parameters
        ----------
        df : DataFrame
            Ratings with columns ``user``, ``item`` and ``rating`` (indices of this data set).
        """
        for col in ("user", "item", "rating"):
            if col not in df.columns:
                raise ValueError(f"df has no column {col!r}; expected user, item and rating")
        if len(df) == 0:
            raise ValueError("df is empty; pass at least one rating")
        pred = self.predict(df["user"].to_numpy(), df["item"].to_numpy())
        err = df["rating"].to_numpy(dtype=np.float64) - pred
        return root_mean_square(err)


def synthetic(
    n_users: int | None = None,
    n_items: int | None = None,
    n_ratings: int | None = None,
    *,
    like: str | None = None,
    rank: int = 16,
    noise: float = 0.75,
    mean: float = 3.5,
    user_bias_std: float = 0.35,
    item_bias_std: float = 0.4,
    factor_std: float | None = None,
    user_skew: float = 1.4,
    item_skew: float = 2.0,
    scale: str | None = "half",
    min_user_ratings: int = 20,
    random_state: int | np.random.Generator | None = 0,
    return_truth: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, SyntheticTruth]:
    """Draw MovieLens-like ratings from a hidden biased matrix-factorization model.

    Each rating is ``mean + b_u + b_i + p_u . q_i + noise`` with ``b_u ~ N(0, user_bias_std)``,
    ``b_i ~ N(0, item_bias_std)``, factor entries ``~ N(0, factor_std)`` and Gaussian noise of
    standard deviation ``noise``, then rounded and clipped to ``scale``. Every user has at least
    ``min_user_ratings`` ratings, every item at least one, and no (user, item) pair repeats.

    Parameters
    ----------
    n_users, n_items, n_ratings : int, optional
        Size of the data. Give all three, or name a MovieLens release with ``like`` and give any
        of them to scale its twin (the missing sizes keep the release's ratings per user and per
        item). With neither, the twin of ml-100k is drawn.
    like : {"ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-32m"}, optional
        Take the missing sizes from this release's published counts.
    rank : int, default 16
        Number of hidden factors (0 gives a biases-only model).
    noise : float, default 0.75
        Standard deviation of the Gaussian noise; the best achievable RMSE when ``scale=None``.
    mean : float, default 3.5
        Global offset ``mu`` of the hidden model.
    user_bias_std, item_bias_std : float
        Standard deviations of the user and item biases.
    factor_std : float, optional
        Standard deviation of each factor entry; by default chosen so that the interaction
        ``p_u . q_i`` has variance 0.25 and the rating standard deviation is about 1.0.
    user_skew, item_skew : float
        Lognormal sigma of user activity and item popularity (0 gives uniform weights).
    scale : {"half", "whole"} or None, default "half"
        Round to half stars in 0.5..5 or whole stars in 1..5 and clip; None keeps the raw values.
    min_user_ratings : int, default 20
        Ratings of the least active user, as in MovieLens.
    random_state : int, numpy Generator or None, default 0
        Seed; the same seed gives the same data.
    return_truth : bool, default False
        Also return the hidden model as a :class:`SyntheticTruth`.

    Returns
    -------
    df : DataFrame
        Columns ``user`` (int32, 0..n_users-1), ``item`` (int32, 0..n_items-1), ``rating``
        (float32) and ``timestamp`` (int64 seconds, increasing within each user), sorted by user
        and time.
    truth : SyntheticTruth
        Only with ``return_truth=True``.
    """
    n_users, n_items, n_ratings = resolve_sizes(n_users, n_items, n_ratings, like, min_user_ratings)
    rank = check_int(rank, "rank", low=0)
    noise = check_float(noise, "noise")
    mean = check_float(mean, "mean", low=-math.inf)
    user_bias_std = check_float(user_bias_std, "user_bias_std")
    item_bias_std = check_float(item_bias_std, "item_bias_std")
    user_skew = check_float(user_skew, "user_skew")
    item_skew = check_float(item_skew, "item_skew")
    if factor_std is None:
        factor_std = (_INTERACTION_VAR / rank) ** 0.25 if rank > 0 else 0.0
    factor_std = check_float(factor_std, "factor_std")
    _check_scale(scale)
    if not isinstance(return_truth, bool | np.bool_):
        raise TypeError(f"return_truth must be a bool, got {type(return_truth).__name__}")
    rng = as_generator(random_state)

    truth = _hidden_model(
        rng, n_users, n_items, rank, mean, user_bias_std, item_bias_std, factor_std, noise, scale
    )
    users, items, counts = who_rates_what(
        rng, n_users, n_items, n_ratings, min_user_ratings, user_skew, item_skew
    )
    values = _rate(rng, truth, users, items)
    df = pd.DataFrame(
        {
            "user": users,
            "item": items,
            "rating": values.astype(np.float32),
            "timestamp": timestamps(rng, counts),
        }
    )
    if return_truth:
        return df, truth
    return df


def _check_scale(scale: object) -> None:
    """Refuse a star scale other than "half", "whole" or None."""
    if scale is not None and not isinstance(scale, str):
        raise TypeError(f"scale must be 'half', 'whole' or None, got {type(scale).__name__}")
    if scale is not None and scale not in _SCALES:
        raise ValueError(f"scale must be 'half', 'whole' or None, got {scale!r}")


def _hidden_model(
    rng: np.random.Generator,
    n_users: int,
    n_items: int,
    rank: int,
    mean: float,
    user_bias_std: float,
    item_bias_std: float,
    factor_std: float,
    noise: float,
    scale: str | None,
) -> SyntheticTruth:
    """Draw the biases and factors of the hidden model."""
    bu = rng.normal(0.0, user_bias_std, n_users)
    bi = rng.normal(0.0, item_bias_std, n_items)
    P = rng.normal(0.0, factor_std, (n_users, rank))
    Q = rng.normal(0.0, factor_std, (n_items, rank))
    return SyntheticTruth(mean, bu, bi, P, Q, noise, scale)


def _rate(
    rng: np.random.Generator, truth: SyntheticTruth, users: np.ndarray, items: np.ndarray
) -> np.ndarray:
    """The ratings of the pairs: the hidden model plus noise, rounded to its scale (float64)."""
    values = truth.predict(users, items)
    values += rng.normal(0.0, truth.noise, values.shape[0]) if truth.noise > 0 else 0.0
    if truth.scale is not None:
        lo, hi, step = _SCALES[truth.scale]
        values = np.clip(np.round(values / step) * step, lo, hi)
    return values
