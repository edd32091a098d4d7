"""cornac's ``MF`` (CPU backend, Hogwild SGD), stepped one epoch at a time."""

from __future__ import annotations

import time

from benchmarks.compare.peers.harness import Context, biased_predict, inner_ids


def run_cornac(ctx: Context) -> dict:
    """cornac's MF (Hogwild per-rating SGD with biases), stepped one epoch at a time.

    cornac's SGD visits ratings in data order and keeps no optimizer state, so calling its
    trainer for one epoch at a time on the same arrays is the same as one call for all epochs.
    """
    from cornac.data import Dataset
    from cornac.models import MF

    ctx.imported()

    tr, te = ctx.split.train, ctx.split.test
    t0 = time.perf_counter()
    train_set = Dataset.from_uir(
        zip(tr["user"].tolist(), tr["item"].tolist(), tr["rating"].tolist(), strict=False)
    )
    prepare_seconds = time.perf_counter() - t0
    model = MF(
        k=ctx.n_factors,
        max_iter=1,
        learning_rate=ctx.option("learning_rate", 0.01),
        lambda_reg=ctx.reg,
        use_bias=True,
        num_threads=ctx.threads,
        verbose=False,
    )
    users = inner_ids(train_set.uid_map, ctx.split.n_users)[te["user"]]
    items = inner_ids(train_set.iid_map, ctx.split.n_items)[te["item"]]
    fit_seconds = 0.0
    epoch_seconds = []
    for e in range(1, ctx.n_epochs + 1):
        t0 = time.perf_counter()
        if e == 1:
            model.fit(train_set)
        else:
            model._fit_cpu(train_set, None)  # one more epoch on the same parameter arrays
        dt = time.perf_counter() - t0
        fit_seconds += dt
        epoch_seconds.append(dt)
        pred = biased_predict(
            model.global_mean,
            model.u_biases,
            model.i_biases,
            model.u_factors,
            model.i_factors,
            users,
            items,
        )
        rmse, mae = ctx.evaluate(pred)
        ctx.epoch(e, prepare_seconds + fit_seconds, rmse, mae)
    return {
        "prepare_seconds": prepare_seconds,
        "fit_seconds": fit_seconds,
        "epoch_seconds": epoch_seconds,
        "final_rmse": rmse,
        "final_mae": mae,
        "threads": model.num_threads,
        "settings": {
            "k": ctx.n_factors,
            "lambda_reg": ctx.reg,
            "learning_rate": model.learning_rate,
            "use_bias": True,
        },
        "notes": "biases regularized too",
    }
