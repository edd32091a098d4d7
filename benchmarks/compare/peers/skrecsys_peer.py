"""skrecsys's ``AlternatingLeastSquares``: a biased MF (libFM's ALS learner, in Rust) behind a
scikit-learn estimator.

Its settings are its own documented defaults, not the shared ``reg``: ``reg_factors=10``,
``reg_bias=1``, ``init_stdev=0.1`` (libFM's ALS penalizes each row's L2 norm once, not once per
rating, so the shared per-rating weight has no equivalent). Factors and sweeps are shared: one
sweep (every parameter set once to its closed-form minimizer) counts as an epoch. The sweeps run
on one thread (the ALS kernel takes no thread count). Change a setting with
``--set skrecsys.NAME=VALUE`` (``reg_factors``, ``reg_bias``, ``init_stdev``).

The fit runs all sweeps in one call, so the curve comes from a second model stepped one sweep at
a time: ``fit`` with one sweep, then ``partial_fit`` with ``n_iter_partial=1`` on one stored pair
with weight 0 (``partial_fit`` adds a batch's weight to a stored pair, so the data stays the
same and each call is one more sweep over it), evaluated with the clock stopped.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.compare.peers.harness import Context, biased_predict


def run_skrecsys(ctx: Context) -> dict:
    """skrecsys's ALS biased MF, timed whole and stepped sweep by sweep for the curve."""
    from skrecsys.recommendation import AlternatingLeastSquares

    ctx.imported()
    tr, te = ctx.split.train, ctx.split.test
    t0 = time.perf_counter()
    X = np.column_stack([tr["user"], tr["item"]])
    y = np.asarray(tr["rating"], dtype=np.float64)
    prepare_seconds = time.perf_counter() - t0
    params = {
        "n_factors": ctx.n_factors,
        "reg_factors": ctx.option("reg_factors", 10.0),
        "reg_bias": ctx.option("reg_bias", 1.0),
        "init_stdev": ctx.option("init_stdev", 0.1),
        "random_state": ctx.seed,
    }

    def fitted(n_iter: int):
        model = AlternatingLeastSquares(n_iter=n_iter, **params)
        t = time.perf_counter()
        model.fit(X, y)
        return model, time.perf_counter() - t

    def test_error(model) -> tuple[float, float]:
        users = np.searchsorted(model.user_ids_, te["user"])
        items = np.searchsorted(model.item_ids_, te["item"])
        pred = biased_predict(
            model.global_bias_, model.user_bias_, model.item_bias_,
            model.user_factors_, model.item_factors_, users, items,
        )  # fmt: skip
        return ctx.evaluate(pred)

    # The curve first: a run cut short by its budget still reports the sweeps it reached.
    stepped, first = fitted(1)
    stepped.set_params(n_iter_partial=1)
    ctx.epoch(1, prepare_seconds + first, *test_error(stepped))
    elapsed = prepare_seconds + first
    still = (X[:1], np.zeros(1))  # a stored pair with weight 0: the data stays the same
    for e in range(2, ctx.n_epochs + 1):
        t = time.perf_counter()
        stepped.partial_fit(*still)
        elapsed += time.perf_counter() - t
        ctx.epoch(e, elapsed, *test_error(stepped))

    model, fit_seconds = fitted(ctx.n_epochs)
    rmse, mae = test_error(model)
    if ctx.n_epochs > 1:
        per_epoch = max(0.0, (fit_seconds - first) / (ctx.n_epochs - 1))
        setup_seconds = max(0.0, first - per_epoch)
    else:
        per_epoch, setup_seconds = fit_seconds, 0.0
    return {
        "prepare_seconds": prepare_seconds,
        "setup_seconds": setup_seconds,
        "fit_seconds": fit_seconds,
        "epoch_seconds": [per_epoch] * ctx.n_epochs,
        "final_rmse": rmse,
        "final_mae": mae,
        "threads": 1,
        "settings": dict(params, n_iter=ctx.n_epochs),
        "notes": "ALS, not SGD; its own L2 weights (reg_factors, reg_bias); single-threaded",
    }
