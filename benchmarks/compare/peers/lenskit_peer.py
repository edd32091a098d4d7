"""LensKit's biased MF, trained by alternating least squares one epoch at a time."""

from __future__ import annotations

import time

from benchmarks.compare.peers.harness import Context, biased_predict


def run_lenskit(ctx: Context) -> dict:
    """LensKit's biased matrix factorization, trained by alternating least squares.

    ALS is another optimizer (each half-epoch solves every user's or item's row exactly), so its
    epochs are not comparable one for one with SGD's; it is here for a user choosing between
    toolkits. LensKit's trainer is stepped one epoch at a time, evaluated with the clock stopped.
    Its biases are damped means (damping 5), not learned.
    """
    import pandas as pd
    from lenskit.als import BiasedMFScorer
    from lenskit.data import from_interactions_df
    from lenskit.training import TrainingOptions

    ctx.imported()

    tr, te = ctx.split.train, ctx.split.test
    t0 = time.perf_counter()
    frame = pd.DataFrame({"user_id": tr["user"], "item_id": tr["item"], "rating": tr["rating"]})
    data = from_interactions_df(frame, user_col="user_id", item_col="item_id", rating_col="rating")
    prepare_seconds = time.perf_counter() - t0
    scorer = BiasedMFScorer(
        embedding_size=ctx.n_factors, epochs=ctx.n_epochs, regularization=ctx.reg
    )
    t0 = time.perf_counter()
    trainer = scorer.create_trainer(data, TrainingOptions(rng=ctx.seed))
    fit_seconds = time.perf_counter() - t0
    setup_seconds = fit_seconds
    users = scorer.users.numbers(te["user"], missing="negative")
    items = scorer.items.numbers(te["item"], missing="negative")
    epoch_seconds = []
    for e in range(1, ctx.n_epochs + 1):
        t0 = time.perf_counter()
        trainer.train_epoch()
        dt = time.perf_counter() - t0
        fit_seconds += dt
        epoch_seconds.append(dt)
        bias = scorer.bias
        pred = biased_predict(
            bias.global_bias,
            bias.user_biases,
            bias.item_biases,
            scorer.user_embeddings,
            scorer.item_embeddings,
            users,
            items,
        )
        rmse, mae = ctx.evaluate(pred)
        ctx.epoch(e, prepare_seconds + fit_seconds, rmse, mae)
    trainer.finalize()
    return {
        "prepare_seconds": prepare_seconds + setup_seconds,
        "fit_seconds": fit_seconds,
        "epoch_seconds": epoch_seconds,
        "final_rmse": rmse,
        "final_mae": mae,
        "threads": ctx.threads,
        "settings": {
            "embedding_size": ctx.n_factors,
            "epochs": ctx.n_epochs,
            "regularization": ctx.reg,
            "damping": 5.0,
        },
        "notes": "ALS, not SGD; damped-mean biases",
    }
