"""How long a fit takes before its first epoch, and where that time goes.

```
python -m benchmarks.setup_speed                       # the 25M twin, dense int32 ids
python -m benchmarks.setup_speed --ids int64,str       # and sparse int64 and string ids
python -m benchmarks.setup_speed --csv                 # and a ratings.csv parse (first, cached)
python -m benchmarks.setup_speed --size 1M --reps 2    # a smaller twin
```

The data is the ML-25M twin (``$FASTMF_TWIN_DIR/synth_<size>.npz``, default /tmp/fastmf-twin;
see ``../shared/bench/make_twin.py``): its training rows as a shuffled DataFrame (int32 user and
item, float32 rating). The setup is a 1-epoch default fit less its epoch (``history_``'s
``seconds``); the breakdown times the steps of ``to_ratings`` and ``initialize`` one by one, in
the order a fit runs them. ``--ids int64`` spreads the ids over int64 (id × 1,000,003 + 7: too
sparse for a table) and ``--ids str`` turns them into text (``"u123"``). ``--csv`` writes the twin
as a 25M-row ``ratings.csv`` to a temporary folder, then loads it with ``load_movielens`` twice:
the first parse (which writes the parsed cache) and a cached load. Each figure is the fastest of
``--reps`` runs, all in one process, so their ratios share the machine's load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fastmf import MatrixFactorization
from fastmf._validation import check_ratings_values
from fastmf.data.blocks import lay_out_unordered
from fastmf.data.ids import factorize_and_count, text_column
from fastmf.data.ratings import Ratings
from fastmf.train.layout import fit_ratings, strata_of
from fastmf.train.params import resolve_for_data
from fastmf.train.state import fingerprint, initial_parameters, initialize

TWIN_DIR = Path(os.environ.get("FASTMF_TWIN_DIR", "/tmp/fastmf-twin"))


def twin_frame(size: str, ids: str = "int32") -> pd.DataFrame:
    """The twin's training rows as a DataFrame (rows as the twin shuffled them)."""
    d = np.load(TWIN_DIR / f"synth_{size}.npz")
    n = int(d["n_train"])
    users, items = d["user"][:n].astype(np.int32), d["item"][:n].astype(np.int32)
    if ids == "int64":
        users = users.astype(np.int64) * 1_000_003 + 7
        items = items.astype(np.int64) * 1_000_003 + 7
    elif ids == "str":
        users = np.char.add("u", users.astype(str)).astype(object)
        items = np.char.add("i", items.astype(str)).astype(object)
    return pd.DataFrame({"user": users, "item": items, "rating": d["rating"][:n]})


def _ids(column: pd.Series):
    """An id column as ``Ratings.from_dataframe`` hands it on (text Series as they are)."""
    return column if text_column(column) else column.to_numpy()


def _clock(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


class _Steps:
    """Wall and CPU seconds (all threads) of the steps run inside ``step`` blocks."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def run(self, name: str, fn, *args, **kwargs):
        w, c = time.perf_counter(), time.process_time()
        out = fn(*args, **kwargs)
        self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - w
        self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - c
        return out


def breakdown(df: pd.DataFrame) -> _Steps:
    """Seconds of each setup step, run one after the other as a fit runs them."""
    st = _Steps()
    u, i, r = _ids(df["user"]), _ids(df["item"]), df["rating"].to_numpy()
    vals = st.run("rating check", check_ratings_values, r).astype(np.float32, copy=False)
    uc, umap, ucount = st.run("user ids and counts", factorize_and_count, u, column="user",
                              copy=False)  # as fit does  # fmt: skip
    ic, imap, icount = st.run("item ids and counts", factorize_and_count, i, column="item",
                              copy=False)  # fmt: skip
    raw = Ratings(uc, ic, vals, umap, imap)
    counted = None if ucount is None or icount is None else (ucount, icount)
    rows = st.run("rating counts (if not counted), strata", strata_of, raw, counted)
    st.run("block layout, duplicates", lay_out_unordered, raw.users, raw.items, raw.values,
           rows[0], rows[2], rows[1], rows[3])  # fmt: skip
    model = MatrixFactorization(n_epochs=1, random_state=0, verbose=0)
    prepared = fit_ratings(df, None, "error", holds_out=False)  # the steps above, as fit runs them
    params = resolve_for_data(model._check_params(), prepared)  # the counts above, reused
    st.run("initialize (factors, biases, key)", initialize, model, prepared, params,
           np.random.default_rng(0))  # fmt: skip
    st.run("  of which key (fingerprint)", fingerprint, prepared)
    st.run("  of which factors (draw)", initial_parameters, np.random.default_rng(0),
           prepared.n_users, prepared.n_items, params, np.dtype(model.dtype))  # fmt: skip
    return st


def fit_setup(df: pd.DataFrame) -> tuple[float, float]:
    """(setup, epoch) seconds of a 1-epoch default fit: the fit less its epoch, and its epoch."""
    model = MatrixFactorization(n_epochs=1, random_state=0, verbose=0)
    t = time.perf_counter()
    model.fit(df)
    total = time.perf_counter() - t
    epoch = float(model.history_["seconds"].iloc[-1])
    return total - epoch, epoch


def csv_figures(df: pd.DataFrame, reps: int) -> dict[str, float]:
    """First parse and cached load of the twin written as ML-25M's ratings.csv."""
    from fastmf.datasets import load_movielens

    root = Path(tempfile.mkdtemp(prefix="fastmf-setup-csv-"))
    try:
        folder = root / "ml-25m"
        folder.mkdir()
        path = folder / "ratings.csv"
        stamps = np.random.default_rng(0).integers(789_652_009, 1_574_327_703, len(df))
        frame = df.assign(timestamp=stamps).rename(columns={"user": "userId", "item": "movieId"})
        frame["userId"] += 1
        frame["movieId"] += 1
        frame.to_csv(path, index=False, float_format="%.1f")
        load_movielens(folder, data_home=root / "warm", cache=False)
        first = []
        for k in range(reps):
            _, secs = _clock(lambda home=root / f"home-{k}": load_movielens(folder, data_home=home))
            first.append(secs)
        cached = min(_clock(lambda: load_movielens(folder, data_home=root / "home-0"))[1]
                     for _ in range(max(3, reps)))  # fmt: skip
        return {"first parse s": min(first), "cached load s": cached,
                "file MB": path.stat().st_size / 1e6}  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="25M", help="the twin: 1M, 5M or 25M")
    ap.add_argument("--ids", default="int32", help="comma-separated: int32, int64, str")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--csv", action="store_true", help="also a ratings.csv parse and load")
    args = ap.parse_args(argv)
    print(f"load average at start: {os.getloadavg()}")
    warm = twin_frame("1M").iloc[:100_000]
    MatrixFactorization(n_epochs=1, random_state=0, verbose=0).fit(warm)  # compile or load
    for kind in args.ids.split(","):
        df = twin_frame(args.size, kind)
        breakdown(df.iloc[:100_000])
        runs = [fit_setup(df) for _ in range(args.reps)]
        setup = min(s for s, _ in runs)
        epoch = min(e for _, e in runs)
        print(f"\n{args.size} twin, {kind} ids, {len(df):,} ratings, shuffled DataFrame")
        print(f"setup (1-epoch fit less its epoch): {setup:.3f} s; epoch {epoch:.3f} s; "
              f"setup / epoch {setup / epoch:.2f}")  # fmt: skip
        parts = [breakdown(df) for _ in range(args.reps)]
        print(f"  {'step':36s} {'wall s':>7s} {'CPU s':>7s}  (fastest of {args.reps})")
        for name in parts[0].wall:
            wall = min(p.wall[name] for p in parts)
            cpu = min(p.cpu[name] for p in parts)
            print(f"  {name:36s} {wall:7.3f} {cpu:7.3f}")
        del df
    if args.csv:
        figs = csv_figures(twin_frame(args.size), args.reps)
        first, cached = figs["first parse s"], figs["cached load s"]
        print(f"\nratings.csv ({figs['file MB']:.0f} MB): first parse {first:.2f} s, "
              f"cached load {cached:.3f} s")  # fmt: skip
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
