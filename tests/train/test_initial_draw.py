"""The factors a fresh fit starts from: N(0, init_std²) drawn in fixed chunks, each by a
generator of its own, so the bits depend on the seed alone, never on the thread count."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmf import MatrixFactorization
from fastmf._random import DRAW_CHUNK, fill_normal
from fastmf.train.params import check_params
from fastmf.train.state import initial_parameters


def reference_fill(seed: int, sizes: list[int], std: float, dtype) -> list[np.ndarray]:
    """The documented draw, chunk by chunk in one thread: four words from the generator seed
    a SeedSequence, whose child k draws chunk k of the arrays laid end to end."""
    rng = np.random.default_rng(seed)
    entropy = [int(x) for x in rng.integers(0, 2**63, size=4, dtype=np.int64)]
    starts = [(a, lo) for a, n in enumerate(sizes) for lo in range(0, n, DRAW_CHUNK)]
    children = np.random.SeedSequence(entropy).spawn(len(starts))
    out = [np.empty(n, dtype) for n in sizes]
    for (a, lo), child in zip(starts, children, strict=True):
        n = min(DRAW_CHUNK, sizes[a] - lo)
        draw = np.random.Generator(np.random.PCG64(child)).standard_normal(n, dtype=dtype)
        out[a][lo : lo + n] = draw * dtype(std)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_the_draw_is_the_chunked_reference_whatever_the_threads(dtype, n_threads):
    sizes = [9 * DRAW_CHUNK + 17, 3 * DRAW_CHUNK - 5]  # enough chunks for the thread pool
    arrays = [np.full(n, np.nan, dtype) for n in sizes]
    fill_normal(np.random.default_rng(3), arrays, 0.1, n_threads)
    for got, want in zip(arrays, reference_fill(3, sizes, 0.1, dtype), strict=True):
        np.testing.assert_array_equal(got, want)


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(0, 3000),
    k=st.integers(1, 70),
    n_threads=st.integers(1, 4),
    seed=st.integers(0, 2**32),
)
def test_threads_never_change_the_bits_nor_the_generator_after(rows, k, n_threads, seed):
    a1, a2 = np.empty((rows, k), np.float32), np.empty((rows, k), np.float32)
    b1, b2 = np.empty((rows // 3, k), np.float32), np.empty((rows // 3, k), np.float32)
    g1, g2 = np.random.default_rng(seed), np.random.default_rng(seed)
    fill_normal(g1, [a1, b1], 0.5, 1)
    fill_normal(g2, [a2, b2], 0.5, n_threads)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(b1, b2)
    assert g1.bit_generator.state == g2.bit_generator.state
    assert g1.random() == g2.random()


def test_the_draw_has_the_asked_spread_and_no_repeated_chunk():
    a = np.empty(40 * DRAW_CHUNK, np.float32)
    fill_normal(np.random.default_rng(0), [a], 0.1, 2)
    assert abs(float(a.mean())) < 3 * 0.1 / np.sqrt(a.size)
    assert abs(float(a.std()) - 0.1) < 0.001
    chunks = a.reshape(40, DRAW_CHUNK)
    assert len({c[:8].tobytes() for c in chunks}) == 40  # each chunk its own stream
    # neighbouring chunks are not correlated
    r = np.corrcoef(chunks[:-1].ravel(), chunks[1:].ravel())[0, 1]
    assert abs(r) < 0.01


def test_another_seed_or_a_used_generator_draws_other_factors():
    a, b, c = (np.empty(2 * DRAW_CHUNK, np.float32) for _ in range(3))
    rng = np.random.default_rng(0)
    fill_normal(rng, [a], 0.1, 2)
    fill_normal(rng, [b], 0.1, 2)  # the same generator, advanced by the first draw
    fill_normal(np.random.default_rng(1), [c], 0.1, 2)
    assert not np.array_equal(a, b) and not np.array_equal(a, c)


def test_strided_or_integer_arrays_are_refused_before_any_draw():
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    with pytest.raises(ValueError, match="C-contiguous"):
        fill_normal(rng, [np.empty((10, 4), np.float32)[:, ::2]], 0.1, 1)
    with pytest.raises(TypeError, match="float32 or float64"):
        fill_normal(rng, [np.empty(10, np.int32)], 0.1, 1)
    assert rng.bit_generator.state == before


def test_initial_parameters_do_not_depend_on_n_jobs():
    n_users, n_items = 20_000, 3_000  # 64 factors: 20 chunks of users, 3 of items
    starts = []
    for n_jobs in (1, 2):
        params = check_params(MatrixFactorization(n_factors=64, n_jobs=n_jobs, init_std=0.05))
        rng = np.random.default_rng(7)
        P, Q, bu, bi = initial_parameters(rng, n_users, n_items, params, np.dtype(np.float32))
        starts.append((P, Q, bu, bi, rng.random()))
    (P1, Q1, bu1, bi1, next1), (P2, Q2, bu2, bi2, next2) = starts
    np.testing.assert_array_equal(P1, P2)
    np.testing.assert_array_equal(Q1, Q2)
    assert next1 == next2
    assert P1.shape == (n_users, 64) and Q1.shape == (n_items, 64)
    assert P1.ctypes.data % 64 == 0 and Q1.ctypes.data % 64 == 0
    assert not (bu1.any() or bi1.any())
    assert abs(float(P1.std()) - 0.05) < 0.001
    expected = reference_fill(7, [P1.size, Q1.size], 0.05, np.float32)
    np.testing.assert_array_equal(P1.ravel(), expected[0])
    np.testing.assert_array_equal(Q1.ravel(), expected[1])
