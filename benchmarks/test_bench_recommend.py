"""Speed of top-n recommendations for every user, at ML-25M scale, with synthetic factors.

Target (issue 6): top-10 for all 162,541 users of the ML-25M twin (59,047 items, 64 factors,
float32), excluding each user's ~138 training items on average, in at most 30 s on 2 cores, with
memory that does not grow with users x items.

Run:  pytest benchmarks/test_bench_recommend.py --benchmark-only --bench-25m -s
      (FASTMF_BENCH_SCALE=0.1 runs a tenth of the users, for a quick look)

The factors are random rather than trained: the cost of top-n does not depend on their values,
and building a trained ML-25M model would take minutes. Peak memory is measured with
tracemalloc (numpy reports its buffers to it) in a separate, untimed run.
"""

from __future__ import annotations

import os
import platform
import time
import tracemalloc

import numba
import numpy as np
import pytest

from fastmf.model import MatrixFactorization
from fastmf.ratings import IdMap
from fastmf.recommend import recommend_many

ML25M = {"n_users": 162_541, "n_items": 59_047, "n_train": 22_500_000}


def synthetic_model(n_users: int, n_items: int, n_train: int, k: int = 64, seed: int = 0):
    """A model with random factors and a skewed CSR of seen items (about n_train in all)."""
    rng = np.random.default_rng(seed)
    m = MatrixFactorization(n_factors=k, verbose=0)
    m.global_mean_ = 3.5
    m.user_bias_ = rng.normal(0, 0.3, n_users).astype(np.float32)
    m.item_bias_ = rng.normal(0, 0.4, n_items).astype(np.float32)
    m.user_factors_ = rng.normal(0, 0.1, (n_users, k)).astype(np.float32)
    m.item_factors_ = rng.normal(0, 0.1, (n_items, k)).astype(np.float32)
    m.user_map_ = IdMap(np.arange(1, n_users + 1, dtype=np.int64))
    m.item_map_ = IdMap(np.arange(1, n_items + 1, dtype=np.int64))
    # Ratings per user: a lognormal like MovieLens (min 20), items drawn with a popularity skew.
    counts = np.maximum(20, rng.lognormal(4.2, 1.0, n_users)).astype(np.int64)
    counts = np.minimum(counts, n_items // 2)
    counts = (counts * (n_train / counts.sum())).astype(np.int64).clip(1, n_items // 2)
    owner = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    # u**3 with u uniform: a few items get most of the ratings, as in MovieLens.
    popular = (rng.random(owner.shape[0], dtype=np.float32) ** 3 * n_items).astype(np.int64)
    keys = np.sort(owner * n_items + popular)
    keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]  # sorted (user, item), no repeats
    users, items = np.divmod(keys, n_items)
    m.seen_indptr_ = np.zeros(n_users + 1, np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=m.seen_indptr_[1:])
    m.seen_items_ = items.astype(np.int32)
    m.rating_scale_ = (0.5, 5.0)
    m.item_titles_ = None
    m.n_epochs_done_ = 0
    m.best_epoch_ = None
    return m


def _scale() -> float:
    return float(os.environ.get("FASTMF_BENCH_SCALE", "1.0"))


@pytest.fixture(scope="module")
def ml25m_model():
    s = _scale()
    n_users = max(1000, int(ML25M["n_users"] * s))
    t0 = time.perf_counter()
    m = synthetic_model(
        n_users, ML25M["n_items"], int(ML25M["n_train"] * n_users / ML25M["n_users"])
    )
    print(f"\nbuilt the synthetic model in {time.perf_counter() - t0:.1f} s")
    recommend_many(m, m.user_ids_[:64], n=10)  # compile outside the timing
    return m


def _brute_force_check(m, recs, rows):
    """Top-10 of sampled users against numpy (same top scores, no seen item)."""
    for r in rows:
        scores = (
            m.global_mean_ + m.user_bias_[r] + m.item_bias_.astype(np.float64)
            + m.item_factors_.astype(np.float64) @ m.user_factors_[r].astype(np.float64)
        )  # fmt: skip
        seen = m.seen_items_[m.seen_indptr_[r] : m.seen_indptr_[r + 1]]
        scores[seen] = -np.inf
        best = np.sort(scores)[::-1][:10]
        got = np.sort(scores[recs.item_indices[r]])[::-1]
        np.testing.assert_allclose(got, best, atol=1e-4)
        assert not set(recs.item_indices[r].tolist()) & set(seen.tolist())


@pytest.mark.bench25m
def test_bench_recommend_all_users_ml25m(benchmark, ml25m_model):
    m = ml25m_model
    users = m.user_ids_
    cpu = {}

    def timed():
        c0, t0 = time.process_time(), time.perf_counter()
        out = recommend_many(m, users, n=10)
        cpu["seconds"] = time.process_time() - c0
        cpu["wall"] = time.perf_counter() - t0
        return out

    recs = benchmark.pedantic(timed, rounds=1, iterations=1)
    seconds = cpu["wall"]
    rows = np.random.default_rng(1).choice(len(users), 50, replace=False)
    _brute_force_check(m, recs, rows)

    # Peak memory of a second, untimed run of the first 20,000 users (tracemalloc slows
    # allocation a little); the full score matrix of those users would be 20,000 x 59,047 x 4.
    sub = users[:20_000]
    tracemalloc.start()
    recommend_many(m, sub, n=10)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    full_matrix = sub.shape[0] * m.item_factors_.shape[0] * 4

    benchmark.extra_info.update(
        n_users=len(users),
        n_items=int(m.item_factors_.shape[0]),
        n_factors=int(m.item_factors_.shape[1]),
        n_seen=int(m.seen_items_.shape[0]),
        numba_threads=numba.get_num_threads(),
        cpu=platform.processor() or platform.machine(),
        cores=os.cpu_count(),
        seconds=seconds,
        cpu_seconds=cpu["seconds"],
        load_average_1min=os.getloadavg()[0],
        users_per_second=len(users) / seconds,
        peak_mb_20k_users=peak / 2**20,
        full_matrix_mb_20k_users=full_matrix / 2**20,
    )
    print(
        f"\ntop-10 for {len(users):,} users x {m.item_factors_.shape[0]:,} items, k=64, "
        f"{numba.get_num_threads()} threads: {seconds:.2f} s ({len(users) / seconds:,.0f} users/s, "
        f"{cpu['seconds']:.1f} CPU-s, load average {os.getloadavg()[0]:.1f})"
        f"; peak memory for 20k users {peak / 2**20:.0f} MB (full matrix would be "
        f"{full_matrix / 2**20:.0f} MB)"
    )
