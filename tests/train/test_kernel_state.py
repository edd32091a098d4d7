"""The grouped optimizer state of the batch kernel against the named arrays a model keeps."""

from __future__ import annotations

import numpy as np
import pytest

from fastmf.train.guard import check_kernel_state, check_optimizer_state, optimizer_shapes
from fastmf.train.kernel_state import kernel_state, state_shape
from fastmf.train.state import new_optimizer_state

OPTIMIZERS = ["sgd", "damped_sgd", "adagrad", "row_adagrad", "adam"]


def _filled(optimizer, n_users=7, n_items=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    P = np.zeros((n_users, k), np.float32)
    Q = np.zeros((n_items, k), np.float32)
    o = new_optimizer_state(optimizer, P, Q)
    for a in o.values():
        a[...] = rng.integers(0, 100, a.shape) if a.dtype == np.int64 else rng.random(a.shape)
    return o


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_packing_keeps_every_value_under_its_name(optimizer):
    o = _filled(optimizer)
    before = {name: a.copy() for name, a in o.items()}
    state = kernel_state(o, optimizer, np.dtype(np.float32), 7, 5, 3)
    check_kernel_state(state, optimizer, np.dtype(np.float32), 7, 5, 3)
    check_optimizer_state(o, optimizer, np.dtype(np.float32), 7, 5, 3)
    assert {name: a.shape for name, a in o.items()} == optimizer_shapes(optimizer, 7, 5, 3)
    for name, a in before.items():
        np.testing.assert_array_equal(o[name], a)
    SU, u_steps, SI, i_steps = state
    assert SU.shape == state_shape(optimizer, 7, 3) and SI.shape == state_shape(optimizer, 5, 3)
    if SU.shape[0]:
        w = SU.shape[2] - 1
        np.testing.assert_array_equal(SU[0, :, :w], before["P_s1"])
        np.testing.assert_array_equal(SU[0, :, w], before["bu_s1"])
        np.testing.assert_array_equal(SI[0, :, :w], before["Q_s1"])
    if SU.shape[0] == 2:
        np.testing.assert_array_equal(SU[1, :, :w], before["P_s2"])
        np.testing.assert_array_equal(SI[1, :, w], before["bi_s2"])
    assert u_steps is o["u_steps"] and i_steps is o["i_steps"]


@pytest.mark.parametrize("optimizer", ["adagrad", "row_adagrad", "adam"])
def test_later_epochs_reuse_the_packed_arrays_and_the_names_see_the_kernels_writes(optimizer):
    o = _filled(optimizer)
    SU, _, SI, _ = kernel_state(o, optimizer, np.dtype(np.float32), 7, 5, 3)
    again = kernel_state(o, optimizer, np.dtype(np.float32), 7, 5, 3)
    assert again[0] is SU and again[2] is SI  # no copy
    SU[0, 2, -1] = 42.0  # what the kernel writes to user 2's bias state
    SI[-1, 4, 0] = -3.0
    assert o["bu_s1"][2] == 42.0
    last = "Q_s2" if optimizer == "adam" else "Q_s1"
    assert o[last][4, 0] == -3.0


def test_named_arrays_replaced_by_copies_are_packed_again():
    # a rolled-back or unpickled model holds separate arrays again: they are packed afresh
    o = _filled("adam")
    SU, *_ = kernel_state(o, "adam", np.dtype(np.float32), 7, 5, 3)
    o = {name: a.copy() for name, a in o.items()}
    o["P_s2"][1, 1] = 7.0
    SU2, *_ = kernel_state(o, "adam", np.dtype(np.float32), 7, 5, 3)
    assert SU2 is not SU and SU2[1, 1, 1] == 7.0
