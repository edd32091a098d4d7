"""The estimator's parameters: their choices and the one check that validates them all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fastmf._random import check_random_state
from fastmf._validation import check_choice, check_float, check_int
from fastmf.train.checkpoint import check_checkpoint_dir
from fastmf.train.defaults import (
    AUTO_PARAMS,
    data_defaults,
    is_auto,
    resolve_learning_rate,
    resolve_optimizer,
)
from fastmf.train.layout import rating_counts

OPTIMIZERS = ("sgd", "adagrad", "adam", "row_adagrad", "damped_sgd")
BIASES = ("learned", "fixed", "none")
LR_SCHEDULES = ("auto", "constant", "step", "exponential", "plateau")
DTYPES = ("float32", "float64")

SET_AT_FIT = ("n_factors", "dtype", "biases", "bias_damping")
"""Parameters that define the model made at fit: partial_fit refuses a change to them."""


@dataclass(frozen=True)
class Params:
    """Every parameter of a fit, validated once, with the sentinels resolved.

    ``optimizer`` and ``learning_rate`` hold the resolved values (what ``optimizer_`` and
    ``learning_rate_`` report). ``n_factors``, ``n_epochs``, ``reg`` and ``init_std`` may hold
    the sentinel "auto" until ``resolve_for_data`` (or ``resolve_for_continuation``) replaces it
    with the value the training data's counts give; everything else is the estimator's
    parameter as given."""

    n_factors: Any
    n_epochs: Any
    batch_size: int
    learning_rate: float
    reg: Any
    reg_bias: float
    optimizer: str
    record_batches: bool
    biases: str
    bias_damping: float
    init_std: Any
    lr_schedule: str | Callable[[int, float], float]
    lr_decay: float | None
    lr_step_size: int
    validation_fraction: float | None
    early_stopping: bool
    patience: int
    min_delta: float
    callbacks: tuple[Callable[..., Any], ...]
    duplicates: str
    random_state: Any
    n_jobs: int
    dtype: str
    verbose: int
    checkpoint_dir: Path | None


def check_params(model) -> Params:
    """The estimator's parameters validated, or a clear error naming the bad one."""
    batch_size = check_int(model.batch_size, "batch_size", low=1)
    lr = model.learning_rate
    lr = None if lr is None else check_float(lr, "learning_rate", strict=True)
    optimizer = resolve_optimizer(
        check_choice(model.optimizer, "optimizer", ("auto", *OPTIMIZERS)), batch_size
    )
    return Params(
        n_factors=_auto_or(model.n_factors, "n_factors", check_int, low=1),
        n_epochs=_auto_or(model.n_epochs, "n_epochs", check_int, low=0),
        batch_size=batch_size,
        learning_rate=resolve_learning_rate(lr, optimizer, batch_size),
        reg=_auto_or(model.reg, "reg", check_float),
        reg_bias=check_float(model.reg_bias, "reg_bias"),
        optimizer=optimizer,
        record_batches=_check_bool(model.record_batches, "record_batches"),
        biases=check_choice(model.biases, "biases", BIASES),
        bias_damping=check_float(model.bias_damping, "bias_damping"),
        init_std=_auto_or(model.init_std, "init_std", check_float),
        lr_schedule=_check_schedule(model.lr_schedule),
        lr_decay=None
        if model.lr_decay is None
        else check_float(model.lr_decay, "lr_decay", strict=True, high=1.0),
        lr_step_size=check_int(model.lr_step_size, "lr_step_size", low=1),
        validation_fraction=_check_fraction(model.validation_fraction),
        early_stopping=_check_bool(model.early_stopping, "early_stopping"),
        patience=check_int(model.patience, "patience", low=1),
        min_delta=check_float(model.min_delta, "min_delta"),
        callbacks=_check_callbacks(model.callbacks),
        duplicates=check_choice(model.duplicates, "duplicates", ("error", "last")),
        random_state=_check_seed(model.random_state),
        n_jobs=_check_n_jobs(model.n_jobs),
        dtype=_check_dtype(model.dtype),
        verbose=check_int(model.verbose, "verbose", low=0),
        checkpoint_dir=check_checkpoint_dir(getattr(model, "checkpoint_dir", None)),
    )


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_schedule(schedule: Any) -> str | Callable[[int, float], float]:
    if not callable(schedule):
        check_choice(schedule, "lr_schedule", LR_SCHEDULES)
    return schedule


def _check_fraction(fraction: Any) -> float | None:
    if fraction is None:
        return None
    vf = check_float(fraction, "validation_fraction", strict=True)
    if vf >= 1:
        raise ValueError(f"validation_fraction must be below 1, got {vf}")
    return vf


def _check_callbacks(callbacks: Any) -> tuple[Callable[..., Any], ...]:
    for cb in callbacks or ():
        if not callable(cb):
            raise TypeError(f"callbacks must be callables cb(model, row), got {cb!r}")
    return tuple(callbacks or ())


def _check_seed(random_state: Any) -> Any:
    check_random_state(random_state, allow_generator=False)
    return random_state


def _check_n_jobs(n_jobs: Any) -> int:
    n = check_int(n_jobs, "n_jobs", low=-1)
    if n == 0:
        raise ValueError("n_jobs must be -1 (all cores) or a positive number of threads, got 0")
    return n


def _check_dtype(dtype: Any) -> str:
    try:
        dtype_name = str(np.dtype(dtype))
    except TypeError:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    return check_choice(dtype_name, "dtype", DTYPES)


def resolve_for_data(params: Params, ratings: Any) -> Params:
    """``params`` with the "auto" parameters resolved from the training ratings' counts."""
    users, items = rating_counts(ratings)  # counted in parallel, or counted at fit_ratings
    return resolve_for_counts(params, len(ratings), users, items)


def resolve_for_counts(
    params: Params, n_ratings: int, user_counts: Any, item_counts: Any
) -> Params:
    """``params`` with every "auto" replaced by its data-aware value (``data_defaults``): what a
    rating store, which holds the counts, resolves without reading a rating."""
    auto = [name for name in AUTO_PARAMS if is_auto(getattr(params, name))]
    if not auto:
        return params
    values = data_defaults(n_ratings, user_counts, item_counts)
    return replace(params, **{name: values[name] for name in auto})


def resolve_for_continuation(model: Any, params: Params) -> Params:
    """``params`` with the "auto" parameters at the values the fit resolved: ``partial_fit``
    continues the fitted model and its schedule."""
    fitted: dict[str, Any] = {
        "n_factors": getattr(model, "n_factors_", None) or int(model.user_factors_.shape[1]),
        "n_epochs": getattr(model, "n_epochs_", None),
        "reg": getattr(model, "reg_", None),
        "init_std": getattr(model, "init_std_", None) or 0.1,  # seeds a fit only
    }
    auto = [name for name in AUTO_PARAMS if is_auto(getattr(params, name))]
    for name in auto:
        if fitted[name] is None:
            raise ValueError(
                f"{name}='auto' cannot be resolved: this model does not say which value its fit "
                f"used ({name}_ is missing); set {name} to a number"
            )
    return replace(params, **{name: fitted[name] for name in auto})


def _auto_or(value: Any, name: str, check, **bounds) -> Any:
    """``value`` checked, or the sentinel "auto" kept as given (resolved at fit from the data)."""
    if is_auto(value):
        return value
    if isinstance(value, str):
        raise TypeError(f'{name} must be "auto" or a number, got {value!r}')
    return check(value, name, **bounds)


def same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # arrays and other values without a plain equality
        return a is b
