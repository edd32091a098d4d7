"""The wide mini-batch bodies (64 float32 factors: 512-bit vectors) give the same model in a
process that compiles them as in one that loads them from Numba's cache."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.train.test_determinism import fresh_then_cached_digests

_SCRIPT = textwrap.dedent(
    """
    import hashlib, sys
    import numpy as np
    sys.path.insert(0, {root!r})
    from fastmf import MatrixFactorization
    from tests.conftest import random_ratings
    df = random_ratings(300, 200, 20_000, seed=4)
    h = hashlib.sha256()
    for k in (64, 75):  # the 8-chunk body and the general body's wide loop
        m = MatrixFactorization(n_factors=k, n_epochs=2, batch_size=1024, random_state=9,
                                verbose=0).fit(df)
        for a in (m.user_factors_, m.item_factors_, m.user_bias_, m.item_bias_):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update(np.asarray(m.history_.base_loss).tobytes())
    print(h.hexdigest())
    """
)


@pytest.mark.slow
def test_wide_batch_bodies_fresh_and_cached_give_identical_models(tmp_path: Path):
    digests = fresh_then_cached_digests(tmp_path, _SCRIPT)
    assert len(digests[0]) == 64
    assert digests[0] == digests[1]
