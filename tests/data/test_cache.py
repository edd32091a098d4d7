"""The parsed MovieLens cache: keyed as git's index keys files, checked on every load, and parsed
again (with a warning) whenever it does not hold what it says.

The checksum kernel is compared with a plain-Python twin; the cache tests edit sources and cache
files on disk the way users and tools do (``cp -p``, ``rsync -t``, a stray write).
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from pathlib import Path

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmf.data.datasets import _cache, load_movielens
from fastmf.data.datasets import movielens as ml
from tests.data.test_movielens import (
    ROWS_HALF,
    assert_same,
    count_parses,
    no_env,  # noqa: F401 (a fixture)
    parsed_entries,
    ratings_text,
    write_release,
)

MASK = 2**64 - 1
GOLDEN, M1, M2 = 0x9E3779B97F4A7C15, 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53


def reference_checksum(a: np.ndarray) -> str:
    """The checksum of ``a``'s bytes as its definition states it, with Python integers."""
    data = np.ascontiguousarray(a).tobytes()
    n = len(data) // 8

    def term(word: int, position: int) -> int:
        x = ((word ^ (position * GOLDEN & MASK)) * M1) & MASK
        return x ^ (x >> 33)

    s = sum(term(int.from_bytes(data[8 * i : 8 * i + 8], "little"), i + 1) for i in range(n))
    s += term(int.from_bytes(data[8 * n :], "little"), n + 1)
    h = (s + len(data) * M2) & MASK
    h ^= h >> 33
    h = (h * M1) & MASK
    h ^= h >> 33
    h = (h * M2) & MASK
    h ^= h >> 33
    return f"{h:016x}"


# ---------------------------------------------------------------------------------------------
# the checksum


@pytest.mark.parametrize("dtype", ["int32", "float32", "int64", "uint8"])
@pytest.mark.parametrize("n", [0, 1, 3, 7, 8, 9, 1000, 70_001])
def test_checksum_matches_its_plain_twin(dtype, n):
    rng = np.random.default_rng(n)
    a = rng.integers(-(2**31), 2**31, n).astype(dtype)
    if n > 10_000 and dtype != "int64":
        a = np.resize(a, 140_003)  # past one block of 2**16 words for the narrow dtypes too
    assert _cache.checksum(a) == reference_checksum(a)


def test_checksum_does_not_depend_on_the_thread_count():
    a = np.random.default_rng(1).integers(0, 2**62, 1_000_003)
    before = numba.get_num_threads()
    try:
        sums = set()
        for n in range(1, numba.config.NUMBA_NUM_THREADS + 1):
            numba.set_num_threads(n)
            sums.add(_cache.checksum(a))
    finally:
        numba.set_num_threads(before)
    assert len(sums) == 1


@settings(max_examples=80, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=300),
    where=st.integers(0, 10**6),
    flip=st.integers(1, 255),
)
def test_any_changed_byte_changes_the_checksum(data, where, flip):
    a = np.frombuffer(data, dtype=np.uint8).copy()
    before = _cache.checksum(a)
    a[where % a.size] ^= flip
    assert _cache.checksum(a) != before


def test_order_and_length_change_the_checksum():
    a = np.arange(1, 40, dtype=np.int64)
    swapped = a.copy()
    swapped[[3, 17]] = swapped[[17, 3]]
    assert _cache.checksum(swapped) != _cache.checksum(a)
    assert _cache.checksum(np.append(a, 0)) != _cache.checksum(a)
    assert _cache.checksum(a.view(np.uint8)[:-1]) != _cache.checksum(a.view(np.uint8)[1:])
    zeros = np.zeros(16, dtype=np.uint8)
    assert _cache.checksum(zeros[:15]) != _cache.checksum(zeros)


# ---------------------------------------------------------------------------------------------
# the source's fingerprint


def test_fingerprint_keys_the_file_as_git_does(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_bytes(b"x")
    st_ = path.stat()
    fp = _cache.fingerprint(path, "ml-25m/ratings.csv")
    assert fp["path"] == str(path.resolve()) and fp["member"] == "ml-25m/ratings.csv"
    assert (fp["device"], fp["inode"], fp["size"]) == (st_.st_dev, st_.st_ino, st_.st_size)
    assert (fp["mtime_ns"], fp["ctime_ns"]) == (st_.st_mtime_ns, st_.st_ctime_ns)


def edit_keeping_size_and_mtime(path: Path, text: bytes) -> None:
    """Write ``text`` (the same length) over ``path`` and set its times back, as ``cp -p`` or
    ``rsync -t`` leave an edited file: only its ctime tells."""
    before = path.stat()
    assert len(text) == before.st_size
    with open(path, "r+b") as f:
        f.write(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    while path.stat().st_ctime_ns == before.st_ctime_ns:  # within one tick of the clock
        time.sleep(0.01)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def swapped_ratings(rows):
    """The same rows with the ratings of rows 0 and 3 exchanged: as many bytes, other values."""
    rows = [list(r) for r in rows]
    rows[0][2], rows[3][2] = rows[3][2], rows[0][2]
    return [tuple(r) for r in rows]


def stored_zip(path: Path, rows) -> Path:
    """ml-25m's zip with its ratings stored, not deflated: the same rows make the same size."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        info = zipfile.ZipInfo("ml-25m/ratings.csv", date_time=(2020, 1, 1, 0, 0, 0))
        zf.writestr(info, ratings_text("ml-25m", rows))
    return path


@pytest.mark.parametrize("as_zip", [False, True])
def test_an_edit_with_size_and_mtime_kept_is_parsed_again(as_zip, no_env):  # noqa: F811
    edited = swapped_ratings(ROWS_HALF)
    assert edited != ROWS_HALF
    home = no_env / "home"
    if as_zip:
        (no_env / "data").mkdir()
        where = stored_zip(no_env / "data" / "ml-25m.zip", ROWS_HALF)
        fresh = stored_zip(no_env / "edited.zip", edited).read_bytes()
    else:
        where = write_release(no_env / "data", "ml-25m") / "ratings.csv"
        fresh = ratings_text("ml-25m", edited)
    assert_same(load_movielens(where, data_home=home), ROWS_HALF)
    edit_keeping_size_and_mtime(where, fresh)
    assert_same(load_movielens(where, data_home=home), edited)
    assert len(parsed_entries(home)) == 1  # the stale cache is gone


def test_a_file_replaced_with_size_and_mtime_kept_is_parsed_again(no_env):  # noqa: F811
    folder = write_release(no_env / "data", "ml-25m")
    path = folder / "ratings.csv"
    home = no_env / "home"
    assert_same(load_movielens(folder, data_home=home), ROWS_HALF)
    before = path.stat()
    edited = swapped_ratings(ROWS_HALF)
    tmp = folder / "ratings.csv.new"
    tmp.write_bytes(ratings_text("ml-25m", edited))
    os.utime(tmp, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(tmp, path)  # rsync's way: a new file renamed over the old one
    assert path.stat().st_ino != before.st_ino
    assert_same(load_movielens(folder, data_home=home), edited)


def test_an_untouched_source_is_not_parsed_again(no_env, monkeypatch):  # noqa: F811
    folder = write_release(no_env / "data", "ml-25m")
    home = no_env / "home"
    calls = count_parses(monkeypatch)
    for _ in range(3):
        assert_same(load_movielens(folder, data_home=home), ROWS_HALF)
    assert len(calls) == 1


def test_a_source_changed_while_it_is_parsed_is_not_cached(no_env, monkeypatch):  # noqa: F811
    folder = write_release(no_env / "data", "ml-25m")
    home = no_env / "home"
    real = ml.parse_ratings

    def parse_then_touch(*args, **kwargs):
        out = real(*args, **kwargs)
        os.utime(folder / "ratings.csv", ns=(10**18, 10**18))
        return out

    monkeypatch.setattr(ml, "parse_ratings", parse_then_touch)
    assert_same(load_movielens(folder, data_home=home), ROWS_HALF)
    assert parsed_entries(home) == []
    monkeypatch.setattr(ml, "parse_ratings", real)
    assert_same(load_movielens(folder, data_home=home), ROWS_HALF)
    assert len(parsed_entries(home)) == 1


# ---------------------------------------------------------------------------------------------
# a damaged cache is never returned


@pytest.fixture
def cached(no_env):  # noqa: F811
    """A loaded ml-25m folder: (source folder, data_home, the cache folder)."""
    folder = write_release(no_env / "data", "ml-25m")
    home = no_env / "home"
    load_movielens(folder, data_home=home)
    (cache,) = (home / "parsed").iterdir()
    return folder, home, cache


def reloads_after_warning(cached, monkeypatch, match: str) -> None:
    folder, home, _ = cached
    calls = count_parses(monkeypatch)
    with pytest.warns(RuntimeWarning, match=match):
        df = load_movielens(folder, data_home=home)
    assert_same(df, ROWS_HALF)
    assert len(calls) == 1
    # the cache written again is whole: the next load takes it, quietly
    assert_same(load_movielens(folder, data_home=home), ROWS_HALF)
    assert len(calls) == 1


def flip_data_byte(path: Path, offset_from_end: int = 1) -> None:
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("column", ["user", "item", "rating", "timestamp"])
def test_a_changed_byte_in_a_cached_column_is_caught(column, cached, monkeypatch):
    flip_data_byte(cached[2] / f"{column}.npy")
    reloads_after_warning(cached, monkeypatch, rf"{column}\.npy does not match its checksum")


def edit_meta(cache: Path, change) -> None:
    meta = json.loads((cache / "meta.json").read_text())
    change(meta)
    (cache / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m: m["checksums"].update(rating="0" * 16), r"rating\.npy does not match"),
        (lambda m: m.pop("checksums"), r"checksums"),
        (lambda m: m.update(n_rows=3), r"expected int32 of shape \(3,\)"),
        (lambda m: m.update(n_rows="8"), r"n_rows '8'"),
        (lambda m: m["source"].update(size=1), r"another source"),
        (lambda m: m["columns"].update(user="int64"), r"other columns"),
        (lambda m: m.update(checksum="md5"), r"another checksum"),
    ],
)
def test_edited_metadata_is_caught(change, match, cached, monkeypatch):
    edit_meta(cached[2], change)
    reloads_after_warning(cached, monkeypatch, match)


def test_unreadable_or_missing_metadata_is_caught(cached, monkeypatch):
    (cached[2] / "meta.json").write_text("{not json")
    reloads_after_warning(cached, monkeypatch, "is damaged")
    (cache,) = (cached[1] / "parsed").iterdir()
    (cache / "meta.json").unlink()
    reloads_after_warning(cached, monkeypatch, "meta.json")


def rewrite_column(cache: Path, name: str, values: np.ndarray) -> None:
    """Save ``values`` as column ``name`` and its checksum in meta.json, as a consistent edit."""
    np.save(cache / f"{name}.npy", values, allow_pickle=False)
    edit_meta(cache, lambda m: m["checksums"].update({name: _cache.checksum(values)}))


@pytest.mark.parametrize(
    ("name", "bad", "match"),
    [
        ("user", -1, r"row 2 holds a negative user id"),
        ("item", -5, r"row 2 holds a negative item id"),
        ("rating", np.nan, r"row 2 holds a rating off half stars"),
        ("rating", 4.25, r"row 2 holds a rating off half stars"),
        ("rating", 5.5, r"row 2 holds a rating off half stars"),
    ],
)
def test_cached_values_are_checked_as_fresh_ones(name, bad, match, cached, monkeypatch):
    cache = cached[2]
    values = np.load(cache / f"{name}.npy")
    values[2] = bad
    rewrite_column(cache, name, values)
    reloads_after_warning(cached, monkeypatch, match)


def test_a_cached_column_of_another_dtype_is_caught(cached, monkeypatch):
    cache = cached[2]
    rewrite_column(cache, "user", np.load(cache / "user.npy").astype(np.int64))
    reloads_after_warning(cached, monkeypatch, r"user\.npy holds int64")


def test_the_checks_see_the_whole_column(no_env, monkeypatch):  # noqa: F811
    # a bad value far from the start, past the first block of rows the checks run in parallel
    rows = [(u, i, 3.5, 1112486027) for u in range(1, 400) for i in range(1, 400)]
    folder = write_release(no_env / "data", "ml-25m", rows)
    home = no_env / "home"
    load_movielens(folder, data_home=home)
    (cache,) = (home / "parsed").iterdir()
    values = np.load(cache / "item.npy")
    values[-2] = -1
    rewrite_column(cache, "item", values)
    with pytest.warns(RuntimeWarning, match=rf"row {len(rows) - 2} holds a negative item id"):
        load_movielens(folder, data_home=home)
