"""The estimator's parameters: their choices and the one check that validates them all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastmf._random import check_random_state
from fastmf._validation import check_choice, check_float, check_int
from fastmf.train.defaults import resolve_learning_rate, resolve_optimizer

OPTIMIZERS = ("sgd", "adagrad", "adam", "row_adagrad", "damped_sgd")
BIASES = ("learned", "fixed", "none")
LR_SCHEDULES = ("constant", "step", "exponential", "plateau")
DTYPES = ("float32", "float64")

SET_AT_FIT = ("n_factors", "dtype", "biases", "bias_damping")
"""Parameters that define the model made at fit: partial_fit refuses a change to them."""


@dataclass(frozen=True)
class Params:
    """Every parameter of a fit, validated once, with the sentinels resolved.

    ``optimizer`` and ``learning_rate`` hold the resolved values (what ``optimizer_`` and
    ``learning_rate_`` report); everything else is the estimator's parameter as given."""

    n_factors: int
    n_epochs: int
    batch_size: int
    learning_rate: float
    reg: float
    reg_bias: float
    optimizer: str
    record_batches: bool
    biases: str
    bias_damping: float
    init_std: float
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


def check_params(model) -> Params:
    """The estimator's parameters validated, or a clear error naming the bad one."""
    batch_size = check_int(model.batch_size, "batch_size", low=1)
    lr = model.learning_rate
    lr = None if lr is None else check_float(lr, "learning_rate", strict=True)
    optimizer = resolve_optimizer(
        check_choice(model.optimizer, "optimizer", ("auto", *OPTIMIZERS)), batch_size
    )
    return Params(
        n_factors=check_int(model.n_factors, "n_factors", low=1),
        n_epochs=check_int(model.n_epochs, "n_epochs", low=0),
        batch_size=batch_size,
        learning_rate=resolve_learning_rate(lr, optimizer, batch_size),
        reg=check_float(model.reg, "reg"),
        reg_bias=check_float(model.reg_bias, "reg_bias"),
        optimizer=optimizer,
        record_batches=_check_bool(model.record_batches, "record_batches"),
        biases=check_choice(model.biases, "biases", BIASES),
        bias_damping=check_float(model.bias_damping, "bias_damping"),
        init_std=check_float(model.init_std, "init_std"),
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


def same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # arrays and other values without a plain equality
        return a is b
