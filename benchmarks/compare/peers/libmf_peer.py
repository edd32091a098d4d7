"""LIBMF through the ``libmf`` package's binding: as pip builds it, or the AVX/OpenMP build."""

from __future__ import annotations

import os
import re
import time

import numpy as np

from benchmarks.compare.peers.harness import Context, LineClock, Watched, biased_predict

_LIBMF_HANG = (
    "LIBMF hung when stopping (a race in its scheduler when epochs are very short; use more "
    "ratings or 1 thread)"
)


_LIBMF_LINE = re.compile(r"^\s*(\d+)\s+([0-9.]+)\s+([0-9.]+)\s+\S+\s*$")


def run_libmf(ctx: Context, avx: bool = False) -> dict:
    """LIBMF through the ``libmf`` package's binding: as installed, or the AVX/OpenMP build.

    LIBMF has no biases and uses AdaGrad-scaled SGD on blocks (FPSG); its documented step
    ``eta=0.1`` and ``nr_bins=26`` are kept. LIBMF trains all epochs in one call, so its epoch
    time is measured from two quiet runs, of ``n_epochs`` and of one epoch: (T_n - T_1) / (n - 1),
    and its setup as T_1 less one epoch. The curve's test RMSE comes from a third run that prints
    LIBMF's own per-iteration validation RMSE (unclipped); its time axis is setup + epochs.

    LIBMF's scheduler can deadlock when it stops if an epoch is very short (its worker threads
    finish one more pass before the stop flag is set and then wait forever; seen on tens of
    thousands of ratings with 2 threads). Each call therefore runs in a watched thread: a call that
    has not returned long after its work is done is reported as that hang instead of waiting for
    the runner's time budget.
    """
    if avx:
        from benchmarks.compare.libmf_build import built_library

        os.environ["LIBMF_OBJ"] = str(built_library())
    with LineClock() as _:  # the binding prints where it found its library at import
        from libmf import mf
    ctx.imported()

    tr, te = ctx.split.train, ctx.split.test
    t0 = time.perf_counter()
    X = np.column_stack([tr["user"], tr["item"], tr["rating"]]).astype(np.float32)
    V = np.column_stack([te["user"], te["item"], te["rating"]]).astype(np.float32)
    prepare_seconds = time.perf_counter() - t0
    params = {
        "k": ctx.n_factors,
        "nr_threads": ctx.threads,
        "nr_iters": ctx.n_epochs,
        "nr_bins": ctx.option("nr_bins", 26),
        "eta": ctx.option("eta", 0.1),
        "lambda_p1": 0.0,
        "lambda_q1": 0.0,
        "lambda_p2": ctx.reg,
        "lambda_q2": ctx.reg,
    }

    # The verbose run first: its printed lines show when the work is done, so a hang shows.
    verbose = mf.MF(quiet=False, **params)
    with LineClock() as clock:
        call = Watched(verbose.mf_train_test, X, V)
        while not call.wait(0.05):
            stamps = [t for t, line in clock.lines if _LIBMF_LINE.match(line)]
            if len(stamps) >= ctx.n_epochs:
                per = (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1)
                if time.perf_counter() - clock.start - stamps[-1] > 5.0 + 20 * per:
                    raise RuntimeError(_LIBMF_HANG)
    curve = [m for m in (_LIBMF_LINE.match(line) for _, line in clock.lines) if m]
    limit = 30.0 + 10 * call.seconds

    def quiet_fit(n_iters: int):
        engine = mf.MF(quiet=True, **dict(params, nr_iters=n_iters))
        call = Watched(engine.fit, X)
        if not call.wait(limit):
            raise RuntimeError(_LIBMF_HANG)
        return engine, call.seconds

    engine, fit_seconds = quiet_fit(ctx.n_epochs)
    P, Q = engine.p_factors(), engine.q_factors()
    rmse, mae = ctx.evaluate(biased_predict(0.0, None, None, P, Q, te["user"], te["item"]))
    if ctx.n_epochs > 1:
        one = quiet_fit(1)[1]
        per_epoch = max(0.0, (fit_seconds - one) / (ctx.n_epochs - 1))
        setup_seconds = max(0.0, one - per_epoch)
    else:
        per_epoch, setup_seconds = fit_seconds, 0.0
    for m in curve:
        it = int(m.group(1)) + 1
        ctx.epoch(it, prepare_seconds + setup_seconds + it * per_epoch, float(m.group(3)))
    return {
        "prepare_seconds": prepare_seconds,
        "setup_seconds": setup_seconds,
        "fit_seconds": fit_seconds,
        "epoch_seconds": [per_epoch] * ctx.n_epochs,
        "final_rmse": rmse,
        "final_mae": mae,
        "threads": ctx.threads,
        "settings": dict(params, build=("-O3 -march=native -DUSEAVX -DUSEOMP" if avx else "pip")),
        "notes": "no biases (LIBMF's model is P.Q); AdaGrad steps",
    }
