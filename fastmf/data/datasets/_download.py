"""Download a MovieLens archive from GroupLens (or a mirror), checked against its published MD5.

The archive is written under a temporary name in the destination folder and renamed to its real
name only once it is whole and its MD5 matches, so an interrupted download never leaves a file
that looks complete.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tempfile
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from tqdm.auto import tqdm

from fastmf.errors import DownloadError  # noqa: F401 - re-exported here too

DEFAULT_BASE_URL = "https://files.grouplens.org/datasets/movielens/"
BASE_URL_ENV = "FASTMF_MOVIELENS_URL"

_MD5_RE = re.compile(r"(?:MD5\s*\((?P<name>[^)]*)\)\s*=\s*)?(?P<hex>\b[0-9a-fA-F]{32}\b)")
_CHUNK = 1 << 20


def base_url(url: str | None = None) -> str:
    """The base address of the archives: ``url``, else ``$FASTMF_MOVIELENS_URL``, else GroupLens."""
    if url is None:
        url = os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    if not isinstance(url, str):
        raise TypeError(f"base_url must be a str or None, not {type(url).__name__}")
    return url if url.endswith("/") else url + "/"


def parse_md5(text: str, filename: str | None = None) -> str:
    """The hex digest in an ``.md5`` file, lower-case.

    Reads both ``MD5 (ml-25m.zip) = 6b51...`` (BSD style), ``6b51...  ml-25m.zip`` (md5sum style)
    and a bare digest. Raises ValueError when no digest is found.
    """
    for m in _MD5_RE.finditer(text):
        name = m.group("name")
        if filename is None or name is None or Path(name.strip()).name == filename:
            return m.group("hex").lower()
    raise ValueError(
        f"no MD5 digest found in checksum text {text[:100]!r}; expected 'MD5 (name) = <32 hex>' "
        "or a bare 32-hex-digit digest"
    )


def _manual_hint(filename: str, url: str, dest: Path) -> str:
    return (
        f"To install it by hand, download {url} (with any browser or machine that has network) "
        f"and put {filename} (or its extracted folder) in {dest}, or in a folder named by the "
        "FASTMF_DATA environment variable; or pass its path to load_movielens()."
    )


def _open(url: str, timeout: float):
    req = urllib.request.Request(url, headers={"User-Agent": "fastmf"})
    return urllib.request.urlopen(req, timeout=timeout)


def fetch_md5(url: str, filename: str, dest: Path, timeout: float) -> str | None:
    """The MD5 published at ``url``, or None (with a warning) when the server has none."""
    try:
        with _open(url, timeout) as resp:
            text = resp.read(4096).decode("ascii", errors="replace")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            warnings.warn(
                f"no checksum published at {url} (HTTP 404); {filename} will not be checked "
                "against an MD5",
                RuntimeWarning,
                stacklevel=4,
            )
            return None
        raise DownloadError(
            f"could not fetch the checksum {url}: HTTP {exc.code} {exc.reason}. "
            + _manual_hint(filename, url[: -len(".md5")], dest)
        ) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"could not reach {url} ({reason}); is there a network connection? "
            + _manual_hint(filename, url[: -len(".md5")], dest)
        ) from exc
    return parse_md5(text, filename)


def download(
    filename: str,
    dest: Path,
    *,
    url: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``filename`` from the base address into folder ``dest``; return its path.

    Parameters
    ----------
    filename : str
        The archive's name, e.g. ``"ml-25m.zip"``; its MD5 is read from ``filename + ".md5"``.
    dest : Path
        The folder to put it in (created if needed).
    url : str, optional
        The base address; see :func:`base_url`.
    progress : bool
        Show a progress bar.
    timeout : float
        Seconds to wait for the server before giving up.

    Raises
    ------
    DownloadError
        No network, an HTTP error, or a connection cut before the whole file arrived.
    ValueError
        The file's MD5 differs from the published one (the file is removed).
    """
    address = base_url(url) + filename
    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(
            f"cannot create the download folder {dest} ({exc}); pass a writable data_home or "
            "set FASTMF_HOME"
        ) from exc
    expected = fetch_md5(address + ".md5", filename, dest, timeout)
    final = dest / filename
    fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=dest)
    tmp = Path(tmp_name)
    try:
        got = _receive(fd, address, filename, dest, timeout=timeout, progress=progress)
        if expected is not None and got != expected:
            raise ValueError(
                f"MD5 mismatch for {address}: the published digest is {expected} but the "
                f"downloaded file's is {got}; the file was removed. Try again, or check that "
                f"the address ({BASE_URL_ENV} or base_url) points to an official copy."
            )
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return final


def _receive(
    fd: int, address: str, filename: str, dest: Path, *, timeout: float, progress: bool
) -> str:
    """Write the file at ``address`` into the open file ``fd`` (closed after); its MD5 in hex.

    Raises DownloadError on an HTTP error, a failed connection, or one closed before the length
    the server announced arrived.
    """
    digest = hashlib.md5()
    received = 0
    try:
        with os.fdopen(fd, "wb") as out, _open(address, timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=filename,
                disable=not progress,
                leave=False,
            ) as bar:
                while True:
                    block = resp.read(_CHUNK)
                    if not block:
                        break
                    out.write(block)
                    digest.update(block)
                    received += len(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as exc:
        raise DownloadError(
            f"could not download {address}: HTTP {exc.code} {exc.reason}. "
            + _manual_hint(filename, address, dest)
        ) from exc
    except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(
            f"downloading {address} failed after {received:,} bytes ({reason}); nothing was "
            "kept, try again. " + _manual_hint(filename, address, dest)
        ) from exc
    if total is not None and received != total:
        raise DownloadError(
            f"downloading {address} stopped after {received:,} of {total:,} bytes (the "
            "connection was closed); nothing was kept, try again. "
            + _manual_hint(filename, address, dest)
        )
    return digest.hexdigest()
