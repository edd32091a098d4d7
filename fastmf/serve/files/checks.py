"""The consistency checks of a fitted state, the same for save (on the live model) and load.

:func:`check_layout` looks at kinds, dtypes and shapes only (at load, from the npy headers,
before any array is allocated); :func:`check_values` looks inside the arrays once read.
Each raises :class:`~fastmf.serve.files.schema.Invalid` naming the attribute at fault.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fastmf.serve.files.schema import ARRAYS, BIT_GENERATORS, FIT_PARAMS, Invalid
from fastmf.serve.files.values import is_finite, is_integer, is_real, kind_of, length_1d, short
from fastmf.train.guard import optimizer_shapes

if TYPE_CHECKING:
    from fastmf.serve.files.state import FittedState
    from fastmf.train.params import Params

__all__ = ["check_layout", "check_values"]


def check_layout(f: FittedState) -> None:
    """Kinds, dtypes and shapes, from arrays or from their headers: nothing is read. Sets
    ``f.structure``."""
    p = _checked_params(f)
    _check_scalars(f)
    n_u = _check_ids(f.user_ids, "user_map_")
    n_i = _check_ids(f.item_ids, "item_map_")
    f.structure = _structure(f, p)
    k = f.structure["n_factors"]
    dtype = np.dtype(f.structure["dtype"])
    why = f"(dtype={dtype.name}, n_factors={k}, {n_u} user ids, {n_i} item ids)"
    for label, shape in (
        ("user_factors_", (n_u, k)),
        ("item_factors_", (n_i, k)),
        ("user_bias_", (n_u,)),
        ("item_bias_", (n_i,)),
    ):
        _expect(f, label, (dtype,), shape, why)
    if "seen_indptr_" in f.arrays:
        _expect(f, "seen_indptr_", (np.dtype(np.int64),), (n_u + 1,), f"({n_u} user ids)")
        items = f.arrays["seen_items_"]
        _expect(f, "seen_items_", (np.dtype(np.int32),), (length_1d(items),), "(1-d)")
    _check_history_layout(f)
    if f.state is not None:
        _check_state_layout(f, n_u, n_i, k, dtype, why)


def _checked_params(f: FittedState) -> Params:
    """The parameters as the estimator checks them (a 0.1.0 file's dropped dtype restored)."""
    from fastmf.train.estimator import MatrixFactorization

    dtype_param = f.params.get("dtype", "float32")
    if "dtype" in f.dropped and "user_factors_" in f.arrays:
        dtype_param = f.arrays["user_factors_"].dtype.name  # 0.1.0 dropped a dtype type
        f.params["dtype"] = dtype_param
    if dtype_param not in ("float32", "float64"):
        raise Invalid("params", f"dtype must be 'float32' or 'float64', got {short(dtype_param)}")
    huge = [n for n, v in f.params.items() if is_integer(v) and abs(v) >= 2**63]
    if huge:
        raise Invalid("params", f"{', '.join(huge)} beyond the range of a 64-bit integer")
    try:
        return MatrixFactorization(**f.params)._check_params()
    except (TypeError, ValueError) as exc:
        raise Invalid("params", str(exc)) from None
    except OverflowError:
        huge = [n for n, v in f.params.items() if is_integer(v) and not is_real(v)]
        raise Invalid("params", f"{', '.join(huge)} beyond the range of a float") from None


def _check_history_layout(f: FittedState) -> None:
    for col in f.history_columns:
        label = f"history_.{col}"
        arr = f.arrays[label]
        if arr.dtype.kind not in "iuf" or arr.dtype.itemsize > 8 or arr.ndim != 1:
            raise Invalid(
                label, f"has dtype {arr.dtype} and shape {arr.shape}; expected a 1-d numeric column"
            )
        if arr.shape[0] != f.history_rows:
            raise Invalid(label, f"has {arr.shape[0]} rows; the history has {f.history_rows}")


def _check_state_layout(
    f: FittedState, n_u: int, n_i: int, k: int, dtype: np.dtype, why: str
) -> None:
    for side, n in (("user_strata", n_u), ("item_strata", n_i)):
        starts = f.arrays[f"_state.{side}"]
        if starts.dtype != np.int64 or starts.ndim != 1 or not 2 <= starts.shape[0] <= n + 1:
            raise Invalid(
                f"_state.{side}",
                f"has dtype {starts.dtype} and shape "
                f"{starts.shape}; expected int64 of 2 to {n + 1} stratum starts",
            )
    optimizer = f.structure["optimizer"]
    shapes = optimizer_shapes(optimizer, n_u, n_i, k)
    for key, shape in shapes.items():
        kind = (np.dtype(np.int64),) if key.endswith("steps") else (dtype,)
        _expect(f, f"_state.optimizer.{key}", kind, shape, f"(optimizer={optimizer!r}, {why[1:]}")


def _structure(f: FittedState, p: Params) -> dict[str, Any]:
    """The shape of the fitted model: the shape parameters it was fitted with (0.1.0 files:
    the saved parameters) and the optimizer its state belongs to."""
    from fastmf.train.params import BIASES, DTYPES, OPTIMIZERS

    fit = dict(f.state["fit_params"]) if f.state else {}
    structure = {name: fit.get(name, getattr(p, name)) for name in FIT_PARAMS}
    named = f.state.get("optimizer_name") if f.state else None
    structure["optimizer"] = named or p.optimizer
    where = "_state.fit_params"
    if not is_integer(structure["n_factors"]) or not 1 <= structure["n_factors"] <= 2**31:
        raise Invalid(where, f"n_factors is {short(structure['n_factors'])}")
    for name, allowed in (("dtype", DTYPES), ("biases", BIASES)):
        if structure[name] not in allowed:
            raise Invalid(where, f"{name} is {short(structure[name])}; expected one of {allowed}")
    if not is_finite(structure["bias_damping"]) or structure["bias_damping"] < 0:
        raise Invalid(where, f"bias_damping is {short(structure['bias_damping'])}")
    if structure["optimizer"] not in OPTIMIZERS:
        raise Invalid(
            "_state.optimizer_name",
            f"is {short(structure['optimizer'])}; expected one of {OPTIMIZERS}",
        )
    return structure


def _expect(f: FittedState, label: str, dtypes: tuple, shape: tuple, why: str) -> None:
    """Refuse the array (or spec) at ``label`` unless it is present with one of ``dtypes`` and
    exactly ``shape``; ``why`` says where the shape comes from."""
    arr = f.arrays.get(label)
    if arr is None:
        raise Invalid(label, "is missing")
    if arr.dtype not in dtypes or tuple(arr.shape) != shape:
        wanted = " or ".join(d.name for d in dtypes)
        raise Invalid(
            label,
            f"has dtype {arr.dtype} and shape {tuple(arr.shape)}; expected "
            f"dtype {wanted} and shape {shape} {why}",
        )


def _check_ids(ids: Any, label: str) -> int:
    """The number of ids, refused unless a non-empty 1-d array of integers or objects."""
    if ids is None:
        raise Invalid(label, "is missing")
    if ids.ndim != 1 or ids.dtype.kind not in "iuO" or ids.shape[0] == 0:
        raise Invalid(
            label,
            f"holds ids of dtype {ids.dtype} and shape {ids.shape}; expected a "
            f"non-empty 1-d array of integers or strings",
        )
    return int(ids.shape[0])


def _check_scalars(f: FittedState) -> None:
    s = f.scalars
    mu = s.get("global_mean_")
    if not is_finite(mu):
        raise Invalid("global_mean_", f"is {short(mu)}; expected a finite number")
    scale = s.get("rating_scale_")
    if (
        not isinstance(scale, tuple)
        or len(scale) != 2
        or not all(map(is_finite, scale))
        or scale[0] > scale[1]
    ):
        raise Invalid("rating_scale_", f"is {short(scale)}; expected (low, high), finite")
    done: Any = s.get("n_epochs_done_")
    if not is_integer(done) or done < 0:
        raise Invalid("n_epochs_done_", f"is {short(done)}; expected a count of epochs")
    best = s.get("best_epoch_")
    if best is not None and (not is_integer(best) or not 0 <= best <= done):
        raise Invalid("best_epoch_", f"is {short(best)}; expected None or an epoch up to {done}")
    titles = s.get("item_titles_")
    if titles is not None and not isinstance(titles, dict):
        raise Invalid("item_titles_", f"is {kind_of(titles)}; expected a dict or None")
    if f.state is not None:
        _check_state_scalars(f.state)


def _check_state_scalars(state: dict[str, Any]) -> None:
    rng = state["rng"]
    if (
        not isinstance(rng, np.random.Generator)
        or type(rng.bit_generator).__name__ not in BIT_GENERATORS
    ):
        raise Invalid(
            "_state.rng", f"is {kind_of(rng)}; expected a Generator of {', '.join(BIT_GENERATORS)}"
        )
    lr = state["learning_rate"]
    if not is_finite(lr) or lr <= 0:
        raise Invalid("_state.learning_rate", f"is {short(lr)}; expected a finite rate > 0")
    best_loss = state["plateau_best"]
    if not is_real(best_loss) or math.isnan(float(best_loss)):
        raise Invalid("_state.plateau_best", f"is {short(best_loss)}; expected a number")


def check_values(f: FittedState) -> None:
    """Finite parameters, offsets monotone and in range, distinct ids (arrays are read)."""
    for label, arr in f.arrays.items():
        parameter = label in ARRAYS or label.startswith("_state.optimizer.")
        if parameter and arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise Invalid(
                label, "holds NaN or infinite values; a model file holds finite parameters only"
            )
    if f.state is not None:
        for key in ("u_steps", "i_steps"):
            steps = f.arrays[f"_state.optimizer.{key}"]
            if steps.size and steps.min() < 0:
                raise Invalid(f"_state.optimizer.{key}", "holds negative step counts")
    n_u, n_i = len(f.user_ids), len(f.item_ids)
    if "seen_indptr_" in f.arrays:
        indptr, items = f.arrays["seen_indptr_"], f.arrays["seen_items_"]
        if indptr[0] != 0 or indptr[-1] != len(items) or (np.diff(indptr) < 0).any():
            raise Invalid(
                "seen_indptr_",
                f"must rise from 0 to {len(items)} (the length of seen_items_) without decreasing",
            )
        if items.size and (items.min() < 0 or items.max() >= n_i):
            raise Invalid("seen_items_", f"holds item rows outside 0..{n_i - 1}")
    if f.state is not None:
        for side, n in (("user_strata", n_u), ("item_strata", n_i)):
            starts = f.arrays[f"_state.{side}"]
            if starts[0] != 0 or starts[-1] != n or (np.diff(starts) < 0).any():
                raise Invalid(f"_state.{side}", f"stratum starts must rise from 0 to {n}")
    for label, ids in (("user_map_", f.user_ids), ("item_map_", f.item_ids)):
        _check_distinct_ids(ids, label)


def _check_distinct_ids(ids: np.ndarray, label: str) -> None:
    if ids.dtype == object:
        bad = [x for x in ids[:] if not isinstance(x, (str, int, float))]
        if bad:
            raise Invalid(label, f"holds id {short(bad[0])}; ids are strings or numbers")
    try:
        unique = pd.Index(ids).is_unique
    except TypeError:
        unique = False
    if not unique:
        raise Invalid(label, "holds repeated ids; every row has its own id")
