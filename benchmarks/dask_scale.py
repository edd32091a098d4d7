"""The Dask trainer against the in-process one: epoch seconds, bytes moved and overhead.

    NUMBA_CACHE_DIR=.numba-cache python -m benchmarks.dask_scale --sizes 2M 25M --epochs 2

For each size (the first n training rows of the ML-25M twin, /tmp/fastmf-twin/synth_25M.npz),
builds a ``RatingStore`` once, then fits the same model (64 factors, per-rating SGD,
``random_state=0``) in process with 1 and 2 threads and on a ``LocalCluster`` of 1 and 2 worker
processes of one thread each, reading the store. Checks that every fit gives the same bits, and
prints a markdown table: the median epoch seconds, the bytes the item strata moved between
workers per sub-epoch, and the overhead per sub-epoch (the 1-worker epoch less the 1-thread
in-process epoch, over S). Writes the figures as JSON into ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fastmf import MatrixFactorization, RatingStore

TWIN = Path(os.environ.get("FASTMF_TWIN_DIR", "/tmp/fastmf-twin")) / "synth_25M.npz"
SIZES = {"2M": 2_000_000, "5M": 5_000_000, "25M": 22_500_085}
SETTINGS = dict(n_factors=64, random_state=0, verbose=0)


def ratings(n: int) -> pd.DataFrame:
    with np.load(TWIN) as z:
        n = min(n, int(z["n_train"]))
        return pd.DataFrame(
            {"user": z["user"][:n], "item": z["item"][:n], "rating": z["rating"][:n]}
        )


def in_process(store: RatingStore, n_epochs: int, threads: int) -> MatrixFactorization:
    return MatrixFactorization(n_epochs=n_epochs, n_jobs=threads, **SETTINGS).fit(store)


def on_cluster(store: RatingStore, n_epochs: int, workers: int):
    import distributed

    from fastmf.dask import DaskMatrixFactorization

    cluster = distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
        memory_limit=0,
    )  # fmt: skip
    try:
        with distributed.Client(cluster) as client:
            model = DaskMatrixFactorization(client=client, n_epochs=n_epochs, **SETTINGS)
            t0 = time.perf_counter()
            model.fit(store)
            model.fit_seconds_ = time.perf_counter() - t0
            return model
    finally:
        cluster.close()


def measure(size: str, n_epochs: int, work: Path) -> dict:
    t0 = time.perf_counter()
    store = RatingStore.build(work / f"store-{size}", ratings(SIZES[size]))
    build = time.perf_counter() - t0
    s = store.n_strata
    runs = {f"in-process {t} thread{'s' * (t > 1)}": in_process(store, n_epochs, t) for t in (1, 2)}
    for w in (1, 2):
        runs[f"Dask, {w} worker{'s' * (w > 1)}"] = on_cluster(store, n_epochs, w)
    reference = runs["in-process 1 thread"]
    same = {
        name: all(
            np.array_equal(getattr(m, a), getattr(reference, a))
            for a in ("user_factors_", "item_factors_", "user_bias_", "item_bias_")
        )
        for name, m in runs.items()
    }
    rows = []
    for name, m in runs.items():
        row = {"run": name, "epoch_s": float(np.median(m.history_["seconds"])),
               "same_bits": same[name]}  # fmt: skip
        stats = getattr(m, "cluster_stats_", None)
        if stats is not None:  # without the set-up (workers load their blocks, compile)
            row["epoch_s"] = float(np.median(stats["seconds"]))
            row["setup_s"] = m.cluster_setup_seconds_
            row["moved_per_sub_epoch_MB"] = float(stats["bytes_moved"].median()) / (s - 1) / 1e6
            row["fit_s"] = m.fit_seconds_
        rows.append(row)
    one = next(r for r in rows if r["run"] == "Dask, 1 worker")["epoch_s"]
    overhead = (one - rows[0]["epoch_s"]) / s
    item_bytes = store.n_items * (SETTINGS["n_factors"] + 1) * 4
    return {"size": size, "n_ratings": store.n_ratings, "n_strata": s, "build_s": build,
            "item_state_MB": item_bytes / 1e6, "overhead_per_sub_epoch_s": overhead,
            "rows": rows}  # fmt: skip


def table(result: dict) -> str:
    lines = [
        f"**{result['size']}** ({result['n_ratings']:,} ratings, S = {result['n_strata']}, item "
        f"state {result['item_state_MB']:.1f} MB, store built in {result['build_s']:.0f} s; "
        f"overhead per sub-epoch {result['overhead_per_sub_epoch_s'] * 1e3:.0f} ms)",
        "",
        "| run | epoch s | set-up s | MB moved per sub-epoch | same bits |",
        "|---|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        moved = r.get("moved_per_sub_epoch_MB")
        moved_s = "" if moved is None else f"{moved:.2f}"
        setup = f"{r['setup_s']:.1f}" if "setup_s" in r else ""
        lines.append(
            f"| {r['run']} | {r['epoch_s']:.2f} | {setup} | {moved_s} | {r['same_bits']} |"
        )
    return "\n".join(lines)


def cost_model(
    ns_per_rating: float, overhead_s: float, n_ratings: float = 1e9, n_users: float = 1e7,
    n_items: float = 1e6, k: int = 64, strata: int = 32, link_gb_s: float = 1.25,
    task_s: float = 0.012,
) -> str:  # fmt: skip
    """Seconds an epoch of ``n_ratings`` takes on N workers, by parts: compute (the busiest
    worker's ceil(S/N) blocks of each sub-epoch), item strata over the network (a stratum changes
    worker with odds (N - 1)/N at each of S - 1 boundaries; each worker's link carries its share),
    the fixed overhead per sub-epoch, and the client's gather of the model for the checkpoint."""
    item_bytes = n_items * (k + 1) * 4
    model_bytes = (n_users + n_items) * (k + 1) * 4
    block = n_ratings / strata**2
    lines = [
        f"1B-rating store: {n_ratings:.0e} ratings, {n_users:.0e} users, {n_items:.0e} items, "
        f"k = {k}, float32 SGD (item state {item_bytes / 1e9:.2f} GB, model "
        f"{model_bytes / 1e9:.1f} GB), S = {strata}, links of {link_gb_s:g} GB/s, "
        f"{ns_per_rating:.0f} ns a rating, {overhead_s * 1e3:.0f} ms overhead a sub-epoch",
        "",
        "| workers N | blocks per worker per sub-epoch | compute s | GB moved per epoch | "
        "network s | overhead s | client gather s | epoch s | GB a worker holds |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in (1, 2, 4, 8, 16, 32, 64):
        per = -(-strata // n)
        compute = strata * per * block * ns_per_rating * 1e-9
        moved = (strata - 1) * item_bytes * (n - 1) / n
        network = moved / min(n, strata) / (link_gb_s * 1e9)
        overhead = strata * (overhead_s if n + n * n < strata else strata * task_s)
        gather = model_bytes / (link_gb_s * 1e9)
        total = compute + network + overhead + gather
        share = per / strata  # of the ratings (12 bytes each) and of the users
        held = (n_ratings * 12 + n_users * (k + 1) * 4) * share + 2 * item_bytes * share
        cells = (n, per, f"{compute:.0f}", f"{moved / 1e9:.1f}", f"{network:.1f}",
                 f"{overhead:.1f}", f"{gather:.1f}", f"{total:.0f}",
                 f"{held / 1e9:.1f}")  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["2M"], choices=sorted(SIZES))
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fastmf-dask-bench-"))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    try:
        for size in args.sizes:
            result = measure(size, args.epochs, work)
            result["load"] = os.getloadavg()
            print(table(result), flush=True)
            print(f"(load average {result['load'][0]:.1f})\n", flush=True)
            (out / f"dask_scale_{size}.json").write_text(json.dumps(result, indent=2))
            rows = {r["run"]: r for r in result["rows"]}
            ns = rows["in-process 1 thread"]["epoch_s"] / result["n_ratings"] * 1e9
            print(cost_model(ns, result["overhead_per_sub_epoch_s"]) + "\n", flush=True)
            shutil.rmtree(work / f"store-{size}", ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
