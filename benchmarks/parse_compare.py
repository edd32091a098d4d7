"""fastmf's ratings parser against ``pandas.read_csv`` (C engine) and ``pyarrow.csv``, on one
MovieLens-format ``ratings.csv`` (ML-25M's header and columns).

Each reader runs in a fresh process: *cold* is its first call (for fastmf with an empty Numba
cache, so the parse kernels compile; for pandas and pyarrow their import), *warm* the best of
two more calls in the same process. Every reader produces the same four numpy columns (user and
item int32, rating float32, timestamp int64), checked equal to fastmf's. The file's pages are
read once beforehand, so every reader finds it in the page cache.

```
python -m benchmarks.parse_compare /tmp/ratings.csv
python -m benchmarks.parse_compare --write-twin /tmp/fastmf-twin/synth_25M.npz /tmp/ratings.csv
python -m benchmarks.parse_compare --zip /tmp/ratings.csv   # zipped (ratings.zip beside it)
```
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

READERS = ("fastmf", "pandas", "pyarrow")

_CHILD = textwrap.dedent(
    """
    import json, sys, time, zipfile
    import numpy as np
    reader, path, out = sys.argv[1:4]
    member = "ml-25m/ratings.csv"
    source = zipfile.ZipFile(path).open if path.endswith(".zip") else None
    t0 = time.perf_counter()
    c0 = time.process_time()

    if reader == "fastmf":
        from fastmf.data.datasets._parse import parse_ratings
        from fastmf.data.datasets.releases import CSV, HALF_STARS

        def read():
            if source is not None:  # what load_movielens does with a zip: parse as it inflates
                from fastmf.data.datasets import _zip
                from fastmf.data.datasets._parse import parse_ratings_stream

                with zipfile.ZipFile(path) as zf:
                    info = zf.getinfo(member)
                    with _zip.open_member(zf, info) as stream:
                        cols = parse_ratings_stream(stream, info.file_size, CSV, path,
                                                    scale=HALF_STARS)
            else:
                buf = np.memmap(path, dtype=np.uint8, mode="r")
                cols = parse_ratings(buf, CSV, path, scale=HALF_STARS)
            return cols["user"], cols["item"], cols["rating"], cols["timestamp"]
    elif reader == "pandas":
        import pandas as pd
        types = {"userId": np.int32, "movieId": np.int32, "rating": np.float32,
                 "timestamp": np.int64}

        def read():
            df = pd.read_csv(source(member) if source else path, dtype=types, engine="c")
            return tuple(df[c].to_numpy() for c in types)
    else:
        import pyarrow as pa
        import pyarrow.csv as pc
        types = {"userId": pa.int32(), "movieId": pa.int32(), "rating": pa.float32(),
                 "timestamp": pa.int64()}

        def read():
            options = pc.ConvertOptions(column_types=types)
            table = pc.read_csv(source(member) if source else path, convert_options=options)
            return tuple(table.column(c).to_numpy() for c in types)

    cols = read()
    cold, cold_cpu = time.perf_counter() - t0, time.process_time() - c0
    warm, warm_cpu = [], []
    for _ in range(2):
        t1, c1 = time.perf_counter(), time.process_time()
        cols = read()
        warm.append(time.perf_counter() - t1)
        warm_cpu.append(time.process_time() - c1)
    np.savez(out + ".npz", *cols)
    with open(out, "w") as f:
        json.dump({"cold": cold, "cold_cpu": cold_cpu, "warm": min(warm),
                   "warm_cpu": min(warm_cpu), "rows": len(cols[0])}, f)
    """
)


def run(reader: str, path: Path, workdir: Path) -> dict:
    """One reader in a fresh process; its timings (and the columns, saved beside)."""
    out = workdir / f"{reader}.json"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(workdir / "numba-cache")}
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, reader, str(path), str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1]}
    return json.loads(out.read_text())


def write_twin(npz: Path, path: Path) -> None:
    """ML-25M's ``ratings.csv`` format from a synthetic twin (ids from 1, seeded timestamps)."""
    import numpy as np

    from benchmarks.test_bench_parse import HEADER, _digits

    z = np.load(npz)
    users, items = z["user"].astype(np.int64) + 1, z["item"].astype(np.int64) + 1
    halves = np.rint(z["rating"] * 2).astype(np.int64)
    stamps = np.random.default_rng(0).integers(789_652_009, 1_574_327_703, users.size)
    with open(path, "wb") as f:
        f.write(HEADER)
        for lo in range(0, users.size, 1_000_000):
            s = slice(lo, lo + 1_000_000)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("csv", type=Path, help="a ratings.csv in ML-25M's format")
    parser.add_argument("--write-twin", type=Path, help="first write csv from this twin's npz")
    parser.add_argument("--readers", default=",".join(READERS))
    parser.add_argument(
        "--zip", action="store_true", help="read csv zipped as GroupLens ships ml-25m.zip"
    )
    args = parser.parse_args(argv)
    if args.write_twin:
        write_twin(args.write_twin, args.csv)
    if args.zip:
        zipped = args.csv.with_suffix(".zip")
        if not zipped.exists():
            with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
                zf.write(args.csv, "ml-25m/ratings.csv")
        args.csv = zipped
    with open(args.csv, "rb") as f:  # into the page cache, for every reader alike
        while f.read(64 << 20):
            pass
    import numpy as np

    print(f"{args.csv} ({args.csv.stat().st_size / 1e6:,.0f} MB); load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="fastmf-parse-") as tmp:
        results, reference = {}, None
        for reader in args.readers.split(","):
            results[reader] = r = run(reader, args.csv, Path(tmp))
            if "error" in r:
                print(f"  {reader:<8} failed: {r['error']}")
                continue
            with np.load(Path(tmp) / f"{reader}.json.npz") as z:
                cols = [z[k] for k in sorted(z.files)]
            if reference is None:
                reference = cols
            same = all(np.array_equal(a, b) for a, b in zip(cols, reference, strict=True))
            print(
                f"  {reader:<8} cold {r['cold']:6.2f} s ({r['cold_cpu']:5.2f} s CPU)  "
                f"warm {r['warm']:6.2f} s ({r['warm_cpu']:5.2f} s CPU)  {r['rows']:,} rows"
                + ("" if same else "  DIFFERENT COLUMNS")
            )
        print(f"load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
