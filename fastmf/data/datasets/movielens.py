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

import os

import numpy as np
import pandas as pd

from fastmf.data.datasets import _cache, _zip
from fastmf.data.datasets._movies import parse_movies
from fastmf.data.datasets._parse import parse_ratings, parse_ratings_stream
from fastmf.data.datasets._sources import Source, locate, movies_entry, open_zip, ratings_entry
from fastmf.data.datasets.releases import RatingsFormat, Scale, default_scale

__all__ = ["load_movielens", "load_movies"]


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
    src = locate(name_or_path, home, download=download, base_url=base_url, progress=progress)
    fmt, member = ratings_entry(src)
    where = src.describe(member)
    label = src.release.name if src.release else "ratings"
    fp_path = src.path / member if src.kind == "dir" and member is not None else src.path
    fp = _cache.fingerprint(fp_path, member if src.kind == "zip" else None)
    folder = _cache.cache_dir(home, label, fp)
    scale = src.release.scale if src.release else default_scale(fmt)
    arrays = _cache.load(folder, fp, scale) if cache else None
    if arrays is None:
        rel = src.release.name if src.release else None
        arrays = _parse_source(src, member, fmt, where, rel, scale)
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
    src = locate(name_or_path, home, download=download, base_url=base_url, progress=progress)
    found = movies_entry(src)
    if found is None:
        return None
    filename, member = found
    data = _read_raw(src, member)
    where = src.describe(member)
    encoding = src.release.movies_encoding if src.release else None
    return parse_movies(data, filename, encoding, where)


# ---------------------------------------------------------------------------------------------
# reading


def _read_raw(src: Source, name: str) -> bytes:
    """The bytes of file ``name`` of the source (a zip member, a file in a folder, or the file)."""
    if src.kind == "zip":
        with open_zip(src.path) as zf:
            try:
                return zf.read(name)
            except _zip.READ_ERRORS as exc:
                raise ValueError(
                    f"{src.path}: cannot read {name} ({exc}); the archive is corrupt or "
                    "truncated. Delete it and download it again."
                ) from exc
    path = src.path / name if src.kind == "dir" else src.path.parent / name
    return path.read_bytes()


def _parse_source(
    src: Source,
    member: str | None,
    fmt: RatingsFormat,
    where: str,
    release: str | None,
    scale: Scale,
) -> dict[str, np.ndarray]:
    """Parse the ratings file of ``src``: a zip member as it is inflated, a file memory-mapped."""
    if src.kind == "zip":
        assert member is not None  # a zip source always names its ratings member
        return _parse_zip_member(src, member, fmt, where, release, scale)
    buf = _read_bytes(src, member)
    return parse_ratings(buf, fmt, where, release=release, scale=scale)


def _parse_zip_member(
    src: Source, member: str, fmt: RatingsFormat, where: str, release: str | None, scale: Scale
) -> dict[str, np.ndarray]:
    """Parse a ratings member of a zip while it is being inflated."""
    with open_zip(src.path) as zf:
        info = zf.getinfo(member)
        try:
            stream = _zip.open_member(zf, info)
        except _zip.READ_ERRORS as exc:
            raise ValueError(
                f"{src.path}: cannot read {member} ({exc}); the archive is corrupt or "
                "truncated. Delete it and download it again."
            ) from exc
        with stream:
            return parse_ratings_stream(
                stream, info.file_size, fmt, where, release=release, scale=scale,
                read_errors=_zip.READ_ERRORS,
            )  # fmt: skip


def _read_bytes(src: Source, member: str | None) -> np.ndarray:
    """The ratings file (a plain file, not in a zip) as a memory-mapped uint8 array."""
    path = src.path / member if src.kind == "dir" and member else src.path
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=np.uint8)
    return np.memmap(path, dtype=np.uint8, mode="r")
