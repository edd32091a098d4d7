"""load_movielens and load_movies: every release's format, every layout, the cache, bad input.

Each release other than ml-latest-small is tested on a few rows written here in that release's
exact format and zipped as GroupLens zips it (one top folder); the expected values come from the
rows themselves, not from the parser.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fastmf.data.datasets import _parse, load_movielens, load_movies, releases
from fastmf.data.datasets import movielens as ml
from fastmf.data.datasets._movies import UITEM_GENRES

# ---------------------------------------------------------------------------------------------
# small releases in their exact formats

ROWS_INT = [(196, 242, 3.0, 881250949), (186, 302, 3.0, 891717742), (22, 377, 1.0, 878887116),
            (244, 51, 2.0, 880606923), (166, 346, 1.0, 886397596), (298, 474, 4.0, 884182806),
            (115, 265, 2.0, 881171488), (253, 465, 5.0, 891628467)]  # fmt: skip
ROWS_HALF = [(1, 2, 3.5, 1112486027), (1, 29, 3.5, 1112484676), (1, 32, 3.5, 1112484819),
             (2, 3, 4.0, 974820889), (3, 2, 0.5, 1439472215), (3, 1, 5.0, 1439472355),
             (4, 260, 4.5, 1573944252), (162541, 209171, 2.0, 1240953372)]  # fmt: skip
TITLES = {1: "Toy Story (1995)", 2: "Jumanji (1995)", 3: "Café au Lait, Le (1993)"}
GENRES = {1: "Adventure|Animation|Children|Comedy|Fantasy", 2: "Adventure|Children|Fantasy",
          3: "Comedy"}  # fmt: skip


def _num(r: float) -> str:
    return str(int(r)) if r == int(r) else str(r)


def ratings_text(release: str, rows) -> bytes:
    """The ratings file of ``release`` holding ``rows``, as GroupLens writes it."""
    fmt = releases.RELEASES[release].ratings
    if fmt is releases.UDATA:
        return "".join(f"{u}\t{i}\t{_num(r)}\t{t}\n" for u, i, r, t in rows).encode()
    if fmt is releases.DAT:
        return "".join(f"{u}::{i}::{_num(r)}::{t}\n" for u, i, r, t in rows).encode()
    body = "".join(f"{u},{i},{r:.1f},{t}\n" for u, i, r, t in rows)
    return ("userId,movieId,rating,timestamp\n" + body).encode()


def movies_text(release: str) -> bytes:
    rel = releases.RELEASES[release]
    if rel.movies_file == "u.item":
        lines = []
        for item, title in TITLES.items():
            flags = ["0"] * 19
            for g in GENRES[item].replace("Children", "Children's").split("|"):
                flags[UITEM_GENRES.index(g)] = "1"
            lines.append(
                f"{item}|{title}|01-Jan-1995||http://us.imdb.com/M/title|" + "|".join(flags)
            )
        return ("\n".join(lines) + "\n").encode("latin-1")
    if rel.movies_file == "movies.dat":
        text = "".join(f"{i}::{t}::{GENRES[i]}\n" for i, t in TITLES.items())
        return text.encode(rel.movies_encoding)
    text = "movieId,title,genres\n" + "".join(
        f'{i},"{t}",{GENRES[i]}\n' if "," in t else f"{i},{t},{GENRES[i]}\n"
        for i, t in TITLES.items()
    )
    return text.encode()


def rows_for(release: str):
    return ROWS_INT if releases.RELEASES[release].scale is releases.STARS_1_5 else ROWS_HALF


def write_release(root: Path, release: str, rows=None, *, as_zip: bool = False) -> Path:
    """Write ``release``'s folder (or its zip, as GroupLens zips it) under ``root``."""
    rel = releases.RELEASES[release]
    files = {
        rel.ratings.filename: ratings_text(release, rows or rows_for(release)),
        rel.movies_file: movies_text(release),
        "README.txt": b"Summary\n",
    }
    root.mkdir(parents=True, exist_ok=True)
    if as_zip:
        path = root / rel.archive
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(zipfile.ZipInfo(rel.folder + "/"), b"")
            for name, data in files.items():
                zf.writestr(f"{rel.folder}/{name}", data)
        return path
    folder = root / rel.folder
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def expected_frame(rows) -> pd.DataFrame:
    u, i, r, t = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "user": np.array(u, dtype=np.int32),
            "item": np.array(i, dtype=np.int32),
            "rating": np.array(r, dtype=np.float32),
            "timestamp": np.array(t, dtype=np.int64),
        }
    )


def assert_same(df: pd.DataFrame, rows) -> None:
    assert list(df.columns) == ["user", "item", "rating", "timestamp"]
    assert [str(d) for d in df.dtypes] == ["int32", "int32", "float32", "int64"]
    pd.testing.assert_frame_equal(df.reset_index(drop=True), expected_frame(rows))


def snapshot(folder: Path) -> dict:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    """No FASTMF_DATA, a private FASTMF_HOME, and no network address that works."""
    monkeypatch.delenv("FASTMF_DATA", raising=False)
    monkeypatch.setenv("FASTMF_HOME", str(tmp_path / "fastmf-home"))
    monkeypatch.setenv("FASTMF_MOVIELENS_URL", "http://127.0.0.1:9/")
    return tmp_path


# ---------------------------------------------------------------------------------------------
# the real ml-latest-small


@pytest.fixture
def small_root(movielens_small_path) -> Path:
    """The folder holding ml-latest-small/ (the fixture may name either)."""
    path = Path(movielens_small_path)
    return path.parent if (path / "ratings.csv").is_file() else path


def test_real_ml_latest_small_counts(small_root, monkeypatch, tmp_path):
    monkeypatch.setenv("FASTMF_DATA", str(small_root))
    before = snapshot(small_root)
    home = tmp_path / "home"
    df = load_movielens("ml-latest-small", data_home=home, download=False)
    assert len(df) == 100_836
    assert df["user"].nunique() == 610
    assert df["item"].nunique() == 9_724
    assert [str(d) for d in df.dtypes] == ["int32", "int32", "float32", "int64"]
    # an independent reader agrees on every value
    ref = pd.read_csv(small_root / "ml-latest-small" / "ratings.csv")
    np.testing.assert_array_equal(df["user"], ref["userId"])
    np.testing.assert_array_equal(df["item"], ref["movieId"])
    np.testing.assert_array_equal(df["rating"], ref["rating"].astype(np.float32))
    np.testing.assert_array_equal(df["timestamp"], ref["timestamp"])
    assert set(np.unique(df["rating"] * 2)) <= set(range(1, 11))
    # the cache went to data_home, nothing was written beside the data
    assert snapshot(small_root) == before
    assert len(list((home / "parsed").iterdir())) == 1
    again = load_movielens("ml-latest-small", data_home=home, download=False)
    pd.testing.assert_frame_equal(again, df)
    assert snapshot(small_root) == before


def test_real_ml_latest_small_movies(small_root, monkeypatch, tmp_path):
    monkeypatch.setenv("FASTMF_DATA", str(small_root))
    movies = load_movies("ml-latest-small", data_home=tmp_path, download=False)
    assert movies.shape == (9_742, 3)
    assert movies["item"].dtype == np.int32
    first = movies.iloc[0]
    assert (first["item"], first["title"]) == (1, "Toy Story (1995)")
    assert first["genres"] == "Adventure|Animation|Children|Comedy|Fantasy"
    ratings = load_movielens(small_root / "ml-latest-small", data_home=tmp_path)
    assert set(ratings["item"]) <= set(movies["item"])


# ---------------------------------------------------------------------------------------------
# every release, every layout


@pytest.mark.parametrize("release", list(releases.RELEASES))
@pytest.mark.parametrize("layout", ["name-zip", "name-folder", "zip", "folder", "file"])
def test_each_release_each_layout(release, layout, no_env, monkeypatch):
    data = no_env / "data"
    as_zip = layout in ("name-zip", "zip")
    where = write_release(data, release, as_zip=as_zip)
    monkeypatch.setenv("FASTMF_DATA", str(data))
    if layout.startswith("name"):
        arg: object = release
    elif layout == "file":
        arg = where / releases.RELEASES[release].ratings.filename
    else:
        arg = str(where)
    df = load_movielens(arg, data_home=no_env / "home", download=False)
    assert_same(df, rows_for(release))
    assert df.attrs["release"] == release


@pytest.mark.parametrize("release", list(releases.RELEASES))
@pytest.mark.parametrize("as_zip", [False, True])
def test_movies_of_each_release(release, as_zip, no_env, monkeypatch):
    write_release(no_env / "data", release, as_zip=as_zip)
    monkeypatch.setenv("FASTMF_DATA", str(no_env / "data"))
    movies = load_movies(release, download=False)
    assert list(movies.columns) == ["item", "title", "genres"]
    assert movies["item"].dtype == np.int32
    assert movies["item"].tolist() == list(TITLES)
    assert movies["title"].tolist() == list(TITLES.values())  # latin-1 and utf-8 both decoded
    expected = list(GENRES.values())
    if release == "ml-100k":  # u.genre's names
        expected = [g.replace("Children", "Children's") for g in expected]
    assert movies["genres"].tolist() == expected


def test_movies_absent_gives_none(no_env):
    folder = no_env / "mine"
    folder.mkdir()
    (folder / "ratings.csv").write_bytes(ratings_text("ml-25m", ROWS_HALF))
    assert load_movies(folder / "ratings.csv") is None
    assert_same(load_movielens(folder / "ratings.csv"), ROWS_HALF)


def test_ml10m_folder_name_and_zip_name(no_env, monkeypatch):
    # GroupLens ships ml-10m.zip whose top folder is ml-10M100K/
    archive = write_release(no_env / "data", "ml-10m", as_zip=True)
    with zipfile.ZipFile(archive) as zf:
        assert zf.namelist()[0] == "ml-10M100K/"
    monkeypatch.setenv("FASTMF_DATA", str(no_env / "data"))
    assert_same(load_movielens("ML-10M", download=False), ROWS_HALF)


def test_line_endings_blank_lines_and_no_final_newline(no_env):
    folder = no_env / "ml-20m"
    folder.mkdir()
    text = ratings_text("ml-20m", ROWS_HALF).replace(b"\n", b"\r\n")
    text = text.replace(b"\r\n1,32", b"\r\n\r\n\n1,32").rstrip(b"\r\n")
    (folder / "ratings.csv").write_bytes(text)
    assert_same(load_movielens(folder), ROWS_HALF)


# ---------------------------------------------------------------------------------------------
# where releases are found


def test_search_order_fastmf_data_first_then_data_home(no_env, monkeypatch):
    first, second, home = no_env / "first", no_env / "second", no_env / "home"
    write_release(first, "ml-1m", ROWS_INT[:3], as_zip=True)
    write_release(second, "ml-1m", ROWS_INT[3:])
    write_release(home, "ml-1m", ROWS_INT[:1])
    monkeypatch.setenv(
        "FASTMF_DATA", os.pathsep.join([str(no_env / "empty"), str(first), str(second)])
    )
    assert_same(load_movielens("ml-1m", data_home=home, download=False), ROWS_INT[:3])
    monkeypatch.setenv("FASTMF_DATA", str(no_env / "empty"))
    assert_same(load_movielens("ml-1m", data_home=home, download=False), ROWS_INT[:1])
    # data_home defaults to FASTMF_HOME
    write_release(Path(os.environ["FASTMF_HOME"]), "ml-1m", ROWS_INT[5:])
    assert_same(load_movielens("ml-1m", download=False), ROWS_INT[5:])


def test_default_data_home_follows_xdg(monkeypatch, tmp_path):
    from fastmf.data.datasets import _cache

    monkeypatch.delenv("FASTMF_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    if os.name == "posix" and os.uname().sysname == "Linux":
        assert _cache.default_data_home() == tmp_path / "fastmf"
    monkeypatch.setenv("FASTMF_HOME", str(tmp_path / "x"))
    assert _cache.default_data_home() == tmp_path / "x"


def test_not_found_without_download_says_where_to_put_it(no_env):
    with pytest.raises(FileNotFoundError, match=r"ml-25m\.zip.*fastmf-home.*FASTMF_DATA"):
        load_movielens("ml-25m", download=False)


def test_unknown_release_name(no_env):
    with pytest.raises(ValueError, match=r"unknown MovieLens release 'ml-26m'.*ml-100k.*ml-32m"):
        load_movielens("ml-26m")


def test_missing_path(no_env):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        load_movielens(no_env / "nowhere" / "ratings.csv")


def test_wrong_argument_types(no_env):
    with pytest.raises(TypeError, match="name_or_path"):
        load_movielens(25)
    with pytest.raises(TypeError, match="data_home"):
        load_movielens("ml-100k", data_home=3)
    with pytest.raises(TypeError, match="download"):
        load_movielens("ml-100k", download="no")


def test_folder_without_ratings(no_env):
    (no_env / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no ratings file in .*u\.data"):
        load_movielens(no_env / "empty")


# ---------------------------------------------------------------------------------------------
# bad input: a clear error, and nothing in the cache


def parsed_entries(home: Path) -> list[str]:
    parsed = home / "parsed"
    return sorted(p.name for p in parsed.iterdir()) if parsed.exists() else []


def test_corrupt_zip(no_env):
    bad = no_env / "ml-1m.zip"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip" * 10)
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_movielens(bad, data_home=no_env / "home")
    assert parsed_entries(no_env / "home") == []


def test_truncated_zip(no_env):
    archive = write_release(no_env / "data", "ml-25m", as_zip=True)
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_movielens(archive, data_home=no_env / "home")
    assert parsed_entries(no_env / "home") == []


def test_zip_with_damaged_member(no_env):
    rows = [(u, i, 3.5, 1112486027 + i) for u in range(1, 40) for i in range(1, 40)]
    archive = write_release(no_env / "data", "ml-25m", rows, as_zip=True)
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("ml-25m/ratings.csv")
    data = bytearray(archive.read_bytes())
    middle = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    data[middle : middle + 8] = bytes(255 - b for b in data[middle : middle + 8])
    archive.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_movielens(archive, data_home=no_env / "home")
    assert parsed_entries(no_env / "home") == []


def test_file_in_another_release_format(no_env, monkeypatch):
    # a ratings.csv of ml-25m placed where ml-1m is expected
    folder = no_env / "data" / "ml-1m"
    folder.mkdir(parents=True)
    (folder / "ratings.csv").write_bytes(ratings_text("ml-25m", ROWS_HALF))
    monkeypatch.setenv("FASTMF_DATA", str(no_env / "data"))
    with pytest.raises(ValueError, match=r"ml-1m ships its ratings as '::'-separated"):
        load_movielens("ml-1m", download=False)
    # '::' lines in a file named ratings.csv
    mine = no_env / "mine"
    mine.mkdir()
    (mine / "ratings.csv").write_bytes(ratings_text("ml-1m", ROWS_INT))
    with pytest.raises(ValueError, match=r"format of '::'-separated ratings\.dat"):
        load_movielens(mine / "ratings.csv", data_home=no_env / "home")
    # u.data's tab-separated lines in a ratings.dat
    (mine / "ratings.dat").write_bytes(ratings_text("ml-100k", ROWS_INT))
    with pytest.raises(ValueError, match="tab-separated u.data"):
        load_movielens(mine / "ratings.dat", data_home=no_env / "home")
    # a zip renamed to another release's name: its top folder tells the release
    archive = write_release(no_env / "zips", "ml-20m", as_zip=True)
    renamed = archive.with_name("ml-1m.zip")
    archive.rename(renamed)
    assert load_movielens(renamed, data_home=no_env / "home").attrs["release"] == "ml-20m"


def test_movies_file_given_as_ratings(no_env):
    folder = no_env / "ml-25m"
    folder.mkdir()
    (folder / "ratings.csv").write_bytes(movies_text("ml-25m"))
    with pytest.raises(ValueError, match=r"missing column\(s\) 'userId', 'rating', 'timestamp'"):
        load_movielens(folder, data_home=no_env / "home")


def test_missing_column(no_env):
    folder = no_env / "ml-32m"
    folder.mkdir()
    text = b"userId,movieId,rating\n1,2,3.5\n"
    (folder / "ratings.csv").write_bytes(text)
    with pytest.raises(ValueError, match=r"missing column\(s\) 'timestamp'"):
        load_movielens(folder, data_home=no_env / "home")
    # a line short of a field in a headerless format
    folder = no_env / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_bytes(b"1::1193::5::978300760\n1::661::3\n")
    with pytest.raises(ValueError, match=r"line 2: expected the separator '::' after the rating"):
        load_movielens(folder, data_home=no_env / "home")
    assert parsed_entries(no_env / "home") == []


def test_extra_column_and_bad_number(no_env):
    folder = no_env / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_bytes(b"1\t2\t3\t881250949\n1\t3\t4\t881250949\t9\n")
    with pytest.raises(ValueError, match="line 2: unexpected text after the timestamp"):
        load_movielens(folder, data_home=no_env / "home")
    (folder / "u.data").write_bytes(b"1\t2\t3\t881250949\n1\tx\t4\t881250949\n")
    with pytest.raises(ValueError, match="line 2: the item field is not a non-negative integer"):
        load_movielens(folder, data_home=no_env / "home")
    (folder / "u.data").write_bytes(b"1\t2\t3\t881250949\n1\t3000000000\t4\t881250949\n")
    with pytest.raises(ValueError, match="line 2: the item value is too large"):
        load_movielens(folder, data_home=no_env / "home")


@pytest.mark.parametrize(
    ("release", "bad", "scale"),
    [("ml-100k", 3.5, "whole stars 1-5"), ("ml-1m", 6.0, "whole stars 1-5"),
     ("ml-1m", 0.0, "whole stars 1-5"), ("ml-25m", 5.5, "half stars"),
     ("ml-25m", 0.0, "half stars"), ("ml-10m", 3.25, "half stars")],
)  # fmt: skip
def test_rating_off_the_scale(release, bad, scale, no_env):
    rows = list(rows_for(release))
    rows[4] = rows[4][:2] + (bad,) + rows[4][3:]
    folder = write_release(no_env / "data", release, rows)
    with pytest.raises(ValueError, match=rf"1 rating\(s\) off the scale of release {release}, "
                                         rf"{scale}.*{bad:g} at row 4"):  # fmt: skip
        load_movielens(folder, data_home=no_env / "home")
    assert parsed_entries(no_env / "home") == []


def test_empty_file(no_env):
    folder = no_env / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_bytes(b"")
    with pytest.raises(ValueError, match="is empty"):
        load_movielens(folder, data_home=no_env / "home")
    (folder / "u.data").write_bytes(b"\n\n")
    with pytest.raises(ValueError, match="does not look like a MovieLens ratings file"):
        load_movielens(folder, data_home=no_env / "home")
    folder = no_env / "ml-25m"
    folder.mkdir()
    (folder / "ratings.csv").write_bytes(b"userId,movieId,rating,timestamp\n")
    with pytest.raises(ValueError, match="holds no ratings"):
        load_movielens(folder, data_home=no_env / "home")


# ---------------------------------------------------------------------------------------------
# the parsed cache


def memory_mapped(a: np.ndarray) -> bool:
    while a is not None:
        if isinstance(a, np.memmap):
            return True
        a = getattr(a, "base", None)
    return False


def count_parses(monkeypatch) -> list:
    calls: list = []
    for name in ("parse_ratings", "parse_ratings_stream"):
        real = getattr(ml, name)

        def wrapped(*args, _real=real, **kwargs):
            calls.append(args)
            return _real(*args, **kwargs)

        monkeypatch.setattr(ml, name, wrapped)
    return calls


@pytest.mark.parametrize("as_zip", [False, True])
def test_second_load_memory_maps_the_cache(as_zip, no_env, monkeypatch):
    where = write_release(no_env / "data", "ml-25m", as_zip=as_zip)
    calls = count_parses(monkeypatch)
    home = no_env / "home"
    first = load_movielens(where, data_home=home)
    second = load_movielens(where, data_home=home)
    assert len(calls) == 1
    assert_same(second, ROWS_HALF)
    assert all(memory_mapped(second[c].to_numpy()) for c in second)
    (cache,) = (home / "parsed").iterdir()
    assert sorted(p.name for p in cache.iterdir()) == [
        "item.npy", "meta.json", "rating.npy", "timestamp.npy", "user.npy"]  # fmt: skip
    # editing the loaded frame never changes the cache
    second.loc[0, "rating"] = 1.0
    second["user"] += 1
    assert_same(load_movielens(where, data_home=home), ROWS_HALF)
    assert len(calls) == 1
    pd.testing.assert_frame_equal(first, expected_frame(ROWS_HALF))


def test_changed_source_is_parsed_again(no_env, monkeypatch):
    folder = write_release(no_env / "data", "ml-25m")
    home = no_env / "home"
    assert_same(load_movielens(folder, data_home=home), ROWS_HALF)
    (folder / "ratings.csv").write_bytes(ratings_text("ml-25m", ROWS_HALF[:5]))
    os.utime(folder / "ratings.csv", ns=(1, 2))
    assert_same(load_movielens(folder, data_home=home), ROWS_HALF[:5])
    assert len(list((home / "parsed").iterdir())) == 1  # the stale cache is gone


def test_damaged_cache_is_rebuilt(no_env, monkeypatch):
    folder = write_release(no_env / "data", "ml-25m")
    home = no_env / "home"
    load_movielens(folder, data_home=home)
    (cache,) = (home / "parsed").iterdir()
    (cache / "rating.npy").write_bytes(b"garbage")
    calls = count_parses(monkeypatch)
    with pytest.warns(RuntimeWarning, match=r"rating\.npy is not a readable \.npy file"):
        assert_same(load_movielens(folder, data_home=home), ROWS_HALF)
    assert len(calls) == 1
    assert_same(load_movielens(folder, data_home=home), ROWS_HALF)


def test_cache_off_and_unwritable_cache(no_env):
    folder = write_release(no_env / "data", "ml-25m")
    load_movielens(folder, data_home=no_env / "home", cache=False)
    assert not (no_env / "home").exists()
    blocker = no_env / "a-file"
    blocker.write_bytes(b"")
    with pytest.warns(RuntimeWarning, match="could not write the parsed cache"):
        df = load_movielens(folder, data_home=blocker)
    assert_same(df, ROWS_HALF)


# ---------------------------------------------------------------------------------------------
# the parser's fast paths against its plain reading


def random_rows(n: int, seed: int):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 2**31 - 1, n)
    items = rng.integers(0, 300_000, n)
    halves = rng.integers(1, 11, n)
    stamps = rng.integers(-(10**11), 10**12, n)
    return [
        (int(u), int(i), h / 2, int(t))
        for u, i, h, t in zip(users, items, halves, stamps, strict=True)
    ]


def test_parallel_chunks_and_streamed_blocks_match_the_serial_parse(no_env, monkeypatch):
    rows = random_rows(20_000, 1)
    text = ratings_text("ml-25m", rows)
    buf = np.frombuffer(text, dtype=np.uint8)
    serial = _parse.parse_ratings(buf, releases.CSV, "x", parallel=False)
    parallel = _parse.parse_ratings(buf, releases.CSV, "x", parallel=True)
    expected = expected_frame(rows)
    for name in expected:
        np.testing.assert_array_equal(serial[name], expected[name])
        np.testing.assert_array_equal(parallel[name], expected[name])
    # a zip member read in blocks that cut lines anywhere
    monkeypatch.setattr(_parse, "STREAM_BLOCK", 997)
    archive = write_release(no_env / "data", "ml-25m", rows, as_zip=True)
    assert_same(load_movielens(archive, data_home=no_env / "home", cache=False), rows)


def test_parallel_error_reports_the_first_bad_line(no_env):
    rows = random_rows(5_000, 2)
    text = ratings_text("ml-25m", rows).splitlines(keepends=True)
    text[3001] = b"7,8,nine,10\n"
    text[4000] = b"7,8,9.0\n"
    buf = np.frombuffer(b"".join(text), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"line 3002: the rating field is not a number"):
        _parse.parse_ratings(buf, releases.CSV, "x", parallel=True)


def inflaters():
    import zlib

    mods = [pytest.param(zlib, id="zlib")]
    try:
        from isal import isal_zlib
    except ImportError:
        mods.append(pytest.param(None, id="isal", marks=pytest.mark.skip("isal not installed")))
    else:
        mods.append(pytest.param(isal_zlib, id="isal"))
    return mods


@pytest.mark.parametrize("module", inflaters())
def test_member_stream_matches_zipfile_and_checks_crc(module, no_env):
    from fastmf.data.datasets import _zip

    rows = random_rows(3_000, 3)
    archive = write_release(no_env / "data", "ml-25m", rows, as_zip=True)
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("ml-25m/ratings.csv")
        with _zip.open_member(zf, info, module) as stream:
            blocks = iter(lambda: stream.read(1000), b"")
            assert b"".join(blocks) == zf.read(info)
    # flip one byte of the stored CRC-32 (central directory and local header)
    data = bytearray(archive.read_bytes())
    crc = info.CRC.to_bytes(4, "little")
    bad = (info.CRC ^ 1).to_bytes(4, "little")
    assert data.count(crc) == 2
    archive.write_bytes(bytes(data).replace(crc, bad))
    with zipfile.ZipFile(archive) as zf:
        stream = _zip.open_member(zf, zf.getinfo(info.filename), module)
        with stream, pytest.raises(zipfile.BadZipFile, match="Bad CRC-32"):
            while stream.read(1 << 16):
                pass
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_movielens(archive, data_home=no_env / "home")
    assert parsed_entries(no_env / "home") == []


# ---------------------------------------------------------------------------------------------
# movies.csv: one record a line, quotes checked


def write_movies_csv(root: Path, body: str) -> Path:
    folder = root / "ml-latest-small"
    folder.mkdir(parents=True)
    (folder / "ratings.csv").write_bytes(ratings_text("ml-latest-small", ROWS_HALF))
    (folder / "movies.csv").write_text("movieId,title,genres\n" + body, encoding="utf-8")
    return folder


def test_movies_csv_quotes_commas_and_doubled_quotes(no_env):
    body = (
        '1,Toy Story (1995),Adventure|Animation\r\n'
        '11,"American President, The (1995)",Comedy|Drama|Romance\r\n'
        '\r\n'
        '1411,"""Great"" Performances: Cats (1998)",Musical\r\n'
        '26,Othello "the Moor" (1995),Drama\r\n'
        '31,NA,(no genres listed)'
    )  # fmt: skip
    movies = load_movies(write_movies_csv(no_env, body))
    assert movies["item"].tolist() == [1, 11, 1411, 26, 31]
    assert movies["title"].tolist() == [
        "Toy Story (1995)", "American President, The (1995)",
        '"Great" Performances: Cats (1998)', 'Othello "the Moor" (1995)', "NA",
    ]  # fmt: skip
    assert movies["genres"].tolist()[1] == "Comedy|Drama|Romance"
    assert movies["genres"].tolist()[-1] == "(no genres listed)"


def test_movies_csv_unclosed_quote_names_the_line(no_env):
    body = (
        "1,Toy Story (1995),Adventure\n"
        '2,"Jumanji (1995),Adventure|Children\n'
        '3,"Grumpier Old Men, The (1995)",Comedy|Romance\n'
        "4,Heat (1995),Action\n"
    )
    folder = write_movies_csv(no_env, body)
    with pytest.raises(ValueError, match=r"movies\.csv, line 3: a quoted field is not closed on "
                                         r"its line \(an unclosed quote\)\. The line reads "
                                         r"'2,\"Jumanji"):  # fmt: skip
        load_movies(folder)


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ('2,"Jumanji" (1995),Adventure', r"line 2: a quoted field is followed by text"),
        ("2,Jumanji, The (1995),Adventure", r"line 2: 4 comma-separated fields, expected 3"),
        ("2,Jumanji (1995)", r"line 2: 2 comma-separated fields, expected 3"),
        ("x,Jumanji (1995),Adventure", r"line 2: the movie id 'x' is not a non-negative"),
    ],
)
def test_movies_csv_bad_lines_name_the_line(line, match, no_env):
    folder = write_movies_csv(no_env, line + "\n1,Toy Story (1995),Adventure\n")
    with pytest.raises(ValueError, match=match):
        load_movies(folder)


def test_real_movies_csv_agrees_with_pandas(small_root, monkeypatch, tmp_path):
    monkeypatch.setenv("FASTMF_DATA", str(small_root))
    movies = load_movies("ml-latest-small", data_home=tmp_path, download=False)
    ref = pd.read_csv(small_root / "ml-latest-small" / "movies.csv", keep_default_na=False)
    assert movies["item"].tolist() == ref["movieId"].tolist()
    assert movies["title"].tolist() == ref["title"].tolist()
    assert movies["genres"].tolist() == ref["genres"].tolist()
    assert any('"' in t for t in movies["title"])  # the file's doubled quotes were read


@pytest.mark.parametrize("method", [99, 12])
def test_zip_member_with_unknown_or_unusual_compression_is_a_value_error(no_env, tmp_path, method):
    path = tmp_path / "ratings.zip"
    zip_with_compression(path, method=method)
    with pytest.raises(ValueError, match=str(path)):
        load_movielens(path, data_home=no_env / "home")
    assert parsed_entries(no_env / "home") == []


def zip_with_compression(path: Path, method: int) -> None:
    """A zip of a MovieLens-style ratings.csv whose member claims compression ``method``."""
    import struct

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,9\n2,1,3.0,9\n")
    data = bytearray(path.read_bytes())
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    data[local + 8 : local + 10] = struct.pack("<H", method)
    data[central + 10 : central + 12] = struct.pack("<H", method)
    path.write_bytes(bytes(data))
