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

import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fastmf._random import as_generator as _as_generator

__all__ = ["MOVIELENS_SIZES", "SyntheticTruth", "synthetic"]

MOVIELENS_SIZES: dict[str, tuple[int, int, int]] = {
    # name: (n_ratings, n_users, n_items), the published counts of each release
    "ml-100k": (100_000, 943, 1_682),
    "ml-1m": (1_000_209, 6_040, 3_706),
    "ml-10m": (10_000_054, 69_878, 10_681),
    "ml-20m": (20_000_263, 138_493, 26_744),
    "ml-25m": (25_000_095, 162_541, 59_047),
    "ml-32m": (32_000_204, 200_948, 87_585),
}

_SCALES = {"half": (0.5, 5.0, 0.5), "whole": (1.0, 5.0, 1.0)}

# Variance of the interaction p_u . q_i when factor_std is not given: with the default biases and
# noise this makes the (unrounded) rating standard deviation about 1.0, as in MovieLens.
_INTERACTION_VAR = 0.25
# A twin scaled down keeps ratings per user; its item count is raised where needed so that the
# rating matrix is at most this dense (small twins of large releases would be full otherwise).
_MAX_TWIN_DENSITY = 0.1
# No user rates more than this share of the items unless the requested density forces it.
_MAX_USER_SHARE = 0.8
# First and last timestamps of the MovieLens releases (1995-01-09 .. 2023-10-12), in seconds.
_T_FIRST, _T_LAST = 789_652_009, 1_697_164_000


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
        return float(np.sqrt(np.mean(err * err)))


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
    n_users, n_items, n_ratings = _resolve_sizes(
        n_users, n_items, n_ratings, like, min_user_ratings
    )
    rank = _check_int("rank", rank, 0)
    noise = _check_float("noise", noise, 0.0)
    mean = _check_float("mean", mean, None)
    user_bias_std = _check_float("user_bias_std", user_bias_std, 0.0)
    item_bias_std = _check_float("item_bias_std", item_bias_std, 0.0)
    user_skew = _check_float("user_skew", user_skew, 0.0)
    item_skew = _check_float("item_skew", item_skew, 0.0)
    if factor_std is None:
        factor_std = (_INTERACTION_VAR / rank) ** 0.25 if rank > 0 else 0.0
    factor_std = _check_float("factor_std", factor_std, 0.0)
    if scale is not None and not isinstance(scale, str):
        raise TypeError(f"scale must be 'half', 'whole' or None, got {type(scale).__name__}")
    if scale is not None and scale not in _SCALES:
        raise ValueError(f"scale must be 'half', 'whole' or None, got {scale!r}")
    if not isinstance(return_truth, bool | np.bool_):
        raise TypeError(f"return_truth must be a bool, got {type(return_truth).__name__}")
    rng = _as_generator(random_state)

    # The hidden model.
    bu = rng.normal(0.0, user_bias_std, n_users)
    bi = rng.normal(0.0, item_bias_std, n_items)
    P = rng.normal(0.0, factor_std, (n_users, rank))
    Q = rng.normal(0.0, factor_std, (n_items, rank))
    truth = SyntheticTruth(mean, bu, bi, P, Q, noise, scale)

    # Who rates what.
    counts = _user_counts(rng, n_users, n_items, n_ratings, min_user_ratings, user_skew)
    log_w = rng.normal(0.0, item_skew, n_items) if item_skew > 0 else np.zeros(n_items)
    users, items = _sample_pairs(rng, counts, log_w)
    _cover_every_item(rng, items, n_items)

    # What they rate, and when.
    values = truth.predict(users, items)
    values += rng.normal(0.0, noise, values.shape[0]) if noise > 0 else 0.0
    if scale is not None:
        lo, hi, step = _SCALES[scale]
        values = np.clip(np.round(values / step) * step, lo, hi)
    timestamps = _timestamps(rng, counts)

    df = pd.DataFrame(
        {
            "user": users,
            "item": items,
            "rating": values.astype(np.float32),
            "timestamp": timestamps,
        }
    )
    if return_truth:
        return df, truth
    return df


# --------------------------------------------------------------------------- argument checks


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_float(name: str, value: object, minimum: float | None) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _resolve_sizes(
    n_users: object, n_items: object, n_ratings: object, like: object, min_user_ratings: object
) -> tuple[int, int, int]:
    """Fill the sizes not given from ``like`` and check that they can be met."""
    min_user_ratings = _check_int("min_user_ratings", min_user_ratings, 1)
    given = {"n_users": n_users, "n_items": n_items, "n_ratings": n_ratings}
    for name, value in given.items():
        if value is not None:
            _check_int(name, value, 1)
    if like is not None and not isinstance(like, str):
        raise TypeError(f"like must be a MovieLens release name, got {type(like).__name__}")
    if like is not None and like not in MOVIELENS_SIZES:
        raise ValueError(f"like must be one of {sorted(MOVIELENS_SIZES)}, got {like!r}")
    missing = [name for name, value in given.items() if value is None]
    if like is None and missing:
        if len(missing) < 3:
            raise ValueError(
                f"{', '.join(missing)} not given; give n_users, n_items and n_ratings together, "
                "or name a release with like='ml-25m' (say) to fill in the missing sizes"
            )
        like = "ml-100k"
    if missing:
        ref_r, ref_u, ref_i = MOVIELENS_SIZES[like]
        if n_ratings is not None:
            s = n_ratings / ref_r
        elif n_users is not None:
            s = n_users / ref_u
        elif n_items is not None:
            s = n_items / ref_i
        else:
            s = 1.0
        if n_ratings is None:
            n_ratings = max(1, round(ref_r * s))
        if n_users is None:
            n_users = max(1, min(round(ref_u * s), n_ratings // min_user_ratings))
        if n_items is None:
            dense = int(np.ceil(n_ratings / (n_users * _MAX_TWIN_DENSITY)))
            n_items = max(round(ref_i * s), min_user_ratings, min(dense, n_ratings))
    n_users, n_items, n_ratings = int(n_users), int(n_items), int(n_ratings)
    if n_items < min_user_ratings:
        raise ValueError(
            f"n_items={n_items} is below min_user_ratings={min_user_ratings}: every user must "
            "rate at least min_user_ratings distinct items; raise n_items or lower "
            "min_user_ratings"
        )
    if n_ratings < n_users * min_user_ratings:
        raise ValueError(
            f"n_ratings={n_ratings} is below n_users * min_user_ratings = "
            f"{n_users * min_user_ratings}; raise n_ratings or lower n_users or min_user_ratings"
        )
    if n_ratings > n_users * n_items:
        raise ValueError(
            f"n_ratings={n_ratings} exceeds n_users * n_items = {n_users * n_items} (each pair "
            "is rated at most once); lower n_ratings or raise n_users or n_items"
        )
    if n_ratings < n_items:
        raise ValueError(
            f"n_ratings={n_ratings} is below n_items={n_items} (every item gets a rating); "
            "raise n_ratings or lower n_items"
        )
    if n_users >= 2**31 or n_items >= 2**31:
        raise ValueError("n_users and n_items must be below 2**31 (int32 indices)")
    return n_users, n_items, n_ratings


# --------------------------------------------------------------------------- sampling


def _user_counts(
    rng: np.random.Generator,
    n_users: int,
    n_items: int,
    n_ratings: int,
    min_user_ratings: int,
    user_skew: float,
) -> np.ndarray:
    """Ratings per user: the minimum plus a lognormal share of the rest, capped, summing exactly."""
    cap = max(min_user_ratings, int(_MAX_USER_SHARE * n_items))
    if cap * n_users < n_ratings:
        cap = n_items
    w = np.exp(rng.normal(0.0, user_skew, n_users)) if user_skew > 0 else np.ones(n_users)
    counts = np.full(n_users, min_user_ratings, dtype=np.int64)
    extra = n_ratings - int(counts.sum())
    while extra > 0:
        open_ = counts < cap
        p = np.where(open_, w, 0.0)
        counts += rng.multinomial(extra, p / p.sum())
        over = counts > cap
        extra = int((counts[over] - cap).sum())
        counts[over] = cap
    return counts


def _sample_pairs(
    rng: np.random.Generator, counts: np.ndarray, log_w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's items, drawn by popularity without replacement; rows grouped by user."""
    n_items = log_w.shape[0]
    heavy = counts * 8 > n_items
    parts_u, parts_i = [], []
    light_users = np.flatnonzero(~heavy)
    if light_users.size:
        u, i = _sample_light(rng, light_users, counts[light_users], log_w)
        parts_u.append(u)
        parts_i.append(i)
    heavy_users = np.flatnonzero(heavy)
    if heavy_users.size:
        u, i = _sample_heavy(rng, heavy_users, counts[heavy_users], log_w)
        parts_u.append(u)
        parts_i.append(i)
    users = np.concatenate(parts_u)
    items = np.concatenate(parts_i)
    order = np.argsort(users, kind="stable")
    return users[order], items[order]


def _sample_light(
    rng: np.random.Generator, users: np.ndarray, need: np.ndarray, log_w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Successive sampling without replacement by drawing with replacement and keeping firsts.

    Draws a little more than each user needs, keeps the first occurrence of each (user, item)
    pair in draw order, and tops up the users still short. Keeping first occurrences in draw order
    is exactly sampling without replacement proportional to weight.
    """
    n_items = log_w.shape[0]
    cdf = np.cumsum(np.exp(log_w - log_w.max()))
    out_u, out_i = [], []
    have_u = np.empty(0, dtype=np.int32)
    have_i = np.empty(0, dtype=np.int32)
    need_of = np.zeros(int(users.max()) + 1, dtype=np.int64)
    need_of[users] = need
    pending, short = users, need
    factor = 1.15
    while pending.size:
        m = np.ceil(short * factor).astype(np.int64) + 1
        new_u = np.repeat(pending.astype(np.int32), m)
        draws = np.searchsorted(cdf, rng.random(new_u.shape[0]) * cdf[-1], side="right")
        new_i = np.minimum(draws, n_items - 1).astype(np.int32)
        cand_u = np.concatenate([have_u, new_u])
        cand_i = np.concatenate([have_i, new_i])
        if have_u.size:  # earlier accepted rows first within each user, then the new draws
            order = np.argsort(cand_u, kind="stable")
            cand_u, cand_i = cand_u[order], cand_i[order]
        key = cand_u.astype(np.int64) * n_items + cand_i
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        first = np.ones(key.shape[0], dtype=bool)
        first[1:] = sorted_key[1:] != sorted_key[:-1]
        keep = np.zeros(key.shape[0], dtype=bool)
        keep[order[first]] = True
        del key, order, sorted_key, first
        cand_u, cand_i = cand_u[keep], cand_i[keep]
        # Rank of each kept row within its user, in draw order; keep the first `need`.
        starts = np.flatnonzero(np.r_[True, cand_u[1:] != cand_u[:-1]])
        lengths = np.diff(np.r_[starts, cand_u.shape[0]])
        rank = np.arange(cand_u.shape[0]) - np.repeat(starts, lengths)
        ok = rank < need_of[cand_u]
        cand_u, cand_i = cand_u[ok], cand_i[ok]
        got = np.bincount(cand_u, minlength=need_of.shape[0])
        done_user = got >= need_of
        done_row = done_user[cand_u]
        out_u.append(cand_u[done_row])
        out_i.append(cand_i[done_row])
        have_u, have_i = cand_u[~done_row], cand_i[~done_row]
        pending = pending[~done_user[pending]]
        short = need_of[pending] - got[pending]
        factor *= 2.0
    return np.concatenate(out_u), np.concatenate(out_i)


def _sample_heavy(
    rng: np.random.Generator, users: np.ndarray, need: np.ndarray, log_w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sampling without replacement by popularity for users who rate many of the items.

    Uses the Gumbel top-k trick (exact), a block of users at a time, costing n_items per user.
    """
    n_items = log_w.shape[0]
    block = max(1, (1 << 22) // n_items)
    out_u, out_i = [], []
    for lo in range(0, users.shape[0], block):
        u = users[lo : lo + block]
        k = need[lo : lo + block]
        keys = log_w[None, :] + rng.gumbel(size=(u.shape[0], n_items))
        order = np.argsort(-keys, axis=1)
        take = np.arange(n_items)[None, :] < k[:, None]
        out_u.append(np.repeat(u, k).astype(np.int32))
        out_i.append(order[take].astype(np.int32))
    return np.concatenate(out_u), np.concatenate(out_i)


def _cover_every_item(rng: np.random.Generator, items: np.ndarray, n_items: int) -> None:
    """Give every unrated item one rating, taken from a more popular item (in place).

    The taken rows are spares: never the only row of their item. Rows are grouped by user and no
    user rated an unrated item, so no duplicate pair can arise; user counts are unchanged.
    """
    item_counts = np.bincount(items, minlength=n_items)
    unrated = np.flatnonzero(item_counts == 0)
    if unrated.size == 0:
        return
    order = np.argsort(items, kind="stable")
    sorted_items = items[order]
    is_first = np.r_[True, sorted_items[1:] != sorted_items[:-1]]
    spare_rows = order[~is_first]
    # The first row of an item in user order is kept, so the spares are the later rows.
    take = rng.choice(spare_rows.shape[0], size=unrated.shape[0], replace=False)
    items[spare_rows[take]] = rng.permutation(unrated).astype(items.dtype)


def _timestamps(rng: np.random.Generator, counts: np.ndarray) -> np.ndarray:
    """Increasing seconds within each user: a start time and a lognormal span, spread evenly."""
    n_users = counts.shape[0]
    span = np.exp(rng.normal(np.log(30 * 86_400.0), 2.5, n_users))
    span = np.clip(span, 60.0 * counts, 0.9 * (_T_LAST - _T_FIRST))
    start = _T_FIRST + rng.random(n_users) * (_T_LAST - _T_FIRST - span)
    # Sorted uniforms per user from exponential spacings: cumulative gaps over each user's total.
    gaps = rng.standard_exponential(int(counts.sum()))
    csum = np.cumsum(gaps)
    ends = np.cumsum(counts)
    before = np.r_[0.0, csum[ends[:-1] - 1]]
    total = csum[ends - 1] - before + rng.standard_exponential(n_users)
    user_of_row = np.repeat(np.arange(n_users), counts)
    frac = (csum - before[user_of_row]) / total[user_of_row]
    return (start[user_of_row] + frac * span[user_of_row]).astype(np.int64)
