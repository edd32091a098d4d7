"""The MovieLens releases fastmf knows: their ratings file formats, rating scales and files.

The three ratings formats (``u.data``, ``ratings.dat``, ``ratings.csv``) differ only in their
separator and header; each release uses one of them and one rating scale.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RatingsFormat:
    """One ratings file layout: its file name, separator and header line (if any)."""

    key: str
    filename: str
    sep: bytes
    header: tuple[str, ...] | None
    description: str


UDATA = RatingsFormat("udata", "u.data", b"\t", None, "tab-separated u.data (ml-100k)")
DAT = RatingsFormat("dat", "ratings.dat", b"::", None, "'::'-separated ratings.dat (ml-1m, ml-10m)")
CSV = RatingsFormat(
    "csv",
    "ratings.csv",
    b",",
    ("userId", "movieId", "rating", "timestamp"),
    "ratings.csv with header userId,movieId,rating,timestamp (ml-20m and later)",
)
FORMAT_BY_FILENAME = {f.filename: f for f in (UDATA, DAT, CSV)}


@dataclass(frozen=True)
class Scale:
    """The ratings a release allows: ``low``..``high`` in steps of ``step``."""

    low: float
    high: float
    step: float
    description: str


STARS_1_5 = Scale(1.0, 5.0, 1.0, "whole stars 1-5")
HALF_STARS = Scale(0.5, 5.0, 0.5, "half stars 0.5-5.0")


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
MOVIES_FILES = ("u.item", "movies.dat", "movies.csv")

MOVIELENS_SIZES: dict[str, tuple[int, int, int]] = {
    # name: (n_ratings, n_users, n_items), the published counts of each release
    "ml-100k": (100_000, 943, 1_682),
    "ml-1m": (1_000_209, 6_040, 3_706),
    "ml-10m": (10_000_054, 69_878, 10_681),
    "ml-20m": (20_000_263, 138_493, 26_744),
    "ml-25m": (25_000_095, 162_541, 59_047),
    "ml-32m": (32_000_204, 200_948, 87_585),
}


def release_named(name: str) -> Release | None:
    """The release called ``name`` (any case, spaces around ignored), or None."""
    return RELEASES.get(name.strip().lower())


def release_of_name(name: str) -> Release | None:
    """The release whose folder or archive is called ``name`` (``ml-10M100K``, ``ml-1m.zip``)."""
    stem = name[: -len(".zip")] if name.lower().endswith(".zip") else name
    return _BY_FOLDER.get(stem.lower())


def unknown_release(name: str) -> ValueError:
    """The error for a release name fastmf does not know, listing those it does."""
    known = ", ".join(RELEASES)
    return ValueError(
        f"unknown MovieLens release {name!r}: expected one of {known}, or the path of a "
        "release's zip, folder or ratings file"
    )


def default_scale(fmt: RatingsFormat) -> Scale:
    """The widest scale of the releases that use ``fmt`` (for files of no known release)."""
    return STARS_1_5 if fmt is UDATA else HALF_STARS
