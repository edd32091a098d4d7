"""``sgd_epoch`` sums each row's squared norm at its first rating in the epoch: the same losses,
bit for bit, as norms summed for every row at the epoch's start."""

from __future__ import annotations

import numpy as np
import pytest

from fastmf._kernels import training as K
from fastmf.train.batch_points import block_points
from tests.kernels.test_training_kernels import _block_order, _blocks, _problem


@pytest.mark.parametrize("dtype,k", [(np.float32, 64), (np.float32, 20), (np.float64, 32)])
def test_norms_at_first_rating_give_the_losses_of_norms_at_the_start(dtype, k):
    # 60 users, 45 items, and rows 50.. and 40.. rated by no one: norms never needed
    users, items, values, bu, bi, P, Q = _problem(
        n_users=50, n_items=40, n=700, k=k, seed=41, dtype=dtype
    )
    rng = np.random.default_rng(3)
    P = np.vstack([P, rng.normal(0, 0.3, (10, k)).astype(dtype)])
    Q = np.vstack([Q, rng.normal(0, 0.3, (5, k)).astype(dtype)])
    bu = np.concatenate([bu, np.zeros(10, dtype)])
    bi = np.concatenate([bi, np.zeros(5, dtype)])
    blocks, _, _ = _blocks(users, items, values, 60, 45, n_strata=3, n_workers=2)
    shift_order = np.array([1, 2, 0])
    rates = (dtype(0.03), dtype(0.04), dtype(0.01), True)
    a = [x.copy() for x in (bu, bi, P, Q)]
    losses = np.zeros((9, 2))
    K.sgd_epoch(
        blocks.users, blocks.items, blocks.values, *block_points(blocks.block_offsets),
        shift_order.astype(np.int64), blocks.assign_offsets, blocks.assign_blocks, dtype(3.2),
        *a, *rates, losses,
    )  # fmt: skip
    # the same blocks in the same order, one by one, with every norm summed first
    b = [x.copy() for x in (bu, bi, P, Q)]
    NU, NI = K.every_row_sqnorm(b[2], b[3])
    want = np.zeros((9, 2))
    off = blocks.block_offsets
    for blk in _block_order(blocks, shift_order):
        want[blk] = K.sgd_block(off[blk], off[blk + 1], blocks.users, blocks.items,
                                blocks.values, dtype(3.2), *b, NU, NI, *rates)  # fmt: skip
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(losses, want)
    assert want[:, 1].min() > 0  # every block has ratings, and its loss its penalty
