"""fastmf itself: ``MatrixFactorization`` with its defaults, or a preset (a batch size)."""

from __future__ import annotations

import time

from benchmarks.compare.peers.harness import Context


def run_fastmf(ctx: Context, **preset) -> dict:
    """fastmf's MatrixFactorization with its defaults (plus ``preset``, e.g. a batch size)."""
    import pandas as pd

    from fastmf import MatrixFactorization
    from fastmf._kernels.jit import SERIAL_BELOW
    from fastmf.datasets.synthetic import synthetic

    ctx.imported()

    params = {
        "n_factors": ctx.n_factors,
        "n_epochs": ctx.n_epochs,
        "reg": ctx.reg,
        "random_state": ctx.seed,
        "n_jobs": ctx.threads,
        "verbose": 0,
    }
    params.update(preset)
    params.update(ctx.options)
    # Compile the kernels (or load them from Numba's cache) outside the timing: the setup
    # kernels have a serial variant for small inputs and a parallel one from SERIAL_BELOW
    # ratings, so the warm-up fits both sizes (the first rows of the training set, as its
    # dtypes: the same compiled signatures).
    train = ctx.split.frame("train")
    test = ctx.split.frame("test")
    t0 = time.perf_counter()
    warm = synthetic(60, 80, 3_000, random_state=1)
    MatrixFactorization(**dict(params, n_epochs=1)).fit(warm)
    if len(train) > SERIAL_BELOW:
        MatrixFactorization(**dict(params, n_epochs=1)).fit(train.iloc[: SERIAL_BELOW + 1])
    compile_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    model = MatrixFactorization(**params).fit(train)
    fit_seconds = time.perf_counter() - t0
    epoch_seconds = _history_seconds(model)
    rmse, mae = ctx.evaluate(model.predict(test[["user", "item"]]))

    # A second fit with the test set as validation data gives the per-epoch curve; its time
    # axis is the first fit's setup plus the epochs' own seconds (validation not counted).
    setup = fit_seconds - sum(epoch_seconds) if epoch_seconds else 0.0
    curve_model = MatrixFactorization(**params).fit(train, validation=test)
    hist = curve_model.history_
    if isinstance(hist, pd.DataFrame) and "val_rmse" in hist.columns:
        secs = _history_seconds(curve_model) or [fit_seconds / len(hist)] * len(hist)
        elapsed = setup
        for e, (s, row) in enumerate(
            zip(secs, hist.itertuples(index=False), strict=False), start=1
        ):
            elapsed += s
            ctx.epoch(e, elapsed, row.val_rmse, getattr(row, "val_mae", None))
    return {
        "fit_seconds": fit_seconds,
        "setup_seconds": setup,
        "epoch_seconds": epoch_seconds,
        "compile_seconds": compile_seconds,
        "final_rmse": rmse,
        "final_mae": mae,
        "threads": ctx.threads,
        "settings": {k: v for k, v in params.items() if k != "verbose"},
    }


def _history_seconds(model) -> list[float]:
    hist = getattr(model, "history_", None)
    if hist is None or "seconds" not in getattr(hist, "columns", ()):
        return []
    return [float(s) for s in hist["seconds"]]
