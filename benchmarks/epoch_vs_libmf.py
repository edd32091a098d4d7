"""fastmf's per-rating epoch against LIBMF-AVX's, in one process, taking turns.

    python -m benchmarks.epoch_vs_libmf                          # 25M twin, 32/64/128 factors
    python -m benchmarks.epoch_vs_libmf --factors 64 --rounds 3

For each factor count, fastmf is fitted once (compile, blocks), then per round trains
``--epochs`` epochs with ``partial_fit`` and LIBMF-AVX (``benchmarks/compare/libmf_build.py``)
trains ``--epochs`` and 1 epoch, LIBMF's epoch being (T_n − T_1) / (n − 1) as in the side-by-side
runner. The figure is each round's ratio of fastmf's median epoch to LIBMF's, and their median
over the rounds; the load average is printed before and after: quote it with the figures. On a
shared machine ``--cpu-time`` times both by the process's CPU seconds (with ``--threads 1`` the
measure least moved by other processes: a 2-thread epoch synchronizes its threads 32 times and
loses most where cores are oversubscribed); fastmf's epoch is then timed as LIBMF's is, by
(T_n − T_1) / (n − 1) over two fits, as ``partial_fit`` checks at every call, by a hash of every
rating, that the data is the fitted data (45 ms of CPU on the 25M twin), which the wall-clock
figure (the epoch as fastmf records it) leaves out too.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from benchmarks.batch_defaults import load


def libmf_engine():
    """LIBMF's binding over the AVX/OpenMP build (built on first use)."""
    from benchmarks.compare.libmf_build import build_libmf_avx

    os.environ["LIBMF_OBJ"] = str(build_libmf_avx())
    from libmf import mf

    return mf


def libmf_epoch(mf, X: np.ndarray, k: int, threads: int, epochs: int, clock=time.perf_counter):
    """LIBMF-AVX's epoch seconds: (T_epochs − T_1) / (epochs − 1), with its documented settings."""

    def fit(n: int) -> float:
        engine = mf.MF(quiet=True, k=k, nr_threads=threads, nr_iters=n, nr_bins=26, eta=0.1,
                       lambda_p1=0.0, lambda_q1=0.0, lambda_p2=0.05, lambda_q2=0.05)  # fmt: skip
        t0 = clock()
        engine.fit(X)
        return clock() - t0

    return (fit(epochs) - fit(1)) / (epochs - 1)


def fastmf_epoch(train, k: int, threads: int, epochs: int, batch_size: int, clock) -> float:
    """fastmf's epoch seconds by ``clock``: (T_epochs − T_1) / (epochs − 1) over two fits."""
    from fastmf import MatrixFactorization

    def fit(n: int) -> float:
        model = MatrixFactorization(n_factors=k, n_epochs=n, n_jobs=threads,
                                    batch_size=batch_size, random_state=0, verbose=0)  # fmt: skip
        t0 = clock()
        model.fit(train)
        return clock() - t0

    return (fit(epochs) - fit(1)) / (epochs - 1)


def main(argv: list[str] | None = None) -> None:
    from fastmf import MatrixFactorization

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="25M")
    ap.add_argument("--factors", default="32,64,128")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--cpu-time", action="store_true", help="time by CPU seconds, not wall time")
    args = ap.parse_args(argv)
    clock = time.process_time if args.cpu_time else time.perf_counter
    train, *_ = load(args.data)
    X = np.column_stack([train.users, train.items, train.values]).astype(np.float32)
    mf = libmf_engine()
    print(f"load at start: {os.getloadavg()}")
    measure = "CPU seconds" if args.cpu_time else "wall seconds"
    print(f"{args.data}, {args.threads} threads, {args.epochs} epochs a round, {measure}")
    print("| factors | round | fastmf s/epoch | LIBMF-AVX s/epoch | ratio |")
    print("|---|---|---|---|---|")
    for k in (int(x) for x in args.factors.split(",")):
        model = MatrixFactorization(n_factors=k, n_epochs=1, n_jobs=args.threads,
                                    batch_size=args.batch_size, random_state=0,
                                    verbose=0).fit(train)  # fmt: skip
        ratios = []
        for r in range(args.rounds):
            if args.cpu_time:
                ours = fastmf_epoch(train, k, args.threads, args.epochs, args.batch_size, clock)
            else:  # the median epoch alone, as fastmf records it
                for _ in range(args.epochs):
                    model.partial_fit(train)
                spent = model.history_["seconds"].to_numpy()[-args.epochs :]
                ours = float(np.median(spent))
            theirs = libmf_epoch(mf, X, k, args.threads, args.epochs, clock)
            ratios.append(ours / theirs)
            print(f"| {k} | {r} | {ours:.3f} | {theirs:.3f} | {ours / theirs:.2f}× |", flush=True)
        print(f"| {k} | median | | | {np.median(ratios):.2f}× |", flush=True)
    print(f"load at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
