"""A store is built and trained in bounded memory: a child process under a v1 memory cgroup
builds a store from generated chunks and trains from it; the same ratings fit from memory under
the same limit are killed, so the limit binds."""

from __future__ import annotations

import os
import sys
import textwrap

import pytest

from benchmarks import cgroup

CHILD = textwrap.dedent(
    """
    import resource, sys
    import numpy as np, pandas as pd
    from fastmf import MatrixFactorization, RatingStore

    n, mode, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]

    def chunks():
        rng = np.random.default_rng(0)
        for lo in range(0, n, 250_000):
            m = min(250_000, n - lo)
            rank = np.arange(lo, lo + m)
            yield pd.DataFrame({"user": rank // 50, "item": (rank % 50) * 37 % 4000,
                                "rating": rng.integers(1, 6, m).astype(np.float32)})

    model = MatrixFactorization(n_factors=16, n_epochs=1, n_jobs=2, verbose=0, random_state=0)
    if mode == "store":
        model.fit(RatingStore.build(path, chunks()))
    else:
        model.fit(pd.concat(list(chunks()), ignore_index=True))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("RESULT", rss, model.history_["train_rmse"].iloc[-1])
    """
)


def run(tmp_path, n: int, mode: str, limit: int) -> cgroup.Run:
    why = cgroup.available()
    if why is not None:
        pytest.skip(why)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    args = ["-c", CHILD, str(n), mode, str(tmp_path / "store")]
    return cgroup.run_limited(args, limit, timeout=900, env=env)


def result(done: cgroup.Run) -> tuple[int, float]:
    """The child's peak RSS (file pages of shared libraries included, so it may pass the
    cgroup's limit) and training RMSE, once it is known to have finished."""
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT")]
    assert done.returncode == 0 and line, done.stderr[-3000:]
    _, rss, rmse = line[0].split()
    return int(rss), float(rmse)


def test_a_small_store_builds_and_trains_under_a_small_limit(tmp_path):
    done = run(tmp_path, 400_000, "store", 320 << 20)
    _, rmse = result(done)  # it ran to the end under the limit
    assert 0 < rmse < 4.5
    assert (tmp_path / "store" / "manifest.json").is_file()


@pytest.mark.slow
def test_the_limit_binds_for_memory_but_not_for_the_store(tmp_path):
    limit = 330 << 20
    n = 8_000_000
    result(run(tmp_path, n, "store", limit))  # ran to the end under the limit
    memory = run(tmp_path, n, "memory", limit)
    assert memory.returncode != 0  # killed by the limit (or refused by the memory check)
