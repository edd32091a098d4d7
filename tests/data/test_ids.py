"""Raw ids: every integer width, whole-number floats, mixed dtypes between fit and predict, and
the ids that are refused (NaN, fractions, mixed types) with the row that holds them.

The reference for every lookup is a plain dict from Python ints to positions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmf import IdMap, MatrixFactorization, Ratings
from fastmf.data.ids import factorize_and_count, factorize_ids
from tests.conftest import random_ratings

QUIET = {"n_factors": 3, "n_epochs": 2, "random_state": 0, "verbose": 0, "n_jobs": 1}

INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


def reference_lookup(ids, queries) -> np.ndarray:
    """Positions of ``queries`` in ``ids`` by Python value (-1 when absent)."""
    where = {int(x): k for k, x in enumerate(ids)}
    return np.array([where.get(int(q), -1) for q in queries], dtype=np.int32)


def extremes(dtype) -> np.ndarray:
    """Six distinct ids of ``dtype`` at both ends of its range, and 0 or 1 between."""
    info = np.iinfo(dtype)
    lo, hi = int(info.min), int(info.max)
    mid = 0 if lo < 0 else 1
    return np.array(sorted({lo, lo + 1, mid, mid + 2, hi - 1, hi}), dtype=dtype)


def ratings_on(user_ids: np.ndarray, item_ids: np.ndarray, seed: int = 0) -> pd.DataFrame:
    """Every user rating most items, with the given raw ids (dtypes kept)."""
    rng = np.random.default_rng(seed)
    u, i = np.meshgrid(np.arange(user_ids.size), np.arange(item_ids.size), indexing="ij")
    keep = rng.random(u.size) < 0.8
    u, i = u.ravel()[keep], i.ravel()[keep]
    return pd.DataFrame(
        {"user": user_ids[u], "item": item_ids[i], "rating": rng.integers(1, 11, u.size) / 2.0}
    )


# ---------------------------------------------------------------------------------------------
# whole-number floats are the integers they hold


def test_float_ids_predict_like_the_int_ids_they_hold(small_ratings):
    m = MatrixFactorization(**QUIET).fit(small_ratings)
    as_int = small_ratings[["user", "item"]]
    as_float = as_int.astype(np.float64)  # as a pandas merge with missing rows gives them back
    expected = m.predict(as_int)
    assert np.unique(expected).size > 10  # real predictions, not the global mean for all
    np.testing.assert_array_equal(m.predict(as_float), expected)
    np.testing.assert_array_equal(m.predict(as_float.to_numpy()), expected)
    mixed = pd.DataFrame({"user": as_int["user"], "item": as_float["item"]})
    np.testing.assert_array_equal(m.predict(mixed), expected)


def test_ratings_from_float_ids_equal_ratings_from_int_ids(small_ratings):
    ints = Ratings.from_dataframe(small_ratings)
    floats = Ratings.from_dataframe(small_ratings.astype({"user": float, "item": float}))
    for name in ("users", "items", "values"):
        np.testing.assert_array_equal(getattr(floats, name), getattr(ints, name))
    assert floats.user_map.ids.dtype.kind == "i"
    np.testing.assert_array_equal(floats.user_map.ids, ints.user_map.ids)
    np.testing.assert_array_equal(floats.item_map.ids, ints.item_map.ids)
    # an IdMap built from floats holds ints
    id_map = IdMap(np.array([3.0, 1.0, 2.0**63]))
    assert id_map.ids.dtype == np.uint64
    assert id_map.lookup(np.array([1, 3, 2**63], dtype=np.uint64)).tolist() == [1, 0, 2]


def test_a_model_fit_on_float_ids_predicts_from_int_ids(small_ratings):
    as_float = small_ratings.astype({"user": float, "item": float})
    a = MatrixFactorization(**QUIET).fit(small_ratings)
    b = MatrixFactorization(**QUIET).fit(as_float)
    np.testing.assert_array_equal(b.predict(small_ratings), a.predict(small_ratings))


@pytest.mark.parametrize(
    ("users", "match"),
    [
        ([1.0, 2.5, 3.0], r"user ids must be integers or strings; found 2\.5 at row 1"),
        ([1.0, 2.0, np.nan], r"user has missing or infinite ids \(first at rows 2\)"),
        ([np.inf, 2.0, 3.0], r"user has missing or infinite ids \(first at rows 0\), the first in"),
    ],
)
def test_bad_float_ids_are_refused_at_fit(users, match):
    df = pd.DataFrame({"user": users, "item": [1, 2, 3], "rating": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match=match):
        Ratings.from_dataframe(df)
    with pytest.raises(ValueError, match=match.replace("user", "item")):
        Ratings.from_arrays([1, 2, 3], users, [1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    ("queries", "match"),
    [
        ([1.0, 2.5], r"user ids must be integers or strings; found 2\.5 at row 1"),
        ([1.0, np.nan], r"user has missing or infinite ids \(first at rows 1\)"),
        (np.array([1, None], dtype=object), r"user has missing ids \(first: None at row 1\)"),
        (np.array([1, 0.5], dtype=object), r"found 0\.5 at row 1"),
    ],
)
@pytest.mark.parametrize("ids", [np.arange(5), np.array(["a", "b"], dtype=object)])
def test_bad_float_ids_are_refused_at_lookup(queries, match, ids):
    with pytest.raises(ValueError, match=match):
        IdMap(ids).lookup(queries, column="user")


def test_predict_refuses_a_fractional_id(small_ratings):
    m = MatrixFactorization(**QUIET).fit(small_ratings)
    X = pd.DataFrame({"user": [1.0, 2.5], "item": [1.0, 2.0]})
    with pytest.raises(ValueError, match=r"found 2\.5 at row 1, which is not a whole number"):
        m.predict(X)


# ---------------------------------------------------------------------------------------------
# every integer width, up to uint64 past int64


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_extreme_ids_round_trip(dtype):
    ids = extremes(dtype)
    df = ratings_on(ids, ids[::-1].copy())
    r = Ratings.from_dataframe(df)
    back = r.to_dataframe()
    in_order = df.sort_values(["user", "item"])
    assert [int(x) for x in back["user"]] == [int(x) for x in in_order["user"]]
    assert [int(x) for x in back["item"]] == [int(x) for x in in_order["item"]]
    # codes follow the sorted raw order, and each map finds its own ids
    np.testing.assert_array_equal(r.user_map.lookup(ids), np.arange(ids.size))
    np.testing.assert_array_equal(r.item_map.lookup(ids), np.arange(ids.size))
    # the same values in every other dtype that holds them, and as Python ints
    for other in INT_DTYPES:
        info = np.iinfo(other)
        fits = [x for x in ids.tolist() if info.min <= x <= info.max]
        np.testing.assert_array_equal(
            r.user_map.lookup(np.array(fits, dtype=other)), reference_lookup(ids, fits)
        )
    as_objects = np.array(ids.tolist(), dtype=object)
    np.testing.assert_array_equal(r.user_map.lookup(as_objects), np.arange(ids.size))
    np.testing.assert_array_equal(r.user_map.lookup([str(x) for x in ids]), np.arange(ids.size))


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_extreme_ids_fit_and_predict_as_dense_ids_do(dtype):
    ids = extremes(dtype)
    df = ratings_on(ids, ids)
    # the same ratings with ids 0..5 in the same order: the same model, bit for bit
    dense = df.assign(user=np.searchsorted(ids, df["user"]), item=np.searchsorted(ids, df["item"]))
    m = MatrixFactorization(**QUIET).fit(df)
    ref = MatrixFactorization(**QUIET).fit(dense)
    expected = ref.predict(dense[["user", "item"]])
    np.testing.assert_array_equal(m.predict(df[["user", "item"]]), expected)
    assert [int(x) for x in sorted(m.user_ids_)] == [int(x) for x in ids]


@pytest.mark.parametrize(
    "ids",
    [[2**63, 2**63 + 7, 2**63 + 3, 2**63 + 900], [2**63, 2**63 + 7, 2**64 - 1, 5]],
    ids=["narrow", "wide"],
)
def test_uint64_ids_past_int64_fit_and_predict(ids):
    ids = np.array(ids, dtype=np.uint64)
    df = ratings_on(ids, np.arange(30, dtype=np.int64))
    m = MatrixFactorization(**QUIET).fit(df)
    pred = m.predict(df[["user", "item"]])
    assert np.unique(pred).size > 10
    # each user's own bias shows: not the fallback for unknown users
    unknown = m.predict(pd.DataFrame({"user": np.array([2**63 + 1], np.uint64), "item": [0]}))
    assert not np.isin(pred[df["user"] == ids[0]], unknown).all()


def test_lookups_across_signed_and_unsigned_maps():
    big = IdMap(np.array([0, 2**63, 2**64 - 1], dtype=np.uint64))
    assert big.lookup(np.array([-1, 0, -(2**63)], dtype=np.int64)).tolist() == [-1, 0, -1]
    assert big.lookup(np.array([2**64 - 1, 2**63], dtype=np.uint64)).tolist() == [2, 1]
    assert big.lookup(np.array([-1.0, 2.0**63])).tolist() == [-1, 1]
    signed = IdMap(np.array([-(2**63), -1, 2**63 - 1], dtype=np.int64))
    probe = np.array([2**64 - 1, 2**63, 2**63 - 1], dtype=np.uint64)
    assert signed.lookup(probe).tolist() == [-1, -1, 2]
    assert signed.lookup(np.array([-1, -(2**63)], dtype=np.int64)).tolist() == [1, 0]
    assert signed.lookup(np.array([2.0**63, -(2.0**63)])).tolist() == [-1, 0]
    assert signed.lookup(np.array([True, False])).tolist() == [-1, -1]


@pytest.mark.parametrize("start", [-(2**63), 2**63 - 10, -5])
def test_narrow_maps_at_the_ends_of_int64(start):
    ids = np.arange(start, start + 9, dtype=np.int64)
    id_map = IdMap(ids[::-1].copy())
    probes = [-(2**63), -(2**63) + 3, -6, -1, 0, 3, 2**63 - 7, 2**63 - 1] + ids.tolist()
    expected = reference_lookup(ids[::-1], probes)
    np.testing.assert_array_equal(id_map.lookup(np.array(probes, dtype=np.int64)), expected)
    small = [p for p in probes if -(2**31) <= p < 2**31]
    got = id_map.lookup(np.array(small, dtype=np.int32))
    np.testing.assert_array_equal(got, reference_lookup(ids[::-1], small))
    exact = [p for p in probes if float(p) == p]
    column = np.stack([np.array(exact, dtype=np.float64)] * 2, axis=1)[:, 0]  # strided
    assert not column.flags.c_contiguous
    got = id_map.lookup(column)
    np.testing.assert_array_equal(got, reference_lookup(ids[::-1], exact))


@settings(max_examples=60, deadline=None)
@given(
    ids=st.sets(st.integers(-(2**63), 2**64 - 1), min_size=1, max_size=40),
    extra=st.lists(st.integers(-(2**64), 2**65), max_size=20),
    spread=st.booleans(),
)
def test_lookup_matches_a_dict(ids, extra, spread):
    ids = sorted(ids)
    if not spread:  # a narrow range: the table path
        ids = [x for x in ids if abs(x - ids[0]) < 1000] or ids[:1]
    if max(ids) < 2**63:
        arr = np.array(ids, dtype=np.int64)
    elif min(ids) >= 0:
        arr = np.array(ids, dtype=np.uint64)
    else:  # negative and past int64 in one column: no integer dtype holds both
        arr = np.array(ids, dtype=object)
    id_map = IdMap(arr)
    queries = ids + extra
    expected = reference_lookup(ids, queries)
    np.testing.assert_array_equal(id_map.lookup(np.array(queries, dtype=object)), expected)
    for dtype in (np.int64, np.uint64, np.int32, np.uint8):
        info = np.iinfo(dtype)
        fits = [q for q in queries if info.min <= q <= info.max]
        got = id_map.lookup(np.array(fits, dtype=dtype))
        np.testing.assert_array_equal(got, reference_lookup(ids, fits))
    exact = [q for q in queries if float(q) == q and abs(q) < 2**64]
    got = id_map.lookup(np.array(exact, dtype=np.float64))
    np.testing.assert_array_equal(got, reference_lookup(ids, exact))


# ---------------------------------------------------------------------------------------------
# ids the Ratings container refuses


@pytest.mark.parametrize(
    ("users", "kind", "match"),
    [
        (
            np.array([1, "b", 3], dtype=object),
            TypeError,
            (
                r"user mixes ids of different types: 1 \(an integer\) at row 0 and 'b' "
                r"\(a string\) at row 1"
            ),
        ),
        (
            np.array(["a", "b", 3.0], dtype=object),
            TypeError,
            r"user mixes ids of different types: 'a' \(a string\) at row 0 and 3\.0",
        ),
        (np.array(["a", None, "c"], dtype=object), ValueError, r"user has missing ids.*row 1"),
        (np.array(["a", "b", np.nan], dtype=object), ValueError, r"user has missing ids.*row 2"),
        (np.array([1, pd.NA, 3], dtype=object), ValueError, r"user has missing ids.*row 1"),
        (np.array([1, 2, 2.5], dtype=object), ValueError, r"found 2\.5 at row 2"),
        (np.array([1, True, 3], dtype=object), TypeError, r"found the boolean True at row 1"),
        (np.array([True, False, True]), TypeError, "user ids must be integers or strings"),
        (np.array([1 + 2j, 2, 3]), TypeError, r"ids must be integers or strings"),
        (np.array([(1, 2), (3,), (4,)], dtype=object), TypeError, r"found \(1, 2\) \(a tuple\)"),
    ],
)
def test_ratings_refuse_mixed_and_missing_ids(users, kind, match):
    with pytest.raises(kind, match=match):
        Ratings.from_arrays(users, [1, 2, 3], [1.0, 2.0, 3.0])
    df = pd.DataFrame({"user": pd.Series(users, dtype=object), "item": [1, 2, 3], "rating": 1.0})
    with pytest.raises(kind, match=match):
        Ratings.from_dataframe(df)


def test_pandas_missing_values_in_typed_columns():
    df = pd.DataFrame({"user": pd.array([1, None, 3], dtype="Int64"), "item": ["a", "b", None],
                       "rating": [1.0, 2.0, 3.0]})  # fmt: skip
    with pytest.raises(ValueError, match=r"user has missing or infinite ids \(first at rows 1\)"):
        Ratings.from_dataframe(df)
    with pytest.raises(ValueError, match=r"item has missing ids.*row 2"):
        Ratings.from_dataframe(df.assign(user=[1, 2, 3]))


def test_object_columns_of_one_type_are_fine():
    # ints held as objects (and whole floats among them) make an integer map
    r = Ratings.from_arrays(np.array([3, 1, 2.0], dtype=object), ["x", "y", "z"], [1.0, 2.0, 3.0])
    assert r.user_map.ids.dtype == np.int64
    assert r.user_map.ids.tolist() == [1, 2, 3]
    assert r.item_map.lookup(np.array(["z", "x", "w"])).tolist() == [2, 0, -1]
    assert r.item_map.lookup([1, 2.0]).tolist() == [-1, -1]
    # ints past every 64-bit dtype stay Python ints
    huge = np.array([-1, 2**64, 2**70], dtype=object)
    r = Ratings.from_arrays(huge, [1, 2, 3], [1.0, 2.0, 3.0])
    assert r.user_map.ids.tolist() == [-1, 2**64, 2**70]
    assert r.user_map.lookup(np.array([2**70, -1, 5], dtype=object)).tolist() == [2, 0, -1]


def test_fit_with_string_ids_predicts_from_strings():
    df = random_ratings(30, 20, 300)
    named = df.assign(user="u" + df["user"].astype(str), item="i" + df["item"].astype(str))
    m = MatrixFactorization(**QUIET).fit(named)
    pred = m.predict(named[["user", "item"]])
    assert np.unique(pred).size > 10
    users = m.user_map_.lookup(named["user"].to_numpy())
    assert (users >= 0).all()
    np.testing.assert_array_equal(m.user_ids_[users], named["user"].to_numpy())
    with pytest.raises(ValueError, match=r"missing ids \(first: nan at row 1\)"):
        m.predict(pd.DataFrame({"user": ["u1", np.nan], "item": ["i1", "i2"]}))


@pytest.mark.parametrize(
    "raw",
    [
        np.array([3, 0, 2, 2, 1, 0, 3, 3], dtype=np.int32),  # dense: the ids are their codes
        np.array([13, 10, 12, 12, 11, 10, 13, 13], dtype=np.int64),  # a table from 10
        np.array([-7, 5, 5, 900, -7, -7], dtype=np.int16),
        np.array([2**40, 5, 5, 2**41, 2**40], dtype=np.int64),  # too sparse for a table
        np.array(["b", "a", "b", "c"], dtype=object),
    ],
)
@pytest.mark.parametrize("kernels", [False, True])
def test_ids_counted_with_their_codes_are_the_codes_bincount(raw, kernels, monkeypatch):
    if kernels:  # the path of a million ids and more: the parallel kernels
        monkeypatch.setattr("fastmf._kernels.sorting.SERIAL_BELOW", 0)
        monkeypatch.setattr("fastmf.data.ids.SERIAL_BELOW", 0)
    codes, id_map, counts = factorize_and_count(raw, column="user", copy=False)
    plain_codes, plain_map = factorize_ids(raw, column="user")
    np.testing.assert_array_equal(codes, plain_codes)
    np.testing.assert_array_equal(id_map.ids, plain_map.ids)
    if counts is not None:  # counted where a table of the id range made the codes
        np.testing.assert_array_equal(counts, np.bincount(codes, minlength=len(id_map)))
    assert (counts is None) == (raw.dtype == object or int(raw.max()) >= 2**40)


def test_unordered_ratings_hand_their_counts_to_the_fit_once():
    users = np.array([5, 3, 5, 4, 3, 5], dtype=np.int64)
    items = np.array([0, 1, 2, 0, 2, 1], dtype=np.int32)
    r = Ratings.from_arrays(users, items, np.ones(6), ordered=False)
    counts = r.take_counts()
    assert counts is not None
    np.testing.assert_array_equal(counts[0], np.bincount(r.users))
    np.testing.assert_array_equal(counts[1], np.bincount(r.items))
    assert r.take_counts() is None
    assert Ratings.from_arrays(users, items, np.ones(6)).take_counts() is None
