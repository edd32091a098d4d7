"""The mini-batch body unrolled for 16 chunks (128 float32 factors, 64 float64) gives the general
body's bits, as the 8-chunk one does (tests/kernels/test_training_kernels.py)."""

from __future__ import annotations

import numpy as np
import pytest

from fastmf._kernels import minibatch
from tests.kernels.test_training_kernels import _block_inputs, _problem


@pytest.mark.parametrize("optimizer", ["sgd", "row_adagrad", "adagrad", "adam", "damped_sgd"])
@pytest.mark.parametrize("dtype,k", [(np.float32, 128), (np.float64, 64)])
def test_the_16_chunk_batch_body_equals_the_general_one_bit_for_bit(optimizer, dtype, k):
    assert minibatch.batch_block.key(k, dtype) == 16
    users, items, values, bu, bi, P, Q = _problem(n=300, k=k, seed=37, dtype=dtype)
    runs = []
    for unrolled in (True, False):
        params = [x.copy() for x in (bu, bi, P, Q)]
        state, scratch, user_norms = _block_inputs(optimizer, params, 16)
        args = (0, len(values), 16, users, items, values, dtype(3.4), *params, user_norms,
                dtype(0.05), dtype(0.05), dtype(0.01), True,
                minibatch.OPTIMIZER_CODES[optimizer])  # fmt: skip
        if unrolled:
            losses = minibatch.batch_block(*args, *state, *scratch)
        else:  # called from Python, the body takes the width at run time
            losses = minibatch.batch_ratings(*args, state, scratch, 16, False)
        runs.append((params, state, losses))
    (pa, sa, la), (pb, sb, lb) = runs
    for x, y in zip(pa + list(sa), pb + list(sb), strict=True):
        np.testing.assert_array_equal(x, y)
    assert la == lb
