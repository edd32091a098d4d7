"""The same random_state gives the same model bit for bit: with 1 or 2 threads, and in a process
that compiles the kernels as in one that loads them from Numba's cache."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fastmf import MatrixFactorization
from tests.conftest import random_ratings


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"batch_size": 32, "optimizer": "adam", "learning_rate": 0.01},
        {"batch_size": 64, "optimizer": "row_adagrad", "learning_rate": 0.1},
        {"dtype": "float64"},
    ],
)
def test_one_and_two_threads_give_identical_models(kw):
    df = random_ratings(300, 200, 20_000, seed=1)
    models = [
        MatrixFactorization(
            n_factors=24, n_epochs=3, random_state=5, n_jobs=n, verbose=0, **kw
        ).fit(df)
        for n in (1, 2)
    ]
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        np.testing.assert_array_equal(getattr(models[0], name), getattr(models[1], name))
    np.testing.assert_array_equal(models[0].history_.base_loss, models[1].history_.base_loss)


_SCRIPT = textwrap.dedent(
    """
    import hashlib, sys
    import numpy as np
    sys.path.insert(0, {root!r})
    from fastmf import MatrixFactorization
    from tests.conftest import random_ratings
    df = random_ratings(300, 200, 20_000, seed=1)
    m = MatrixFactorization(n_factors=64, n_epochs=2, random_state=9, verbose=0).fit(df)
    h = hashlib.sha256()
    for a in (m.user_factors_, m.item_factors_, m.user_bias_, m.item_bias_):
        h.update(np.ascontiguousarray(a).tobytes())
    m2 = MatrixFactorization(n_factors=8, n_epochs=2, batch_size=16, optimizer="adagrad",
                             random_state=9, verbose=0).fit(df)
    for a in (m2.user_factors_, m2.item_factors_):
        h.update(np.ascontiguousarray(a).tobytes())
    for k, b in ((24, 32), (64, 256)):  # Adam: the general body and the 8-chunk one
        m3 = MatrixFactorization(n_factors=k, n_epochs=2, batch_size=b, optimizer="adam",
                                 random_state=9, verbose=0).fit(df)
        for a in (m3.user_factors_, m3.item_factors_, m3.user_bias_, m3.item_bias_):
            h.update(np.ascontiguousarray(a).tobytes())
    print(h.hexdigest())
    """
)


def fresh_then_cached_digests(tmp_path: Path, script_text: str) -> list[str]:
    """The last line ``script_text`` prints (a digest of what it fitted), run twice in new
    processes sharing one empty Numba cache: the first compiles the kernels, the second loads
    them. Checks that the first run wrote the cache."""
    root = str(Path(__file__).resolve().parents[2])
    script = tmp_path / "fit.py"
    script.write_text(script_text.format(root=root))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    digests = []
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=900,
            check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        digests.append(out.stdout.strip().splitlines()[-1])
    cached = list((tmp_path / "numba-cache").rglob("*.nbc"))
    assert cached, "the first process should have written Numba's cache"
    return digests


@pytest.mark.slow
def test_fresh_compile_and_cached_compile_give_identical_models(tmp_path: Path):
    digests = fresh_then_cached_digests(tmp_path, _SCRIPT)
    assert digests[0] == digests[1]
    assert len(digests[0]) == 64 and digests[0] != hashlib.sha256(b"").hexdigest()
