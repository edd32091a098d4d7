"""The factors a fresh fit starts from: N(0, init_std²) from a counter-based draw, each
element's value a function of the seed and its index, so the bits never depend on the threads;
the kernel against a pure-Python twin, and the draw's distribution against the normal's."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import llvmlite.binding as ll
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from scipy import stats

from fastmf import MatrixFactorization
from fastmf._kernels import jit
from fastmf._kernels import normal as nk
from fastmf._random import fill_normal
from fastmf._threads import numba_threads
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


# ---- the vector pass (first words eight lanes at a time) against the scalar draw ----
# The scalar draw below is ``_twin_normal`` compiled (uint64 arithmetic instead of Python
# integers), so that hypothesis can compare the kernel over thousands of elements; the pure
# Python twin stays the reference that depends on no compiler.

U64 = np.uint64


@njit(cache=False)
def _scalar_mix(z):
    z = (z ^ (z >> U64(30))) * U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> U64(27))) * U64(0x94D049BB133111EB)
    return z ^ (z >> U64(31))


@njit(cache=False)
def _scalar_uniform(state):
    state = state + U64(GAMMA)
    return ((_scalar_mix(state) >> U64(11)) + 0.5) * (1.0 / 9007199254740992.0), state


@njit(cache=False)
def _scalar_fill(out, seed, first, std, kn, wn, fn):
    """The draw as it was first written: one element at a time, a ``while True`` each."""
    r = 3.442619855899
    for e in range(out.shape[0]):
        state = _scalar_mix(seed + U64(first + e) * U64(GAMMA))
        while True:
            state = state + U64(GAMMA)
            bits = _scalar_mix(state)
            iz = np.int64(bits & U64(127))
            hz = np.int64(np.int32(np.uint32(bits >> U64(32))))
            x = hz * wn[iz]
            if abs(hz) < kn[iz]:
                break
            if iz == 0:
                while True:
                    u1, state = _scalar_uniform(state)
                    u2, state = _scalar_uniform(state)
                    t = -math.log(u1) / r
                    if -2.0 * math.log(u2) >= t * t:
                        break
                x = r + t if hz > 0 else -r - t
                break
            u, state = _scalar_uniform(state)
            if fn[iz] + u * (fn[iz - 1] - fn[iz]) < math.exp(-0.5 * x * x):
                break
        out[e] = x * std


def _first_word_of(seed: int, index: int) -> tuple[int, int]:
    """(iz, hz) of element ``index``'s first word: its layer and its signed high word."""
    bits = _mix((_mix((seed + index * GAMMA) & MASK) + GAMMA) & MASK)
    return bits & 127, ((bits >> 32) ^ 0x80000000) - 0x80000000


def _path(seed: int, index: int) -> str:
    """How element ``index`` of the draw ``seed`` leaves its first word: "fast" (accepted),
    "wedge" (rejected in layers 1 to 127) or "tail" (rejected in the base layer)."""
    iz, hz = _first_word_of(seed, index)
    if abs(hz) < int(nk.KN[iz]):
        return "fast"
    return "tail" if iz == 0 else "wedge"


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def _fill_both(n, seed, first, std, dtype, parallel, n_threads=1, kn=nk.KN):
    """(the kernel's draw, the scalar draw) of elements first to first + n - 1."""
    out, want = np.empty(n, dtype), np.empty(n, dtype)
    before = jit.SERIAL_BELOW
    jit.SERIAL_BELOW = 0 if parallel else 1 << 62
    try:
        with numba_threads(n_threads):
            nk.normal_fill(out, U64(seed), np.int64(first), std, kn, nk.WN, nk.FN)
    finally:
        jit.SERIAL_BELOW = before
    _scalar_fill(want, U64(seed), np.int64(first), std, nk.KN, nk.WN, nk.FN)
    return out, want


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("parallel", [False, True])
@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**64 - 1),
    first=st.integers(0, 2**40),
    n=st.integers(0, 5 * nk.CHUNK + 13),
    std=st.floats(1e-4, 10.0),
)
def test_the_vector_pass_is_the_scalar_draw(dtype, parallel, seed, first, n, std):
    out, want = _fill_both(n, seed, first, std, dtype, parallel)
    np.testing.assert_array_equal(_bits(out), _bits(want))


@pytest.mark.parametrize(
    "n", [1, 7, nk.LANES, nk.LANES + 1, nk.CHUNK - 1, nk.CHUNK, nk.CHUNK + 1, 3 * nk.CHUNK + 5]
)
@pytest.mark.parametrize("first", [0, 3, nk.CHUNK - 5])
def test_chunk_and_lane_boundaries_and_odd_lengths(n, first):
    for dtype in (np.float32, np.float64):
        for parallel in (False, True):
            out, want = _fill_both(n, 0x5EED, first, 0.7, dtype, parallel)
            np.testing.assert_array_equal(_bits(out), _bits(want))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_and_two_threads_give_the_scalar_draw(dtype):
    n = 40 * nk.CHUNK + 3  # 41 chunks shared out to the threads
    one, want = _fill_both(n, 99, 12, 0.05, dtype, True, n_threads=1)
    two, _ = _fill_both(n, 99, 12, 0.05, dtype, True, n_threads=2)
    np.testing.assert_array_equal(_bits(one), _bits(want))
    np.testing.assert_array_equal(_bits(two), _bits(want))


def _indices_by_path(seed: int, n: int) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {"fast": [], "wedge": [], "tail": []}
    for e in range(n):
        found[_path(seed, e)].append(e)
    return found


def test_the_rejected_first_words_are_drawn_again_right():
    seed, n = 0xC0FFEE, 20_000
    paths = _indices_by_path(seed, n)
    assert len(paths["wedge"]) > 300 and len(paths["tail"]) > 3  # about 2.7% and 0.06%
    for parallel in (False, True):
        for dtype in (np.float32, np.float64):
            out, want = _fill_both(n, seed, 0, 1.0, dtype, parallel)
            np.testing.assert_array_equal(_bits(out), _bits(want))
            for e in paths["wedge"][:200] + paths["tail"]:
                assert out[e] == dtype(_twin_normal(seed, e)), e
            tail = out[paths["tail"]].astype(np.float64)
            assert np.all(np.abs(tail) > nk.ZIGGURAT_R * (1 - 1e-7))  # beyond R
            assert tail.min() < 0 < tail.max()
            fast = out[paths["fast"]].astype(np.float64)
            assert np.all(np.abs(fast) < nk.ZIGGURAT_R * (1 + 1e-7))


@pytest.mark.parametrize("path", ["wedge", "tail"])
def test_a_rejected_word_in_every_lane_and_at_every_edge(path):
    """A rejected element placed at each lane of a vector pass, at a chunk's first and last
    element and in the elements past the last whole pass."""
    seed = 0xABCDEF
    where = _indices_by_path(seed, 200_000)[path][:2]
    n = 2 * nk.CHUNK + 5
    spots = list(range(nk.LANES)) + [nk.CHUNK - 1, nk.CHUNK, n - 3, n - 1]
    for index in where:
        for spot in spots:
            first = index - spot
            if first < 0:
                continue
            for parallel in (False, True):
                out, want = _fill_both(n, seed, first, 1.0, np.float64, parallel)
                np.testing.assert_array_equal(_bits(out), _bits(want))
                assert out[spot] == _twin_normal(seed, index)


def test_an_int32_bound_table_gives_the_same_bits():
    out32, want = _fill_both(
        3 * nk.CHUNK + 7, 5, 0, 1.0, np.float32, False, kn=nk.KN.astype(np.int32)
    )
    np.testing.assert_array_equal(_bits(out32), _bits(want))


def _one_pass_py(out, seed, first, std, kn, wn, pending):
    return nk.first_words(out, 0, seed, first, std, kn, wn, pending, 0)


_one_pass = njit(cache=False)(_one_pass_py)


@pytest.mark.parametrize("in_registers", [True, False], ids=["compress", "compressstore"])
def test_the_first_words_are_eight_lanes_of_64_bit_words_and_gathers(monkeypatch, in_registers):
    if in_registers and not nk._COMPRESS_IN_REGISTERS:
        pytest.skip("LLVM before 19 has no vector.compress")
    monkeypatch.setattr(nk, "_COMPRESS_IN_REGISTERS", in_registers)
    one_pass = njit(cache=False)(_one_pass_py)  # compiled afresh, with this way to compress

    def rejected(seed):
        return [e for e in range(nk.LANES) if _path(seed, e) != "fast"]

    seed = next(s for s in range(1000) if len(rejected(s)) >= 2)  # two lanes go to the slow path
    out, pending = np.empty(nk.LANES), np.full(nk.LANES, -1, np.int64)
    k = one_pass(out, U64(seed), np.int64(0), 1.0, nk.KN, nk.WN, pending)
    ir = next(iter(one_pass.inspect_llvm().values()))
    assert f"mul <{nk.LANES} x i64>" in ir
    assert f"@llvm.masked.gather.v{nk.LANES}f64" in ir
    compress = "experimental.vector.compress" if in_registers else "masked.compressstore"
    assert f"@llvm.{compress}.v{nk.LANES}i64" in ir
    assert k == len(rejected(seed)) and list(pending[:k]) == rejected(seed)
    if not in_registers:
        assert np.all(pending[k:] == -1)  # a compressing store writes the count only
    for e in range(nk.LANES):  # every lane's first value, the rejected ones' too (redrawn later)
        assert out[e] == _first_value(seed, e)


def _first_value(seed: int, index: int) -> float:
    iz, hz = _first_word_of(seed, index)
    return hz * float(nk.WN[iz])


@pytest.mark.parametrize("lane", [0, 5, nk.LANES - 1])
def test_a_word_on_its_layer_bound_is_rejected_one_below_accepted(lane):
    """|hz| == kn[iz] goes to the slow path, as ``abs(hz) < kn[iz]`` says (a table made so)."""
    iz, hz = _first_word_of(11, lane)
    out, pending = np.empty(nk.LANES), np.empty(nk.LANES, np.int64)
    for bound, rejected in ((abs(hz), True), (abs(hz) + 1, False)):
        kn = nk.KN.copy()
        kn[iz] = bound
        k = _one_pass(out, U64(11), np.int64(0), 1.0, kn, nk.WN, pending)
        assert (lane in pending[:k]) is rejected


_OTHER_CPU = """
import sys
import numpy as np
from fastmf._kernels import jit
from fastmf._kernels import normal as nk
out_path, parallel = sys.argv[1], sys.argv[2] == "1"
jit.SERIAL_BELOW = 0 if parallel else 1 << 62
draws = []
for seed, first, n, dtype in ((1, 0, 5003, np.float32), (2**63 + 5, 777, 2100, np.float64)):
    out = np.empty(n, dtype)
    nk.normal_fill(out, np.uint64(seed), np.int64(first), 0.5, nk.KN, nk.WN, nk.FN)
    draws.append(out)
asm = "".join(nk.normal_fill.variant(parallel).inspect_asm().values())
np.savez(out_path, a=draws[0], b=draws[1], zmm=np.array("zmm" in asm), ymm=np.array("ymm" in asm))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "cpu, features", [("haswell", "+avx2"), ("generic", "")], ids=["avx2", "generic"]
)
def test_the_draw_is_the_same_on_a_cpu_without_avx512(tmp_path, cpu, features):
    """Compiled for an AVX2 or a baseline x86-64 CPU, where LLVM splits or unrolls the lanes,
    the gathers and the compressing store: the same bits."""
    env = {**os.environ, "NUMBA_CPU_NAME": cpu, "NUMBA_CPU_FEATURES": features}
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "cache")  # compiled afresh, for this CPU
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.dirname(nk.__file__)))
    for parallel in ("0", "1"):
        path = tmp_path / f"draw{parallel}.npz"
        subprocess.run([sys.executable, "-c", _OTHER_CPU, str(path), parallel], env=env, check=True)
        got = np.load(path)
        assert not got["zmm"] and bool(got["ymm"]) == (cpu == "haswell")
        for name, seed, first, std, dtype in (
            ("a", 1, 0, 0.5, np.float32),
            ("b", 2**63 + 5, 777, 0.5, np.float64),
        ):
            want = np.empty(got[name].size, dtype)
            _scalar_fill(want, U64(seed), np.int64(first), std, nk.KN, nk.WN, nk.FN)
            np.testing.assert_array_equal(_bits(got[name]), _bits(want))


@pytest.mark.parametrize("parallel", [False, True])
def test_the_compressing_store_gives_the_same_draw(monkeypatch, parallel):
    """The way LLVM before 19 appends the rejected lanes (a compressing store), on this LLVM."""
    monkeypatch.setattr(nk, "_COMPRESS_IN_REGISTERS", False)
    kernel = jit.SizedKernel(nk.normal_fill.py_func, {**nk.NORMAL_JIT, "cache": False})
    n = 3 * nk.CHUNK + 11
    out = np.empty(n, np.float32)
    kernel.variant(parallel)(out, U64(77), np.int64(5), 0.2, nk.KN, nk.WN, nk.FN)
    _, want = _fill_both(n, 77, 5, 0.2, np.float32, parallel)
    np.testing.assert_array_equal(_bits(out), _bits(want))
    llvm_ir = "".join(kernel.variant(parallel).inspect_llvm().values())
    assert "vector.compress" not in llvm_ir
    # a CPU without AVX-512 has no compressing store: LLVM expands it into scalar stores, and the
    # parallel variant's loop body is inspected after that expansion
    if not parallel or ll.get_host_cpu_features().get("avx512f", False):
        assert "masked.compressstore" in llvm_ir
