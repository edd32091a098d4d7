"""Parse and cached-load speed of MovieLens ratings in ML-25M's format, up to 25 million rows.

The file is generated in a temporary folder (680 MB at 25M rows, removed afterwards): 162,541
users sorted by id, each user's movies sorted, half-star ratings and ten-digit timestamps, written
as ``ratings.csv`` with ML-25M's header, and zipped as GroupLens ships it. Targets at 25M ratings
on a 2-core machine: a first load (parse and write the cache) at most 10 s, a later (cached) load
at most 1 s.

```
pytest benchmarks/test_bench_parse.py --benchmark-only                # 1M rows
pytest benchmarks/test_bench_parse.py --benchmark-only --bench-25m    # and 25M (about a minute)
pytest benchmarks/test_bench_parse.py --benchmark-only --bench-sizes 5000    # a smoke run
```

``extra_info`` holds the machine, the rows and file size, the CPU seconds of a first load (all
threads; on a shared machine it grows much less than the wall time) and the inflate module.
"""

from __future__ import annotations

import shutil
import time
import zipfile
from pathlib import Path

import numba
import numpy as np
import pytest

from benchmarks.compare.machine import machine_info
from fastmf.data.datasets import _parse, _zip, load_movielens

SIZES = {"1m": 1_000_000, "25m": 25_000_095}
N_USERS = 162_541
N_ITEMS = 209_171
HEADER = b"userId,movieId,rating,timestamp\n"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "n_rows" not in metafunc.fixturenames:
        return
    opt = metafunc.config.getoption("--bench-sizes")
    if opt:
        sizes = [pytest.param(int(float(x)), id=x.strip()) for x in opt.split(",") if x.strip()]
    else:
        sizes = [
            pytest.param(n, id=name, marks=[pytest.mark.bench25m] if name == "25m" else [])
            for name, n in SIZES.items()
        ]
    metafunc.parametrize("n_rows", sizes, scope="module")


def _digits(v: np.ndarray, width: int) -> np.ndarray:
    """Decimal digits of ``v`` as ASCII, right-aligned in ``width`` columns, 0 where blank."""
    out = np.empty((v.size, width), dtype=np.uint8)
    for k in range(width):
        power = 10 ** (width - 1 - k)
        out[:, k] = (v // power) % 10 + 48
        if k < width - 1:
            out[v < power, k] = 0  # no leading zeros (0 bytes are dropped later)
    return out


def write_ml25m_like(path: Path, n_rows: int, seed: int = 0) -> None:
    """Write ``n_rows`` ratings in ML-25M's ``ratings.csv`` format to ``path``."""
    rng = np.random.default_rng(seed)
    n_users = min(N_USERS, n_rows)
    weights = rng.lognormal(0.0, 1.2, n_users)
    per_user = 1 + rng.multinomial(n_rows - n_users, weights / weights.sum())
    users = np.repeat(np.arange(1, n_users + 1, dtype=np.int64), per_user)
    items = rng.integers(1, N_ITEMS + 1, n_rows)
    key = np.sort(users << 20 | items)  # sorted by user, then movie
    users, items = key >> 20, key & ((1 << 20) - 1)
    del key
    halves = rng.integers(1, 11, n_rows)
    stamps = rng.integers(789_652_009, 1_574_327_703, n_rows)
    with open(path, "wb") as f:
        f.write(HEADER)
        step = 1_000_000
        for lo in range(0, n_rows, step):
            s = slice(lo, lo + step)
            h = halves[s]
            rating = np.stack([h // 2 + 48, np.full_like(h, 46), (h % 2) * 5 + 48], axis=1)
            comma = np.full((h.size, 1), 44, dtype=np.uint8)
            newline = np.full((h.size, 1), 10, dtype=np.uint8)
            line = np.hstack(
                [
                    _digits(users[s], 6), comma, _digits(items[s], 6), comma,
                    rating.astype(np.uint8), comma, _digits(stamps[s], 10), newline,
                ]
            )  # fmt: skip
            f.write(line[line != 0].tobytes())


@pytest.fixture(scope="module")
def ml25m_like(tmp_path_factory, n_rows):
    """``ml-25m/ratings.csv`` and ``ml-25m.zip`` (as GroupLens zips it); removed afterwards."""
    root = tmp_path_factory.mktemp("bench-parse")
    folder = root / "ml-25m"
    folder.mkdir()
    write_ml25m_like(folder / "ratings.csv", n_rows)
    with zipfile.ZipFile(root / "ml-25m.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.write(folder / "ratings.csv", "ml-25m/ratings.csv")
    _warm_up(root / "warm-up")
    yield folder
    shutil.rmtree(root, ignore_errors=True)  # never keep the 700 MB around


def _warm_up(tmp: Path) -> None:
    """Compile (or load from Numba's cache) every parse kernel outside the timings."""
    folder = tmp / "ml-25m"
    folder.mkdir(parents=True)
    write_ml25m_like(folder / "ratings.csv", 400_000)
    with zipfile.ZipFile(tmp / "ml-25m.zip", "w") as zf:
        zf.write(folder / "ratings.csv", "ml-25m/ratings.csv")
    old = _parse.PARALLEL_MIN_BYTES
    _parse.PARALLEL_MIN_BYTES = 0
    try:
        load_movielens(folder, data_home=tmp / "home", cache=False)
        load_movielens(tmp / "ml-25m.zip", data_home=tmp / "home", cache=False)
    finally:
        _parse.PARALLEL_MIN_BYTES = old


def _record(benchmark, path: Path, n_rows: int) -> None:
    benchmark.extra_info.update(
        machine_info(),
        numba_threads=numba.get_num_threads(),
        rows=n_rows,
        file_mb=round(path.stat().st_size / 1e6, 1),
    )


def _fresh_home(tmp_path: Path):
    """pytest-benchmark setup: a new, empty data_home for each round (so each is a first load)."""
    count = iter(range(10**6))

    def setup():
        home = tmp_path / f"home-{next(count)}"
        return (), {"data_home": home}

    return setup


def _timed(fn):
    """``fn`` that also records its process CPU time (user + system, all threads) in ``cpu``."""
    cpu: list[float] = []

    def run(*args, **kwargs):
        t0 = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            cpu.append(time.process_time() - t0)

    run.cpu = cpu  # type: ignore[attr-defined]
    return run


@pytest.mark.parametrize("source", ["folder", "zip"])
def test_first_load(benchmark, ml25m_like, tmp_path, source, n_rows):
    """First load: read (and inflate), parse, check, and write the parsed cache. Target <= 10 s.

    ``extra_info["cpu_s"]`` is the CPU time the load used: on a machine shared with other work
    the wall time grows, the CPU time much less.
    """
    path = ml25m_like if source == "folder" else ml25m_like.parent / "ml-25m.zip"
    _record(benchmark, path if source == "zip" else path / "ratings.csv", n_rows)
    run = _timed(lambda data_home: load_movielens(path, data_home=data_home))
    try:
        df = benchmark.pedantic(run, setup=_fresh_home(tmp_path), rounds=2)
        benchmark.extra_info["cpu_s"] = round(min(run.cpu), 2)
        benchmark.extra_info["inflate"] = _zip.inflate_module().__name__
        assert len(df) == n_rows
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)  # the caches are 500 MB at 25M rows


def test_cached_load(benchmark, ml25m_like, tmp_path, n_rows):
    """A later load: memory-map the parsed cache. Target <= 1 s."""
    load_movielens(ml25m_like, data_home=tmp_path)
    _record(benchmark, ml25m_like / "ratings.csv", n_rows)
    try:
        df = benchmark.pedantic(lambda: load_movielens(ml25m_like, data_home=tmp_path), rounds=5)
        assert len(df) == n_rows
        assert float(df["rating"].mean()) == pytest.approx(2.75, abs=0.1)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)
