"""The estimator's parameters: their choices and the one check that validates them all."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastmf._random import check_random_state
from fastmf._validation import check_choice, check_float, check_int
from fastmf.train.defaults import (
    is_auto,
    resolve_auto,
    resolve_from_fit,
    resolve_learning_rate,
    resolve_optimizer,
)

OPTIMIZERS = ("sgd", "adagrad", "adam", "row_adagrad", "damped_sgd")
BIASES = ("learned", "fixed", "none")
LR_SCHEDULES = ("auto", "constant", "step", "exponential", "plateau")
DTYPES = ("float32", "float64")

SET_AT_FIT = ("n_factors", "dtype", "biases", "bias_damping")
"""Parameters that define the model made at fit: partial_fit refuses a change to them."""


def check_params(model) -> dict[str, Any]:
    """Validated parameters, or a clear error naming the bad one."""
    p: dict[str, Any] = {}
    p["n_factors"] = _auto_or(model.n_factors, "n_factors", check_int, low=1)
    p["n_epochs"] = _auto_or(model.n_epochs, "n_epochs", check_int, low=0)
    p["batch_size"] = check_int(model.batch_size, "batch_size", low=1)
    lr = model.learning_rate
    lr = None if lr is None else check_float(lr, "learning_rate", strict=True)
    p["reg"] = _auto_or(model.reg, "reg", check_float)
    p["reg_bias"] = check_float(model.reg_bias, "reg_bias")
    optimizer = check_choice(model.optimizer, "optimizer", ("auto", *OPTIMIZERS))
    p["optimizer"] = resolve_optimizer(optimizer, p["batch_size"])
    p["learning_rate"] = resolve_learning_rate(lr, p["optimizer"], p["batch_size"])
    if not isinstance(model.record_batches, (bool, np.bool_)):
        raise TypeError(f"record_batches must be True or False, got {model.record_batches!r}")
    p["biases"] = check_choice(model.biases, "biases", BIASES)
    p["bias_damping"] = check_float(model.bias_damping, "bias_damping")
    p["init_std"] = _auto_or(model.init_std, "init_std", check_float)
    if not callable(model.lr_schedule):
        check_choice(model.lr_schedule, "lr_schedule", LR_SCHEDULES)
    if model.lr_decay is not None:
        check_float(model.lr_decay, "lr_decay", strict=True, high=1.0)
    check_int(model.lr_step_size, "lr_step_size", low=1)
    if model.validation_fraction is not None:
        vf = check_float(model.validation_fraction, "validation_fraction", strict=True)
        if vf >= 1:
            raise ValueError(f"validation_fraction must be below 1, got {vf}")
    check_int(model.patience, "patience", low=1)
    check_float(model.min_delta, "min_delta")
    for cb in model.callbacks or ():
        if not callable(cb):
            raise TypeError(f"callbacks must be callables cb(model, row), got {cb!r}")
    check_choice(model.duplicates, "duplicates", ("error", "last"))
    check_random_state(model.random_state, allow_generator=False)
    check_int(model.n_jobs, "n_jobs", low=-1)
    if model.n_jobs == 0:
        raise ValueError("n_jobs must be -1 (all cores) or a positive number of threads, got 0")
    try:
        dtype_name = str(np.dtype(model.dtype))
    except TypeError:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {model.dtype!r}") from None
    p["dtype"] = check_choice(dtype_name, "dtype", DTYPES)
    p["random_state"] = model.random_state
    check_int(model.verbose, "verbose", low=0)
    return p


def resolve_for_data(params: dict[str, Any], ratings: Any) -> dict[str, Any]:
    """``params`` with the "auto" parameters resolved from the training ratings' counts."""
    users = np.bincount(ratings.users, minlength=ratings.n_users)
    items = np.bincount(ratings.items, minlength=ratings.n_items)
    return resolve_auto(params, len(ratings), users, items)


def resolve_for_continuation(model: Any, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with the "auto" parameters at the values the fit resolved: ``partial_fit``
    continues the fitted model and its schedule."""
    fitted = {
        "n_factors": getattr(model, "n_factors_", None) or int(model.user_factors_.shape[1]),
        "n_epochs": getattr(model, "n_epochs_", None),
        "reg": getattr(model, "reg_", None),
        "init_std": getattr(model, "init_std_", None) or 0.1,  # seeds a fit only
    }
    for name, value in fitted.items():
        if value is None and is_auto(params[name]):
            raise ValueError(
                f"{name}='auto' cannot be resolved: this model does not say which value its fit "
                f"used ({name}_ is missing); set {name} to a number"
            )
    return resolve_from_fit(params, fitted)


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
