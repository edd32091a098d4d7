"""``MatrixFactorization``: the estimator that trains the biased model r̂ = μ + b_u + b_i + p_u·q_i.

The class holds the scikit-learn contract and the public calls; each call delegates: parameters
to ``train.params``, the fitted state to ``train.state``, epochs to ``train.loop``, serving to
``fastmf.serve`` (imported when called: serving sits above training).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from fastmf._stats import root_mean_square
from fastmf._threads import threads_for
from fastmf._validation import check_fitted
from fastmf.data.coerce import pairs, to_ratings, validation_frame
from fastmf.train import from_store, guard
from fastmf.train.checks import check_memory
from fastmf.train.contract import EstimatorContract
from fastmf.train.epoch import predict_rows
from fastmf.train.layout import fit_ratings
from fastmf.train.lock import lock_of
from fastmf.train.loop import train_fresh, train_one_more
from fastmf.train.params import (
    Params,
    check_params,
    resolve_for_continuation,
    resolve_for_data,
)
from fastmf.train.serving import ServingMethods
from fastmf.train.state import (
    blocks_for,
    check_continuation,
    continue_optimizer,
    hold_out,
    initialize,
    seen_csr,
)

Callback = Callable[["MatrixFactorization", dict], Any]


class MatrixFactorization(EstimatorContract, ServingMethods):
    """Biased matrix factorization of explicit ratings, trained batch by batch.

    Prediction is ``r̂_ui = μ + b_u + b_i + p_u·q_i``. For a batch B the objective is
    ``L_B = (Σ_B (r − r̂)² + λ Σ_B (‖p_u‖² + ‖q_i‖²)) / batch_size`` (plus ``reg_bias`` times the
    squared biases, when asked), divided by the nominal ``batch_size`` also where a block's end
    cuts a batch short, so every rating weighs the same. The first sum is the base loss, the
    second the regularization loss.

    Parameters
    ----------
    n_factors : int or "auto", default "auto"
        Length k of the factor vectors p_u and q_i. "auto", like ``n_epochs`` and ``reg``,
        resolves at ``fit`` from the training data's rating counts (``n_factors_``, ``n_epochs_``,
        ``reg_``; ``fastmf.train.defaults.data_defaults``): 128 factors, 40 epochs and λ = 0.08
        up to 100k ratings, moving to 64, 20 and 0.05 at 10M and above (benchmarks/README.md).
    n_epochs : int or "auto", default "auto"
        Passes over the training ratings made by ``fit``.
    batch_size : int, default 1
        Ratings per batch; a batch is a run of consecutive ratings in the training schedule's
        order. 1 is classical per-rating SGD (the fastest to a given accuracy on the ML-25M twin
        in benchmarks/README.md).
    learning_rate : float or None, default None
        η in θ ← θ − η ∇θ L_B (the factor 2 of the square is kept), at the first epoch. None
        resolves at ``fit`` into ``learning_rate_``: 0.03 for plain SGD per rating (``batch_size``
        1, as ever), 0.03·batch_size for "sgd" and "damped_sgd" on batches (L_B divides by the
        nominal batch size, so an epoch then moves as far as per-rating SGD's), 0.1 for
        "row_adagrad" and "adagrad", 0.01 for "adam".
    reg : float or "auto", default "auto"
        λ, the penalty on ‖p_u‖² + ‖q_i‖², counted once per rating.
    reg_bias : float, default 0.0
        Penalty on b_u² + b_i² per rating; it then counts in the regularization loss.
    optimizer : {"auto", "sgd", "damped_sgd", "adagrad", "adam", "row_adagrad"}, default "auto"
        "auto" resolves at ``fit`` into ``optimizer_``: "sgd" at ``batch_size=1``, "damped_sgd"
        for larger batches. A batch sums a heavy row's gradients at one point, where plain SGD at
        0.03·batch_size diverges from batch 256 up; "damped_sgd" steps each row at the rate
        η/(1 + η·h), h a bound on the row's curvature in L_B (its partners' squared norms and its
        rating count in the batch): stable, as cheap as SGD, and plain SGD as η·h → 0, so the
        same objective (within 0.5% of per-rating SGD's test RMSE on the ML-25M twin at batch 32
        to 8192, benchmarks/README.md). Adaptive optimizers keep their state per row: only rows a
        batch touches are updated. "adagrad" and "adam" keep it per element; "row_adagrad" keeps
        one sum of squares per factor row (the mean square of its gradients, as LIBMF does),
        much cheaper.
    record_batches : bool, default False
        Also record the loss through each epoch into ``batch_history_`` (a DataFrame: epoch,
        batch (the index in the epoch of the point's first batch), n_ratings, base_loss,
        reg_loss, total_loss as means per rating). Every batch is a point when an epoch has at
        most 2000; otherwise runs of consecutive batches are summed into about 2000 points an
        epoch (never spanning two blocks), so memory stays small at any batch size. Points come
        in the epoch's order and sum to ``history_``; the model is the same with or without.
    biases : {"learned", "fixed", "none"}, default "learned"
        "fixed": damped mean deviations, b_i = Σ(r − μ)/(n_i + bias_damping), then b_u on what
        is left, computed once before training; "none": no biases.
    bias_damping : float, default 5.0
    init_std : float or "auto", default "auto"
        Factors start as draws from N(0, init_std²); biases start at 0. "auto" (``init_std_``):
        0.05 with the sparse settings' 128 factors, 0.1 with 64.
    lr_schedule : {"auto", "constant", "step", "exponential", "plateau"} or callable
        "auto" (the default) multiplies the rate by 0.8 ** (20 / n_epochs) every epoch: the decay
        of 20 epochs at 0.8, spread over the fit's length, so more epochs take smaller steps
        (``lr_decay`` replaces 0.8). "step" multiplies the rate by ``lr_decay`` (default 0.5)
        every ``lr_step_size`` epochs, "exponential" by ``lr_decay`` (default 0.8) every epoch,
        "plateau" by ``lr_decay`` (default 0.5) when the monitored error did not improve by
        ``min_delta`` in an epoch. A callable gets (epoch, learning_rate) and returns the rate.
    lr_decay : float or None, default None
    lr_step_size : int, default 10
    validation_fraction : float or None, default None
        Hold out this fraction of the training ratings (seeded) to report ``val_rmse`` and
        ``val_mae`` each epoch, when ``fit`` gets no ``validation``.
    early_stopping : bool, default False
        Stop when the validation RMSE has not improved by ``min_delta`` for ``patience`` epochs and
        restore the best epoch's model (uses 10% of the ratings when no validation is given).
    patience : int, default 3
    min_delta : float, default 1e-4
    callbacks : sequence of callables or None
        Each is called as ``cb(model, row)`` after every epoch with the epoch's history row;
        returning True stops training.
    duplicates : {"error", "last"}, default "error"
        What to do with repeated (user, item) pairs.
    random_state : int or None
        Seed of every random draw; the same seed and settings give the same model, bit for bit,
        whatever ``n_jobs`` is.
    n_jobs : int, default -1
        Threads; -1 for all cores.
    dtype : {"float32", "float64"}, default "float32"
    verbose : int, default 1
        0 prints nothing; 1 shows a progress bar per epoch.
    checkpoint_dir : str, path or None, default None
        Write a checkpoint there after every epoch (atomically, over the last), from which
        ``fit(..., resume=True)`` continues a killed fit to the same bits.
    """

    def __init__(
        self,
        n_factors: int | str = "auto",
        n_epochs: int | str = "auto",
        batch_size: int = 1,
        learning_rate: float | None = None,
        reg: float | str = "auto",
        reg_bias: float = 0.0,
        optimizer: str = "auto",
        record_batches: bool = False,
        biases: str = "learned",
        bias_damping: float = 5.0,
        init_std: float | str = "auto",
        lr_schedule: str | Callable[[int, float], float] = "auto",
        lr_decay: float | None = None,
        lr_step_size: int = 10,
        validation_fraction: float | None = None,
        early_stopping: bool = False,
        patience: int = 3,
        min_delta: float = 1e-4,
        callbacks: Sequence[Callback] | None = None,
        duplicates: str = "error",
        random_state: int | None = None,
        n_jobs: int = -1,
        dtype: str = "float32",
        verbose: int = 1,
        checkpoint_dir: str | os.PathLike | None = None,
    ):
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.reg = reg
        self.reg_bias = reg_bias
        self.optimizer = optimizer
        self.record_batches = record_batches
        self.biases = biases
        self.bias_damping = bias_damping
        self.init_std = init_std
        self.lr_schedule = lr_schedule
        self.lr_decay = lr_decay
        self.lr_step_size = lr_step_size
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.patience = patience
        self.min_delta = min_delta
        self.callbacks = callbacks
        self.duplicates = duplicates
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.dtype = dtype
        self.verbose = verbose
        self.checkpoint_dir = checkpoint_dir

    _estimator_type = "regressor"

    def __getattr__(self, name: str) -> Any:
        # seen_indptr_ / seen_items_ (each user's training items, as CSR) are built from the
        # training layout on first use: fit does not pay for them unless they are needed
        if name in ("seen_indptr_", "seen_items_"):
            state = self.__dict__.get("_state")
            blocks = getattr(state, "blocks", None)
            if blocks is not None and "user_map_" in self.__dict__:
                n_users = len(self.__dict__["user_map_"])
                guard.check_layout(blocks, n_users, len(self.__dict__.get("item_map_", ())))
                indptr, items = seen_csr(blocks, n_users)
                self.__dict__["seen_indptr_"], self.__dict__["seen_items_"] = indptr, items
                return self.__dict__[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute {name!r}")

    def __getstate__(self) -> dict[str, Any]:
        with lock_of(self).reading():
            if "_state" in self.__dict__:
                self.seen_indptr_  # noqa: B018 - built now: the pickled state has no layout
            state = self.__dict__.copy()
        state.pop("_lock", None)  # a copy or an unpickled model gets a lock of its own
        return state

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> Params:
        """Validated parameters, or a clear error naming the bad one (``train.params``)."""
        return check_params(self)

    def _check_fitted(self) -> None:
        check_fitted(self)

    # ------------------------------------------------------------------ public API
    def fit(
        self,
        X: Any,
        y: Any = None,
        validation: Any = None,
        item_titles: Any = None,
        resume: bool = False,
    ) -> MatrixFactorization:
        """Train from scratch for ``n_epochs`` epochs.

        Parameters
        ----------
        X : DataFrame with columns user, item, rating[, timestamp], array of shape (n, 2), or
            RatingStore
            Raw (user, item) ids when an array; then ``y`` holds the ratings. A store is read
            block by block from disk and trains the same model, bit for bit.
        y : array-like of shape (n,), optional
        validation : DataFrame, a tuple (X_val, y_val), or RatingStore, optional
            Ratings scored after each epoch (``val_rmse``, ``val_mae`` in ``history_``). Users
            or items not in the training data get the fallback prediction (μ plus known biases).
        item_titles : mapping or Series from raw item id to title, optional
            Kept as ``item_titles_`` for recommendations.
        resume : bool, default False
            Continue from the checkpoint in ``checkpoint_dir`` (a fit of the same data and
            parameters, killed or stopped): the same bits as a fit never stopped.

        Returns
        -------
        self

        Notes
        -----
        The call completes or leaves the previous fitted state exactly as it was, whatever the
        exception; Ctrl-C stops after the running epoch and keeps the epochs completed.
        """
        if from_store.is_store(X):
            return from_store.fit(self, X, validation, item_titles, resume=resume)
        with lock_of(self).writing():
            params = self._check_params()
            holds_out = validation is None and (
                params.validation_fraction is not None or params.early_stopping
            )
            ratings = fit_ratings(X, y, params.duplicates, holds_out)
            rng = np.random.default_rng(params.random_state)
            val = None if validation is None else validation_frame(validation)
            titles = None if item_titles is None else dict(pd.Series(item_titles))
            if holds_out:
                ratings, val = hold_out(ratings, params.validation_fraction, rng)
            params = resolve_for_data(params, ratings)
            check_memory(ratings.n_users, ratings.n_items, params, n_ratings=len(ratings))
            train_fresh(
                self, lambda: initialize(self, ratings, params, rng), val, params, titles, resume
            )
        return self

    def partial_fit(self, X: Any, y: Any = None, validation: Any = None) -> MatrixFactorization:
        """One more epoch from the current state, on the same objective.

        The optimizer state, the schedule and the random stream continue, so ``fit`` with 10
        epochs equals ``fit`` with 5 followed by 5 ``partial_fit`` calls on the same data (with
        a schedule other than "auto", whose length is the fit's ``n_epochs_``). An
        unfitted model is initialized first. Users or items unseen at ``fit`` raise ValueError
        (fold new users in with ``fold_in``).

        Parameters that shape the model (``n_factors``, ``dtype``, ``biases``, and
        ``bias_damping`` with fixed biases) cannot change before ``partial_fit``: a changed one
        raises ValueError naming it (``fit`` starts anew with it). The others apply from the
        next epoch: a new ``optimizer`` continues from the current factors with fresh optimizer
        state; ``batch_size``, ``learning_rate`` and its schedule, ``reg``, ``reg_bias``,
        ``callbacks``, ``duplicates``, ``n_jobs`` and ``verbose`` are simply used.
        ``init_std`` and ``random_state`` seed a fit: ``partial_fit`` continues the fit's
        random stream. The call completes or leaves the model exactly as it was. ``X`` may be a
        RatingStore of the same users and items, read block by block.
        """
        if from_store.is_store(X):
            return from_store.partial_fit(self, X, validation)
        with lock_of(self).writing():
            params = self._check_params()
            if hasattr(self, "user_factors_") and not hasattr(self, "_state"):
                raise ValueError(
                    "this fitted model carries no training state (it was loaded from a file "
                    "saved without it), so partial_fit cannot continue it; refit with fit"
                )
            ratings = to_ratings(X, y, duplicates=params.duplicates)
            val = None if validation is None else validation_frame(validation)
            fresh = not hasattr(self, "_state")
            if fresh:
                params = resolve_for_data(params, ratings)
                check_memory(ratings.n_users, ratings.n_items, params, n_ratings=len(ratings))
            else:
                params = resolve_for_continuation(self, params)
                check_continuation(self, params)

            def start() -> None:
                initialize(self, ratings, params, np.random.default_rng(params.random_state))
                self.item_titles_ = None

            def go_on() -> Any:
                blocks = blocks_for(self, ratings, threads_for(params.n_jobs))
                continue_optimizer(self, params)
                return blocks

            train_one_more(self, fresh, start, go_on, val, params)
        return self

    def predict(self, X: Any, clip: bool = True) -> np.ndarray:
        """Predicted ratings for raw (user, item) pairs.

        Unknown users or items fall back to what is known: μ plus the known bias. Predictions are
        clipped to the training rating scale unless ``clip=False``.

        Parameters
        ----------
        X : DataFrame with columns user and item, array of shape (n, 2) of raw ids, or
            RatingStore (predictions for its ratings, in the store's block order)

        Returns
        -------
        ndarray of shape (n,), dtype float64
        """
        if from_store.is_store(X):
            return from_store.predict_store(self, X, clip)
        with lock_of(self).reading():
            self._check_fitted()
            users, items = pairs(X)
            u = self.user_map_.lookup(users, column="user")
            i = self.item_map_.lookup(items, column="item")
            out = self._predict_rows(u, i)
            if clip:
                np.clip(out, self.rating_scale_[0], self.rating_scale_[1], out=out)
        return out

    def score(self, X: Any, y: Any = None) -> float:
        """Negative RMSE of the clipped predictions (higher is better, as scikit-learn expects)."""
        if y is None:
            if not isinstance(X, pd.DataFrame) or "rating" not in X.columns:
                raise ValueError("score needs ratings: pass y, or a DataFrame with a rating column")
            y = X["rating"].to_numpy()
        pred = self.predict(X)
        y = np.asarray(y, dtype=np.float64)
        if y.shape != pred.shape:
            raise ValueError(f"y has {y.shape[0]} ratings but X has {pred.shape[0]} pairs")
        return -root_mean_square(pred - y)

    # ------------------------------------------------------------------ training

    def _predict_rows(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """r̂ (float64) for model rows ``u``, ``i`` (-1: unknown), through the guarded kernel."""
        return predict_rows(self, u, i)
