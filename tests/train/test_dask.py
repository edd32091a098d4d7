"""DaskMatrixFactorization on a LocalCluster of worker processes: the in-process model, bit for
bit, with 1 and 2 workers, after a resumed kill and with a worker killed during the fit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fastmf import MatrixFactorization
from fastmf.errors import ClusterError
from fastmf.train import checkpoint as ck

distributed = pytest.importorskip("distributed")
from fastmf.dask import DaskMatrixFactorization  # noqa: E402
from tests.train.test_checkpoint import ratings, same_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=[1, 2], ids=["1-worker", "2-workers"])
def client(request):
    cluster = distributed.LocalCluster(
        n_workers=request.param, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def fit_both(client, df, **settings):
    common = {"n_factors": 8, "n_epochs": 3, "random_state": 7, "verbose": 0, **settings}
    local = MatrixFactorization(**common).fit(df)
    remote = DaskMatrixFactorization(client=client, **common).fit(df)
    return local, remote


def test_the_cluster_trains_the_in_process_model_bit_for_bit(client):
    df = ratings(6000)  # 4 strata
    local, remote = fit_both(client, df)
    assert remote._state.user_strata.n_strata == 4
    same_model(local, remote)
    stats = remote.cluster_stats_
    assert len(stats) == 3 and (stats["workers"] == len(client.scheduler_info()["workers"])).all()
    if (stats["workers"] == 1).all():
        assert (stats["bytes_moved"] == 0).all()  # one worker: item strata never travel
    else:
        assert (stats["bytes_moved"] > 0).all()


@pytest.mark.slow
def test_one_task_a_block_is_the_same_bits(client, monkeypatch):
    from fastmf.dask import runner

    monkeypatch.setattr(runner, "GROUPED", False)  # as a cluster of many workers runs
    # Adam: this process may have just compiled its kernel while the workers load it from
    # Numba's cache, and the two must round alike
    local, remote = fit_both(client, ratings(6000), batch_size=8, optimizer="adam")
    same_model(local, remote)


@pytest.mark.slow
def test_mini_batches_and_recorded_batches_are_the_same_bits(client):
    df = ratings(6000)
    local, remote = fit_both(client, df, batch_size=16, optimizer="damped_sgd",
                             record_batches=True, reg_bias=0.01)  # fmt: skip
    same_model(local, remote)
    pd.testing.assert_frame_equal(local.batch_history_, remote.batch_history_, check_exact=True)


@pytest.mark.slow
def test_sixteen_strata_are_the_same_bits(client):
    df = ratings(120_000, seed=2, users=3000, items=1000)  # over 100k ratings: 16 strata
    local, remote = fit_both(client, df, n_factors=16)
    assert remote._state.user_strata.n_strata == 16
    same_model(local, remote)


@pytest.mark.slow
def test_the_fitted_model_serves_and_converts(client, tmp_path):
    df = ratings(6000)
    local, remote = fit_both(client, df)
    pairs = df[["user", "item"]].iloc[:50]
    assert np.array_equal(local.predict(pairs), remote.predict(pairs))
    user = df["user"].iloc[0]
    pd.testing.assert_frame_equal(local.recommend(user), remote.recommend(user))
    plain = remote.to_local()
    assert type(plain) is MatrixFactorization
    same_model(local, plain)
    remote.save(tmp_path / "m.fastmf")
    from fastmf import load

    same_model(local, load(tmp_path / "m.fastmf"))


def test_a_worker_killed_during_the_fit_leaves_the_same_bits():
    df = ratings(6000)
    common = dict(n_factors=8, n_epochs=4, random_state=9, verbose=0)
    local = MatrixFactorization(**common).fit(df)
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with distributed.Client(cluster) as client:
        pids = client.run(os.getpid)
        victim = sorted(pids)[0]
        killed = []

        def kill_soon(model, row):  # after the first checkpoint, during the next epoch
            if row["epoch"] == 1 and not killed:
                killed.append(victim)
                threading.Timer(0.05, os.kill, (pids[victim], signal.SIGKILL)).start()

        remote = DaskMatrixFactorization(client=client, callbacks=[kill_soon], timeout=120,
                                         **common).fit(df)  # fmt: skip
    cluster.close()
    assert killed
    assert remote.cluster_stats_["restarts"].sum() >= 1  # an epoch was re-run without it
    same_model(local, remote)


KILLED_CLIENT = """
import os, signal, sys
sys.path.insert(0, {root!r})
import distributed
from tests.train.test_checkpoint import ratings
from fastmf.dask import DaskMatrixFactorization

def die(model, row):
    if row["epoch"] == 2:
        os.kill(os.getpid(), signal.SIGKILL)

if __name__ == "__main__":
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    DaskMatrixFactorization(client=client, n_factors=8, n_epochs=4, random_state=5, verbose=0,
                            checkpoint_dir={folder!r}, callbacks=[die]).fit(ratings())
"""


@pytest.mark.slow
def test_a_killed_cluster_fit_resumes_to_the_same_bits(tmp_path, client):
    script = textwrap.dedent(KILLED_CLIENT).format(root=str(ROOT), folder=str(tmp_path))
    path = tmp_path / "fit.py"
    path.write_text(script)
    done = subprocess.run([sys.executable, str(path)], capture_output=True, timeout=900)
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    assert ck.read(tmp_path)["meta"]["n_epochs_done"] == 2
    common = dict(n_factors=8, n_epochs=4, random_state=5, verbose=0)
    resumed = DaskMatrixFactorization(client=client, checkpoint_dir=tmp_path, **common)
    resumed.fit(ratings(), resume=True)
    same_model(MatrixFactorization(**common).fit(ratings()), resumed)


def test_no_client_is_a_named_error(monkeypatch):
    def none():
        raise ValueError("No clients found")

    monkeypatch.setattr(distributed, "default_client", none)
    with pytest.raises(ClusterError, match="no Dask client"):
        DaskMatrixFactorization(n_epochs=1, verbose=0).fit(ratings(500))


def test_fastmf_never_imports_dask():
    code = "import sys, fastmf; print('dask' in sys.modules or 'distributed' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr


def test_parameters_are_those_of_the_estimator_and_the_cluster():
    model = DaskMatrixFactorization(n_factors=5, timeout=9.0)
    params = model.get_params()
    assert params["n_factors"] == 5 and params["timeout"] == 9.0 and params["client"] is None
    assert set(params) == {"client", "timeout"} | set(MatrixFactorization().get_params())
    assert "n_factors=5" in repr(model)


def test_a_store_trains_on_the_cluster_as_in_memory(client, tmp_path):
    from fastmf import RatingStore

    df = ratings(6000)
    RatingStore.build(tmp_path / "store", df)
    local = MatrixFactorization(n_factors=8, n_epochs=3, random_state=7, verbose=0).fit(df)
    remote = DaskMatrixFactorization(client=client, n_factors=8, n_epochs=3, random_state=7,
                                     verbose=0).fit(str(tmp_path / "store"))  # fmt: skip
    same_model(local, remote)
    user = df["user"].iloc[0]
    pd.testing.assert_frame_equal(local.recommend(user), remote.recommend(user))


@pytest.mark.slow
def test_a_dask_dataframe_is_built_into_a_store_first(client, tmp_path):
    dd = pytest.importorskip("dask.dataframe")
    df = ratings(6000)
    common = dict(n_factors=8, n_epochs=2, random_state=7, verbose=0)
    local = MatrixFactorization(**common).fit(df)
    remote = DaskMatrixFactorization(client=client, **common)
    remote.fit(dd.from_pandas(df, npartitions=3), store_path=tmp_path / "built")
    same_model(local, remote)
    with pytest.raises(ValueError, match="store_path"):
        DaskMatrixFactorization(client=client, **common).fit(dd.from_pandas(df, npartitions=2))


def test_a_missing_store_is_named(client, tmp_path):
    with pytest.raises(FileNotFoundError, match="no rating store"):
        DaskMatrixFactorization(client=client, n_epochs=1, verbose=0).fit(tmp_path / "nowhere")


def test_workers_that_cannot_see_the_store_are_named(client, tmp_path, monkeypatch):
    from fastmf import RatingStore

    RatingStore.build(tmp_path / "store", ratings(3000))
    monkeypatch.chdir(tmp_path)  # the client reads "store" here; the workers look elsewhere
    model = DaskMatrixFactorization(client=client, n_factors=4, n_epochs=1, verbose=0, timeout=60)
    with pytest.raises(ClusterError, match="cannot read the rating store"):
        model.fit(RatingStore.open("store"))
    assert not hasattr(model, "user_factors_")
