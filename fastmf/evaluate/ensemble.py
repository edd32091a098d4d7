"""The average of biased MF models fitted on the same data, as one biased MF model.

Models fitted on the same ratings share μ and the id maps (a model's rows are a function of the
ratings alone), so the mean of their predictions is itself a biased MF model:

    r̂ = μ + mean(b_u) + mean(b_i) + (1/m) Σ_j p_u^(j)·q_i^(j)
      = μ + b̄_u + b̄_i + [p^(1) … p^(m)]/√m · [q^(1) … q^(m)]/√m,

one model with ``Σ k_j`` factors whose predictions equal the members' mean (before clipping to
the rating scale, which each member's ``predict`` would apply on its own).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from fastmf._validation import check_fitted

__all__ = ["average_models"]


def average_models(models: Sequence[Any]) -> Any:
    """One ``MatrixFactorization`` whose predictions are the mean of ``models``' predictions.

    The models must be fitted on the same ratings: the same global mean, the same user and item
    ids in the same rows, the same dtype and rating scale. The result has the members' biases
    averaged and their factors side by side, each scaled by 1/√m; it predicts, recommends,
    saves and loads like any fitted model.

    Its parameters are the first model's, with ``n_factors`` the sum of the members' factors;
    its history, epochs and training state are the first model's (the optimizer state starts
    afresh for the wider factors). A ``fit`` of it (or of ``clone(it)``) trains one model with
    that many factors, not an average of models; ``partial_fit`` trains the merged factors on.

    Parameters
    ----------
    models : sequence of fitted MatrixFactorization
        At least one; the first gives the parameters (put the best one first).

    Returns
    -------
    MatrixFactorization
        A new fitted model; the members are not changed.
    """
    members = _checked(models)
    first = members[0]
    m = len(members)
    dtype = first.user_factors_.dtype
    scale = dtype.type(1.0 / np.sqrt(m))
    P = _side_by_side([mod.user_factors_ for mod in members], scale)
    Q = _side_by_side([mod.item_factors_ for mod in members], scale)
    k = int(P.shape[1])
    merged = type(first)(**{**first.get_params(), "n_factors": k, "callbacks": None})
    attrs = {
        name: copy.deepcopy(value)
        for name, value in vars(first).items()
        if name.endswith("_") and not name.startswith("__") and name != "_state"
    }
    attrs.update(
        user_bias_=_mean([mod.user_bias_ for mod in members]),
        item_bias_=_mean([mod.item_bias_ for mod in members]),
        user_factors_=P,
        item_factors_=Q,
        n_factors_=k,
    )
    state = getattr(first, "_state", None)
    if state is not None:
        attrs["_state"] = _wide_state(state, P, Q)
    merged.__dict__.update(attrs)
    return merged


def _checked(models: Any) -> list[Any]:
    """The models as a list, each fitted, all on the same data."""
    from fastmf.train.estimator import MatrixFactorization

    if isinstance(models, (str, bytes)) or not isinstance(models, Sequence):
        raise TypeError(
            f"models must be a list of fitted MatrixFactorization models, got "
            f"{type(models).__name__}; pass [model_a, model_b, ...]"
        )
    members = list(models)
    if not members:
        raise ValueError("models is empty; give at least one fitted MatrixFactorization")
    for j, model in enumerate(members):
        if not isinstance(model, MatrixFactorization):
            raise TypeError(
                f"models[{j}] is a {type(model).__name__}, not a MatrixFactorization; "
                f"average only fastmf models"
            )
        check_fitted(model)
    first = members[0]
    for j, model in enumerate(members[1:], start=1):
        _check_same(first, model, j)
    return members


def _check_same(first: Any, other: Any, j: int) -> None:
    """Refuse a model not fitted on the same data as the first (or not of its kind)."""
    fix = "average only models fitted on the same ratings"
    if other.user_factors_.dtype != first.user_factors_.dtype:
        raise ValueError(
            f"models[{j}] has dtype {other.user_factors_.dtype}, models[0] "
            f"{first.user_factors_.dtype}; {fix} with the same dtype"
        )
    for side in ("user", "item"):
        a, b = getattr(first, f"{side}_map_").ids, getattr(other, f"{side}_map_").ids
        if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
            raise ValueError(
                f"models[{j}] has other {side} ids (or their rows in another order) than "
                f"models[0] ({len(b)} ids of {b.dtype} against {len(a)} of {a.dtype}); {fix}"
            )
    if tuple(other.rating_scale_) != tuple(first.rating_scale_):
        raise ValueError(
            f"models[{j}] has rating scale {other.rating_scale_}, models[0] "
            f"{first.rating_scale_}; {fix}"
        )
    if other.global_mean_ != first.global_mean_:
        raise ValueError(
            f"models[{j}] has global mean {other.global_mean_!r}, models[0] "
            f"{first.global_mean_!r}: they were fitted on different ratings; {fix}"
        )


def _mean(arrays: list[np.ndarray]) -> np.ndarray:
    """The element-wise mean, summed in float64, in the members' dtype."""
    total = np.zeros(arrays[0].shape, dtype=np.float64)
    for a in arrays:
        total += a
    return (total / len(arrays)).astype(arrays[0].dtype)


def _side_by_side(factors: list[np.ndarray], scale: Any) -> np.ndarray:
    """The factor matrices concatenated column-wise, scaled, on a cache-aligned buffer."""
    from fastmf.train.aligned import aligned_empty

    n = factors[0].shape[0]
    out = aligned_empty((n, sum(f.shape[1] for f in factors)), factors[0].dtype)
    col = 0
    for f in factors:
        out[:, col : col + f.shape[1]] = f
        col += f.shape[1]
    out *= scale
    return out


def _wide_state(state: Any, P: np.ndarray, Q: np.ndarray) -> Any:
    """The first model's training state for the merged factors: its strata, layout and random
    stream, a fresh optimizer state of the wider shape."""
    from fastmf.train.state import new_optimizer_state

    return dataclasses.replace(
        state,
        rng=copy.deepcopy(state.rng),
        optimizer=new_optimizer_state(state.optimizer_name, P, Q),
        fit_params={**state.fit_params, "n_factors": int(P.shape[1])},
    )
