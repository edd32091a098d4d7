"""Checks around training: will the model fit in memory, and did an epoch diverge?"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from fastmf._stats import root_mean_square
from fastmf._validation import NonFiniteModelError, all_finite

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


# what a fit from memory still allocates per rating once the ratings are in their container:
# the block layout's copy (user row, item row, rating: 12 bytes) and its sort order (8 bytes)
LAYOUT_BYTES_PER_RATING = 20


def available_memory() -> int | None:
    """Bytes this process can still allocate: the smaller of the system's available memory and
    what its memory cgroup (v1 or v2) leaves below its limit, page cache counted as free; None
    where neither says."""
    found = [m for m in (_meminfo_available(), _cgroup_room()) if m is not None]
    return min(found) if found else None


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room() -> int | None:
    """Limit less usage (less its page cache) of this process's memory cgroup."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):  # v1
            base = f"/sys/fs/cgroup/memory{path}"
            limit = _read_int(f"{base}/memory.limit_in_bytes")
            usage = _read_int(f"{base}/memory.usage_in_bytes")
            cache = _stat_value(f"{base}/memory.stat", "total_cache")
        elif controllers == "":  # v2
            base = f"/sys/fs/cgroup{path}"
            limit = _read_int(f"{base}/memory.max")
            usage = _read_int(f"{base}/memory.current")
            cache = _stat_value(f"{base}/memory.stat", "file")
        else:
            continue
        if limit is None or usage is None or limit >= 1 << 60:
            continue
        return max(0, limit - usage + (cache or 0))
    return None


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
        return None if text == "max" else int(text)
    except (OSError, ValueError):
        return None


def _stat_value(path: str, key: str) -> int | None:
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        return None
    return None


def check_memory(n_users: int, n_items: int, params: Params, *, n_ratings: int = 0) -> None:
    """Refuse, before allocating, a model larger than this machine's memory, and a fit from
    memory whose model and block layout need more than the memory available now (with the
    figure, and the way out: a RatingStore)."""
    need = model_bytes(n_users, n_items, params)
    have = physical_memory()
    if have is not None and need > have:
        raise ValueError(
            f"n_factors={params.n_factors} for {n_users} users and {n_items} items needs "
            f"{need / 2**30:.1f} GiB for the factors alone, and this machine has "
            f"{have / 2**30:.1f} GiB; lower n_factors"
        )
    if not n_ratings:
        return
    layout = n_ratings * LAYOUT_BYTES_PER_RATING
    room = available_memory()
    if room is not None and need + layout > room:
        raise MemoryError(
            f"this fit needs about {(need + layout) / 2**30:.2f} GiB more memory "
            f"({layout / 2**30:.2f} GiB to lay out {n_ratings} ratings in blocks, "
            f"{need / 2**30:.2f} GiB for the model) and {room / 2**30:.2f} GiB is available; "
            f"build a fastmf.RatingStore on disk (RatingStore.build(path, ratings or a file)) "
            f"and fit from it: it trains the same model with memory for the model and a few "
            f"blocks only"
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
    return all(all_finite(a) for a in arrays)


def _sample_rmse(model: Any, blocks: Any) -> float:
    """RMSE of the model now on an evenly spaced sample of the training ratings."""
    n = len(blocks.values)
    rows = np.linspace(0, n - 1, min(n, _DIVERGENCE_SAMPLE)).astype(np.int64)
    if hasattr(blocks, "sample"):  # ratings on disk: read once, kept
        users, items, values = blocks.sample(rows)
    else:
        users, items, values = blocks.users[rows], blocks.items[rows], blocks.values[rows]
    pred = model._predict_rows(users, items)
    err = pred - values
    return root_mean_square(err)
