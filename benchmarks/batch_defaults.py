"""The measurements behind the defaults for batches: test RMSE after 20 epochs over batch sizes,
optimizers and learning rates, on the ML-25M twins and ml-latest-small.

    python -m benchmarks.batch_defaults                          # every set, the whole grid
    python -m benchmarks.batch_defaults --data 1M,ml-latest-small --batch-sizes 32,1024

Data: ``1M``, ``5M``, ``25M`` (the twins ``$FASTMF_TWIN_DIR/synth_<size>.npz``, default
/tmp/fastmf-twin, trained on rows ``[:n_train]`` and tested on the rest; see
/work/shared/bench/README.md) and ``ml-latest-small`` (``$FASTMF_DATA``, the seeded 90/10 split
of ``tests/train/test_defaults.py``). Every fit: 64 factors, 20 epochs, the default schedule, 2
threads, ``random_state=0``; the per-rating default (batch 1) is the reference each row is
compared with.
Writes a markdown table to stdout and the figures as JSON into ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

TWINS = ("1M", "5M", "25M")


def load(name: str):
    """(train Ratings, test user ids, test item ids, test ratings) of a data set by name."""
    import pandas as pd

    from fastmf import Ratings

    if name in TWINS:
        root = Path(os.environ.get("FASTMF_TWIN_DIR", "/tmp/fastmf-twin"))
        z = np.load(root / f"synth_{name}.npz")
        n = int(z["n_train"])
        u, i, r = z["user"], z["item"], z["rating"]
        train = Ratings.from_arrays(u[:n], i[:n], r[:n])
        return train, u[n:], i[n:], r[n:].astype(np.float64)
    if name == "ml-latest-small":
        path = Path(os.environ["FASTMF_DATA"]) / "ml-latest-small" / "ratings.csv"
        df = pd.read_csv(path).rename(columns={"userId": "user", "movieId": "item"})
        test = np.random.default_rng(20240501).permutation(len(df))[: len(df) // 10]
        mask = np.zeros(len(df), dtype=bool)
        mask[test] = True
        tr, te = df[~mask], df[mask]
        train = Ratings.from_arrays(tr["user"], tr["item"], tr["rating"])
        return train, te["user"].to_numpy(), te["item"].to_numpy(), te["rating"].to_numpy(float)
    raise ValueError(f"unknown data set {name!r}; choose from {(*TWINS, 'ml-latest-small')}")


def fit_once(train, test, threads: int, epochs: int, **kw) -> dict:
    """One fit: test RMSE, the median epoch time and the resolved optimizer and rate."""
    from fastmf import MatrixFactorization
    from fastmf._validation import NonFiniteModelError

    m = MatrixFactorization(n_epochs=epochs, n_jobs=threads, random_state=0, verbose=0, **kw)
    t0 = time.perf_counter()
    try:
        m.fit(train)
    except NonFiniteModelError as exc:  # a diverging setting is a result too
        return {**kw, "error": f"{type(exc).__name__}: {str(exc)[:80]}"}
    fit_s = time.perf_counter() - t0
    u, i, r = test
    pred = m.predict(np.column_stack([u, i]))
    return {
        **kw,
        "optimizer_": m.optimizer_,
        "learning_rate_": m.learning_rate_,
        "test_rmse": float(np.sqrt(np.mean((pred - r) ** 2))),
        "epoch_s": float(np.median(m.history_["seconds"])),
        "fit_s": fit_s,
    }


def _grid(batch_sizes, rates, damped, plain) -> list[dict]:
    rows: list[dict] = [{"batch_size": 1}]  # the per-rating default: the reference
    for b in batch_sizes:
        rows.append({"batch_size": b})  # the defaults for this batch size
        rows += [{"batch_size": b, "optimizer": "row_adagrad", "learning_rate": lr} for lr in rates]
        # damped and plain SGD at η = (rate a rating)·B
        rows += [
            {"batch_size": b, "optimizer": "damped_sgd", "learning_rate": lr * b} for lr in damped
        ]
        rows += [{"batch_size": b, "optimizer": "sgd", "learning_rate": lr * b} for lr in plain]
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="ml-latest-small,1M,5M,25M")
    ap.add_argument("--batch-sizes", default="32,256,1024,8192")
    ap.add_argument("--rates", default="0.05,0.1,0.2,0.4", help="row_adagrad's η")
    ap.add_argument("--damped", default="0.015,0.03,0.06", help="damped_sgd's η over B")
    ap.add_argument("--plain", default="0.03", help="plain SGD's η over B")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    batch_sizes = [int(x) for x in args.batch_sizes.split(",")]
    rates, damped, plain = (
        [float(x) for x in a.split(",") if x] for a in (args.rates, args.damped, args.plain)
    )
    results = []
    print(f"load at start: {os.getloadavg()}")
    print("| data | batch | optimizer | η | test RMSE | vs per-rating | s/epoch | vs per-rating |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.data.split(","):
        train, *test = load(name)
        ref = None
        for kw in _grid(batch_sizes, rates, damped, plain):
            res = {"data": name, **fit_once(train, test, args.threads, args.epochs, **kw)}
            results.append(res)
            if "error" in res:
                print(
                    f"| {name} | {kw['batch_size']} | {kw.get('optimizer', 'auto')} | "
                    f"{kw.get('learning_rate', 'default')} | {res['error']} | | | |",
                    flush=True,
                )
                continue
            if ref is None:
                ref = res
            given = "" if "optimizer" in kw else " (default)"
            print(
                f"| {name} | {kw['batch_size']} | {res['optimizer_']}{given} | "
                f"{res['learning_rate_']:g} | {res['test_rmse']:.4f} | "
                f"{100 * (res['test_rmse'] / ref['test_rmse'] - 1):+.2f}% | {res['epoch_s']:.3f} | "
                f"{res['epoch_s'] / ref['epoch_s']:.2f}× |",
                flush=True,
            )
    print(f"load at end: {os.getloadavg()}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"batch-defaults-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
