"""Train/test splits of a ratings DataFrame for evaluation: random, k-fold, per-user, temporal.

Every split takes a DataFrame with columns ``user`` and ``item`` (and ``timestamp`` where time
matters), returns row subsets of it with the original index, and is vectorized (a few seconds at
25 million ratings). Random ones are seeded by ``random_state`` (None, an int, or a
``numpy.random.Generator``): the same seed on the same data gives the same split.

Users and items that appear only in the test part
--------------------------------------------------
A random split can put all of a user's (or an item's) ratings in the test part. ``unknown``
says what to do with such test rows:

- ``"keep"`` (default): they stay in the test part. A fitted model predicts them with its
  fallback: the global mean plus whichever bias is known (an unknown user gets no user bias, an
  unknown item no item bias), so scores count the cold-start cases too.
- ``"drop"``: they are removed from the test part (and from no other part), so the test part
  holds only users and items the model was trained on; it then holds a little less than asked.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Literal, cast

import numpy as np
import pandas as pd

from fastmf._random import as_generator

__all__ = ["kfold", "time_split", "train_test_split", "user_holdout"]

Unknown = Literal["keep", "drop"]
RandomState = int | np.random.Generator | np.random.SeedSequence | None


# ---------------------------------------------------------------------------------------------
# checks and shared pieces


def _check_frame(df: object, *, need: tuple[str, ...] = ("user", "item")) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(
            f"df must be a pandas DataFrame with columns user, item, rating, not "
            f"{type(df).__name__}"
        )
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(
            f"df lacks column(s) {', '.join(map(repr, missing))} (has {list(df.columns)}); "
            "rename its columns to user, item, rating[, timestamp]"
        )
    return df


def _check_unknown(unknown: object) -> Unknown:
    if unknown not in ("keep", "drop"):
        raise ValueError(f"unknown must be 'keep' or 'drop', not {unknown!r}")
    return cast(Unknown, str(unknown))


def _rng(random_state: object) -> np.random.Generator:
    return as_generator(random_state)


def _codes(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense int64 codes 0..k-1 of ``values`` and k (codes follow value order for integers)."""
    if values.dtype.kind in "iu" and values.size:
        lo, hi = int(values.min()), int(values.max())
        if hi - lo < 4 * values.size + 1024:
            return np.subtract(values, lo, dtype=np.int64), hi - lo + 1
    codes, uniques = pd.factorize(values)
    return codes.astype(np.int64), len(uniques)


def _column(df: pd.DataFrame, name: str) -> np.ndarray:
    return df[name].to_numpy()


def _finish(
    df: pd.DataFrame, test: np.ndarray, unknown: str, train: np.ndarray | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``df`` by boolean masks; apply the ``unknown`` policy to the test rows."""
    if train is None:
        train = ~test
    if unknown == "drop":
        test = test & _known(df, "user", train) & _known(df, "item", train)
    return df[train], df[test]


def _known(df: pd.DataFrame, column: str, train: np.ndarray) -> np.ndarray:
    """For each row, whether its ``column`` value appears in a training row."""
    codes, k = _codes(_column(df, column))
    seen = np.bincount(codes[train], minlength=k) > 0
    return seen[codes]


def _n_test(test_size: object, n: int, name: str = "test_size") -> int:
    """Number of test rows for a fraction (rounded up) or a count."""
    if isinstance(test_size, bool) or not isinstance(
        test_size, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"{name} must be a float in (0, 1) or an int count, not {test_size!r}")
    if isinstance(test_size, (float, np.floating)):
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"{name}={test_size!r}: a fraction must be in (0, 1)")
        k = int(np.ceil(test_size * n))
    else:
        k = int(test_size)
    if not 1 <= k <= n - 1:
        raise ValueError(
            f"{name}={test_size!r} gives {k} test rows of {n}; both parts need at least one row"
        )
    return k


# ---------------------------------------------------------------------------------------------
# the splits


def train_test_split(
    df: pd.DataFrame,
    test_size: float = 0.1,
    random_state: RandomState = None,
    *,
    unknown: Unknown = "keep",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random holdout: a uniformly chosen set of ratings becomes the test part.

    Parameters
    ----------
    df : DataFrame
        Ratings with columns ``user``, ``item`` (and any others, kept as they are).
    test_size : float or int, default 0.1
        Fraction of the ratings (rounded up) or their number for the test part.
    random_state : None, int or numpy.random.Generator
        Seed of the choice.
    unknown : {"keep", "drop"}, default "keep"
        Test rows whose user or item has no training rating: kept (the model predicts them
        with its fallback, the global mean plus any known bias) or dropped. See the module doc.

    Returns
    -------
    train, test : DataFrame
        Row subsets of ``df`` in its order, with its index.
    """
    df = _check_frame(df)
    unknown = _check_unknown(unknown)
    n = len(df)
    k = _n_test(test_size, n)
    rng = _rng(random_state)
    test = np.zeros(n, dtype=bool)
    test[rng.choice(n, k, replace=False, shuffle=False)] = True
    return _finish(df, test, unknown)


def kfold(
    df: pd.DataFrame,
    n_splits: int = 5,
    random_state: RandomState = None,
    *,
    unknown: Unknown = "keep",
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """K-fold cross-validation: the ratings are shuffled into ``n_splits`` folds of equal size.

    Each rating is in the test part of exactly one fold (with ``unknown="keep"``); the first
    ``len(df) % n_splits`` folds hold one rating more than the others.

    Parameters
    ----------
    df : DataFrame
        Ratings with columns ``user``, ``item``.
    n_splits : int, default 5
        Number of folds, at least 2.
    random_state : None, int or numpy.random.Generator
        Seed of the shuffle.
    unknown : {"keep", "drop"}, default "keep"
        Policy for test rows whose user or item has no training rating in that fold; see
        :func:`train_test_split`.

    Yields
    ------
    train, test : DataFrame
        Row subsets of ``df`` in its order, with its index, one pair per fold.
    """
    df = _check_frame(df)
    unknown = _check_unknown(unknown)
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)):
        raise TypeError(f"n_splits must be an int, not {n_splits!r}")
    n = len(df)
    if not 2 <= n_splits <= n:
        raise ValueError(f"n_splits={n_splits} must be between 2 and the number of ratings ({n})")
    rng = _rng(random_state)
    sizes = np.full(n_splits, n // n_splits, dtype=np.int64)
    sizes[: n % n_splits] += 1
    fold = np.empty(n, dtype=np.int32)
    fold[rng.permutation(n)] = np.repeat(np.arange(n_splits, dtype=np.int32), sizes)
    return (_finish(df, fold == f, unknown) for f in range(int(n_splits)))


def user_holdout(
    df: pd.DataFrame,
    test_size: float | None = None,
    *,
    n_last: int | None = None,
    by_time: bool = True,
    random_state: RandomState = None,
    unknown: Unknown = "keep",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-user holdout: a part of every user's ratings becomes the test part.

    With ``by_time`` and a ``timestamp`` column, each user's latest ratings are held out (ties in
    time broken at random, seeded); otherwise a random subset of each user's ratings. Every user
    keeps at least one training rating, so users are never unknown; items can be.

    Parameters
    ----------
    df : DataFrame
        Ratings with columns ``user``, ``item`` and, for ``by_time``, ``timestamp``.
    test_size : float, optional
        Fraction of each user's ratings to hold out, rounded to nearest (halves up); default 0.2
        when ``n_last`` is not given. A user with ``n`` ratings gives at most ``n - 1``.
    n_last : int, optional
        Hold out this many ratings of each user instead (at most ``n - 1`` of a user with ``n``).
    by_time : bool, default True
        Hold out the latest ratings where there are timestamps; False picks at random.
    random_state : None, int or numpy.random.Generator
        Seed of the random choice and of the tie-breaks in time.
    unknown : {"keep", "drop"}, default "keep"
        Policy for test rows whose item has no training rating; see :func:`train_test_split`.

    Returns
    -------
    train, test : DataFrame
        Row subsets of ``df`` in its order, with its index.
    """
    df = _check_frame(df)
    unknown = _check_unknown(unknown)
    if n_last is not None and test_size is not None:
        raise ValueError("give test_size (a fraction of each user) or n_last (a count), not both")
    users, n_users = _codes(_column(df, "user"))
    counts = np.bincount(users, minlength=n_users)
    if n_last is not None:
        if isinstance(n_last, bool) or not isinstance(n_last, (int, np.integer)):
            raise TypeError(f"n_last must be an int, not {n_last!r}")
        if n_last < 1:
            raise ValueError(f"n_last={n_last} must be at least 1")
        held = np.minimum(counts, int(n_last))
    else:
        frac = 0.2 if test_size is None else test_size
        if isinstance(frac, bool) or not isinstance(frac, (float, np.floating)):
            raise TypeError(
                f"test_size must be a float fraction in (0, 1), not {frac!r}; for a count per "
                "user use n_last"
            )
        if not 0.0 < frac < 1.0:
            raise ValueError(f"test_size={frac!r} must be in (0, 1)")
        held = np.floor(counts * float(frac) + 0.5).astype(np.int64)
    held = np.minimum(held, np.maximum(counts - 1, 0))
    rng = _rng(random_state)
    times = None
    if by_time and "timestamp" in df.columns:
        times = _column(df, "timestamp")
    order = _order_within_users(users, n_users, times, rng)
    # position of each row in its user's order; the last `held` rows of each user are the test
    start = np.cumsum(counts) - counts
    sorted_users = users[order]
    position = np.arange(len(df), dtype=np.int64) - start[sorted_users]
    test = np.zeros(len(df), dtype=bool)
    test[order[position >= (counts - held)[sorted_users]]] = True
    return _finish(df, test, unknown)


def _order_within_users(
    users: np.ndarray, n_users: int, times: np.ndarray | None, rng: np.random.Generator
) -> np.ndarray:
    """Row order grouped by user, within a user by time (or at random), ties at random.

    One argsort of an int64 key ``(user, time, random bits)`` packed into 63 bits.
    """
    n = users.size
    key = users.astype(np.int64)
    width = max(n_users - 1, 1).bit_length()
    if times is not None:
        times = np.asarray(times)
        if times.dtype.kind not in "iu":
            times = pd.factorize(times, sort=True)[0]  # datetime or float: rank them
        t_lo = int(times.min()) if n else 0
        span = (int(times.max()) - t_lo if n else 0) + 1
        if width + span.bit_length() > 48:  # keep at least 15 random bits: rank the times
            ranks, uniq = pd.factorize(times, sort=True)
            times, t_lo, span = ranks, 0, len(uniq)
        t_bits = max(span - 1, 1).bit_length()
        key = (key << t_bits) | (times.astype(np.int64) - t_lo)
        width += t_bits
    r_bits = 63 - width
    key = (key << r_bits) | rng.integers(0, 1 << r_bits, n, dtype=np.int64)
    return np.argsort(key)


def time_split(
    df: pd.DataFrame,
    cutoff: float | str | datetime | np.datetime64,
    *,
    unknown: Unknown = "keep",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Global time cutoff: ratings before ``cutoff`` train, the others test.

    There is no randomness: the split depends on the timestamps alone.

    Parameters
    ----------
    df : DataFrame
        Ratings with columns ``user``, ``item``, ``timestamp`` (seconds since 1970, as loaded).
    cutoff : int, float, str or datetime
        An int timestamp (seconds since 1970), a date (``"2015-01-01"``, ``pd.Timestamp``,
        ``datetime``, ``np.datetime64``; UTC), or a float in (0, 1): the fraction of ratings,
        oldest first, that should train (the cutoff is that quantile of the timestamps; ratings
        sharing the cutoff time all go to the test part).
    unknown : {"keep", "drop"}, default "keep"
        Policy for test rows whose user or item has no rating before the cutoff (new users and
        items are common in a temporal split); see :func:`train_test_split`.

    Returns
    -------
    train, test : DataFrame
        Row subsets of ``df`` in its order, with its index. Either may be empty when the cutoff
        lies outside the time range.
    """
    df = _check_frame(df, need=("user", "item", "timestamp"))
    unknown = _check_unknown(unknown)
    times = _column(df, "timestamp")
    if times.dtype.kind not in "iu":
        raise TypeError(
            f"the timestamp column must hold integer seconds since 1970, not {times.dtype}"
        )
    if isinstance(cutoff, bool):
        raise TypeError(f"cutoff must be a timestamp, a date or a fraction, not {cutoff!r}")
    if isinstance(cutoff, (float, np.floating)):
        if not 0.0 < cutoff < 1.0:
            raise ValueError(
                f"cutoff={cutoff!r}: a float cutoff is the fraction of ratings that train, in "
                "(0, 1); pass an int for a timestamp"
            )
        if len(times) == 0:
            raise ValueError("df is empty; there is no time to cut")
        k = min(int(np.floor(cutoff * len(times))), len(times) - 1)
        t_cut = int(np.partition(times, k)[k])
    elif isinstance(cutoff, (int, np.integer)):
        t_cut = int(cutoff)
    elif isinstance(cutoff, (str, datetime, np.datetime64)):
        try:
            stamp = pd.Timestamp(cutoff)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"cutoff={cutoff!r} is not a date pandas can read ({exc})") from exc
        if stamp.tzinfo is None:
            stamp = stamp.tz_localize("UTC")
        t_cut = int(np.floor(stamp.timestamp()))
    else:
        raise TypeError(
            f"cutoff must be an int timestamp, a date or a float fraction, not "
            f"{type(cutoff).__name__}"
        )
    train = times < t_cut
    return _finish(df, ~train, unknown, train=train)
