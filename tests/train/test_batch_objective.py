"""Every rating weighs the same in every epoch, whatever the block layout: mini-batch SGD descends
the mean objective F = (1/N)[Σ (r − r̂)² + λ Σ (‖p_u‖² + ‖q_i‖²)] over all N training ratings.

An epoch of plain mini-batch SGD at rate η is, to first order in η, a step of η·N/B down ∇F, at
every batch size B, also where the blocks are smaller than a batch; annealed mini-batch SGD ends
near a stationary point of F, which the alternative that divides each step by the batch's own
length does not.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmf.train.layout import Strata, build_blocks, choose_n_strata
from tests import reference as ref
from tests.kernels.test_training_kernels import _block_order, _blocks, _run_batch_epoch

LAM = 0.05


def _low_rank(n_users, n_items, n, k=4, seed=0):
    """n distinct (user, item) pairs rated by a hidden rank-k model plus noise, and a fresh
    model (zero biases, N(0, 0.1²) factors) in float64."""
    rng = np.random.default_rng(seed)
    keys = rng.choice(n_users * n_items, n, replace=False)
    users = (keys // n_items).astype(np.int32)
    items = (keys % n_items).astype(np.int32)
    U = rng.normal(0, 0.6, (n_users, k))
    V = rng.normal(0, 0.6, (n_items, k))
    r = 3.5 + rng.normal(0, 0.4, n_users)[users] + (U[users] * V[items]).sum(1)
    values = np.clip(r + rng.normal(0, 0.3, n), 0.5, 5).astype(np.float32)
    params = [
        np.zeros(n_users),
        np.zeros(n_items),
        rng.normal(0, 0.1, (n_users, k)),
        rng.normal(0, 0.1, (n_items, k)),
    ]
    return users, items, values, params


def _mean_gradient(blocks, mu, params):
    """∇F over all training ratings, flattened (the reference's gradient with divisor N)."""
    r = blocks.values.astype(np.float64)
    grads = ref.batch_gradient(r, blocks.users, blocks.items, mu, *params, LAM, 0.0)
    return np.concatenate([g.ravel() for g in grads])


def _flat(params):
    return np.concatenate([x.ravel() for x in params])


# ~12,000 ratings: S = 8, blocks of about 190 ratings (smaller than most batches); 150,000: S = 16,
# blocks of about 590; 60,000 laid out in S = 2: blocks of about 15,000 (larger than every batch)
SETS = {
    "12k": (600, 400, 12_000, None),
    "150k": (3000, 1500, 150_000, None),
    "60k-S2": (1500, 800, 60_000, 2),
}


@pytest.fixture(scope="module", params=list(SETS))
def layout(request):
    n_users, n_items, n, s = SETS[request.param]
    users, items, values, params = _low_rank(n_users, n_items, n, seed=len(request.param))
    s = choose_n_strata(n, n_users, n_items) if s is None else s
    # the parameters are random draws, so rows renumbered by the layout keep their meaning
    blocks, _, _ = _blocks(users, items, values, n_users, n_items, n_strata=s, n_workers=2)
    mu = float(values.mean())
    return blocks, mu, params


@pytest.mark.parametrize("batch_size", [1, 8, 32, 256, 1024])
def test_one_epoch_is_a_step_of_n_over_b_down_the_mean_gradient(layout, batch_size):
    blocks, mu, params = layout
    work = [x.copy() for x in params]
    n = len(blocks.values)
    grad = _mean_gradient(blocks, mu, work)
    per_rating = 1e-5  # η/B: the epoch moves the parameters by about 1e-4 of their size
    lr = per_rating * batch_size
    shift_order = np.random.default_rng(batch_size).permutation(blocks.n_strata)
    _run_batch_epoch(blocks, batch_size, mu, *work, lr, LAM, 0.0, "sgd", shift_order)
    moved = _flat(work) - _flat(params)
    cosine = float(moved @ -grad / (np.linalg.norm(moved) * np.linalg.norm(grad)))
    ratio = float(np.linalg.norm(moved) / (lr * n / batch_size * np.linalg.norm(grad)))
    sizes = np.diff(blocks.block_offsets)
    where = f"batch {batch_size}, blocks of {sizes.min()}-{sizes.max()} ratings"
    assert cosine >= 0.999, f"{where}: cosine {cosine:.4f} with -∇F"
    assert abs(ratio - 1) <= 0.02, f"{where}: length {ratio:.4f} of η·N/B·‖∇F‖"


def _equal_blocks(n_per_block, seed=0):
    """A 2×2 layout whose four blocks hold exactly ``n_per_block`` ratings each (10 users and 10
    items a stratum, model rows numbered as the raw ids)."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for a in range(2):
        for b in range(2):
            keys = rng.choice(100, n_per_block, replace=False)
            users.append(a * 10 + keys // 10)
            items.append(b * 10 + keys % 10)
    users = np.concatenate(users).astype(np.int32)
    items = np.concatenate(items).astype(np.int32)
    values = (rng.integers(1, 11, len(users)) / 2).astype(np.float32)
    strata = Strata(np.array([0, 10, 20]))
    rows = np.arange(20, dtype=np.int32)
    return build_blocks(users, items, values, rows, rows, strata, strata, 2)


def _kernel_and_reference(blocks, batch_size, optimizer="sgd", seed=1, lr=0.05):
    rng = np.random.default_rng(seed)
    n_u, n_i = int(blocks.users.max()) + 1, int(blocks.items.max()) + 1
    params = [rng.normal(0, 0.2, n_u), rng.normal(0, 0.2, n_i),
              rng.normal(0, 0.3, (n_u, 6)), rng.normal(0, 0.3, (n_i, 6))]  # fmt: skip
    shift_order = rng.permutation(blocks.n_strata)
    ref_params = [x.copy() for x in params]
    opt = ref.ReferenceOptimizer(optimizer, [x.shape for x in ref_params], lr)
    ref_losses = ref.train_in_order(
        blocks.users, blocks.items, blocks.values.astype(np.float64), batch_size, 3.0,
        *ref_params, LAM, 0.02, opt, blocks.block_offsets, _block_order(blocks, shift_order),
    )  # fmt: skip
    losses = _run_batch_epoch(
        blocks, batch_size, 3.0, *params, lr, LAM, 0.02, optimizer, shift_order
    )
    for got, want in zip(params, ref_params, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-10)


@pytest.mark.parametrize("batch_size", [7, 40, 160])  # blocks larger than, equal to, smaller than
@pytest.mark.parametrize("optimizer", ["sgd", "row_adagrad", "adam", "damped_sgd"])
def test_kernel_equals_reference_whether_blocks_are_smaller_equal_or_larger(batch_size, optimizer):
    _kernel_and_reference(_equal_blocks(40), batch_size, optimizer)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(20, 400),
    n_strata=st.integers(1, 4),
    batch_size=st.integers(1, 200),
)
def test_kernel_equals_reference_on_any_layout(seed, n, n_strata, batch_size):
    rng = np.random.default_rng(seed)
    keys = rng.choice(30 * 25, n, replace=False)
    users, items = (keys // 25).astype(np.int32), (keys % 25).astype(np.int32)
    values = (rng.integers(1, 11, n) / 2).astype(np.float32)
    blocks, _, _ = _blocks(users, items, values, 30, 25, n_strata=n_strata, n_workers=2, seed=seed)
    _kernel_and_reference(blocks, batch_size, seed=seed)


def _relative_gradient_after_annealing(blocks, mu, params, batch_size, n_epochs, lr0, kernel):
    """‖∇F‖ after ``n_epochs`` of mini-batch SGD whose rate falls geometrically from lr0 to
    lr0/1000, over ‖∇F‖ at the start; ``kernel`` False trains with the numpy reference dividing
    each step by the batch's own length."""
    work = [x.copy() for x in params]
    start = np.linalg.norm(_mean_gradient(blocks, mu, work))
    rng = np.random.default_rng(0)
    for epoch in range(n_epochs):
        lr = lr0 * 1e-3 ** (epoch / (n_epochs - 1))
        shift_order = rng.permutation(blocks.n_strata)
        if kernel:
            _run_batch_epoch(blocks, batch_size, mu, *work, lr, LAM, 0.0, "sgd", shift_order)
        else:
            opt = ref.ReferenceOptimizer("sgd", [x.shape for x in work], lr)
            ref.train_in_order(
                blocks.users, blocks.items, blocks.values.astype(np.float64), batch_size, mu,
                *work, LAM, 0.0, opt, blocks.block_offsets, _block_order(blocks, shift_order),
                nominal=False,
            )  # fmt: skip
    return float(np.linalg.norm(_mean_gradient(blocks, mu, work)) / start)


def test_annealed_batch_sgd_ends_near_a_stationary_point_of_the_mean_objective():
    # 4,000 ratings in S = 4: 16 blocks of about 250 ratings, each ending in a short batch of 32
    users, items, values, params = _low_rank(200, 150, 4000, seed=3)
    blocks, _, _ = _blocks(users, items, values, 200, 150, n_strata=4, n_workers=2)
    mu = float(values.mean())
    sizes = np.diff(blocks.block_offsets)
    assert np.mean(sizes % 32 != 0) > 0.9  # nearly every block ends in a short batch
    # 300 epochs, the rate falling from 0.05 a rating (η = 0.05·32) to a thousandth of it
    args = (blocks, mu, params, 32, 300, 0.05 * 32)
    nominal = _relative_gradient_after_annealing(*args, kernel=True)
    own_length = _relative_gradient_after_annealing(*args, kernel=False)
    assert nominal < 0.1, f"‖∇F‖ fell to {nominal:.3g} of its start only"
    # dividing by the batch's own length converges to the minimum of another weighting of the
    # ratings, where ∇F stays away from zero (0.039 of its start here, 0.0017 for the nominal)
    assert nominal < own_length / 5, (nominal, own_length)
