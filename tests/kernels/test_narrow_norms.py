"""Rows shorter than ``CARRY_NORMS_FROM`` chunks sum ‖p_u‖² + ‖q_i‖² with each dot product
instead of carrying them: the same parameters, and losses that are the reference's."""

from __future__ import annotations

import numpy as np
import pytest

from fastmf._kernels import training as K
from tests import reference as ref
from tests.kernels.test_training_kernels import _problem


def _chunks(dtype, k):
    return k // (32 // np.dtype(dtype).itemsize)


@pytest.mark.parametrize(
    "dtype,k,tol",
    [(np.float32, 16, 2e-4), (np.float32, 32, 2e-4), (np.float32, 36, 2e-4),
     (np.float32, 64, 2e-4), (np.float64, 12, 1e-10), (np.float64, 32, 1e-10)],
)  # fmt: skip
def test_per_rating_losses_match_the_reference_either_side_of_the_carry(dtype, k, tol):
    users, items, values, bu, bi, P, Q = _problem(
        n_users=30, n_items=20, n=400, k=k, seed=11, dtype=dtype
    )
    mu, lr, lam, lam_b = 3.4, 0.02, 0.05, 0.01
    ref_params = [x.astype(np.float64) for x in (bu, bi, P, Q)]
    opt = ref.ReferenceOptimizer("sgd", [x.shape for x in ref_params], lr)
    want = ref.train_in_order(
        users, items, values.astype(np.float64), 1, mu, *ref_params, lam, lam_b, opt,
        np.array([0, len(values)]), [0],
    )  # fmt: skip
    NU = np.full(P.shape[0], -1.0)
    NI = np.full(Q.shape[0], -1.0)
    got = K.sgd_block(0, len(values), users, items, values, dtype(mu), bu, bi, P, Q, NU, NI,
                      dtype(lr), dtype(lam), dtype(lam_b), True)  # fmt: skip
    for x, y in zip((bu, bi, P, Q), ref_params, strict=True):
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol)
    np.testing.assert_allclose(got, want, rtol=tol)
    # the norms are carried exactly from CARRY_NORMS_FROM chunks on, else never written
    carried = bool((NU[users] >= 0).all() and (NI[items] >= 0).all())
    assert carried == (_chunks(dtype, k) >= K.CARRY_NORMS_FROM)


@pytest.mark.parametrize("k", [20, 32, 64])
def test_per_rating_kernel_keeps_fixed_biases_and_matches_the_reference(k):
    users, items, values, bu, bi, P, Q = _problem(
        n_users=25, n_items=20, n=300, k=k, seed=13, dtype=np.float32
    )
    mu, lr, lam, lam_b = 3.4, 0.02, 0.05, 0.01
    ref_params = [x.astype(np.float64) for x in (bu, bi, P, Q)]
    opt = ref.ReferenceOptimizer("sgd", [x.shape for x in ref_params], lr)
    want = ref.train_in_order(
        users, items, values.astype(np.float64), 1, mu, *ref_params, lam, lam_b, opt,
        np.array([0, len(values)]), [0], learn_bias=False,
    )  # fmt: skip
    bu0, bi0 = bu.copy(), bi.copy()
    f = np.float32
    NU, NI = np.full(25, -1.0), np.full(20, -1.0)
    got = K.sgd_block(0, len(values), users, items, values, f(mu), bu, bi, P, Q, NU, NI,
                      f(lr), f(lam), f(lam_b), False)  # fmt: skip
    np.testing.assert_array_equal(bu, bu0)
    np.testing.assert_array_equal(bi, bi0)
    np.testing.assert_allclose(P, ref_params[2], rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(Q, ref_params[3], rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(got, want, rtol=2e-4)
