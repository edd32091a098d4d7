"""The MovieLens downloader against a real HTTP server on 127.0.0.1 (started by these tests).

The server serves a small ml-100k.zip built by the tests and its MD5 file, counts the requests,
and can be told to publish a wrong digest, to cut the connection halfway, or to answer 404.
"""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from collections import Counter
from pathlib import Path

import pytest

from fastmf.data.datasets import _download, load_movielens, load_movies
from fastmf.data.datasets._download import parse_md5
from fastmf.errors import DownloadError
from tests.data.test_movielens import ROWS_INT, assert_same, write_release


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        srv = self.server
        srv.requests[self.path] += 1
        name = self.path.rsplit("/", 1)[-1]
        if name in srv.missing or name not in srv.files:
            self.send_error(404)
            return
        body = srv.files[name]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if name in srv.cut:
            # promise the whole file, send half of it, then hang up
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.requests: Counter = Counter()
        self.cut: set[str] = set()
        self.missing: set[str] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/movielens/"

    def downloads(self, name: str = "ml-100k.zip") -> int:
        return sum(n for path, n in self.requests.items() if path.endswith("/" + name))


@pytest.fixture
def server(tmp_path, monkeypatch):
    """An HTTP server on 127.0.0.1 serving ml-100k.zip and its MD5 in BSD style."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("FASTMF_DATA", raising=False)
    monkeypatch.delenv("FASTMF_MOVIELENS_URL", raising=False)
    monkeypatch.setenv("FASTMF_HOME", str(tmp_path / "default-home"))
    archive = write_release(tmp_path / "served", "ml-100k", as_zip=True)
    data = archive.read_bytes()
    srv = _Server()
    srv.files["ml-100k.zip"] = data
    srv.files["ml-100k.zip.md5"] = f"MD5 (ml-100k.zip) = {hashlib.md5(data).hexdigest()}\n".encode()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield srv
    srv.shutdown()
    thread.join()
    srv.server_close()


def leftovers(home: Path) -> list[str]:
    return sorted(p.name for p in home.iterdir()) if home.exists() else []


def test_good_download_then_nothing_fetched(server, tmp_path):
    home = tmp_path / "home"
    df = load_movielens("ml-100k", data_home=home, base_url=server.url, progress=False)
    assert_same(df, ROWS_INT)
    assert server.downloads() == 1
    assert server.downloads("ml-100k.zip.md5") == 1
    assert leftovers(home) == ["ml-100k.zip", "parsed"]  # no temporary file left
    assert (home / "ml-100k.zip").read_bytes() == server.files["ml-100k.zip"]
    # a second call fetches nothing: neither from the parsed cache nor from the zip alone
    assert_same(load_movielens("ml-100k", data_home=home, base_url=server.url), ROWS_INT)
    assert_same(load_movielens("ml-100k", data_home=home, base_url=server.url, cache=False),
                ROWS_INT)  # fmt: skip
    assert load_movies("ml-100k", data_home=home, base_url=server.url)["item"].tolist() == [1, 2, 3]
    assert sum(server.requests.values()) == 2


def test_base_url_from_the_environment(server, tmp_path, monkeypatch):
    monkeypatch.setenv("FASTMF_MOVIELENS_URL", server.url.rstrip("/"))
    assert_same(load_movielens("ml-100k", data_home=tmp_path / "home", progress=False), ROWS_INT)
    assert server.downloads() == 1
    # and the default data home is FASTMF_HOME
    load_movielens("ml-100k", progress=False)
    assert (tmp_path / "default-home" / "ml-100k.zip").is_file()
    assert server.downloads() == 2


def test_wrong_md5_is_an_error_naming_both_digests(server, tmp_path):
    wrong = "0123456789abcdef0123456789abcdef"
    server.files["ml-100k.zip.md5"] = wrong.encode()  # a bare digest
    good = hashlib.md5(server.files["ml-100k.zip"]).hexdigest()
    home = tmp_path / "home"
    with pytest.raises(ValueError, match=rf"MD5 mismatch.*published digest is {wrong}.*is {good}"):
        load_movielens("ml-100k", data_home=home, base_url=server.url, progress=False)
    assert leftovers(home) == []


def test_connection_cut_halfway_leaves_nothing(server, tmp_path):
    server.cut.add("ml-100k.zip")
    home = tmp_path / "home"
    size = len(server.files["ml-100k.zip"])
    with pytest.raises(DownloadError, match=rf"stopped after {size // 2:,} of {size:,} bytes"):
        load_movielens("ml-100k", data_home=home, base_url=server.url, progress=False)
    assert leftovers(home) == []
    # once the server behaves, the download goes through
    server.cut.clear()
    assert_same(load_movielens("ml-100k", data_home=home, base_url=server.url), ROWS_INT)


def test_no_network_says_where_to_put_the_file(server, tmp_path):
    with socket.socket() as s:  # a port on which nobody listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = tmp_path / "home"
    with pytest.raises(DownloadError, match=rf"could not reach .*put ml-100k\.zip .*in {home}"):
        load_movielens("ml-100k", data_home=home, base_url=f"http://127.0.0.1:{port}/")
    assert leftovers(home) == []


def test_missing_archive_is_a_download_error(server, tmp_path):
    server.missing.add("ml-100k.zip")
    with pytest.raises(DownloadError, match="HTTP 404"):
        load_movielens("ml-100k", data_home=tmp_path / "home", base_url=server.url)
    assert leftovers(tmp_path / "home") == []


def test_missing_checksum_warns_and_downloads(server, tmp_path):
    server.missing.add("ml-100k.zip.md5")
    with pytest.warns(RuntimeWarning, match="no checksum published"):
        df = load_movielens("ml-100k", data_home=tmp_path / "home", base_url=server.url)
    assert_same(df, ROWS_INT)


def test_download_false_fetches_nothing(server, tmp_path):
    with pytest.raises(FileNotFoundError, match="download=False"):
        load_movielens("ml-100k", data_home=tmp_path / "home", base_url=server.url, download=False)
    assert sum(server.requests.values()) == 0


@pytest.mark.parametrize(
    "text",
    [
        "MD5 (ml-25m.zip) = 6b51fb2759a8657d3bfcbfc42b592ada\n",
        "6b51fb2759a8657d3bfcbfc42b592ada\n",
        "6B51FB2759A8657D3BFCBFC42B592ADA",
        "6b51fb2759a8657d3bfcbfc42b592ada  ml-25m.zip\n",
        (
            "MD5 (ml-1m.zip) = 00000000000000000000000000000000\n"
            "MD5 (ml-25m.zip) = 6b51fb2759a8657d3bfcbfc42b592ada\n"
        ),
    ],
)
def test_parse_md5_formats(text):
    assert parse_md5(text, "ml-25m.zip") == "6b51fb2759a8657d3bfcbfc42b592ada"


def test_parse_md5_without_a_digest():
    with pytest.raises(ValueError, match="no MD5 digest"):
        parse_md5("<html>not found</html>", "ml-25m.zip")


def test_base_url_default_and_type(monkeypatch):
    monkeypatch.delenv("FASTMF_MOVIELENS_URL", raising=False)
    assert _download.base_url() == "https://files.grouplens.org/datasets/movielens/"
    assert _download.base_url("http://mirror/x") == "http://mirror/x/"
    with pytest.raises(TypeError, match="base_url"):
        _download.base_url(3)
