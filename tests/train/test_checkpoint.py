"""Checkpoints after every epoch and resuming a fit to the same bits, in one process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fastmf import MatrixFactorization
from fastmf.train import checkpoint as ck

ARRAYS = ("user_factors_", "item_factors_", "user_bias_", "item_bias_")
ROOT = Path(__file__).resolve().parents[2]


def ratings(n: int = 6000, seed: int = 0, users: int = 300, items: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "user": rng.integers(0, users, n),
            "item": rng.integers(0, items, n),
            "rating": rng.integers(1, 6, n).astype(np.float64),
        }
    )
    return df.drop_duplicates(["user", "item"]).reset_index(drop=True)


def same_model(a, b) -> None:
    for name in ARRAYS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    pd.testing.assert_frame_equal(
        a.history_.drop(columns="seconds"), b.history_.drop(columns="seconds"), check_exact=True
    )


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"batch_size": 32, "optimizer": "adam", "record_batches": True},
        {"lr_schedule": "plateau", "validation_fraction": 0.1, "early_stopping": True},
    ],
)
def test_resume_from_a_stopped_fit_gives_the_same_bits(tmp_path, settings):
    df = ratings()
    # a schedule that does not depend on n_epochs, so a 2-epoch fit is a 4-epoch one stopped
    common = dict(
        n_factors=8, random_state=3, verbose=0, **{"lr_schedule": "exponential", **settings}
    )
    whole = MatrixFactorization(n_epochs=4, **common).fit(df)
    MatrixFactorization(n_epochs=2, checkpoint_dir=tmp_path, **common).fit(df)
    assert (tmp_path / ck.FILE).exists()
    resumed = MatrixFactorization(n_epochs=4, checkpoint_dir=tmp_path, **common)
    resumed.fit(df, resume=True)
    same_model(whole, resumed)
    assert resumed.n_epochs_done_ == 4


def test_the_auto_schedule_refuses_a_checkpoint_of_another_length(tmp_path):
    """ "auto" spreads the decay over n_epochs: a 2-epoch fit is not a 4-epoch one stopped."""
    df = ratings()
    common = dict(n_factors=4, random_state=3, verbose=0, checkpoint_dir=tmp_path)
    MatrixFactorization(n_epochs=2, **common).fit(df)
    with pytest.raises(ValueError, match="n_epochs"):
        MatrixFactorization(n_epochs=4, **common).fit(df, resume=True)


def test_resume_without_a_checkpoint_is_a_fresh_fit(tmp_path):
    df = ratings()
    a = MatrixFactorization(n_factors=4, n_epochs=2, random_state=1, verbose=0).fit(df)
    b = MatrixFactorization(n_factors=4, n_epochs=2, random_state=1, verbose=0,
                            checkpoint_dir=tmp_path / "new").fit(df, resume=True)  # fmt: skip
    same_model(a, b)


def test_a_checkpoint_of_another_fit_is_refused(tmp_path):
    df = ratings()
    MatrixFactorization(n_factors=4, n_epochs=1, random_state=1, verbose=0,
                        checkpoint_dir=tmp_path).fit(df)  # fmt: skip
    other = MatrixFactorization(n_factors=4, n_epochs=2, random_state=2, verbose=0,
                                checkpoint_dir=tmp_path)  # fmt: skip
    with pytest.raises(ValueError, match="random_state"):
        other.fit(df, resume=True)
    with pytest.raises(ValueError, match="data"):
        MatrixFactorization(n_factors=4, n_epochs=2, random_state=1, verbose=0,
                            checkpoint_dir=tmp_path).fit(ratings(seed=5), resume=True)  # fmt: skip


def test_resume_needs_a_checkpoint_dir():
    with pytest.raises(ValueError, match="checkpoint_dir"):
        MatrixFactorization(n_epochs=1, verbose=0).fit(ratings(), resume=True)
    with pytest.raises(TypeError, match="checkpoint_dir"):
        MatrixFactorization(n_epochs=1, verbose=0, checkpoint_dir=3).fit(ratings())


def test_a_damaged_checkpoint_is_named(tmp_path):
    (tmp_path / ck.FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read"):
        MatrixFactorization(n_epochs=1, verbose=0, checkpoint_dir=tmp_path).fit(
            ratings(), resume=True
        )


KILLED_FIT = """
import os, signal, sys
import numpy as np, pandas as pd
sys.path.insert(0, {root!r})
from tests.train.test_checkpoint import ratings
from fastmf import MatrixFactorization

def die(model, row):
    if row["epoch"] == {kill_after}:
        os.kill(os.getpid(), signal.SIGKILL)

MatrixFactorization(n_factors=8, n_epochs=5, random_state=4, verbose=0, checkpoint_dir={folder!r},
                    callbacks=[die]).fit(ratings())
"""


def test_a_killed_fit_resumes_to_the_same_bits(tmp_path):
    script = textwrap.dedent(KILLED_FIT).format(root=str(ROOT), kill_after=3, folder=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=600)
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    assert ck.read(tmp_path)["meta"]["n_epochs_done"] == 3
    common = dict(n_factors=8, n_epochs=5, random_state=4, verbose=0)
    resumed = MatrixFactorization(checkpoint_dir=tmp_path, **common).fit(ratings(), resume=True)
    same_model(MatrixFactorization(**common).fit(ratings()), resumed)


def test_a_fit_from_a_store_resumes_to_the_same_bits(tmp_path):
    from fastmf import RatingStore

    store = RatingStore.build(tmp_path / "store", ratings())
    common = dict(n_factors=8, random_state=3, verbose=0, lr_schedule="exponential")
    whole = MatrixFactorization(n_epochs=3, **common).fit(store)
    MatrixFactorization(n_epochs=1, checkpoint_dir=tmp_path / "ck", **common).fit(store)
    resumed = MatrixFactorization(n_epochs=3, checkpoint_dir=tmp_path / "ck", **common)
    same_model(whole, resumed.fit(store, resume=True))
