"""Surprise's ``SVD`` (single-threaded SGD, all epochs in one compiled call)."""

from __future__ import annotations

import time

from benchmarks.compare.peers.harness import Context, PrintClock, biased_predict, inner_ids


def run_surprise(ctx: Context) -> dict:
    """Surprise's SVD (per-rating SGD with biases, single thread), its default learning rate."""
    from surprise import SVD, Dataset, Reader

    ctx.imported()

    lo, hi = ctx.rating_range
    t0 = time.perf_counter()
    data = Dataset.load_from_df(ctx.split.frame("train"), Reader(rating_scale=(lo, hi)))
    trainset = data.build_full_trainset()
    prepare_seconds = time.perf_counter() - t0
    algo = SVD(
        n_factors=ctx.n_factors,
        n_epochs=ctx.n_epochs,
        reg_all=ctx.reg,
        lr_all=ctx.option("lr_all", 0.005),
        random_state=ctx.seed,
        verbose=True,  # prints each epoch's start: the clock below stamps them
    )
    with PrintClock() as clock:
        algo.fit(trainset)
        fit_seconds = time.perf_counter() - clock.start
    starts = [t for t, line in clock.lines if line.startswith("Processing epoch")]
    ends = starts[1:] + [fit_seconds]
    epoch_seconds = [b - a for a, b in zip(starts, ends, strict=False)]
    users = inner_ids(trainset._raw2inner_id_users, ctx.split.n_users)
    items = inner_ids(trainset._raw2inner_id_items, ctx.split.n_items)
    te = ctx.split.test
    pred = biased_predict(
        trainset.global_mean,
        algo.bu,
        algo.bi,
        algo.pu,
        algo.qi,
        users[te["user"]],
        items[te["item"]],
    )
    rmse, mae = ctx.evaluate(pred)
    return {
        "prepare_seconds": prepare_seconds,
        "fit_seconds": fit_seconds,
        "epoch_seconds": epoch_seconds,
        "final_rmse": rmse,
        "final_mae": mae,
        "threads": 1,
        "settings": {
            "n_factors": ctx.n_factors,
            "n_epochs": ctx.n_epochs,
            "reg_all": ctx.reg,
            "lr_all": algo.lr_bu,
        },
        "notes": "no per-epoch curve (all epochs run in one compiled call); single-threaded",
    }
