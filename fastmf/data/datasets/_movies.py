"""Read the movies file of a MovieLens release into titles and genres: ``u.item`` (ml-100k),
``movies.dat`` (ml-1m, ml-10m) or ``movies.csv`` (the later releases)."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd

# The 19 genre flags of ml-100k's u.item, in the order of its u.genre.
UITEM_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


def parse_movies(data: bytes, filename: str, encoding: str | None, where: str) -> pd.DataFrame:
    """The movies file ``filename`` (its bytes ``data``) as columns item, title, genres.

    ``encoding`` is the release's (None: utf-8, else latin-1); ``where`` names the file in errors.
    """
    if filename == "u.item":
        return _parse_uitem(data, where)
    text = _decode(data, encoding, where)
    if filename == "movies.dat":
        return _parse_movies_dat(text, where)
    return _parse_movies_csv(text, where)


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
        names = [g for g, f in zip(UITEM_GENRES, flags, strict=True) if f.strip() == "1"]
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
