"""Splits: each against a plain-Python reading of its rule on small data, plus invariants."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmf.data.split import kfold, time_split, train_test_split, user_holdout


def ratings(n: int = 500, n_users: int = 30, n_items: int = 40, seed: int = 0, ties: bool = False):
    rng = np.random.default_rng(seed)
    times = rng.integers(0, 50 if ties else 10**9, n)
    return pd.DataFrame(
        {
            "user": rng.integers(1, n_users + 1, n).astype(np.int32),
            "item": rng.integers(1, n_items + 1, n).astype(np.int32),
            "rating": rng.integers(1, 11, n).astype(np.float32) / 2,
            "timestamp": times.astype(np.int64),
        },
        index=pd.RangeIndex(100, 100 + n),
    )


def assert_partition(df, train, test):
    """train and test are disjoint row subsets of df, in its order, covering it."""
    assert train.index.intersection(test.index).empty
    assert train.index.union(test.index).equals(df.index)
    assert train.index.is_monotonic_increasing and test.index.is_monotonic_increasing
    pd.testing.assert_frame_equal(train, df.loc[train.index])
    pd.testing.assert_frame_equal(test, df.loc[test.index])


def unknown_rows(train, test) -> np.ndarray:
    """Reference: test rows whose user or item never appears in train."""
    users, items = set(train["user"]), set(train["item"])
    return np.array(
        [u not in users or i not in items for u, i in zip(test["user"], test["item"], strict=True)]
    )


# ---------------------------------------------------------------------------------------------
# random holdout


def test_train_test_split_sizes_partition_and_seed():
    df = ratings()
    train, test = train_test_split(df, 0.1, random_state=3)
    assert len(test) == math.ceil(0.1 * len(df))
    assert_partition(df, train, test)
    again = train_test_split(df, 0.1, random_state=3)
    assert again[1].index.equals(test.index)
    other = train_test_split(df, 0.1, random_state=4)
    assert not other[1].index.equals(test.index)
    assert len(train_test_split(df, 7, random_state=0)[1]) == 7
    gen = np.random.default_rng(3)
    assert train_test_split(df, 0.1, random_state=gen)[1].index.equals(test.index)


def test_train_test_split_is_uniform():
    # every row is held out about equally often over many seeds
    df = ratings(n=50)
    hits = np.zeros(len(df))
    for seed in range(400):
        hits[train_test_split(df, 0.2, random_state=seed)[1].index - 100] += 1
    assert hits.min() > 400 * 0.2 * 0.5 and hits.max() < 400 * 0.2 * 1.5


def test_unknown_keep_and_drop():
    df = ratings(n=120, n_users=60, n_items=80, seed=1)
    train, test = train_test_split(df, 0.3, random_state=0)
    flags = unknown_rows(train, test)
    assert flags.any()  # the data makes cold rows likely; keep holds them
    train_d, test_d = train_test_split(df, 0.3, random_state=0, unknown="drop")
    pd.testing.assert_frame_equal(train_d, train)
    pd.testing.assert_frame_equal(test_d, test[~flags])
    assert not unknown_rows(train_d, test_d).any()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"test_size": 0.0}, ValueError, r"test_size=0\.0: a fraction must be in \(0, 1\)"),
        ({"test_size": 1.5}, ValueError, "must be in"),
        ({"test_size": 500}, ValueError, "both parts need at least one row"),
        ({"test_size": "10%"}, TypeError, "test_size must be"),
        ({"random_state": "seed"}, TypeError, "random_state must be"),
        ({"unknown": "ignore"}, ValueError, "unknown must be 'keep' or 'drop'"),
    ],
)
def test_train_test_split_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        train_test_split(ratings(), **kwargs)


def test_bad_frames():
    with pytest.raises(TypeError, match="df must be a pandas DataFrame"):
        train_test_split(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="df lacks column\\(s\\) 'item'"):
        kfold(pd.DataFrame({"user": [1, 2], "movie": [1, 2]}))
    with pytest.raises(ValueError, match="'timestamp'"):
        time_split(ratings().drop(columns="timestamp"), 0.5)


# ---------------------------------------------------------------------------------------------
# k-fold


def test_kfold_each_row_tested_once():
    df = ratings(n=103)
    folds = list(kfold(df, 5, random_state=0))
    assert len(folds) == 5
    assert [len(test) for _, test in folds] == [21, 21, 21, 20, 20]
    seen = np.concatenate([test.index.to_numpy() for _, test in folds])
    assert sorted(seen) == list(df.index)
    for train, test in folds:
        assert_partition(df, train, test)
    again = list(kfold(df, 5, random_state=0))
    assert all(a[1].index.equals(b[1].index) for a, b in zip(folds, again, strict=True))


def test_kfold_drop_unknown():
    df = ratings(n=80, n_users=40, n_items=40, seed=2)
    for (train, test), (_, test_d) in zip(
        kfold(df, 4, 1), kfold(df, 4, 1, unknown="drop"), strict=True
    ):
        pd.testing.assert_frame_equal(test_d, test[~unknown_rows(train, test)])


def test_kfold_bad_arguments():
    with pytest.raises(ValueError, match="n_splits=1 must be between 2"):
        kfold(ratings(), 1)
    with pytest.raises(TypeError, match="n_splits must be an int"):
        kfold(ratings(), 2.5)


# ---------------------------------------------------------------------------------------------
# per-user holdout


def reference_user_holdout(df, *, frac=None, n_last=None):
    """Plain reading: per user, sort by time (distinct times), hold out the last k."""
    test = []
    for _, group in df.groupby("user"):
        n = len(group)
        k = n_last if n_last is not None else math.floor(n * frac + 0.5)
        k = min(k, n - 1)
        if k > 0:
            test.extend(group.sort_values("timestamp").index[-k:])
    return sorted(test)


@pytest.mark.parametrize(("frac", "n_last"), [(0.2, None), (0.5, None), (None, 3), (None, 1)])
def test_user_holdout_by_time_matches_reference(frac, n_last):
    df = ratings(n=600, n_users=40)
    assert df["timestamp"].is_unique
    train, test = user_holdout(df, frac, n_last=n_last, random_state=0)
    assert list(test.index) == reference_user_holdout(df, frac=frac, n_last=n_last)
    assert_partition(df, train, test)
    assert set(train["user"]) == set(df["user"])  # every user keeps a training rating


def test_user_holdout_default_fraction_and_small_users():
    df = pd.DataFrame(
        {
            "user": [1, 2, 2, 3, 3, 3, 3, 3],
            "item": [1, 1, 2, 1, 2, 3, 4, 5],
            "timestamp": [5, 1, 2, 9, 8, 7, 6, 5],
        }
    )
    _, test = user_holdout(df)
    # user 1 (one rating) keeps it; user 2: round(0.4) = 0; user 3: round(1.0) = 1, the latest
    assert list(test.index) == [3]
    _, test = user_holdout(df, n_last=10)
    assert list(test.index) == [2, 3, 4, 5, 6]  # all but one of each user, the earliest kept


def test_user_holdout_random_when_no_time():
    df = ratings(n=600, n_users=40)
    train, test = user_holdout(df, 0.25, by_time=False, random_state=5)
    assert_partition(df, train, test)
    counts = df.groupby("user").size()
    expected = np.minimum(np.floor(counts * 0.25 + 0.5), counts - 1)
    pd.testing.assert_series_equal(
        test.groupby("user").size().reindex(counts.index, fill_value=0), expected.astype(int)
    )
    latest = reference_user_holdout(df, frac=0.25)
    assert list(test.index) != latest  # not the time order
    same = user_holdout(df.drop(columns="timestamp"), 0.25, random_state=5)[1]
    assert list(same.index) == list(test.index)  # no timestamps: the same random rule
    assert list(user_holdout(df, 0.25, by_time=False, random_state=5)[1].index) == list(test.index)


def test_user_holdout_ties_in_time_are_broken_at_random_but_seeded():
    df = pd.DataFrame({"user": [1] * 10, "item": range(10), "timestamp": [7] * 10})
    picks = {tuple(user_holdout(df, n_last=3, random_state=s)[1].index) for s in range(20)}
    assert len(picks) > 1
    assert user_holdout(df, n_last=3, random_state=4)[1].index.equals(
        user_holdout(df, n_last=3, random_state=4)[1].index
    )


def test_user_holdout_string_ids_and_huge_time_span():
    df = pd.DataFrame(
        {
            "user": ["b", "a", "b", "a", "b"],
            "item": ["x", "y", "z", "x", "y"],
            "timestamp": [-(2**60), 2**61, 3, 0, 2**62],
        }
    )
    _, test = user_holdout(df, n_last=1)
    assert list(test.index) == [1, 4]


def test_user_holdout_unknown_items():
    df = ratings(n=200, n_users=10, n_items=150, seed=3)
    train, test = user_holdout(df, 0.3, random_state=0)
    _, test_d = user_holdout(df, 0.3, random_state=0, unknown="drop")
    flags = unknown_rows(train, test)
    assert flags.any()
    pd.testing.assert_frame_equal(test_d, test[~flags])


def test_user_holdout_bad_arguments():
    df = ratings()
    with pytest.raises(ValueError, match="not both"):
        user_holdout(df, 0.2, n_last=2)
    with pytest.raises(ValueError, match="n_last=0 must be at least 1"):
        user_holdout(df, n_last=0)
    with pytest.raises(TypeError, match="for a count per user use n_last"):
        user_holdout(df, 3)
    with pytest.raises(ValueError, match=r"test_size=1\.0 must be in \(0, 1\)"):
        user_holdout(df, 1.0)


# ---------------------------------------------------------------------------------------------
# global time cutoff


def test_time_split_by_timestamp_date_and_fraction():
    df = ratings(n=400, ties=True)
    train, test = time_split(df, 25)
    assert_partition(df, train, test)
    assert (train["timestamp"] < 25).all() and (test["timestamp"] >= 25).all()
    # a fraction: the cutoff is that quantile; ratings at the cutoff time go to test
    train, test = time_split(df, 0.7)
    t = np.sort(df["timestamp"].to_numpy())[int(0.7 * len(df))]
    assert (train["timestamp"] < t).all() and (test["timestamp"] >= t).all()
    assert len(train) <= 0.7 * len(df) < len(train) + (df["timestamp"] == t).sum() + 1
    # a date is read as UTC
    stamp = int(datetime(2001, 9, 9, 1, 46, 40, tzinfo=timezone.utc).timestamp())
    df2 = df.assign(timestamp=df["timestamp"] + stamp - 25)
    by_date = time_split(df2, "2001-09-09 01:46:40")
    assert by_date[0].index.equals(time_split(df2, stamp)[0].index)
    assert by_date[0].index.equals(time_split(df, 25)[0].index)
    assert time_split(df2, pd.Timestamp(stamp, unit="s"))[0].index.equals(by_date[0].index)


def test_time_split_unknown_drop():
    df = ratings(n=300, n_users=60, n_items=60, seed=4)
    train, test = time_split(df, 0.5)
    _, test_d = time_split(df, 0.5, unknown="drop")
    flags = unknown_rows(train, test)
    assert flags.any()
    pd.testing.assert_frame_equal(test_d, test[~flags])


def test_time_split_bad_cutoffs():
    df = ratings()
    with pytest.raises(ValueError, match="a float cutoff is the fraction"):
        time_split(df, 1.5)
    with pytest.raises(TypeError, match="cutoff must be"):
        time_split(df, [1])
    with pytest.raises(ValueError, match="not a date pandas can read"):
        time_split(df, "not a date")


# ---------------------------------------------------------------------------------------------
# invariants on random frames


frames = st.integers(2, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 6), min_size=n, max_size=n),
        st.lists(st.integers(0, 6), min_size=n, max_size=n),
        st.lists(st.integers(0, 20), min_size=n, max_size=n),
    )
)


@settings(max_examples=40, deadline=None)
@given(frames, st.integers(0, 2**32 - 1), st.sampled_from(["keep", "drop"]))
def test_splits_partition_any_frame(data, seed, unknown):
    users, items, times = data
    df = pd.DataFrame({"user": users, "item": items, "timestamp": times})
    for train, test in [
        train_test_split(df, 0.3, seed, unknown=unknown),
        user_holdout(df, 0.5, random_state=seed, unknown=unknown),
        time_split(df, 0.5, unknown=unknown),
        *kfold(df, 2, seed, unknown=unknown),
    ]:
        assert train.index.intersection(test.index).empty
        if unknown == "keep":
            assert len(train) + len(test) == len(df)
        else:
            assert not unknown_rows(train, test).any()
    _, test = user_holdout(df, n_last=2, random_state=seed)
    counts = df.groupby("user").size()
    held = test.groupby("user").size().reindex(counts.index, fill_value=0)
    assert (held == np.minimum(counts - 1, 2)).all()
