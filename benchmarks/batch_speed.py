"""Epoch time of mini-batch training against per-rating SGD's, in one process, interleaved.

    python -m benchmarks.batch_speed                       # the 25M twin, 64 factors, 2 threads
    python -m benchmarks.batch_speed --data 5M --reps 5

Each configuration is fitted once (compiling the kernels and building the blocks), then trained
one epoch at a time with ``partial_fit``, the configurations taking turns, ``--reps`` times; the
figure is each one's median (and fastest) epoch from ``history_["seconds"]`` and its ratio to the
per-rating default's, so the machine's load weighs on both alike. The load average is printed
before and after: quote it with the figures.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from benchmarks.batch_defaults import load

# (label, parameters); the first is the reference
CONFIGS = [
    ("per-rating SGD (default)", {"batch_size": 1}),
    ("batch kernel at batch 1, damped_sgd", {"batch_size": 1, "optimizer": "damped_sgd"}),
    (
        "batch 1024, plain sgd (η = 1, finite for an epoch)",
        {"batch_size": 1024, "optimizer": "sgd", "learning_rate": 1.0},
    ),
    ("batch 1024, damped_sgd (default)", {"batch_size": 1024}),
    ("batch 1024, row_adagrad η = 0.1", {"batch_size": 1024, "optimizer": "row_adagrad"}),
    ("batch 256, damped_sgd (default)", {"batch_size": 256}),
    ("batch 8192, damped_sgd (default)", {"batch_size": 8192}),
]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    from fastmf import MatrixFactorization

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="25M")
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--only", default="", help="comma-separated indices into the configurations")
    args = ap.parse_args(argv)
    configs = CONFIGS
    if args.only:
        configs = [CONFIGS[int(k)] for k in args.only.split(",")]
    train, *_ = load(args.data)
    print(f"load at start: {os.getloadavg()}")
    models = [
        MatrixFactorization(n_factors=args.factors, n_epochs=1, n_jobs=args.threads,
                            random_state=0, verbose=0, **kw).fit(train)
        for _, kw in configs
    ]  # fmt: skip
    times: list[list[float]] = [[] for _ in configs]
    for _ in range(args.reps):
        for m, t in zip(models, times, strict=True):
            m.partial_fit(train)
            t.append(float(m.history_["seconds"].iloc[-1]))
    ref = np.median(times[0])
    print(f"{args.data}, {args.factors} factors, {args.threads} threads, {args.reps} epochs each")
    print("| configuration | s/epoch (median) | fastest | × per-rating (median) |")
    print("|---|---|---|---|")
    for (label, _), t in zip(configs, times, strict=True):
        med = float(np.median(t))
        print(f"| {label} | {med:.3f} | {min(t):.3f} | {med / ref:.2f}× |")
    print(f"load at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
