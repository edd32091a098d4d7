"""The factors a fresh fit starts from: N(0, init_std²) from a counter-based draw, each
element's value a function of the seed and its index, so the bits never depend on the threads;
the kernel against a pure-Python twin, and the draw's distribution against the normal's."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from fastmf import MatrixFactorization
from fastmf._kernels import jit
from fastmf._kernels import normal as nk
from fastmf._random import fill_normal
from fastmf.train.params import check_params
from fastmf.train.state import initial_parameters

MASK = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15


def _mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def _uniform(state: int) -> tuple[float, int]:
    state = (state + GAMMA) & MASK
    return ((_mix(state) >> 11) + 0.5) / 2.0**53, state


def _twin_normal(seed: int, index: int) -> float:
    """Element ``index`` of the draw ``seed``: splitmix64 words, Marsaglia and Tsang's
    ziggurat, written in plain Python integers and floats."""
    kn, wn, fn = nk.KN.tolist(), nk.WN.tolist(), nk.FN.tolist()
    r = nk.ZIGGURAT_R
    state = _mix((seed + index * GAMMA) & MASK)
    while True:
        state = (state + GAMMA) & MASK
        bits = _mix(state)
        iz = bits & 127
        hz = ((bits >> 32) ^ 0x80000000) - 0x80000000  # the high word as a signed int32
        x = hz * wn[iz]
        if abs(hz) < kn[iz]:
            return x
        if iz == 0:
            while True:
                u1, state = _uniform(state)
                u2, state = _uniform(state)
                t = -math.log(u1) / r
                if -2.0 * math.log(u2) >= t * t:
                    return r + t if hz > 0 else -r - t
        u, state = _uniform(state)
        if fn[iz] + u * (fn[iz - 1] - fn[iz]) < math.exp(-0.5 * x * x):
            return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("parallel", [False, True])
def test_the_kernel_is_its_python_twin(monkeypatch, dtype, parallel):
    monkeypatch.setattr(jit, "SERIAL_BELOW", 0 if parallel else 1 << 62)
    seed, first, n = 0xDEADBEEF12345678, 1_000, 3_000
    out = np.empty(n, dtype)
    nk.normal_fill(out, np.uint64(seed), np.int64(first), 0.3, nk.KN, nk.WN, nk.FN)
    want = np.array([_twin_normal(seed, first + e) * 0.3 for e in range(n)]).astype(dtype)
    np.testing.assert_array_equal(out, want)


def test_the_ziggurat_layers_have_equal_areas():
    x = nk.WN * 2.0**31  # each layer's right edge
    np.testing.assert_allclose(np.exp(-0.5 * x[1:] ** 2), nk.FN[1:], rtol=1e-12)
    areas = x[2:] * (nk.FN[1:-1] - nk.FN[2:])  # layer i between edges i and i + 1
    np.testing.assert_allclose(areas, 9.91256303526217e-3, rtol=1e-9)
    assert np.all(np.diff(x[1:]) > 0) and nk.KN[1] == 0


def test_the_draw_is_a_standard_normal():
    a = np.empty(400_000, np.float64)
    fill_normal(np.random.default_rng(11), [a], 1.0, 2)
    assert stats.kstest(a, "norm").pvalue > 1e-3
    assert abs(a.mean()) < 4 / math.sqrt(a.size)
    assert abs(a.std() - 1.0) < 0.005
    assert abs(stats.kurtosis(a)) < 0.05
    beyond = np.mean(np.abs(a) > nk.ZIGGURAT_R)  # the tail, drawn by its own branch
    expected = 2 * stats.norm.sf(nk.ZIGGURAT_R)
    assert abs(beyond - expected) < 5 * math.sqrt(expected / a.size)
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < 0.01  # neighbours are independent


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


def test_arrays_continue_one_draw_and_a_used_generator_draws_anew():
    rng = np.random.default_rng(0)
    a, b = np.empty(500, np.float32), np.empty(300, np.float32)
    fill_normal(rng, [a, b], 0.1, 2)
    both = np.empty(800, np.float32)
    fill_normal(np.random.default_rng(0), [both], 0.1, 2)
    np.testing.assert_array_equal(np.concatenate([a, b]), both)  # b continues a's elements
    again = np.empty(800, np.float32)
    fill_normal(rng, [again], 0.1, 2)  # the same generator, advanced by the first draw
    other = np.empty(800, np.float32)
    fill_normal(np.random.default_rng(1), [other], 0.1, 2)
    assert not np.array_equal(both, again) and not np.array_equal(both, other)


def test_strided_or_integer_arrays_are_refused_before_any_draw():
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    with pytest.raises(ValueError, match="C-contiguous"):
        fill_normal(rng, [np.empty((10, 4), np.float32)[:, ::2]], 0.1, 1)
    with pytest.raises(TypeError, match="float32 or float64"):
        fill_normal(rng, [np.empty(10, np.int32)], 0.1, 1)
    assert rng.bit_generator.state == before


def test_initial_parameters_do_not_depend_on_n_jobs():
    n_users, n_items = 20_000, 3_000  # 1.5M factors: the parallel variant
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
    seed = int(np.random.default_rng(7).integers(0, 2**64, dtype=np.uint64))
    for e in (0, 12_345, P1.size - 1):  # users' elements, then items' after them
        assert P1.ravel()[e] == np.float32(_twin_normal(seed, e) * 0.05)
    assert Q1.ravel()[7] == np.float32(_twin_normal(seed, P1.size + 7) * 0.05)
