"""The optimizer state and the mini-batch scratch in the few arrays the batch kernel takes.

The model keeps its optimizer state as ten named arrays (``train.state.new_optimizer_state``;
the saved format stores them by name). The kernel takes two arrays a side instead:

- ``S``, shape (moments, rows, width + 1): moment m of row r's factor state in ``S[m, r, :width]``
  and of its bias in ``S[m, r, width]`` (moments: 0 for plain and damped SGD, 1 for AdaGrad and
  ``row_adagrad``, 2 for Adam; width 1 for ``row_adagrad``'s one sum a row, else the factors);
- ``steps``, int64: Adam's step count of each row (empty for the others).

The first epoch packs the named arrays into these and puts views of them back under the same
names, so later epochs pass them with no copy, and whatever reads the names sees the state the
kernel wrote.
"""

from __future__ import annotations

import numpy as np

SIDES = (("P", "bu", "u_steps"), ("Q", "bi", "i_steps"))


def state_shape(optimizer: str, n_rows: int, k: int) -> tuple[int, int, int]:
    """(moments, rows, width + 1) of one side's grouped state for ``optimizer``."""
    moments = {"adagrad": 1, "row_adagrad": 1, "adam": 2}.get(optimizer, 0)
    width = 1 if optimizer == "row_adagrad" else k
    return moments, n_rows, width + 1


def _views(S: np.ndarray) -> dict[str, np.ndarray]:
    """The named parts of one side's grouped state (a moment it lacks: an empty view)."""
    w = S.shape[2] - 1
    first, second = S[:1], S[1:2]
    return {
        "s1": first[:, :, :w].reshape(-1, w),
        "s2": second[:, :, :w].reshape(-1, w),
        "b1": first[:, :, w].reshape(-1),
        "b2": second[:, :, w].reshape(-1),
    }


def _is_view(a: np.ndarray, v: np.ndarray) -> bool:
    """Whether ``a`` is exactly the view ``v``: the same memory, shape and strides."""
    return (
        isinstance(a, np.ndarray)
        and a.shape == v.shape
        and a.strides == v.strides
        and a.dtype == v.dtype
        and a.__array_interface__["data"][0] == v.__array_interface__["data"][0]
    )


def _names(factors: str, bias: str) -> dict[str, str]:
    return {"s1": f"{factors}_s1", "s2": f"{factors}_s2", "b1": f"{bias}_s1", "b2": f"{bias}_s2"}


def kernel_state(
    o: dict, optimizer: str, dtype: np.dtype, n_users: int, n_items: int, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(S_users, user steps, S_items, item steps) for the batch kernel, packed from the named
    arrays of ``o`` the first time (the names then hold views of them). The named arrays must
    have the shapes ``guard.optimizer_shapes`` gives (``guard.check_optimizer_state``)."""
    out: list[np.ndarray] = []
    for (factors, bias, steps), n_rows in zip(SIDES, (n_users, n_items), strict=True):
        names = _names(factors, bias)
        S = o[names["s1"]].base
        packed = (
            isinstance(S, np.ndarray)
            and S.shape == state_shape(optimizer, n_rows, k)
            and S.dtype == dtype
            and S.flags.c_contiguous
            and all(_is_view(o[names[p]], v) for p, v in _views(S).items() if v.size)
        )
        if not packed:
            S = np.zeros(state_shape(optimizer, n_rows, k), dtype)
            for part, view in _views(S).items():
                if view.size:  # a moment the optimizer lacks keeps its empty array
                    view[...] = o[names[part]]
                    o[names[part]] = view
        out += [S, o[steps]]
    return out[0], out[1], out[2], out[3]
