"""The out-of-core store at scale: build and train a RatingStore under a memory limit.

    python -m benchmarks.store_scale                       # 200M ratings, 1M users, 60k items
    python -m benchmarks.store_scale --ratings 50M --compare 10M --limit 1.5G

Synthetic ratings from a hidden biased rank-8 model (half stars 0.5-5) are written as chunk
files (``.npz`` of user, item, rating; 1M ratings each, users in order as MovieLens files are),
with one held-out rating per user in ``test.npz``. Each step runs in its own process:

- **build**: ``RatingStore.build`` from the chunk files read one by one, under the memory limit
  (a v1 memory cgroup, ``benchmarks/cgroup.py``);
- **train**: ``fit(store)`` for the epochs asked, under the same limit: epoch seconds, bytes
  read per epoch (asked of the store, and read from the disk per ``/proc/self/io``), the time
  the kernel waited for reads, peak memory, held-out RMSE against the ratings' spread;
- **compare**: at a size both can do, one epoch from memory against one from a store, and one
  pass that only reads the store's shifts (no training): where the epoch is bound.

Results print as JSON lines and a markdown summary (``benchmarks/README.md`` quotes one run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

CHUNK = 1_000_000
RANK = 8


def parse_count(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 10**3, "M": 10**6, "G": 10**9}.get(text[-1], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def parse_bytes(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


# ---------------------------------------------------------------------------------------------
# the data


def generate(folder: Path, n_ratings: int, n_users: int, n_items: int, seed: int = 0) -> None:
    """Chunk files of distinct (user, item) pairs: user u rates items o_u + k·s_u mod n_items
    (s_u prime to n_items), its held-out rating is the next one in that sequence."""
    if (folder / "done.json").exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    bu = rng.normal(0, 0.3, n_users).astype(np.float32)
    bi = rng.normal(0, 0.3, n_items).astype(np.float32)
    P = rng.normal(0, 0.45, (n_users, RANK)).astype(np.float32)
    Q = rng.normal(0, 0.45, (n_items, RANK)).astype(np.float32)
    weights = rng.lognormal(0, 0.8, n_users)
    counts = np.maximum(1, np.floor(weights / weights.sum() * n_ratings)).astype(np.int64)
    counts = np.minimum(counts, n_items - 2)
    short = n_ratings - int(counts.sum())
    bump = rng.choice(n_users, abs(short), replace=True)
    np.add.at(counts, bump, 1 if short > 0 else -1)
    counts = np.clip(counts, 1, n_items - 2)
    strides = np.array([s for s in range(7, 5000) if math.gcd(s, n_items) == 1])
    stride = rng.choice(strides, n_users)
    offset = rng.integers(0, n_items, n_users)

    def rate(users, items):
        x = 3.5 + bu[users] + bi[items] + np.einsum("ij,ij->i", P[users], Q[items])
        x += rng.normal(0, 0.4, users.shape[0]).astype(np.float32)
        return np.clip(np.round(x * 2) / 2, 0.5, 5.0).astype(np.float32)

    ends = np.cumsum(counts)
    lo_user, k = 0, 0
    while lo_user < n_users:
        start = ends[lo_user - 1] if lo_user else 0
        hi_user = int(np.searchsorted(ends, start + CHUNK, side="right"))
        hi_user = max(hi_user, lo_user + 1)
        users = np.repeat(np.arange(lo_user, hi_user), counts[lo_user:hi_user])
        c = counts[lo_user:hi_user]
        rank = np.arange(users.shape[0]) - np.repeat(ends[lo_user:hi_user] - c - start, c)
        items = (offset[users] + rank * stride[users]) % n_items
        np.savez(folder / f"chunk_{k:05d}.npz", user=users.astype(np.int32),
                 item=items.astype(np.int32), rating=rate(users, items))  # fmt: skip
        lo_user, k = hi_user, k + 1
    users = np.arange(n_users)
    items = (offset + counts * stride) % n_items
    np.savez(folder / "test.npz", user=users.astype(np.int32), item=items.astype(np.int32),
             rating=rate(users, items))  # fmt: skip
    (folder / "done.json").write_text(json.dumps({"n_ratings": int(counts.sum()), "chunks": k}))


def chunk_frames(folder: Path, limit: int | None = None):
    """The chunk files as DataFrames, one at a time (``limit``: stop after that many ratings)."""
    import pandas as pd

    seen = 0
    for path in sorted(folder.glob("chunk_*.npz")):
        with np.load(path) as z:
            df = pd.DataFrame({"user": z["user"], "item": z["item"], "rating": z["rating"]})
        if limit is not None and seen + len(df) > limit:
            df = df.iloc[: limit - seen]
        seen += len(df)
        yield df
        if limit is not None and seen >= limit:
            return


# ---------------------------------------------------------------------------------------------
# the steps, each run in a child process


def io_read_bytes() -> int:
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("read_bytes:"):
                return int(line.split()[1])
    return 0


def step_build(data: Path, store: Path, limit: int | None) -> dict:
    from fastmf import RatingStore

    shutil.rmtree(store, ignore_errors=True)
    t0 = time.perf_counter()
    s = RatingStore.build(store, chunk_frames(data, limit))
    return {"build_s": time.perf_counter() - t0, "n_ratings": s.n_ratings,
            "n_users": s.n_users, "n_items": s.n_items, "n_strata": s.n_strata,
            "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}  # fmt: skip


def step_train(data: Path, store: Path, factors: int, epochs: int, memory: bool) -> dict:
    import pandas as pd

    from fastmf import MatrixFactorization, RatingStore

    s = RatingStore.open(store)
    model = MatrixFactorization(n_factors=factors, n_epochs=epochs, n_jobs=2, verbose=0,
                                random_state=0)  # fmt: skip
    io0 = io_read_bytes()
    if memory:
        frames = list(chunk_frames(data, s.n_ratings))
        model.fit(pd.concat(frames, ignore_index=True))
        waited = None
    else:
        model.fit(s)
        waited = model._state.blocks.wait_seconds
    with np.load(data / "test.npz") as z:
        test = pd.DataFrame({"user": z["user"], "item": z["item"], "rating": z["rating"]})
    known = test[test.user.isin(model.user_map_.ids)]
    pred = model.predict(known)
    rmse = float(np.sqrt(np.mean((pred - known.rating.to_numpy()) ** 2)))
    return {
        "epoch_s": model.history_["seconds"].tolist(),
        "store_bytes_read_per_epoch": s.bytes_read / epochs if not memory else 0,
        "disk_bytes_read_per_epoch": (io_read_bytes() - io0) / epochs,
        "read_wait_s": waited,
        "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "test_rmse": rmse,
        "test_spread": float(known.rating.std()),
        "train_rmse": float(model.history_["train_rmse"].iloc[-1]),
    }


def step_read(store: Path) -> dict:
    """One epoch's reads alone: every shift's blocks, in a shuffled shift order."""
    from fastmf import RatingStore
    from fastmf.train.batch_points import block_points
    from fastmf.train.from_store import StreamedBlocks

    s = RatingStore.open(store)
    blocks = StreamedBlocks.of(s, 2)
    bounds, owned = block_points(s.block_offsets)
    order = np.random.default_rng(0).permutation(s.n_strata)
    t0 = time.perf_counter()
    for _ in blocks.shift_pieces(order, bounds, owned):
        pass
    return {"read_epoch_s": time.perf_counter() - t0, "bytes": s.bytes_read}


def child_main(argv: list[str]) -> None:
    step, data, store, *rest = argv
    if step == "build":
        out = step_build(Path(data), Path(store), int(rest[0]) or None)
    elif step == "train":
        out = step_train(Path(data), Path(store), int(rest[0]), int(rest[1]), rest[2] == "1")
    else:
        out = step_read(Path(store))
    print("RESULT " + json.dumps(out))


# ---------------------------------------------------------------------------------------------
# the parent


def run_step(args: list[str], limit: int | None, timeout: float) -> dict:
    from benchmarks import cgroup

    cmd = ["-m", "benchmarks.store_scale", "--child", *args]
    if limit is None:
        import subprocess

        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, timeout=timeout)
        run = cgroup.Run(p.returncode, p.stdout, p.stderr, time.perf_counter() - t0, 0, 0)
    else:
        run = cgroup.run_limited(cmd, limit, timeout=timeout)
    out = {"step": args[0], "returncode": run.returncode, "wall_s": run.seconds,
           "cgroup_peak_bytes": run.peak_bytes, "cgroup_failcnt": run.failcnt}  # fmt: skip
    for line in run.stdout.splitlines():
        if line.startswith("RESULT "):
            out.update(json.loads(line[7:]))
    if run.returncode != 0:
        out["stderr"] = run.stderr[-2000:]
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ratings", default="200M")
    ap.add_argument("--users", default="1M")
    ap.add_argument("--items", default="60k")
    ap.add_argument("--limit", default="1.5G", help="memory limit of build and train")
    ap.add_argument("--compare", default="20M", help="size for memory against store (0: skip)")
    ap.add_argument("--factors", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--work", default="/tmp/fastmf-store-bench")
    ap.add_argument("--timeout", type=float, default=3600)
    a = ap.parse_args()
    n, n_users, n_items = parse_count(a.ratings), parse_count(a.users), parse_count(a.items)
    limit = parse_bytes(a.limit)
    work = Path(a.work)
    data = work / f"data-{n}-{n_users}-{n_items}"
    print(json.dumps({"uptime": os.getloadavg(), "cpus": os.cpu_count()}), flush=True)
    t0 = time.perf_counter()
    generate(data, n, n_users, n_items)
    print(json.dumps({"step": "generate", "wall_s": time.perf_counter() - t0}), flush=True)
    store = work / f"store-{n}"
    run_step(["build", str(data), str(store), "0"], limit, a.timeout)
    run_step(["train", str(data), str(store), str(a.factors), str(a.epochs), "0"], limit,
             a.timeout)  # fmt: skip
    c = parse_count(a.compare)
    if c:
        small = work / f"store-{c}"
        run_step(["build", str(data), str(small), str(c)], None, a.timeout)
        run_step(["train", str(data), str(small), str(a.factors), "1", "1"], None, a.timeout)
        run_step(["train", str(data), str(small), str(a.factors), "1", "0"], None, a.timeout)
        run_step(["read", str(data), str(small)], None, a.timeout)
    print(json.dumps({"uptime_end": os.getloadavg()}), flush=True)


if __name__ == "__main__":
    main()
