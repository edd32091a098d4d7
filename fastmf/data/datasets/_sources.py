"""Where a MovieLens release's files are: found by name in ``$FASTMF_DATA`` and ``data_home``
(downloaded when missing), or given as the path of a zip, a folder or a ratings file.

In each folder the extracted release folder (``ml-25m/``; ``ml-10M100K/`` for ml-10m) or the
archive as GroupLens ships it (``ml-25m.zip``) is taken.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from fastmf.data.datasets import _download
from fastmf.data.datasets._checks import sniff_format
from fastmf.data.datasets.releases import (
    FORMAT_BY_FILENAME,
    MOVIES_FILES,
    RELEASES,
    RatingsFormat,
    Release,
    release_named,
    release_of_name,
    unknown_release,
)

DATA_ENV = "FASTMF_DATA"


@dataclass(frozen=True)
class Source:
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


def _data_roots() -> list[Path]:
    env = os.environ.get(DATA_ENV, "")
    return [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]


def locate(
    name_or_path: object, home: Path, *, download: bool, base_url: str | None, progress: bool
) -> Source:
    """Find the release or file that ``name_or_path`` names; download it when allowed."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            "name_or_path must be a release name or a path (str or os.PathLike), not "
            f"{type(name_or_path).__name__}"
        )
    text = os.fspath(name_or_path)
    release = release_named(text) if isinstance(name_or_path, str) else None
    if release is not None:
        return _find_release(release, home, download=download, base_url=base_url,
                             progress=progress)  # fmt: skip
    path = Path(text).expanduser()
    if path.exists():
        return _source_from_path(path)
    looks_like_name = isinstance(name_or_path, str) and os.sep not in text and "." not in text
    if looks_like_name and (text.lower().startswith("ml") or not text):
        raise unknown_release(text)
    raise FileNotFoundError(
        f"no such file or folder: {text!r}; pass a release name ({', '.join(RELEASES)}) or the "
        "path of a release's zip, folder or ratings file"
    )


def _find_release(
    release: Release, home: Path, *, download: bool, base_url: str | None, progress: bool
) -> Source:
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


def _source_from_path(path: Path) -> Source:
    if path.is_dir():
        src = _source_from_dir(path, release_of_name(path.name), required=True)
        assert src is not None
        return src
    with open(path, "rb") as f:
        magic = f.read(4)
    if path.suffix.lower() == ".zip" or magic.startswith(b"PK"):
        return _source_from_zip(path, None)
    return Source(path, "file", release_of_name(path.parent.name), None)


def _source_from_dir(folder: Path, release: Release | None, *, required: bool) -> Source | None:
    """The ratings file in ``folder``; None (or an error when ``required``) when there is none."""
    present = [name for name in FORMAT_BY_FILENAME if (folder / name).is_file()]
    if release is not None:
        expected = release.ratings.filename
        if expected in present:
            return Source(folder, "dir", release, expected)
        if present:
            raise ValueError(
                f"{folder} holds {present[0]}, but {release.name} ships its ratings as "
                f"{release.ratings.description}: is this another release's folder? Point to it "
                "by its own name or path."
            )
    elif len(present) == 1:
        return Source(folder, "dir", None, present[0])
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


def open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
        raise ValueError(
            f"{path} is not a readable zip archive ({exc}): the file is corrupt or truncated, "
            "for example an interrupted download. Delete it and download it again."
        ) from exc


def _source_from_zip(path: Path, release: Release | None) -> Source:
    with open_zip(path) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
    # find the ratings file: GroupLens zips hold one top folder; accept a flat zip too
    ranked = sorted((n.count("/"), n) for n in names if n.rsplit("/", 1)[-1] in FORMAT_BY_FILENAME)
    candidates = [n for depth, n in ranked if depth <= 1]
    if release is None and candidates:
        top = candidates[0].rsplit("/", 1)[0] if "/" in candidates[0] else ""
        release = release_of_name(top) or release_of_name(path.name)
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
    return Source(path, "zip", release, member, prefix)


def ratings_entry(src: Source) -> tuple[RatingsFormat, str | None]:
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


def movies_entry(src: Source) -> tuple[str, str] | None:
    """(movies file name, its member or file name in the source) or None when absent."""
    order = [src.release.movies_file] if src.release else list(MOVIES_FILES)
    if src.kind == "zip":
        with open_zip(src.path) as zf:
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
