"""Checks around training: will the model fit in memory, and did an epoch diverge?"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from fastmf._stats import root_mean_square
from fastmf._validation import NonFiniteModelError

if TYPE_CHECKING:
    from fastmf.train.params import Params

_DIVERGENCE_SAMPLE = 4096  # training ratings re-scored after each epoch


def physical_memory() -> int | None:
    """Bytes of memory of this machine, or None where the system does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def model_bytes(n_users: int, n_items: int, params: Params) -> int:
    """Bytes the model's factors and biases take, with the optimizer's state."""
    itemsize = np.dtype(params.dtype).itemsize
    rows = n_users + n_items
    per_row = params.n_factors + 1
    copies = {"adagrad": 2, "adam": 3}.get(params.optimizer, 1)
    return rows * per_row * itemsize * copies


def check_memory(n_users: int, n_items: int, params: Params) -> None:
    """Refuse, before allocating, a model larger than this machine's memory."""
    need = model_bytes(n_users, n_items, params)
    have = physical_memory()
    if have is not None and need > have:
        raise ValueError(
            f"n_factors={params.n_factors} for {n_users} users and {n_items} items needs "
            f"{need / 2**30:.1f} GiB for the factors alone, and this machine has "
            f"{have / 2**30:.1f} GiB; lower n_factors"
        )


def check_divergence(
    model: Any, blocks: Any, base: float, regl: float, epoch: int, lr: float, params: Params
) -> None:
    """Raise NonFiniteModelError when the epoch diverged: a non-finite loss, parameter or
    optimizer state, or a training error larger than the ratings' whole range (during the epoch,
    or on a sample of the training ratings after it)."""
    n = len(blocks.values)
    low, high = model.rating_scale_
    limit = max(high - low, 1.0)
    rmse = math.sqrt(base / n) if math.isfinite(base) and base >= 0 else math.inf
    what = None
    if not (math.isfinite(base) and math.isfinite(regl)):
        what = "the loss is not finite"
    elif not _all_finite(model):
        what = "the model holds NaN or infinite values"
    elif rmse > limit:
        what = f"the training RMSE ({rmse:.3g}) exceeds the ratings' range ({limit:g})"
    else:
        after = _sample_rmse(model, blocks)
        if not after <= limit:
            what = f"the training RMSE after the epoch ({after:.3g}) exceeds the ratings' range"
    if what is not None:
        raise NonFiniteModelError(
            f"training diverged at epoch {epoch + 1}: {what} (base loss {base / n:.4g}, "
            f"regularization loss {regl / n:.4g}); lower learning_rate (now {lr:g}) or raise "
            f"reg (now {params.reg:g}); the previous fitted state is kept"
        )


def _all_finite(model: Any) -> bool:
    arrays = [model.user_factors_, model.item_factors_, model.user_bias_, model.item_bias_]
    arrays += [a for a in model._state.optimizer.values() if a.size and a.dtype.kind == "f"]
    return all(bool(np.isfinite(a).all()) for a in arrays)


def _sample_rmse(model: Any, blocks: Any) -> float:
    """RMSE of the model now on an evenly spaced sample of the training ratings."""
    n = len(blocks.values)
    rows = np.linspace(0, n - 1, min(n, _DIVERGENCE_SAMPLE)).astype(np.int64)
    pred = model._predict_rows(blocks.users[rows], blocks.items[rows])
    err = pred - blocks.values[rows]
    return root_mean_square(err)
