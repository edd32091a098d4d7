"""The guarded boundary before the training and prediction kernels.

The kernels index arrays without bounds checks, for speed. Every array they receive is checked
here first, in Python and in O(1) per call (shapes, dtypes, contiguity, and the index ranges the
block layout established once when it was built), so that no call sequence and no loaded or
hand-edited model can make a kernel read or write outside an array. A failed check raises
``ModelStateError``, which names the array and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fastmf.errors import ModelStateError  # noqa: F401 - re-exported here too
from fastmf.train.kernel_state import state_shape


def _expect(cond: bool, message: str) -> None:
    if not cond:
        raise ModelStateError(message + "; nothing was run: refit the model, or load it again")


def check_array(
    a: Any, name: str, dtype: np.dtype, shape: tuple[int | None, ...], contiguous: bool = True
) -> None:
    """``a`` is an ndarray of ``dtype`` whose shape matches ``shape`` (None: any), C-contiguous
    unless ``contiguous`` is False."""
    _expect(isinstance(a, np.ndarray), f"{name} is a {type(a).__name__}, not a numpy array")
    _expect(a.dtype == dtype, f"{name} has dtype {a.dtype}, expected {np.dtype(dtype)}")
    _expect(
        a.ndim == len(shape)
        and all(w is None or w == n for w, n in zip(shape, a.shape, strict=True)),
        f"{name} has shape {a.shape}, expected {tuple('any' if w is None else w for w in shape)}",
    )
    _expect(not contiguous or a.flags.c_contiguous, f"{name} is not C-contiguous")


def check_parameters(
    mu: float, bu: Any, bi: Any, P: Any, Q: Any, n_users: int, n_items: int
) -> np.dtype:
    """The model's biases and factors fit each other and the id maps; returns their dtype."""
    _expect(isinstance(P, np.ndarray), f"user_factors_ is a {type(P).__name__}, not an array")
    dtype = P.dtype
    _expect(dtype in (np.float32, np.float64), f"user_factors_ has dtype {dtype}, not a float")
    _expect(np.isfinite(mu), f"global_mean_ is {mu}, not a finite number")
    k = P.shape[1] if P.ndim == 2 else -1
    check_array(P, "user_factors_", dtype, (n_users, None))
    check_array(Q, "item_factors_", dtype, (n_items, k))
    check_array(bu, "user_bias_", dtype, (n_users,))
    check_array(bi, "item_bias_", dtype, (n_items,))
    return dtype


def check_rows(rows: np.ndarray, name: str, n_rows: int) -> None:
    """Model rows for the prediction kernel: int32, each -1 (unknown) or below ``n_rows``."""
    check_array(rows, name, np.dtype(np.int32), (None,))
    if rows.size:
        _expect(int(rows.min()) >= -1, f"{name} holds row {int(rows.min())}, below -1")
        _expect(int(rows.max()) < n_rows, f"{name} holds row {int(rows.max())} of {n_rows}")


def check_layout(blocks: Any, n_users: int, n_items: int) -> None:
    """The block layout's arrays fit together and its rows fit the model (ranges were found
    once, when the layout was built)."""
    n = blocks.values.shape[0]
    s = blocks.n_strata
    check_array(blocks.users, "the layout's users", np.dtype(np.int32), (n,))
    check_array(blocks.items, "the layout's items", np.dtype(np.int32), (n,))
    check_array(blocks.values, "the layout's ratings", np.dtype(np.float32), (n,))
    check_array(blocks.block_offsets, "the block offsets", np.dtype(np.int64), (s * s + 1,))
    _expect(
        blocks.block_offsets[0] == 0 and blocks.block_offsets[-1] == n,
        "the block offsets do not cover the ratings",
    )
    _expect(
        blocks.user_rows_below <= n_users and blocks.item_rows_below <= n_items,
        f"the layout indexes {blocks.user_rows_below} users and {blocks.item_rows_below} items, "
        f"the model has {n_users} and {n_items}",
    )
    w = blocks.n_workers
    check_array(blocks.assign_offsets, "the block assignment", np.dtype(np.int64), (s, w + 1))
    check_array(blocks.assign_blocks, "the block assignment", np.dtype(np.int32), (s, s))


def optimizer_shapes(
    optimizer: str, n_users: int, n_items: int, k: int
) -> dict[str, tuple[int, ...]]:
    """The shape of each optimizer-state array for ``optimizer`` (empty where it keeps none)."""
    n1 = 1 if optimizer in ("adagrad", "adam", "row_adagrad") else 0
    n2 = 1 if optimizer == "adam" else 0
    width = 1 if optimizer == "row_adagrad" else k
    return {
        "bu_s1": (n_users * n1,),
        "bu_s2": (n_users * n2,),
        "bi_s1": (n_items * n1,),
        "bi_s2": (n_items * n2,),
        "P_s1": (n_users * n1, width),
        "P_s2": (n_users * n2, k),
        "Q_s1": (n_items * n1, width),
        "Q_s2": (n_items * n2, k),
        "u_steps": (n_users * n2,),
        "i_steps": (n_items * n2,),
    }


def check_optimizer_state(
    state: Mapping[str, Any], optimizer: str, dtype: np.dtype, n_users: int, n_items: int, k: int
) -> None:
    """The optimizer state has the arrays ``optimizer`` reads, in the model's shapes (views of
    the kernel's grouped state after a first epoch, so not necessarily contiguous)."""
    for name, shape in optimizer_shapes(optimizer, n_users, n_items, k).items():
        _expect(name in state, f"the optimizer state has no {name}")
        want = np.dtype(np.int64) if name.endswith("steps") else dtype
        check_array(state[name], f"the optimizer state's {name}", want, shape, contiguous=False)


def check_kernel_state(
    state: Sequence[np.ndarray], optimizer: str, dtype: np.dtype, n_users: int, n_items: int,
    k: int,
) -> None:  # fmt: skip
    """The grouped optimizer state the batch kernel takes (``train.kernel_state``): per side a
    (moments, rows, width + 1) array of the model's dtype and the int64 step counts."""
    shapes = optimizer_shapes(optimizer, n_users, n_items, k)
    _expect(len(state) == 4, "the grouped optimizer state is incomplete")
    for side, n_rows, (S, steps), name in (
        ("user", n_users, state[:2], "u_steps"),
        ("item", n_items, state[2:], "i_steps"),
    ):
        check_array(S, f"the {side} optimizer state", dtype, state_shape(optimizer, n_rows, k))
        check_array(steps, f"the {side} step counts", np.dtype(np.int64), shapes[name])


def check_scratch(
    scratch: Sequence[np.ndarray], n_workers: int, slots: int, k: int, dtype: np.dtype,
    n_users: int, n_items: int,
) -> None:  # fmt: skip
    """The mini-batch kernel's scratch has room for ``slots`` rows a batch on every worker."""
    _expect(len(scratch) == 8, "the mini-batch scratch is incomplete")
    for side, n_rows, part in (("user", n_users, scratch[:4]), ("item", n_items, scratch[4:])):
        grads, bias_and_norms, counts_and_rows, slot_of = part
        check_array(grads, f"the {side} gradient slots", dtype, (None, None, k))
        _expect(
            grads.shape[0] >= n_workers and grads.shape[1] >= slots,
            f"the {side} gradient slots hold {grads.shape[:2]}, need ({n_workers}, {slots})",
        )
        check_array(bias_and_norms, f"the {side} bias slots", dtype, (*grads.shape[:2], 2))
        check_array(
            counts_and_rows, f"the {side} slot counts", np.dtype(np.int32), (*grads.shape[:2], 2)
        )
        check_array(slot_of, f"the {side} slot table", np.dtype(np.int32), (n_rows,))


def check_points(bounds: np.ndarray, owned: np.ndarray, n_ratings: int, n_blocks: int) -> None:
    """The loss points of an epoch: rising bounds from 0 to the ratings' count, and each
    block's range of points inside them."""
    check_array(bounds, "the loss-point bounds", np.dtype(np.int64), (None,))
    check_array(owned, "the points of each block", np.dtype(np.int64), (n_blocks + 1,))
    _expect(
        bounds.shape[0] >= 1
        and bounds[0] == 0
        and bounds[-1] == n_ratings
        and bool(np.all(np.diff(bounds) >= 0)),
        "the loss-point bounds do not cover the ratings",
    )
    _expect(
        owned[0] == 0 and owned[-1] == bounds.shape[0] - 1 and bool(np.all(np.diff(owned) >= 0)),
        "the blocks' points do not cover the loss points",
    )
