"""Text id columns are factorized as pandas holds them: the same codes and id maps as the same
ids given as Python strings, and the same errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fastmf.data.ids import factorize_ids, text_column
from fastmf.data.ratings import Ratings


def _ids(n=5000, seed=0):
    rng = np.random.default_rng(seed)
    return np.array([f"u{k}" for k in rng.integers(0, 700, n)], dtype=object)


@pytest.mark.parametrize("dtype", ["str", "string"])
def test_a_text_series_gets_the_codes_of_its_strings(dtype):
    raw = _ids()
    series = pd.Series(raw).astype(dtype)
    assert text_column(series) and not text_column(raw)
    codes, ids = factorize_ids(series, column="user")
    want_codes, want_ids = factorize_ids(raw, column="user")
    np.testing.assert_array_equal(codes, want_codes)
    assert codes.dtype == np.int32
    assert ids.ids.dtype == object and list(ids.ids) == list(want_ids.ids)
    assert list(ids.ids) == sorted(set(raw))


def test_a_missing_text_id_raises_as_the_series_values_do():
    raw = _ids(50)
    raw[7] = None
    series = pd.Series(raw).astype("string")
    with pytest.raises(ValueError) as from_array:
        factorize_ids(series.to_numpy(), column="user")
    with pytest.raises(ValueError) as from_series:
        factorize_ids(series, column="user")
    assert str(from_series.value) == str(from_array.value)
    assert "at row 7" in str(from_series.value)


def test_ratings_of_a_text_frame_are_those_of_its_object_columns():
    users, items = _ids(3000, 1), _ids(3000, 2)
    pairs = pd.DataFrame({"user": users, "item": items}).drop_duplicates()
    rating = np.arange(len(pairs), dtype=np.float32) % 5 + 1
    as_objects = pairs.astype(object).assign(rating=rating)
    as_text = pairs.astype("str").assign(rating=rating)
    a, b = Ratings.from_dataframe(as_text), Ratings.from_dataframe(as_objects)
    for name in ("users", "items", "values"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert list(a.user_map.ids) == list(b.user_map.ids)
    assert list(a.item_map.ids) == list(b.item_map.ids)
