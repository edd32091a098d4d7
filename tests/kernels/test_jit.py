"""Sized kernels: a serial variant below ``SERIAL_BELOW`` elements, a parallel one above, the same
results from both, each compiled only when a call needs it."""

from __future__ import annotations

import numpy as np
import pytest

from fastmf._kernels import hashing, ids, jit, minibatch, sorting, training


def _both(monkeypatch, kernel, *args):
    """The kernel's result from its serial variant, then from its parallel one."""
    monkeypatch.setattr(jit, "SERIAL_BELOW", 1 << 62)
    serial = kernel(*args)
    monkeypatch.setattr(jit, "SERIAL_BELOW", 0)
    parallel = kernel(*args)
    return serial, parallel


def _equal(a, b):
    if isinstance(a, tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _equal(x, y)
    else:
        np.testing.assert_array_equal(a, b)


@pytest.fixture
def triples():
    rng = np.random.default_rng(7)
    n, n_users, n_items = 5000, 120, 90
    users = rng.integers(0, n_users, n).astype(np.int32)
    items = rng.integers(0, n_items, n).astype(np.int32)
    values = rng.random(n).astype(np.float32)
    return users, items, values, n_users, n_items


def test_the_size_picks_the_variant(monkeypatch):
    monkeypatch.setattr(jit, "SERIAL_BELOW", 100)

    @jit.sized_kernel(**jit.JIT)
    def twice(x):
        return 2 * x

    serial, parallel = twice.variant(False), twice.variant(True)
    assert serial is not parallel and twice.variant(False) is serial  # made once, then reused
    np.testing.assert_array_equal(twice(np.arange(99)), 2 * np.arange(99))
    assert serial.signatures and not parallel.signatures  # only the serial one compiled
    np.testing.assert_array_equal(twice(np.arange(100)), 2 * np.arange(100))
    assert parallel.signatures
    assert len(twice.signatures) == 2


def test_variants_have_cache_files_of_their_own():
    serial = sorting.gather.variant(False)
    parallel = sorting.gather.variant(True)
    assert serial.py_func.__qualname__ != parallel.py_func.__qualname__
    assert serial.targetoptions.get("parallel") in (False, None)
    assert parallel.targetoptions["parallel"]


def test_a_sized_kernel_calls_callees_of_its_own_kind():
    """block_layout's parallel variant reaches the parallel stable_bucket_order, and its serial
    variant the serial one (a serial caller with a parallel callee would compile both)."""
    for parallel in (False, True):
        scope = sorting.block_layout.variant(parallel).py_func.__globals__
        assert scope["block_layout_into"] is sorting.block_layout_into.variant(parallel)
        scope = sorting.block_layout_into.variant(parallel).py_func.__globals__
        assert scope["stable_bucket_order"] is sorting.stable_bucket_order.variant(parallel)
        assert scope["_bucket_by_block"] is sorting._bucket_by_block.variant(parallel)


@pytest.mark.slow
def test_setup_kernels_give_the_same_result_either_way(monkeypatch, triples):
    users, items, values, n_users, n_items = triples
    _equal(*_both(monkeypatch, sorting.dense_int_codes, users + 3, np.int64(3), np.int64(200)))
    _equal(*_both(monkeypatch, sorting.stable_bucket_order, users, n_users))
    _equal(*_both(monkeypatch, sorting.gather, values, np.argsort(users, kind="stable")))
    order, offsets = sorting.stable_bucket_order(users, n_users)
    a, b = order.copy(), order.copy()
    monkeypatch.setattr(jit, "SERIAL_BELOW", 1 << 62)
    repeats = sorting.sort_segments_by_item(a, offsets, items)
    monkeypatch.setattr(jit, "SERIAL_BELOW", 0)
    assert sorting.sort_segments_by_item(b, offsets, items) == repeats
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, np.lexsort((np.arange(users.size), items, users)))
    strata = 3
    rng = np.random.default_rng(0)
    args = (
        users,
        items,
        values,
        rng.permutation(n_users).astype(np.int32),
        rng.permutation(n_items).astype(np.int32),
        rng.integers(0, strata, n_users).astype(np.int32),
        rng.integers(0, strata, n_items).astype(np.int32),
        strata,
    )
    _equal(*_both(monkeypatch, sorting.block_layout, *args))


def test_lookups_and_checksums_give_the_same_result_either_way(monkeypatch, triples):
    users = triples[0].astype(np.int64)
    table = np.arange(150, dtype=np.int32)[::-1].copy()
    out_s, out_p = np.empty(users.size, np.int32), np.empty(users.size, np.int32)
    monkeypatch.setattr(jit, "SERIAL_BELOW", 1 << 62)
    ids.lookup_ints(users - 10, table, np.int64(0), np.int64(149), out_s)
    monkeypatch.setattr(jit, "SERIAL_BELOW", 0)
    ids.lookup_ints(users - 10, table, np.int64(0), np.int64(149), out_p)
    np.testing.assert_array_equal(out_s, out_p)
    expected = np.where(users - 10 >= 0, table[np.clip(users - 10, 0, 149)], -1)
    np.testing.assert_array_equal(out_p, expected)
    words = np.random.default_rng(1).integers(0, 2**63, 300_000, dtype=np.uint64)
    words.flags.writeable = False
    s, p = _both(monkeypatch, hashing.hash_words, words, np.uint64(5), np.int64(words.size * 8))
    assert s == p


def test_predict_gives_the_same_bits_either_way(monkeypatch):
    rng = np.random.default_rng(2)
    P = rng.standard_normal((30, 8)).astype(np.float32)
    Q = rng.standard_normal((20, 8)).astype(np.float32)
    bu, bi = rng.standard_normal(30).astype(np.float32), rng.standard_normal(20).astype(np.float32)
    u = rng.integers(0, 30, 1000).astype(np.int32)
    i = rng.integers(0, 20, 1000).astype(np.int32)
    outs = []
    for below in (1 << 62, 0):
        monkeypatch.setattr(jit, "SERIAL_BELOW", below)
        out = np.empty(1000, np.float32)
        training.predict(u, i, np.float32(3.5), bu, bi, P, Q, out)
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])
    reference = 3.5 + bu[u] + bi[i] + np.einsum("nk,nk->n", P[u].astype(np.float64), Q[i])
    np.testing.assert_allclose(outs[0], reference, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ width kernels

_FIT_WIDTHS = """
import json, sys
import numpy as np, pandas as pd
from fastmf import MatrixFactorization
from fastmf._kernels import jit, minibatch, training

rng = np.random.default_rng(3)
pairs = rng.permutation(80 * 60)[:3000]
df = pd.DataFrame({"user": pairs // 60, "item": pairs % 60,
                   "rating": rng.integers(1, 6, pairs.size).astype(float)})

def compiled():
    found = {**vars(training), **vars(minibatch)}.items()
    kernels = {name: f for name, f in found if isinstance(f, jit.WidthKernel)}
    return {name: {str(key): len(d.signatures) for key, d in f.variants.items()}
            for name, f in kernels.items()}

settings = dict(n_factors=64, dtype="float32", n_epochs=1, n_jobs=1, verbose=0, random_state=0)
MatrixFactorization(**settings).fit(df)
after_sgd = compiled()
MatrixFactorization(batch_size=32, optimizer="adam", **settings).fit(df)
print(json.dumps([after_sgd, compiled()]))
"""


def test_a_64_factor_fit_compiles_the_width_8_epoch_kernel_only(tmp_path):
    """64 float32 factors are 8 chunks of 8 lanes: the fit makes and compiles (or loads) the
    epoch kernels' 8-chunk variants and no other width's (a fresh process: nothing else ran)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, "-c", _FIT_WIDTHS], env=env, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    after_sgd, after_batch = json.loads(out.stdout.strip().splitlines()[-1])
    assert after_sgd["sgd_epoch"] == {"8": 1}  # one variant, one signature
    assert not any(after_sgd["batch_epoch"].values())
    # variants made for a call from inside a kernel: the same width only
    for name in ("sgd_block", "batch_block", "sgd_block_points", "batch_block_points"):
        assert set(after_sgd[name]) <= {"8"}
    assert after_batch["sgd_epoch"] == {"8": 1}
    assert after_batch["batch_epoch"] == {"8": 1}


def test_the_width_picks_the_variant():
    sgd, batch = training.sgd_epoch, minibatch.batch_epoch
    assert sgd.key(64, np.float32) == 8 and sgd.key(64, np.float64) == 16
    assert sgd.key(16, np.float32) == 2 and sgd.key(32, np.float32) == 4
    assert sgd.key(20, np.float32) == 0  # columns left over: the general body
    assert sgd.key(256, np.float32) == 0  # 32 chunks: no body of its own
    assert batch.key(64, np.float32) == 8 and batch.key(32, np.float64) == 8
    assert batch.key(128, np.float32) == 16 and batch.key(64, np.float64) == 16
    assert batch.key(32, np.float32) == 0 and batch.key(256, np.float32) == 0
    assert jit.chunks_of(19, np.float64) == (4, True)


def test_width_variants_have_cache_files_and_callees_of_their_own():
    names = set()
    for key in (0, 2, 4, 8, 16):
        variant = training.sgd_epoch.variant(key)
        scope = variant.py_func.__globals__
        assert scope["CHUNKS"] == key
        assert scope["sgd_block"] is training.sgd_block.variant(key)
        assert variant.targetoptions["parallel"]
        names.add(variant.py_func.__qualname__)
    assert len(names) == 5
    assert minibatch.batch_epoch.variant(8).py_func.__globals__["batch_block"] is (
        minibatch.batch_block.variant(8)
    )
    # a count with no body of its own is the general variant
    assert minibatch.batch_epoch.variant(4) is minibatch.batch_epoch.variant(0)
    assert not training.sgd_block.variant(8).targetoptions.get("parallel")


def test_a_width_variant_compiles_its_own_body_only():
    """The unrolled variant's dispatch keeps only the branch of its constant width: the general
    branch's locals are not in its typed code (Numba pruned it before typing), and the general
    variant has them."""
    py_func = training.sgd_block.py_func
    kernel = jit.WidthKernel(py_func, {**jit.JIT, "cache": False}, training.SGD_UNROLLED)
    rng = np.random.default_rng(4)
    f = np.float32
    for k in (32, 20):  # 4 chunks of float32; then 2 chunks and 4 columns left over
        users, items = rng.integers(0, 10, 50).astype(np.int32), rng.integers(0, 9, 50)
        P, Q = rng.random((10, k)).astype(f), rng.random((9, k)).astype(f)
        kernel(0, 50, users, items.astype(np.int32), rng.random(50).astype(f), f(3),
               np.zeros(10, f), np.zeros(9, f), P, Q, np.zeros(10), np.zeros(9), f(0.01),
               f(0.02), f(0.01), True)  # fmt: skip
    assert set(kernel.variants) == {4, 0}
    for key, general in ((4, False), (0, True)):
        (cres,) = kernel.variants[key].overloads.values()
        typemap = cres.type_annotation.typemap
        assert ("n_chunks" in typemap) == general
        assert ("has_rest" in typemap) == general
