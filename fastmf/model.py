"""``MatrixFactorization``: the estimator that trains the biased model r̂ = μ + b_u + b_i + p_u·q_i."""

from __future__ import annotations

import inspect
import math
import signal
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fastmf import _batch_points as bp
from fastmf import _guard as guard
from fastmf._aligned import aligned_empty, aligned_zeros, cache_aligned
from fastmf._biases import damped_biases
from fastmf._defaults import resolve_learning_rate, resolve_optimizer
from fastmf._kernels import sorting as sk
from fastmf._kernels import training as K
from fastmf._kernels.hashing import hash_arrays
from fastmf._model_lock import lock_of
from fastmf._random import check_random_state
from fastmf._schedule import BlockSchedule, Strata, balanced_strata, build_blocks, choose_n_strata
from fastmf._threads import KERNEL_LOCK, numba_threads, threads_for
from fastmf._training_checks import check_divergence, check_memory
from fastmf._transaction import Checkpoint, install
from fastmf._validation import (
    check_choice,
    check_fitted,
    check_float,
    check_int,
)
from fastmf.data.coerce import pairs, to_ratings, validation_frame
from fastmf.errors import NotFittedError  # noqa: F401 - re-exported here too
from fastmf.ratings import IdMap, Ratings

OPTIMIZERS = ("sgd", "adagrad", "adam", "row_adagrad", "damped_sgd")
BIASES = ("learned", "fixed", "none")
LR_SCHEDULES = ("constant", "step", "exponential", "plateau")
DTYPES = ("float32", "float64")
Callback = Callable[["MatrixFactorization", dict], Any]

_SET_AT_FIT = ("n_factors", "dtype", "biases", "bias_damping")
"""Parameters that define the model made at fit: partial_fit refuses a change to them."""


@dataclass
class _TrainState:
    """What training carries from one epoch (and one ``partial_fit``) to the next."""

    rng: np.random.Generator
    user_strata: Strata
    item_strata: Strata
    optimizer: dict[str, np.ndarray]
    learning_rate: float
    plateau_best: float = math.inf
    blocks: BlockSchedule | None = None
    blocks_key: tuple = ()
    optimizer_name: str = ""  # the optimizer whose state ``optimizer`` holds
    fit_params: dict = field(default_factory=dict)  # the _SET_AT_FIT parameters at fit

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["blocks"] = None  # rebuilt on demand; not worth a pickle's size
        state["blocks_key"] = ()
        return state


class MatrixFactorization:
    """Biased matrix factorization of explicit ratings, trained batch by batch.

    Prediction is ``r̂_ui = μ + b_u + b_i + p_u·q_i``. For a batch B the objective is
    ``L_B = (Σ_B (r − r̂)² + λ Σ_B (‖p_u‖² + ‖q_i‖²)) / batch_size`` (plus ``reg_bias`` times the
    squared biases, when asked), divided by the nominal ``batch_size`` also where a block's end
    cuts a batch short, so every rating weighs the same. The first sum is the base loss, the
    second the regularization loss.

    Parameters
    ----------
    n_factors : int, default 64
        Length k of the factor vectors p_u and q_i.
    n_epochs : int, default 20
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
    reg : float, default 0.05
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
    init_std : float, default 0.1
        Factors start as draws from N(0, init_std²); biases start at 0.
    lr_schedule : {"constant", "step", "exponential", "plateau"} or callable, default "exponential"
        "step" multiplies the rate by ``lr_decay`` (default 0.5) every ``lr_step_size`` epochs,
        "exponential" by ``lr_decay`` (default 0.8) every epoch, "plateau" by ``lr_decay``
        (default 0.5) when the monitored error did not improve by ``min_delta`` in an epoch.
        A callable gets (epoch, learning_rate) and returns the epoch's rate.
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
    """

    def __init__(
        self,
        n_factors: int = 64,
        n_epochs: int = 20,
        batch_size: int = 1,
        learning_rate: float | None = None,
        reg: float = 0.05,
        reg_bias: float = 0.0,
        optimizer: str = "auto",
        record_batches: bool = False,
        biases: str = "learned",
        bias_damping: float = 5.0,
        init_std: float = 0.1,
        lr_schedule: str | Callable[[int, float], float] = "exponential",
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

    # ------------------------------------------------------------------ scikit-learn contract
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters, as scikit-learn's ``clone`` and searches expect."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> MatrixFactorization:
        """Set constructor parameters by name; returns self."""
        valid = set(self._param_names())
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"unknown parameter {name!r} for MatrixFactorization; valid: {sorted(valid)}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = MatrixFactorization().get_params()
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if not _same(v, defaults[k])]
        return f"MatrixFactorization({', '.join(changed)})"

    def __sklearn_tags__(self):  # pragma: no cover - exercised through scikit-learn
        from sklearn.utils import RegressorTags, Tags, TargetTags

        return Tags(
            estimator_type="regressor",
            target_tags=TargetTags(required=True),
            regressor_tags=RegressorTags(),
        )

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
                indptr, items = _seen_csr(blocks, n_users)
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
    def _check_params(self) -> dict[str, Any]:
        """Validated parameters, or a clear error naming the bad one."""
        p: dict[str, Any] = {}
        p["n_factors"] = check_int(self.n_factors, "n_factors", low=1)
        p["n_epochs"] = check_int(self.n_epochs, "n_epochs", low=0)
        p["batch_size"] = check_int(self.batch_size, "batch_size", low=1)
        lr = self.learning_rate
        lr = None if lr is None else check_float(lr, "learning_rate", strict=True)
        p["reg"] = check_float(self.reg, "reg")
        p["reg_bias"] = check_float(self.reg_bias, "reg_bias")
        optimizer = check_choice(self.optimizer, "optimizer", ("auto", *OPTIMIZERS))
        p["optimizer"] = resolve_optimizer(optimizer, p["batch_size"])
        p["learning_rate"] = resolve_learning_rate(lr, p["optimizer"], p["batch_size"])
        if not isinstance(self.record_batches, (bool, np.bool_)):
            raise TypeError(f"record_batches must be True or False, got {self.record_batches!r}")
        p["biases"] = check_choice(self.biases, "biases", BIASES)
        p["bias_damping"] = check_float(self.bias_damping, "bias_damping")
        p["init_std"] = check_float(self.init_std, "init_std")
        if not callable(self.lr_schedule):
            check_choice(self.lr_schedule, "lr_schedule", LR_SCHEDULES)
        if self.lr_decay is not None:
            check_float(self.lr_decay, "lr_decay", strict=True, high=1.0)
        check_int(self.lr_step_size, "lr_step_size", low=1)
        if self.validation_fraction is not None:
            vf = check_float(self.validation_fraction, "validation_fraction", strict=True)
            if vf >= 1:
                raise ValueError(f"validation_fraction must be below 1, got {vf}")
        check_int(self.patience, "patience", low=1)
        check_float(self.min_delta, "min_delta")
        for cb in self.callbacks or ():
            if not callable(cb):
                raise TypeError(f"callbacks must be callables cb(model, row), got {cb!r}")
        check_choice(self.duplicates, "duplicates", ("error", "last"))
        check_random_state(self.random_state, allow_generator=False)
        check_int(self.n_jobs, "n_jobs", low=-1)
        if self.n_jobs == 0:
            raise ValueError("n_jobs must be -1 (all cores) or a positive number of threads, got 0")
        try:
            dtype_name = str(np.dtype(self.dtype))
        except TypeError:
            raise TypeError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}") from None
        p["dtype"] = check_choice(dtype_name, "dtype", DTYPES)
        p["random_state"] = self.random_state
        check_int(self.verbose, "verbose", low=0)
        return p

    def _check_fitted(self) -> None:
        check_fitted(self)

    # ------------------------------------------------------------------ public API
    def fit(
        self,
        X: Any,
        y: Any = None,
        validation: Any = None,
        item_titles: Any = None,
    ) -> MatrixFactorization:
        """Train from scratch for ``n_epochs`` epochs.

        Parameters
        ----------
        X : DataFrame with columns user, item, rating[, timestamp], or array of shape (n, 2)
            Raw (user, item) ids when an array; then ``y`` holds the ratings.
        y : array-like of shape (n,), optional
        validation : DataFrame, or a tuple (X_val, y_val), optional
            Ratings scored after each epoch (``val_rmse``, ``val_mae`` in ``history_``). Users
            or items not in the training data get the fallback prediction (μ plus known biases).
        item_titles : mapping or Series from raw item id to title, optional
            Kept as ``item_titles_`` for recommendations.

        Returns
        -------
        self

        Notes
        -----
        The call completes or leaves the previous fitted state exactly as it was, whatever the
        exception; Ctrl-C stops after the running epoch and keeps the epochs completed.
        """
        with lock_of(self).writing():
            params = self._check_params()
            ratings = to_ratings(X, y, duplicates=self.duplicates)
            rng = np.random.default_rng(self.random_state)
            val = None if validation is None else validation_frame(validation)
            titles = None if item_titles is None else dict(pd.Series(item_titles))
            if val is None and (self.validation_fraction is not None or self.early_stopping):
                ratings, val = _hold_out(ratings, self.validation_fraction, rng)
            check_memory(ratings.n_users, ratings.n_items, params)
            checkpoint = Checkpoint(self, in_place=False)
            try:
                self._initialize(ratings, params, rng)
                self.item_titles_ = titles
                self._train(self._state.blocks, val, params, params["n_epochs"], checkpoint)
            except BaseException as exc:
                checkpoint.settle(self, exc)
                raise
        return self

    def partial_fit(self, X: Any, y: Any = None, validation: Any = None) -> MatrixFactorization:
        """One more epoch from the current state, on the same objective.

        The optimizer state, the schedule and the random stream continue, so ``fit`` with 10
        epochs equals ``fit`` with 5 followed by 5 ``partial_fit`` calls on the same data. An
        unfitted model is initialized first. Users or items unseen at ``fit`` raise ValueError
        (fold new users in with ``fold_in``).

        Parameters that shape the model (``n_factors``, ``dtype``, ``biases``, and
        ``bias_damping`` with fixed biases) cannot change before ``partial_fit``: a changed one
        raises ValueError naming it (``fit`` starts anew with it). The others apply from the
        next epoch: a new ``optimizer`` continues from the current factors with fresh optimizer
        state; ``batch_size``, ``learning_rate`` and its schedule, ``reg``, ``reg_bias``,
        ``callbacks``, ``duplicates``, ``n_jobs`` and ``verbose`` are simply used.
        ``init_std`` and ``random_state`` seed a fit: ``partial_fit`` continues the fit's
        random stream. The call completes or leaves the model exactly as it was.
        """
        with lock_of(self).writing():
            params = self._check_params()
            if hasattr(self, "user_factors_") and not hasattr(self, "_state"):
                raise ValueError(
                    "this fitted model carries no training state (it was loaded from a file "
                    "saved without it), so partial_fit cannot continue it; refit with fit"
                )
            ratings = to_ratings(X, y, duplicates=self.duplicates)
            val = None if validation is None else validation_frame(validation)
            fresh = not hasattr(self, "_state")
            if fresh:
                check_memory(ratings.n_users, ratings.n_items, params)
            else:
                self._check_continuation(params)
            checkpoint = Checkpoint(self, in_place=not fresh)
            try:
                if fresh:
                    self._initialize(ratings, params, np.random.default_rng(self.random_state))
                    self.item_titles_ = None
                    blocks = self._state.blocks
                else:
                    blocks = self._blocks_for(ratings, threads_for(self.n_jobs))
                    self._continue_optimizer(params)
                self._train(blocks, val, params, 1, checkpoint)
            except BaseException as exc:
                checkpoint.settle(self, exc)
                raise
        return self

    def _check_continuation(self, params: dict) -> None:
        """Refuse a parameter set at fit that was changed since (continuing makes no sense)."""
        at_fit = self._state.fit_params
        for name in _SET_AT_FIT:
            if name not in at_fit:
                continue
            now = params.get(name, getattr(self, name))
            if name == "bias_damping" and at_fit.get("biases") != "fixed":
                continue
            if not _same(now, at_fit[name]):
                raise ValueError(
                    f"{name} was {at_fit[name]!r} at fit and is now {now!r}: {name} is set when "
                    f"the model is made, so partial_fit cannot continue with the new value; "
                    f"call fit to train anew with it, or set it back to {at_fit[name]!r}"
                )

    def _continue_optimizer(self, params: dict) -> None:
        """Fresh optimizer state when the optimizer changed since the last epoch."""
        st = self._state
        if st.optimizer_name != params["optimizer"]:
            st.optimizer = _new_optimizer_state(
                params["optimizer"], self.user_factors_, self.item_factors_
            )
            st.optimizer_name = params["optimizer"]

    def predict(self, X: Any, clip: bool = True) -> np.ndarray:
        """Predicted ratings for raw (user, item) pairs.

        Unknown users or items fall back to what is known: μ plus the known bias. Predictions are
        clipped to the training rating scale unless ``clip=False``.

        Parameters
        ----------
        X : DataFrame with columns user and item, or array of shape (n, 2) of raw ids

        Returns
        -------
        ndarray of shape (n,), dtype float64
        """
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
        return -float(np.sqrt(np.mean((pred - y) ** 2)))

    @property
    def user_ids_(self) -> np.ndarray:
        """Raw id of each row of ``user_factors_``."""
        if "user_map_" not in self.__dict__:
            raise NotFittedError(
                "this MatrixFactorization is not fitted yet; call fit(ratings) before using it"
            )
        return self.user_map_.ids

    @property
    def item_ids_(self) -> np.ndarray:
        """Raw id of each row of ``item_factors_``."""
        if "item_map_" not in self.__dict__:
            raise NotFittedError(
                "this MatrixFactorization is not fitted yet; call fit(ratings) before using it"
            )
        return self.item_map_.ids

    # serving: thin delegations to fastmf.recommend and fastmf.serialize
    def recommend(
        self, user: Any, n: int = 10, exclude_seen: bool = True, items: Any = None
    ) -> pd.DataFrame:
        """Top-``n`` items for one user (a raw id or a ``FoldedUser``); see
        ``fastmf.recommend.recommend``."""
        from fastmf import recommend

        with lock_of(self).reading():
            return recommend.recommend(self, user, n=n, exclude_seen=exclude_seen, items=items)

    def recommend_many(self, users: Any, n: int = 10, exclude_seen: bool = True, items: Any = None):
        """Top-``n`` items for many users at once; see ``fastmf.recommend.recommend_many``."""
        from fastmf import recommend

        with lock_of(self).reading():
            return recommend.recommend_many(self, users, n=n, exclude_seen=exclude_seen, items=items)

    def similar_items(self, item: Hashable, n: int = 10) -> pd.DataFrame:
        """Items nearest by cosine of factors; see ``fastmf.recommend.similar_items``."""
        from fastmf import recommend

        with lock_of(self).reading():
            return recommend.similar_items(self, item, n=n)

    def similar_users(self, user: Any, n: int = 10) -> pd.DataFrame:
        """Users nearest by cosine of factors; see ``fastmf.recommend.similar_users``."""
        from fastmf import recommend

        with lock_of(self).reading():
            return recommend.similar_users(self, user, n=n)

    def fold_in(self, ratings: Any):
        """Factors and bias of a user unseen in training; see ``fastmf.recommend.fold_in``."""
        from fastmf import recommend

        with lock_of(self).reading():
            return recommend.fold_in(self, ratings)

    def save(self, path: Any) -> None:
        """Write the model to one file, atomically; see ``fastmf.serialize.save``."""
        from fastmf import serialize

        with lock_of(self).reading():
            serialize.save(self, path)

    # ------------------------------------------------------------------ training
    def _initialize(self, ratings: Ratings, params: dict, rng: np.random.Generator) -> None:
        """Fresh model state for ``ratings``: strata, row order, biases and random factors."""
        dtype = np.dtype(self.dtype)
        n_users, n_items = ratings.n_users, ratings.n_items
        s = choose_n_strata(len(ratings), n_users, n_items)
        u_counts = sk.key_counts(ratings.users, n_users)
        i_counts = sk.key_counts(ratings.items, n_items)
        u_pos, u_strata = balanced_strata(u_counts, s, rng)
        i_pos, i_strata = balanced_strata(i_counts, s, rng)
        u_ids = np.empty_like(ratings.user_map.ids)
        u_ids[u_pos] = ratings.user_map.ids
        i_ids = np.empty_like(ratings.item_map.ids)
        i_ids[i_pos] = ratings.item_map.ids
        k = params["n_factors"]
        std = params["init_std"]
        P = rng.standard_normal(dtype=dtype, out=aligned_empty((n_users, k), dtype))
        P *= dtype.type(std)
        Q = rng.standard_normal(dtype=dtype, out=aligned_empty((n_items, k), dtype))
        Q *= dtype.type(std)
        mu = float(np.mean(ratings.values, dtype=np.float64))
        bu = np.zeros(n_users, dtype=dtype)
        bi = np.zeros(n_items, dtype=dtype)
        if params["biases"] == "fixed":
            fb_u, fb_i = fixed_biases(ratings, mu, params["bias_damping"])
            bu[u_pos] = fb_u
            bi[i_pos] = fb_i
        state = _TrainState(
            rng=rng,
            user_strata=u_strata,
            item_strata=i_strata,
            optimizer=_new_optimizer_state(params["optimizer"], P, Q),
            learning_rate=params["learning_rate"],
            optimizer_name=params["optimizer"],
            fit_params={name: params[name] for name in _SET_AT_FIT},
        )
        # the training data in model rows, laid out in blocks (kept for partial_fit)
        state.blocks = _layout(state, ratings, u_pos, i_pos, threads_for(self.n_jobs))
        state.blocks_key = _fingerprint(ratings)
        # seen_indptr_ and seen_items_ are built from these blocks when first asked for
        install(
            self,
            {
                "global_mean_": mu,
                "user_bias_": bu,
                "item_bias_": bi,
                "user_factors_": P,
                "item_factors_": Q,
                "user_map_": IdMap(u_ids),
                "item_map_": IdMap(i_ids),
                "rating_scale_": (float(ratings.values.min()), float(ratings.values.max())),
                "item_titles_": None,
                "history_": _empty_history(),
                "n_epochs_done_": 0,
                "best_epoch_": None,
                "_state": state,
            },
            clear=True,
        )

    def _blocks_for(self, ratings: Ratings, n_workers: int) -> BlockSchedule:
        """The block layout of ``ratings`` in model rows, reused when the data is the same."""
        st = self._state
        key = _fingerprint(ratings)
        if st.blocks is not None and st.blocks_key == key:
            return st.blocks.with_workers(n_workers)
        getattr(self, "seen_indptr_", None)  # keep the fitted data's seen items: a new layout
        u_rows = self.user_map_.lookup(ratings.user_map.ids)
        i_rows = self.item_map_.lookup(ratings.item_map.ids)
        for name, rows, ids in (
            ("user", u_rows, ratings.user_map.ids),
            ("item", i_rows, ratings.item_map.ids),
        ):
            if (rows < 0).any():
                unknown = ids[rows < 0]
                raise ValueError(
                    f"{unknown.size} {name} ids were not seen at fit (first: "
                    f"{unknown[:3].tolist()}); partial_fit trains the users and items of the fitted "
                    f"model only: refit, or fold new users in with fold_in"
                )
        blocks = _layout(st, ratings, u_rows, i_rows, n_workers)
        st.blocks, st.blocks_key = blocks, key
        return blocks

    def _train(
        self,
        blocks: BlockSchedule,
        val: pd.DataFrame | None,
        params: dict,
        n_epochs: int,
        checkpoint: Checkpoint,
    ) -> None:
        """Run ``n_epochs`` epochs over ``blocks``, recording history, validation, callbacks and
        early stopping; ``checkpoint.completed_epochs`` counts the epochs recorded."""
        n_threads = blocks.n_workers
        # the defaults that follow the batch size, as resolved by _check_params
        install(self, {"optimizer_": params["optimizer"], "learning_rate_": params["learning_rate"]})
        dtype = np.dtype(self.dtype)
        # factors loaded, unpickled or set by hand may start anywhere: the kernels want cache lines
        install(
            self,
            {
                "user_factors_": cache_aligned(self.user_factors_),
                "item_factors_": cache_aligned(self.item_factors_),
            },
        )
        val_rows = None
        if val is not None:
            vu, vi = pairs(val)
            val_rows = (
                self.user_map_.lookup(vu),
                self.item_map_.lookup(vi),
                val["rating"].to_numpy(dtype=np.float64),
            )
        monitor_best = math.inf
        best_snapshot = None
        wait = 0
        scratch = (
            _scratch(params, blocks, len(self.user_map_), len(self.item_map_), dtype)
            if _uses_batch_kernel(params)
            else None
        )
        progress = _Progress(n_epochs, self.verbose)
        try:
            with numba_threads(n_threads), _deferred_interrupt() as interrupt:
                for _ in range(n_epochs):
                    epoch = self.n_epochs_done_
                    lr = self._epoch_learning_rate(epoch, params)
                    interrupt.hold = checkpoint.in_epoch = True  # until the epoch is recorded
                    t0 = time.perf_counter()
                    base, regl, points = self._run_epoch(blocks, params, lr, dtype, scratch)
                    seconds = time.perf_counter() - t0
                    check_divergence(self, blocks, base, regl, epoch, lr, params)
                    row = self._history_row(epoch, base, regl, len(blocks.values), val_rows)
                    row["learning_rate"] = lr
                    row["seconds"] = seconds
                    self.n_epochs_done_ = epoch + 1
                    self.history_ = _append_history(self.history_, row)
                    if epoch == 0:  # a fresh fit starts a new record
                        self.__dict__.pop("batch_history_", None)
                    if points is not None:
                        earlier = self.__dict__.get("batch_history_")
                        both = [points] if earlier is None else [earlier, points]
                        self.batch_history_ = pd.concat(both, ignore_index=True)
                    checkpoint.completed_epochs += 1
                    interrupt.hold = checkpoint.in_epoch = False
                    progress.update(row)
                    monitored = row.get("val_rmse", row["total_loss"])
                    self._after_epoch_schedule(monitored, params)
                    stop = False
                    if self.early_stopping and val_rows is not None:
                        if monitored < monitor_best - self.min_delta:
                            monitor_best, wait = monitored, 0
                            best_snapshot = _snapshot(self)
                        else:
                            wait += 1
                            stop = wait >= self.patience
                    for cb in self.callbacks or ():
                        if cb(self, dict(row)) is True:
                            stop = True
                    if interrupt.hit:
                        raise KeyboardInterrupt
                    if stop:
                        break
        finally:
            progress.close()
        if best_snapshot is not None:
            _restore(self, best_snapshot)

    def _history_row(
        self, epoch: int, base: float, regl: float, n_train: int, val_rows: tuple | None
    ) -> dict[str, Any]:
        """The epoch's losses (sums over the training ratings, as means) and validation errors."""
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "base_loss": base / n_train,
            "reg_loss": regl / n_train,
            "total_loss": (base + regl) / n_train,
            "train_rmse": math.sqrt(base / n_train),
        }
        if val_rows is not None:
            pred = self._predict_rows(val_rows[0], val_rows[1])
            np.clip(pred, self.rating_scale_[0], self.rating_scale_[1], out=pred)
            err = pred - val_rows[2]
            row["val_rmse"] = float(np.sqrt(np.mean(err * err)))
            row["val_mae"] = float(np.mean(np.abs(err)))
        return row

    def _run_epoch(
        self, blocks: BlockSchedule, params: dict, lr: float, dtype: np.dtype, scratch
    ) -> tuple[float, float, pd.DataFrame | None]:
        """One epoch through the kernels; returns the summed base and regularization losses, and
        with ``record_batches`` the epoch's loss points (else None). Every array the kernel gets
        is checked first (``_guard``)."""
        st = self._state
        bu, bi, P, Q = self.user_bias_, self.item_bias_, self.user_factors_, self.item_factors_
        n_users, n_items = len(self.user_map_), len(self.item_map_)
        guard.check_parameters(self.global_mean_, bu, bi, P, Q, n_users, n_items)
        guard.check_layout(blocks, n_users, n_items)
        shift_order = st.rng.permutation(blocks.n_strata).astype(np.int64)
        if self.record_batches:
            bounds, owned = bp.batch_points(blocks.block_offsets, params["batch_size"])
        else:
            bounds, owned = bp.block_points(blocks.block_offsets)
        point_losses = np.zeros((bounds.shape[0] - 1, 2), dtype=np.float64)
        guard.check_points(bounds, owned, len(blocks.values), blocks.n_strata**2)
        learn_bias = params["biases"] == "learned"
        mu = dtype.type(self.global_mean_)
        common = (blocks.users, blocks.items, blocks.values, bounds, owned, shift_order,
                  blocks.assign_offsets, blocks.assign_blocks)  # fmt: skip
        lr_, lam, lam_b = dtype.type(lr), dtype.type(params["reg"]), dtype.type(params["reg_bias"])
        if not _uses_batch_kernel(params):
            with KERNEL_LOCK:
                K.sgd_epoch(*common, mu, bu, bi, P, Q, lr_, lam, lam_b, learn_bias, point_losses)
        else:
            o = st.optimizer
            k = P.shape[1]
            guard.check_optimizer_state(o, params["optimizer"], dtype, n_users, n_items, k)
            slots = _slots_per_batch(params["batch_size"], blocks)
            guard.check_scratch(scratch, blocks.n_workers, slots, k, dtype, n_users, n_items)
            with KERNEL_LOCK:
                K.batch_epoch(
                    *common, params["batch_size"], mu, bu, bi, P, Q, lr_, lam, lam_b, learn_bias,
                    K.OPTIMIZER_CODES[params["optimizer"]],
                    o["bu_s1"], o["bu_s2"], o["bi_s1"], o["bi_s2"], o["P_s1"], o["P_s2"],
                    o["Q_s1"], o["Q_s2"], o["u_steps"], o["i_steps"], *scratch, point_losses,
                )  # fmt: skip
        points = None
        if self.record_batches:
            order = bp.execution_order(owned, shift_order, blocks.n_strata)
            epoch = self.n_epochs_done_ + 1
            points = bp.points_frame(epoch, bounds, order, point_losses, params["batch_size"])
            point_losses = point_losses[order]
        totals = point_losses.sum(axis=0)  # fixed order: point by point
        return float(totals[0]), float(totals[1]), points

    def _epoch_learning_rate(self, epoch: int, params: dict) -> float:
        lr0 = params["learning_rate"]
        schedule = self.lr_schedule
        if callable(schedule):
            lr = float(schedule(epoch, lr0))
            return check_float(lr, "the learning rate returned by lr_schedule", strict=True)
        if schedule == "step":
            decay = self.lr_decay if self.lr_decay is not None else 0.5
            return lr0 * decay ** (epoch // self.lr_step_size)
        if schedule == "exponential":
            decay = self.lr_decay if self.lr_decay is not None else 0.8
            return lr0 * decay**epoch
        if schedule == "plateau":
            return self._state.learning_rate
        return lr0

    def _after_epoch_schedule(self, monitored: float, params: dict) -> None:
        """The plateau schedule's bookkeeping: cut the rate when the error stops improving."""
        if self.lr_schedule != "plateau":
            return
        st = self._state
        if monitored < st.plateau_best - self.min_delta:
            st.plateau_best = monitored
        else:
            decay = self.lr_decay if self.lr_decay is not None else 0.5
            st.learning_rate *= decay

    def _predict_rows(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        P, Q = self.user_factors_, self.item_factors_
        bu, bi, mu = self.user_bias_, self.item_bias_, self.global_mean_
        guard.check_parameters(mu, bu, bi, P, Q, len(self.user_map_), len(self.item_map_))
        u = np.ascontiguousarray(u, dtype=np.int32)
        i = np.ascontiguousarray(i, dtype=np.int32)
        guard.check_rows(u, "the user rows", P.shape[0])
        guard.check_rows(i, "the item rows", Q.shape[0])
        out = np.empty(u.shape[0], dtype=P.dtype)
        with KERNEL_LOCK:
            K.predict(u, i, P.dtype.type(mu), bu, bi, P, Q, out)
        return out.astype(np.float64)


# ---------------------------------------------------------------------- helpers


def _layout(
    state: _TrainState, ratings: Ratings, user_row: np.ndarray, item_row: np.ndarray, n_workers: int
) -> BlockSchedule:
    """The block layout of ``ratings`` whose users and items sit at rows ``user_row``/``item_row``."""
    return build_blocks(
        ratings.users, ratings.items, ratings.values, user_row, item_row,
        state.user_strata, state.item_strata, n_workers,
    )  # fmt: skip


def fixed_biases(ratings: Ratings, mu: float, damping: float) -> tuple[np.ndarray, np.ndarray]:
    """Damped mean deviations: b_i = Σ(r − μ)/(n_i + damping), then b_u on what is left (one
    sweep of ``fastmf._biases.damped_biases``)."""
    r = ratings
    return damped_biases(
        r.users, r.items, r.values, mu, damping, 1, n_users=r.n_users, n_items=r.n_items
    )


def _uses_batch_kernel(params: dict) -> bool:
    return params["batch_size"] > 1 or params["optimizer"] != "sgd"


def _new_optimizer_state(optimizer: str, P: np.ndarray, Q: np.ndarray) -> dict[str, np.ndarray]:
    """Per-row optimizer state: AdaGrad's sums of squares, Adam's moments and step counts."""
    dtype = P.dtype
    n_u, k = P.shape
    n_i = Q.shape[0]
    n1 = 1 if optimizer in ("adagrad", "adam", "row_adagrad") else 0
    n2 = 1 if optimizer == "adam" else 0
    row_state = optimizer == "row_adagrad"  # one sum of squares per factor row
    return {
        "bu_s1": np.zeros(n_u * n1, dtype),
        "bu_s2": np.zeros(n_u * n2, dtype),
        "bi_s1": np.zeros(n_i * n1, dtype),
        "bi_s2": np.zeros(n_i * n2, dtype),
        "P_s1": np.zeros((n_u * n1, 1 if row_state else k), dtype),
        "P_s2": np.zeros((n_u * n2, k), dtype),
        "Q_s1": np.zeros((n_i * n1, 1 if row_state else k), dtype),
        "Q_s2": np.zeros((n_i * n2, k), dtype),
        "u_steps": np.zeros(n_u * n2, np.int64),
        "i_steps": np.zeros(n_i * n2, np.int64),
    }


def _scratch(
    params: dict, blocks: BlockSchedule, n_users: int, n_items: int, dtype: np.dtype
) -> tuple:
    """The mini-batch kernel's scratch, per side (users, then items): each worker's gradient
    slots and bias gradients, the squared norms of each slot's partners (all zero between
    batches), their rating counts and rows, and the slot of every model row
    (-1 when free; rows are owned by one block at a time, so the workers share it)."""
    w, b, k = blocks.n_workers, _slots_per_batch(params["batch_size"], blocks), params["n_factors"]
    return tuple(
        x
        for n_rows in (n_users, n_items)
        for x in (
            aligned_zeros((w, b, k), dtype),
            np.zeros((w, b), dtype),
            np.zeros((w, b), dtype),
            np.zeros((w, b), np.int32),
            np.zeros((w, b), np.int32),
            np.full(n_rows, -1, np.int32),
        )
    )


def _slots_per_batch(batch_size: int, blocks: BlockSchedule) -> int:
    """Gradient slots a batch can need: one per rating, and a batch holds at most
    ``batch_size`` ratings of one block."""
    largest = int(np.diff(blocks.block_offsets).max()) if blocks.n_strata else 1
    return max(1, min(batch_size, largest))


def _hold_out(
    ratings: Ratings, fraction: float | None, rng: np.random.Generator
) -> tuple[Ratings, pd.DataFrame]:
    """A seeded share of the ratings (``fraction``, 10% when None) held out for validation."""
    fraction = fraction if fraction is not None else 0.1
    hold = rng.random(len(ratings)) < fraction
    if hold.all() or not hold.any():
        raise ValueError(
            f"validation_fraction={fraction} leaves no ratings for training or none "
            f"for validation with {len(ratings)} ratings"
        )
    return ratings.subset(~hold), ratings.subset(hold).to_dataframe()


def _seen_csr(blocks: BlockSchedule, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """Each user's training items, sorted, as CSR (indptr int64, items int32).

    Blocks come in (user stratum, item stratum) order and item rows are numbered stratum by
    stratum, so a stable bucketing by user yields every user's items nearly sorted: only a user
    whose ratings in a block span two of its interleaved runs needs sorting.
    """
    with KERNEL_LOCK:
        order, indptr = sk.stable_bucket_order(blocks.users, n_users)
        items = blocks.items[order]
        sk.sort_unsorted_segments(items, indptr)
    return indptr, items


def _fingerprint(ratings: Ratings) -> tuple:
    """The identity of a ratings set, to reuse its block layout: a hash of every triple (the
    raw ids through the id maps, the indices and the ratings), at memory speed."""
    return (
        len(ratings),
        ratings.n_users,
        ratings.n_items,
        hash_arrays(
            ratings.user_map.ids, ratings.item_map.ids, ratings.users, ratings.items, ratings.values
        ),
    )


def _snapshot(model: MatrixFactorization) -> dict:
    return {
        "user_bias_": model.user_bias_.copy(),
        "item_bias_": model.item_bias_.copy(),
        "user_factors_": model.user_factors_.copy(),
        "item_factors_": model.item_factors_.copy(),
        "best_epoch_": model.n_epochs_done_,
    }


def _restore(model: MatrixFactorization, snapshot: dict) -> None:
    """Put the best epoch's parameters back into the live arrays (training state stays aligned)."""
    for name in ("user_bias_", "item_bias_", "user_factors_", "item_factors_"):
        getattr(model, name)[...] = snapshot[name]
    model.best_epoch_ = snapshot["best_epoch_"]


_HISTORY_COLUMNS = ["epoch", "base_loss", "reg_loss", "total_loss", "train_rmse"]


def _empty_history() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype="int64" if c == "epoch" else "float64") for c in _HISTORY_COLUMNS}
    )


def _append_history(history: pd.DataFrame, row: dict) -> pd.DataFrame:
    new = pd.DataFrame([row])
    if len(history) == 0:
        return new.reset_index(drop=True)
    return pd.concat([history, new], ignore_index=True)


class _Interrupt:
    """Ctrl-C seen during training: ``hit`` once pressed; ``hold`` while an epoch is in flight."""

    hit = False
    hold = False


@contextmanager
def _deferred_interrupt() -> Iterator[_Interrupt]:
    """Hold a Ctrl-C until the running epoch is recorded. A second Ctrl-C between epochs (in a
    callback, say) interrupts at once; during an epoch nothing interrupts, so the model is never
    left between two epochs."""
    flag = _Interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if flag.hit and not flag.hold:
            raise KeyboardInterrupt
        flag.hit = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


class _Progress:
    """A per-epoch progress bar (tqdm) showing the losses; silent when verbose is 0."""

    def __init__(self, total: int, verbose: int):
        self.bar = None
        if verbose and total:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="epoch", desc="fastmf", leave=True)

    def update(self, row: dict) -> None:
        if self.bar is not None:
            shown = {k: f"{row[k]:.4f}" for k in ("base_loss", "reg_loss", "val_rmse") if k in row}
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # arrays and other values without a plain equality
        return a is b
