"""The batch kernel sums each batch one interleaved run at a time, one user's segment at a time:
against the numpy reference at every kind of body (factor counts with and without the columns
left over, the 8- and 16-chunk bodies), with users in several segments of one batch, and the same
bits with one thread or two."""

from __future__ import annotations

import numpy as np
import pytest

from fastmf import MatrixFactorization
from fastmf._kernels import minibatch
from fastmf.train.kernel_state import kernel_state
from fastmf.train.state import new_optimizer_state
from tests import reference as ref
from tests.conftest import random_ratings
from tests.kernels.test_training_kernels import _block_order, _blocks, _run_batch_epoch, _scratch

OPTIMIZERS = ["sgd", "damped_sgd", "row_adagrad", "adagrad", "adam"]


def _dense_problem(k, seed, n_users=12, n_items=40, n=360):
    """Few users with many ratings each, so that a block's runs hold segments of several
    ratings of one user."""
    rng = np.random.default_rng(seed)
    keys = rng.choice(n_users * n_items, n, replace=False)
    users = (keys // n_items).astype(np.int32)
    items = (keys % n_items).astype(np.int32)
    values = (rng.integers(1, 11, n) / 2).astype(np.float32)
    P = rng.normal(0, 0.3, (n_users, k))
    Q = rng.normal(0, 0.3, (n_items, k))
    bu = rng.normal(0, 0.2, n_users)
    bi = rng.normal(0, 0.2, n_items)
    return users, items, values, bu, bi, P, Q


def _segments(users, start, stop):
    """(user, run, length) of each segment of the batch [start, stop), in the kernel's order."""
    out = []
    for t in range(minibatch.STREAMS):
        run = users[start + t : stop : minibatch.STREAMS]
        j = 0
        while j < len(run):
            m = j
            while m < len(run) and run[m] == run[j]:
                m += 1
            out.append((int(run[j]), t, m - j))
            j = m
    return out


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("k", [5, 19, 32, 64, 128])
def test_batch_epoch_matches_reference_at_every_body(k, optimizer):
    # float64: W = 4, so 32 and 64 factors run the 8- and 16-chunk bodies, 5 and 19 the general
    # body with columns left over, 128 the general body without
    users, items, values, bu, bi, P, Q = _dense_problem(k, seed=k)
    blocks, _, _ = _blocks(users, items, values, 12, 40, n_strata=2, n_workers=2)
    batch = 24
    lengths = [
        n
        for b in range(4)
        for s in range(int(blocks.block_offsets[b]), int(blocks.block_offsets[b + 1]), batch)
        for _, _, n in _segments(blocks.users, s, min(s + batch, int(blocks.block_offsets[b + 1])))
    ]
    assert max(lengths) >= 3  # segments of several ratings, not only single ones
    mu, lr, lam, lam_b = 3.0, 0.03, 0.05, 0.01
    shift_order = np.array([1, 0])
    P0 = P.copy()
    want = [x.copy() for x in (bu, bi, P, Q)]
    opt = ref.ReferenceOptimizer(optimizer, [x.shape for x in want], lr)
    ref_losses = ref.train_in_order(
        blocks.users, blocks.items, blocks.values.astype(np.float64), batch, mu, *want, lam,
        lam_b, opt, blocks.block_offsets, _block_order(blocks, shift_order),
    )  # fmt: skip
    losses = _run_batch_epoch(blocks, batch, mu, bu, bi, P, Q, lr, lam, lam_b, optimizer,
                              shift_order)  # fmt: skip
    assert not np.allclose(P, P0)  # it trained
    for got, expected in zip((bu, bi, P, Q), want, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-10)


def _crafted(k, seed):
    """12 ratings in 3 interleaved runs (position j in run j mod 3) where users 0 and 1 have
    ratings in every run, and user 0 two segments in run 0: each user's gradient is gathered in
    several segments of one batch."""
    run_users = [[0, 0, 1, 0], [0, 1, 1, 2], [1, 2, 0, 0]]
    run_items = [[0, 1, 0, 2], [3, 1, 2, 0], [3, 1, 4, 5]]
    users = np.array([run_users[j % 3][j // 3] for j in range(12)], np.int32)
    items = np.array([run_items[j % 3][j // 3] for j in range(12)], np.int32)
    rng = np.random.default_rng(seed)
    values = (rng.integers(1, 11, 12) / 2).astype(np.float32)
    params = [rng.normal(0, 0.2, 3), rng.normal(0, 0.2, 6), rng.normal(0, 0.3, (3, k)),
              rng.normal(0, 0.3, (6, k))]  # fmt: skip
    return users, items, values, params


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("k", [5, 32, 64])
def test_a_user_in_several_segments_of_one_batch(k, optimizer):
    users, items, values, params = _crafted(k, seed=k)
    segs = _segments(users, 0, 12)
    per_user = {u: sum(1 for s in segs if s[0] == u) for u in (0, 1)}
    assert per_user[0] == 4 and per_user[1] == 3
    assert len({(int(u), int(i)) for u, i in zip(users, items, strict=True)}) == 12
    mu, lr, lam, lam_b = 3.0, 0.05, 0.04, 0.02
    want = [x.copy() for x in params]
    opt = ref.ReferenceOptimizer(optimizer, [x.shape for x in want], lr)
    ref_losses = ref.train_in_order(users, items, values.astype(np.float64), 12, mu, *want, lam,
                                    lam_b, opt, np.array([0, 12]), [0])  # fmt: skip
    got = [x.copy() for x in params]
    st = new_optimizer_state(optimizer, got[2], got[3])
    state = kernel_state(st, optimizer, np.dtype(np.float64), 3, 6, k)
    scratch = tuple(x[0] if x.ndim > 1 else x for x in _scratch(1, 12, got[2], got[3]))
    args = (0, 12, 12, users, items, values, mu, *got, np.full(3, -1.0), lr, lam, lam_b, True,
            minibatch.OPTIMIZER_CODES[optimizer])  # fmt: skip
    losses = minibatch.batch_block(*args, *state, *scratch)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-10)
    # the slots are zero and free again for the next batch
    for arr in scratch[:2] + scratch[4:6]:
        assert not arr.any()
    assert (scratch[3] == -1).all() and (scratch[7] == -1).all()


def test_the_segment_order_of_a_batch_is_the_same_bits_with_one_or_two_threads():
    df = random_ratings(400, 300, 30_000, seed=3)
    models = [
        MatrixFactorization(
            n_factors=64, n_epochs=2, batch_size=1024, random_state=2, n_jobs=n, verbose=0
        ).fit(df)  # fmt: skip
        for n in (1, 2)
    ]
    assert models[0].optimizer_ == "damped_sgd"
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        np.testing.assert_array_equal(getattr(models[0], name), getattr(models[1], name))
    np.testing.assert_array_equal(models[0].history_.base_loss, models[1].history_.base_loss)
