"""The training kernels against the plain-numpy reference of L_B, its gradient and each step."""

from __future__ import annotations

import numpy as np
import pytest

from fastmf._kernels import minibatch
from fastmf._kernels import sorting as sk
from fastmf._kernels import training as K
from fastmf.train.batch_points import block_points
from fastmf.train.kernel_state import kernel_state
from fastmf.train.layout import Strata, balanced_strata, build_blocks
from tests import reference as ref


def _problem(n_users=23, n_items=17, n=160, k=5, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    keys = rng.choice(n_users * n_items, n, replace=False)
    users = (keys // n_items).astype(np.int32)
    items = (keys % n_items).astype(np.int32)
    values = rng.integers(1, 11, n).astype(np.float32) / 2
    P = rng.normal(0, 0.3, (n_users, k)).astype(dtype)
    Q = rng.normal(0, 0.3, (n_items, k)).astype(dtype)
    bu = rng.normal(0, 0.2, n_users).astype(dtype)
    bi = rng.normal(0, 0.2, n_items).astype(dtype)
    return users, items, values, bu, bi, P, Q


def _blocks(users, items, values, n_users, n_items, n_strata, n_workers=1, seed=0):
    cu = np.bincount(users, minlength=n_users)
    ci = np.bincount(items, minlength=n_items)
    pu, su = balanced_strata(cu, n_strata)
    pi, si = balanced_strata(ci, n_strata)
    return build_blocks(users, items, values, pu, pi, su, si, n_workers), pu, pi


def _block_order(blocks, shift_order):
    s = blocks.n_strata
    return [a * s + (a + t) % s for t in shift_order for a in range(s)]


def test_reference_gradient_matches_finite_differences():
    users, items, values, bu, bi, P, Q = _problem()
    r = values.astype(np.float64)
    lam, lam_b, mu = 0.07, 0.03, 3.2
    grads = ref.batch_gradient(r, users, items, mu, bu, bi, P, Q, lam, lam_b)
    rng = np.random.default_rng(1)
    for arr, g in zip((bu, bi, P, Q), grads, strict=True):
        for _ in range(6):
            idx = tuple(rng.integers(0, s) for s in arr.shape)
            h = 1e-6
            old = arr[idx]
            arr[idx] = old + h
            up = ref.batch_objective(r, users, items, mu, bu, bi, P, Q, lam, lam_b)
            arr[idx] = old - h
            down = ref.batch_objective(r, users, items, mu, bu, bi, P, Q, lam, lam_b)
            arr[idx] = old
            assert (up - down) / (2 * h) == pytest.approx(g[idx], rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("k", [1, 5, 8, 16, 19, 40])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dot_and_sqnorm_match_numpy(k, dtype):
    rng = np.random.default_rng(k)
    P = rng.normal(size=(4, k)).astype(dtype)
    Q = rng.normal(size=(3, k)).astype(dtype)
    d, sq = K.dot_and_sqnorm(P, 2, Q, 1)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    p, q = P[2].astype(float), Q[1].astype(float)
    assert d == pytest.approx(float(p @ q), rel=tol, abs=tol)
    assert sq == pytest.approx(float(p @ p + q @ q), rel=tol)


def test_one_batch_step_is_minus_learning_rate_times_gradient():
    users, items, values, bu, bi, P, Q = _problem(k=7)
    n_users, n_items = P.shape[0], Q.shape[0]
    blocks, pu, pi = _blocks(users, items, values, n_users, n_items, n_strata=1)
    # parameters in model rows
    bu_m, bi_m = np.empty_like(bu), np.empty_like(bi)
    bu_m[pu], bi_m[pi] = bu, bi
    P_m, Q_m = np.empty_like(P), np.empty_like(Q)
    P_m[pu], Q_m[pi] = P, Q
    mu, lr, lam, lam_b = 3.1, 0.05, 0.04, 0.02
    r = blocks.values.astype(np.float64)
    grads = ref.batch_gradient(r, blocks.users, blocks.items, mu, bu_m, bi_m, P_m, Q_m, lam, lam_b)
    base_ref, reg_ref = ref.batch_loss(
        r, blocks.users, blocks.items, mu, bu_m, bi_m, P_m, Q_m, lam, lam_b
    )
    expected = [x - lr * g for x, g in zip((bu_m, bi_m, P_m, Q_m), grads, strict=True)]
    losses = _run_batch_epoch(blocks, len(values), mu, bu_m, bi_m, P_m, Q_m, lr, lam, lam_b, "sgd")
    for got, want in zip((bu_m, bi_m, P_m, Q_m), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert losses[0] == pytest.approx(base_ref, rel=1e-12)
    assert losses[1] == pytest.approx(reg_ref, rel=1e-12)


def _run_batch_epoch(
    blocks,
    batch_size,
    mu,
    bu,
    bi,
    P,
    Q,
    lr,
    lam,
    lam_b,
    optimizer,
    shift_order=None,
    state=None,
    learn_bias=True,
    scratch_out=None,
    points=None,
    points_out=None,
):
    from fastmf.train.state import new_optimizer_state as _new_optimizer_state

    dtype = P.dtype
    s = blocks.n_strata
    shift_order = np.arange(s) if shift_order is None else shift_order
    st = state if state is not None else _new_optimizer_state(optimizer, P, Q)
    grouped = kernel_state(st, optimizer, dtype, P.shape[0], Q.shape[0], P.shape[1])
    scratch = _scratch(blocks.n_workers, batch_size, P, Q)
    if scratch_out is not None:
        scratch_out.extend(scratch)
    bounds, owned = points if points is not None else block_points(blocks.block_offsets)
    point_losses = np.zeros((len(bounds) - 1, 2))
    minibatch.batch_epoch(
        blocks.users, blocks.items, blocks.values, bounds, owned,
        np.asarray(shift_order, np.int64), blocks.assign_offsets, blocks.assign_blocks,
        batch_size, dtype.type(mu), bu, bi, P, Q, dtype.type(lr), dtype.type(lam),
        dtype.type(lam_b), learn_bias, minibatch.OPTIMIZER_CODES[optimizer], *grouped, *scratch,
        point_losses,
    )  # fmt: skip
    if points_out is not None:
        points_out.append(point_losses)
    return point_losses.sum(axis=0)


def _block_inputs(optimizer, params, n_slots):
    """A ``batch_block`` call's fresh optimizer state for ``params`` (bu, bi, P, Q), one
    worker's scratch of ``n_slots`` slots a side, and the rows' norms, not known yet."""
    from fastmf.train.state import new_optimizer_state

    P, Q = params[2], params[3]
    st = new_optimizer_state(optimizer, P, Q)
    state = kernel_state(st, optimizer, P.dtype, P.shape[0], Q.shape[0], P.shape[1])
    scratch = tuple(x[0] if x.ndim > 1 else x for x in _scratch(1, n_slots, P, Q))
    return state, scratch, np.full(P.shape[0], -1.0, P.dtype)


def _scratch(n_workers, n_slots, P, Q):
    """The batch kernel's scratch, per side: gradient slots, (bias gradient, partner norms) and
    (count, row) of each slot, and each model row's slot."""
    dtype = P.dtype
    return tuple(
        x
        for n_rows in (P.shape[0], Q.shape[0])
        for x in (
            np.zeros((n_workers, n_slots, P.shape[1]), dtype),
            np.zeros((n_workers, n_slots, 2), dtype),
            np.zeros((n_workers, n_slots, 2), np.int32),
            np.full(n_rows, -1, np.int32),
        )
    )


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "adam", "row_adagrad", "damped_sgd"])
@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_batch_epoch_matches_reference(optimizer, batch_size):
    users, items, values, bu, bi, P, Q = _problem(n_users=30, n_items=25, n=300, k=6, seed=3)
    blocks, _, _ = _blocks(users, items, values, 30, 25, n_strata=3, n_workers=2)
    mu, lr, lam, lam_b = 3.0, 0.02, 0.05, 0.01
    shift_order = np.array([2, 0, 1])
    ref_params = [x.copy() for x in (bu, bi, P, Q)]
    opt = ref.ReferenceOptimizer(optimizer, [x.shape for x in ref_params], lr)
    ref_losses = ref.train_in_order(
        blocks.users, blocks.items, blocks.values.astype(np.float64), batch_size, mu,
        *ref_params, lam, lam_b, opt, blocks.block_offsets, _block_order(blocks, shift_order),
    )  # fmt: skip
    losses = _run_batch_epoch(
        blocks, batch_size, mu, bu, bi, P, Q, lr, lam, lam_b, optimizer, shift_order
    )
    for got, want in zip((bu, bi, P, Q), ref_params, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-10)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 3e-4)])
@pytest.mark.parametrize("wide", [False, True])
def test_per_rating_sgd_epoch_matches_reference(dtype, tol, wide):
    # wide: 9 chunks and 3 columns more, the general body's wide loop, its chunk left over and
    # its columns left over
    lanes = 8 if np.dtype(dtype).itemsize == 4 else 4
    k = 9 * lanes + 3 if wide else 20
    users, items, values, bu, bi, P, Q = _problem(
        n_users=40, n_items=30, n=500, k=k, seed=11 if wide else 5, dtype=dtype
    )
    if wide:
        assert K.sgd_block.key(k, dtype) == 0 and k // lanes >= K.WIDE_FROM
    blocks, _, _ = _blocks(users, items, values, 40, 30, n_strata=4, n_workers=2)
    mu, lr, lam, lam_b = 3.3, 0.01, 0.03, 0.02
    shift_order = np.array([2, 0, 3, 1] if wide else [3, 1, 0, 2])
    ref_params = [x.astype(np.float64) for x in (bu, bi, P, Q)]
    opt = ref.ReferenceOptimizer("sgd", [x.shape for x in ref_params], lr)
    ref_losses = ref.train_in_order(
        blocks.users, blocks.items, blocks.values.astype(np.float64), 1, mu, *ref_params,
        lam, lam_b, opt, blocks.block_offsets, _block_order(blocks, shift_order),
    )  # fmt: skip
    block_losses = np.zeros((16, 2))
    K.sgd_epoch(
        blocks.users, blocks.items, blocks.values, *block_points(blocks.block_offsets),
        shift_order.astype(np.int64),
        blocks.assign_offsets, blocks.assign_blocks, dtype(mu), bu, bi, P, Q, dtype(lr), dtype(lam),
        dtype(lam_b), True, block_losses,
    )  # fmt: skip
    for got, want in zip((bu, bi, P, Q), ref_params, strict=True):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    np.testing.assert_allclose(block_losses.sum(axis=0), ref_losses, rtol=tol)


def test_sgd_epoch_equals_batch_kernel_with_batch_size_one():
    users, items, values, bu, bi, P, Q = _problem(n=300, k=16, seed=7)
    blocks, _, _ = _blocks(users, items, values, 23, 17, n_strata=2, n_workers=2)
    a = [x.copy() for x in (bu, bi, P, Q)]
    b = [x.copy() for x in (bu, bi, P, Q)]
    la = _run_batch_epoch(blocks, 1, 3.0, *a, 0.01, 0.02, 0.0, "sgd")
    lb = np.zeros((4, 2))
    K.sgd_epoch(
        blocks.users,
        blocks.items,
        blocks.values,
        *block_points(blocks.block_offsets),
        np.arange(2),
        blocks.assign_offsets,
        blocks.assign_blocks,
        3.0,
        *b,
        0.01,
        0.02,
        0.0,
        True,
        lb,
    )
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(la, lb.sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("optimizer", ["sgd", "row_adagrad", "adam", "damped_sgd"])
def test_batch_gradient_slots_are_zero_and_free_between_batches(optimizer):
    users, items, values, bu, bi, P, Q = _problem(n=300, k=8, seed=23)
    blocks, _, _ = _blocks(users, items, values, 23, 17, n_strata=2, n_workers=2)
    scratch = []
    _run_batch_epoch(
        blocks, 16, 3.0, bu, bi, P, Q, 0.05, 0.02, 0.01, optimizer, scratch_out=scratch
    )
    g_u, gh_u, cr_u, slot_u, g_i, gh_i, cr_i, slot_i = scratch
    for arr in (g_u, gh_u, cr_u[..., 0], g_i, gh_i, cr_i[..., 0]):
        assert not arr.any()
    assert (slot_u == -1).all() and (slot_i == -1).all()


def test_fixed_biases_are_not_updated():
    users, items, values, bu, bi, P, Q = _problem(seed=9)
    blocks, _, _ = _blocks(users, items, values, 23, 17, n_strata=2)
    bu0, bi0 = bu.copy(), bi.copy()
    _run_batch_epoch(blocks, 4, 3.0, bu, bi, P, Q, 0.05, 0.02, 0.0, "adam", learn_bias=False)
    np.testing.assert_array_equal(bu, bu0)
    np.testing.assert_array_equal(bi, bi0)


def test_predict_kernel_matches_numpy_with_unknown_rows():
    *_, bu, bi, P, Q = _problem(seed=11)
    u = np.array([0, 5, -1, 3, -1], np.int32)
    i = np.array([1, -1, 2, 4, -1], np.int32)
    out = np.empty(5)
    K.predict(u, i, 3.5, bu, bi, P, Q, out)
    want = [
        3.5 + bu[0] + bi[1] + P[0] @ Q[1],
        3.5 + bu[5],
        3.5 + bi[2],
        3.5 + bu[3] + bi[4] + P[3] @ Q[4],
        3.5,
    ]
    np.testing.assert_allclose(out, want, rtol=1e-12)


def test_strata_are_balanced_and_blocks_share_no_rows():
    users, items, values, *_ = _problem(n_users=200, n_items=150, n=5000, seed=13)
    blocks, _, _ = _blocks(users, items, values, 200, 150, n_strata=4, n_workers=2)
    s = blocks.n_strata
    sizes = np.diff(blocks.block_offsets).reshape(s, s)
    assert sizes.sum() == 5000
    # rating counts per user stratum within 10% of each other
    per_stratum = sizes.sum(axis=1)
    assert per_stratum.max() < 1.1 * per_stratum.min()
    for t in range(s):
        rows_u, rows_i = set(), set()
        for a in range(s):
            b = a * s + (a + t) % s
            lo, hi = blocks.block_offsets[b], blocks.block_offsets[b + 1]
            bu_, bi_ = set(blocks.users[lo:hi].tolist()), set(blocks.items[lo:hi].tolist())
            assert not (bu_ & rows_u) and not (bi_ & rows_i)
            rows_u |= bu_
            rows_i |= bi_
    # every sub-epoch's blocks are dealt to the two workers exactly once
    for t in range(s):
        dealt = blocks.assign_blocks[t, : blocks.assign_offsets[t, -1]]
        assert sorted(dealt.tolist()) == sorted(a * s + (a + t) % s for a in range(s))


def test_blocks_interleave_runs_of_user_item_order():
    users, items, values, *_ = _problem(n_users=60, n_items=50, n=2000, seed=17)
    blocks, _, _ = _blocks(users, items, values, 60, 50, n_strata=2)
    streams = sk.STREAMS
    shared_user_neighbours = 0
    for b in range(4):
        lo, hi = blocks.block_offsets[b], blocks.block_offsets[b + 1]
        n = hi - lo
        pos = np.array([sk.interleaved_position(r, n, streams) for r in range(n)])
        np.testing.assert_array_equal(np.sort(pos), np.arange(n))  # a permutation of the block
        # undoing the interleave gives the block in (user, item) order
        u, i = blocks.users[lo:hi][pos], blocks.items[lo:hi][pos]
        keys = u.astype(np.int64) * 1000 + i
        assert np.all(np.diff(keys) > 0)
        shared_user_neighbours += int(
            np.sum(blocks.users[lo + 1 : hi] == blocks.users[lo : hi - 1])
        )
    # in (user, item) order most neighbours share a user; interleaved, almost none do
    assert shared_user_neighbours < 0.05 * len(values)


@pytest.mark.parametrize(
    "dtype,k", [(np.float32, 64), (np.float32, 32), (np.float32, 16), (np.float64, 32)]
)
def test_unrolled_sgd_body_equals_the_general_one_bit_for_bit(dtype, k):
    users, items, values, bu, bi, P, Q = _problem(n=350, k=k, seed=19, dtype=dtype)
    a = [x.copy() for x in (bu, bi, P, Q)]
    b = [x.copy() for x in (bu, bi, P, Q)]
    a += [_sqnorms(P), _sqnorms(Q)]
    b += [_sqnorms(P), _sqnorms(Q)]
    args = (users, items, values, dtype(3.4))
    rates = (dtype(0.02), dtype(0.05), dtype(0.01), True)
    # sgd_block picks the body unrolled for k; called from Python the body takes k at run time
    la = K.sgd_block(0, len(values), *args, *a, *rates)
    lb = K.sgd_ratings(
        0, len(values), *args, *b, *rates, k // (32 // np.dtype(dtype).itemsize), False
    )
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert la == lb


def _sqnorms(X):
    """‖x_r‖² of every row, in float64 (the norms ``sgd_block`` carries)."""
    return np.einsum("ij,ij->i", X.astype(np.float64), X.astype(np.float64))


# rows of ``K.CARRY_NORMS_FROM`` chunks or more carry their norms (shorter ones sum them afresh)
@pytest.mark.parametrize("dtype,k,tol", [(np.float64, 35, 1e-12), (np.float32, 64, 1e-5)])
def test_carried_norms_stay_the_rows_norms(dtype, k, tol):
    assert k // (32 // np.dtype(dtype).itemsize) >= K.CARRY_NORMS_FROM
    users, items, values, bu, bi, P, Q = _problem(30, 25, n=400, k=k, seed=31, dtype=dtype)
    NU, NI = _sqnorms(P), _sqnorms(Q)
    K.sgd_block(0, len(values), users, items, values, dtype(3.4), bu, bi, P, Q, NU, NI,
                dtype(0.05), dtype(0.05), dtype(0.01), True)  # fmt: skip
    # every row stepped many times: the norms were carried, not summed again
    assert np.bincount(users).max() > 10
    np.testing.assert_allclose(NU, _sqnorms(P), rtol=tol)
    np.testing.assert_allclose(NI, _sqnorms(Q), rtol=tol)


def test_batch_kernels_know_the_layouts_interleave_and_the_wide_rows():
    # a cached kernel does not see a constant of another file change, so minibatch.py keeps its
    # own copies of the number of interleaved runs the layout builds and of the width from which
    # rows are summed in 2W-lane vectors
    assert minibatch.STREAMS == sk.STREAMS
    assert minibatch.WIDE_FROM == K.WIDE_FROM


@pytest.mark.parametrize("optimizer", ["sgd", "row_adagrad", "adagrad", "adam", "damped_sgd"])
@pytest.mark.parametrize("dtype,k", [(np.float32, 64), (np.float64, 32)])
def test_unrolled_batch_body_equals_the_general_one_bit_for_bit(optimizer, dtype, k):
    users, items, values, bu, bi, P, Q = _problem(n=350, k=k, seed=29, dtype=dtype)
    runs = []
    for unrolled in (True, False):
        params = [x.copy() for x in (bu, bi, P, Q)]
        state, scratch, user_norms = _block_inputs(optimizer, params, 16)
        args = (0, len(values), 16, users, items, values, dtype(3.4), *params, user_norms,
                dtype(0.05), dtype(0.05), dtype(0.01), True,
                minibatch.OPTIMIZER_CODES[optimizer])  # fmt: skip
        if unrolled:  # batch_block picks the body unrolled for k
            losses = minibatch.batch_block(*args, *state, *scratch)
        else:  # called from Python, the body takes k at run time
            losses = minibatch.batch_ratings(
                *args, state, scratch, k * np.dtype(dtype).itemsize // 32, False
            )
        runs.append((params, state, losses))
    (pa, sa, la), (pb, sb, lb) = runs
    for x, y in zip(pa + list(sa), pb + list(sb), strict=True):
        np.testing.assert_array_equal(x, y)
    assert la == lb


def test_strata_of_rows():
    st = Strata(np.array([0, 2, 5, 6]))
    np.testing.assert_array_equal(st.of_rows(6), [0, 0, 1, 1, 1, 2])
