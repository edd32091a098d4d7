"""Every MovieLens release, from a zip, a folder or a ratings file; downloaded when missing.

``load_movielens`` finds a release in this order: the folders named by ``$FASTMF_DATA`` (read
only: nothing is ever written there), then ``data_home`` (by default ``$FASTMF_HOME``, else the
user's cache folder such as ``~/.cache/fastmf``), and last downloads the official archive from
GroupLens into ``data_home``. In each folder it takes the extracted release folder (``ml-25m/``;
``ml-10M100K/`` for ml-10m) or the archive as GroupLens ships it (``ml-25m.zip``).

The first load of a source parses it and writes the columns in binary form to
``data_home/parsed/``; later loads memory-map that cache and take well under a second.
"""

from __future__ import annotations

import csv
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fastmf.datasets import _cache, _download, _zip
from fastmf.datasets._download import DownloadError
from fastmf.datasets._parse import (
    CSV,
    DAT,
    FORMAT_BY_FILENAME,
    HALF_STARS,
    STARS_1_5,
    UDATA,
    RatingsFormat,
    Scale,
    parse_ratings,
    parse_ratings_stream,
    sniff_format,
)

__all__ = ["RELEASES", "DownloadError", "load_movielens", "load_movies"]

DATA_ENV = "FASTMF_DATA"

# The 19 genre flags of ml-100k's u.item, in the order of its u.genre.
UITEM_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


@dataclass(frozen=True)
class Release:
    """One MovieLens release: its name, the top folder of its zip, its files and rating scale."""

    name: str
    folder: str
    ratings: RatingsFormat
    movies_file: str
    movies_encoding: str
    scale: Scale

    @property
    def archive(self) -> str:
        return f"{self.name}.zip"


RELEASES: dict[str, Release] = {
    r.name: r
    for r in (
        Release("ml-100k", "ml-100k", UDATA, "u.item", "latin-1", STARS_1_5),
        Release("ml-1m", "ml-1m", DAT, "movies.dat", "latin-1", STARS_1_5),
        Release("ml-10m", "ml-10M100K", DAT, "movies.dat", "utf-8", HALF_STARS),
        Release("ml-20m", "ml-20m", CSV, "movies.csv", "utf-8", HALF_STARS),
        Release("ml-25m", "ml-25m", CSV, "movies.csv", "utf-8", HALF_STARS),
        Release("ml-32m", "ml-32m", CSV, "movies.csv", "utf-8", HALF_STARS),
        Release("ml-latest-small", "ml-latest-small", CSV, "movies.csv", "utf-8", HALF_STARS),
        Release("ml-latest", "ml-latest", CSV, "movies.csv", "utf-8", HALF_STARS),
    )
}  # fmt: skip
_BY_FOLDER = {r.folder.lower(): r for r in RELEASES.values()} | {
    r.name: r for r in RELEASES.values()
}
_MOVIES_FILES = ("u.item", "movies.dat", "movies.csv")


@dataclass(frozen=True)
class _Source:
    """Where a release's files are: a folder or a zip (``zip_prefix`` is the folder inside it)."""

    path: Path  # folder, zip file, or the ratings file itself
    kind: str  # "dir" | "zip" | "file"
    release: Release | None
    ratings_name: str | None  # file name (dir), member name (zip), None (file)
    zip_prefix: str = ""

    def describe(self, name: str | None = None) -> str:
        if self.kind == "zip":
            return f"{self.path}!{name or self.ratings_name}"
        if self.kind == "dir":
            return str(self.path / (name or self.ratings_name or ""))
        return str(self.path)


# ---------------------------------------------------------------------------------------------
# public API


def load_movielens(
    name_or_path: str | os.PathLike[str],
    *,
    data_home: str | os.PathLike[str] | None = None,
    download: bool = True,
    base_url: str | None = None,
    cache: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """Load the ratings of a MovieLens release, checked, as a DataFrame.

    Parameters
    ----------
    name_or_path : str or path
        A release name (``"ml-100k"``, ``"ml-1m"``, ``"ml-10m"``, ``"ml-20m"``, ``"ml-25m"``,
        ``"ml-32m"``, ``"ml-latest-small"``, ``"ml-latest"``), or the path of a release's zip as
        GroupLens ships it, of its extracted folder, or of its ratings file (``u.data``,
        ``ratings.dat`` or ``ratings.csv``). A release name is looked up as described in the
        module doc, never in the current folder: write ``"./ml-25m"`` for a folder there.
    data_home : str or path, optional
        Folder for downloads and the parsed cache. Default ``$FASTMF_HOME``, else the user's
        cache folder (``$XDG_CACHE_HOME/fastmf`` or ``~/.cache/fastmf`` on Linux).
    download : bool, default True
        Download the release from GroupLens when it is found nowhere on disk.
    base_url : str, optional
        Address to download from, for mirrors. Default ``$FASTMF_MOVIELENS_URL``, else
        ``https://files.grouplens.org/datasets/movielens/``.
    cache : bool, default True
        Keep the parsed columns in ``data_home/parsed`` and memory-map them on later loads.
    progress : bool, default True
        Show a progress bar while downloading.

    Returns
    -------
    DataFrame
        Columns ``user`` (int32), ``item`` (int32, the MovieLens movie id), ``rating``
        (float32) and ``timestamp`` (int64, seconds since 1970), in file order. ``df.attrs``
        holds ``release`` (or None) and ``source``. Columns loaded from the cache are
        copy-on-write memory maps: editing the DataFrame never changes the cache.

    Raises
    ------
    ValueError
        An unknown release name; a corrupt or truncated zip; a file in another release's format;
        a missing column; a rating off the release's scale; an MD5 mismatch on download.
    FileNotFoundError
        A path that does not exist, or a release found nowhere with ``download=False``.
    DownloadError
        The release is on no disk and downloading it failed (an ``OSError``).

    Examples
    --------
    >>> ratings = load_movielens("ml-latest-small")  # doctest: +SKIP
    >>> ratings = load_movielens("~/data/ml-25m.zip")  # doctest: +SKIP
    """
    if not isinstance(download, bool):
        raise TypeError(f"download must be True or False, not {download!r}")
    home = _cache.get_data_home(data_home)
    src = _locate(name_or_path, home, download=download, base_url=base_url, progress=progress)
    fmt, member = _ratings_entry(src)
    where = src.describe(member)
    label = src.release.name if src.release else "ratings"
    fp_path = src.path if src.kind != "dir" else src.path / member
    fp = _cache.fingerprint(fp_path, member if src.kind == "zip" else None)
    folder = _cache.cache_dir(home, label, fp)
    scale = src.release.scale if src.release else _default_scale(fmt)
    arrays = _cache.load(folder, fp, scale) if cache else None
    if arrays is None:
        rel = src.release.name if src.release else None
        if src.kind == "zip":
            arrays = _parse_zip_member(src, member, fmt, where, rel, scale)
        else:
            buf = _read_bytes(src, member)
            arrays = parse_ratings(buf, fmt, where, release=rel, scale=scale)
            del buf
        # a source that changed while it was read is not cached (its fingerprint is the old one)
        if cache and _cache.fingerprint(fp_path, fp["member"]) == fp:
            _cache.store(folder, arrays, fp, {"release": rel, "format": fmt.key})
    df = pd.DataFrame(arrays, columns=list(_cache.COLUMNS), copy=False)
    df.attrs["release"] = src.release.name if src.release else None
    df.attrs["source"] = where
    return df


def load_movies(
    name_or_path: str | os.PathLike[str],
    *,
    data_home: str | os.PathLike[str] | None = None,
    download: bool = True,
    base_url: str | None = None,
    progress: bool = True,
) -> pd.DataFrame | None:
    """Load the titles and genres of a MovieLens release's movies.

    Takes the same ``name_or_path`` and options as :func:`load_movielens` and reads the movies
    file beside the ratings: ``u.item`` (ml-100k: ``|``-separated, latin-1, 19 genre flags),
    ``movies.dat`` (``::``-separated; latin-1 in ml-1m, utf-8 in ml-10m) or ``movies.csv``.

    Returns
    -------
    DataFrame or None
        Columns ``item`` (int32, the movie id), ``title`` (str) and ``genres`` (str, genres
        joined by ``|`` as in the later releases; ``"(no genres listed)"`` where none), one row
        per movie listed; None when no movies file sits beside the ratings.
    """
    home = _cache.get_data_home(data_home)
    src = _locate(name_or_path, home, download=download, base_url=base_url, progress=progress)
    found = _movies_entry(src)
    if found is None:
        return None
    filename, member = found
    data = _read_raw(src, member)
    where = src.describe(member)
    if filename == "u.item":
        return _parse_uitem(data, where)
    encoding = src.release.movies_encoding if src.release else None
    text = _decode(data, encoding, where)
    if filename == "movies.dat":
        return _parse_movies_dat(text, where)
    return _parse_movies_csv(text, where)


# ---------------------------------------------------------------------------------------------
# finding the files


def _release_named(name: str) -> Release | None:
    return RELEASES.get(name.strip().lower())


def _unknown_release(name: str) -> ValueError:
    known = ", ".join(RELEASES)
    return ValueError(
        f"unknown MovieLens release {name!r}: expected one of {known}, or the path of a "
        "release's zip, folder or ratings file"
    )


def _data_roots() -> list[Path]:
    env = os.environ.get(DATA_ENV, "")
    return [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]


def _locate(
    name_or_path: object, home: Path, *, download: bool, base_url: str | None, progress: bool
) -> _Source:
    """Find the release or file that ``name_or_path`` names; download it when allowed."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            "name_or_path must be a release name or a path (str or os.PathLike), not "
            f"{type(name_or_path).__name__}"
        )
    text = os.fspath(name_or_path)
    release = _release_named(text) if isinstance(name_or_path, str) else None
    if release is not None:
        return _find_release(release, home, download=download, base_url=base_url,
                             progress=progress)  # fmt: skip
    path = Path(text).expanduser()
    if path.exists():
        return _source_from_path(path)
    looks_like_name = isinstance(name_or_path, str) and os.sep not in text and "." not in text
    if looks_like_name and (text.lower().startswith("ml") or not text):
        raise _unknown_release(text)
    raise FileNotFoundError(
        f"no such file or folder: {text!r}; pass a release name ({', '.join(RELEASES)}) or the "
        "path of a release's zip, folder or ratings file"
    )


def _find_release(
    release: Release, home: Path, *, download: bool, base_url: str | None, progress: bool
) -> _Source:
    roots = _data_roots() + [home]
    looked = []
    for root in roots:
        for folder_name in dict.fromkeys((release.folder, release.name)):
            folder = root / folder_name
            looked.append(str(folder))
            if folder.is_dir():
                src = _source_from_dir(folder, release, required=False)
                if src is not None:
                    return src
        archive = root / release.archive
        looked.append(str(archive))
        if archive.is_file():
            return _source_from_zip(archive, release)
    if not download:
        raise FileNotFoundError(
            f"MovieLens {release.name} was not found (looked in {', '.join(looked)}) and "
            f"download=False. Download {_download.base_url(base_url)}{release.archive} and put "
            f"it (or its extracted folder {release.folder}/) in {home} or in a folder named by "
            f"${DATA_ENV}, or pass download=True."
        )
    path = _download.download(release.archive, home, url=base_url, progress=progress)
    return _source_from_zip(path, release)


def _release_of_name(name: str) -> Release | None:
    stem = name[: -len(".zip")] if name.lower().endswith(".zip") else name
    return _BY_FOLDER.get(stem.lower())


def _source_from_path(path: Path) -> _Source:
    if path.is_dir():
        src = _source_from_dir(path, _release_of_name(path.name), required=True)
        assert src is not None
        return src
    with open(path, "rb") as f:
        magic = f.read(4)
    if path.suffix.lower() == ".zip" or magic.startswith(b"PK"):
        return _source_from_zip(path, None)
    return _Source(path, "file", _release_of_name(path.parent.name), None)


def _source_from_dir(folder: Path, release: Release | None, *, required: bool) -> _Source | None:
    """The ratings file in ``folder``; None (or an error when ``required``) when there is none."""
    present = [name for name in FORMAT_BY_FILENAME if (folder / name).is_file()]
    if release is not None:
        expected = release.ratings.filename
        if expected in present:
            return _Source(folder, "dir", release, expected)
        if present:
            raise ValueError(
                f"{folder} holds {present[0]}, but {release.name} ships its ratings as "
                f"{release.ratings.description}: is this another release's folder? Point to it "
                "by its own name or path."
            )
    elif len(present) == 1:
        return _Source(folder, "dir", None, present[0])
    elif len(present) > 1:
        raise ValueError(
            f"{folder} holds several ratings files ({', '.join(present)}); pass the path of the "
            "one to load"
        )
    if not required:
        return None
    raise FileNotFoundError(
        f"no ratings file in {folder}: expected one of {', '.join(FORMAT_BY_FILENAME)}"
    )


_ZIP_ERRORS = _zip.READ_ERRORS


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
        raise ValueError(
            f"{path} is not a readable zip archive ({exc}): the file is corrupt or truncated, "
            "for example an interrupted download. Delete it and download it again."
        ) from exc


def _source_from_zip(path: Path, release: Release | None) -> _Source:
    with _open_zip(path) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
    # find the ratings file: GroupLens zips hold one top folder; accept a flat zip too
    candidates = sorted(
        (n.count("/"), n) for n in names if n.rsplit("/", 1)[-1] in FORMAT_BY_FILENAME
    )
    candidates = [n for depth, n in candidates if depth <= 1]
    if release is None and candidates:
        top = candidates[0].rsplit("/", 1)[0] if "/" in candidates[0] else ""
        release = _release_of_name(top) or _release_of_name(path.name)
    if release is not None:
        wanted = [n for n in candidates if n.rsplit("/", 1)[-1] == release.ratings.filename]
        if wanted:
            member = wanted[0]
        elif candidates:
            raise ValueError(
                f"{path} holds {candidates[0]}, but {release.name} ships its ratings as "
                f"{release.ratings.description}: is this another release's archive?"
            )
        else:
            member = None
    else:
        member = candidates[0] if len(candidates) == 1 else None
        if len(candidates) > 1:
            raise ValueError(
                f"{path} holds several ratings files ({', '.join(candidates)}); extract it and "
                "pass the path of the one to load"
            )
    if member is None:
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        expected = f"{release.folder}/{release.ratings.filename}" if release else (
            "u.data, ratings.dat or ratings.csv"
        )  # fmt: skip
        raise ValueError(
            f"{path} holds no MovieLens ratings file (expected {expected}); it holds: "
            f"{shown or 'nothing'}"
        )
    prefix = member.rsplit("/", 1)[0] + "/" if "/" in member else ""
    return _Source(path, "zip", release, member, prefix)


def _ratings_entry(src: _Source) -> tuple[RatingsFormat, str | None]:
    """The ratings file's format and its name in the folder or zip (None for a plain file)."""
    if src.kind == "file":
        fmt = FORMAT_BY_FILENAME.get(src.path.name)
        if fmt is None:
            with open(src.path, "rb") as f:
                head = f.read(4096).split(b"\n", 1)[0].decode("latin-1")
            fmt = (src.release.ratings if src.release else None) or sniff_format(head)
            if fmt is None:
                raise ValueError(
                    f"{src.path} is not a MovieLens ratings file: its first line {head[:80]!r} "
                    "is neither tab-, '::'- nor comma-separated"
                )
        elif src.release is not None and fmt is not src.release.ratings:
            raise ValueError(
                f"{src.path} is a {fmt.filename}, but {src.release.name} ships its ratings as "
                f"{src.release.ratings.description}: is this another release's file?"
            )
        return fmt, None
    assert src.ratings_name is not None
    return FORMAT_BY_FILENAME[src.ratings_name.rsplit("/", 1)[-1]], src.ratings_name


def _movies_entry(src: _Source) -> tuple[str, str | None] | None:
    """(movies file name, its member or file name in the source) or None when absent."""
    order = [src.release.movies_file] if src.release else list(_MOVIES_FILES)
    if src.kind == "zip":
        with _open_zip(src.path) as zf:
            names = set(zf.namelist())
        for filename in order:
            if src.zip_prefix + filename in names:
                return filename, src.zip_prefix + filename
        return None
    folder = src.path if src.kind == "dir" else src.path.parent
    for filename in order:
        if (folder / filename).is_file():
            return filename, filename
    return None


def _default_scale(fmt: RatingsFormat) -> Scale:
    """The widest scale of the releases that use ``fmt`` (for files of no known release)."""
    return STARS_1_5 if fmt is UDATA else HALF_STARS


# ---------------------------------------------------------------------------------------------
# reading


def _read_raw(src: _Source, name: str | None) -> bytes:
    """The bytes of file ``name`` of the source (a zip member, a file in a folder, or the file)."""
    if src.kind == "zip":
        with _open_zip(src.path) as zf:
            try:
                return zf.read(name)
            except _ZIP_ERRORS as exc:
                raise ValueError(
                    f"{src.path}: cannot read {name} ({exc}); the archive is corrupt or "
                    "truncated. Delete it and download it again."
                ) from exc
    path = src.path / name if src.kind == "dir" else src.path.parent / name
    return path.read_bytes()


def _parse_zip_member(
    src: _Source, member: str, fmt: RatingsFormat, where: str, release: str | None, scale: Scale
) -> dict[str, np.ndarray]:
    """Parse a ratings member of a zip while it is being inflated."""
    with _open_zip(src.path) as zf:
        info = zf.getinfo(member)
        try:
            stream = _zip.open_member(zf, info)
        except _ZIP_ERRORS as exc:
            raise ValueError(
                f"{src.path}: cannot read {member} ({exc}); the archive is corrupt or "
                "truncated. Delete it and download it again."
            ) from exc
        with stream:
            return parse_ratings_stream(
                stream, info.file_size, fmt, where, release=release, scale=scale,
                read_errors=_ZIP_ERRORS,
            )  # fmt: skip


def _read_bytes(src: _Source, member: str | None) -> np.ndarray:
    """The ratings file (a plain file, not in a zip) as a memory-mapped uint8 array."""
    path = src.path / member if src.kind == "dir" and member else src.path
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=np.uint8)
    return np.memmap(path, dtype=np.uint8, mode="r")


def _decode(data: bytes, encoding: str | None, where: str) -> str:
    if encoding is not None:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"{where} is not valid {encoding} ({exc}); is it this release's movies file?"
            ) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _movies_frame(items: list[int], titles: list[str], genres: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item": np.asarray(items, dtype=np.int32),
            "title": titles,
            "genres": genres,
        }
    )


def _parse_item_id(value: str, where: str, line_no: int, line: str) -> int:
    try:
        item = int(value)
    except ValueError:
        item = -1
    if not 0 <= item < 2**31:
        raise ValueError(
            f"{where}, line {line_no}: the movie id {value!r} is not a non-negative integer; "
            f"the line reads {line[:80]!r}"
        )
    return item


def _parse_uitem(data: bytes, where: str) -> pd.DataFrame:
    text = data.decode("latin-1")
    items, titles, genres = [], [], []
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 5 + len(UITEM_GENRES):
            raise ValueError(
                f"{where}, line {line_no}: {len(fields)} '|'-separated fields, expected "
                f"{5 + len(UITEM_GENRES)} (id|title|release date|video date|IMDb URL|19 genre "
                f"flags); the line reads {line[:80]!r}"
            )
        items.append(_parse_item_id(fields[0], where, line_no, line))
        titles.append(fields[1])
        flags = fields[5:]
        names = [g for g, f in zip(UITEM_GENRES, flags) if f.strip() == "1"]
        genres.append("|".join(names) if names else "(no genres listed)")
    return _movies_frame(items, titles, genres)


def _parse_movies_dat(text: str, where: str) -> pd.DataFrame:
    items, titles, genres = [], [], []
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("::")
        if len(fields) != 3:
            raise ValueError(
                f"{where}, line {line_no}: {len(fields)} '::'-separated fields, expected 3 "
                f"(MovieID::Title::Genres); the line reads {line[:80]!r}"
            )
        items.append(_parse_item_id(fields[0], where, line_no, line))
        titles.append(fields[1])
        genres.append(fields[2] or "(no genres listed)")
    return _movies_frame(items, titles, genres)


def _parse_movies_csv(text: str, where: str) -> pd.DataFrame:
    """movies.csv, one record a line: ``movieId,title,genres`` with titles quoted when they hold
    a comma or a quote (a quote inside doubled). A quote left open at the end of its line is an
    error naming the line, never a title that runs on over the next records."""
    lines = text.split("\n")
    header = lines[0].strip().lstrip("\ufeff")
    columns = [c.strip() for c in header.split(",")]
    missing = [c for c in ("movieId", "title", "genres") if c not in columns]
    if missing:
        raise ValueError(
            f"{where} has header {header[:80]!r}, missing column(s) "
            f"{', '.join(map(repr, missing))}; expected movieId,title,genres"
        )
    at = [columns.index(c) for c in ("movieId", "title", "genres")]
    items, titles, genres = [], [], []
    for line_no, raw in enumerate(lines[1:], 2):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        fields = _csv_fields(line, where, line_no) if '"' in line else line.split(",")
        if len(fields) != len(columns):
            raise ValueError(
                f"{where}, line {line_no}: {len(fields)} comma-separated fields, expected "
                f"{len(columns)} ({header[:80]}); a title that holds a comma must be quoted. "
                f"The line reads {line[:80]!r}"
            )
        items.append(_parse_item_id(fields[at[0]], where, line_no, line))
        titles.append(fields[at[1]])
        genres.append(fields[at[2]])
    return _movies_frame(items, titles, genres)


def _csv_fields(line: str, where: str, line_no: int) -> list[str]:
    """The fields of one csv line that holds a quote; raises naming the line when a quoted field
    is left open or is followed by more than a comma."""
    try:
        return next(csv.reader([line], strict=True))
    except csv.Error as exc:
        if "end of data" in str(exc):
            problem = "a quoted field is not closed on its line (an unclosed quote)"
        else:
            problem = f"a quoted field is followed by text before the next comma ({exc})"
        raise ValueError(
            f"{where}, line {line_no}: {problem}. The line reads {line[:80]!r}; quote a whole "
            'title ("Title, The (1999)") and double each quote inside it ("")'
        ) from None
