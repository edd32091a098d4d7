"""``DaskMatrixFactorization``: ``MatrixFactorization`` trained on a Dask cluster, the same model
bit for bit."""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastmf.errors import ClusterError
from fastmf.train.estimator import MatrixFactorization
from fastmf.train.params import Params, same

_OWN = ("client", "timeout")


def as_source(X: Any, store_path: Any) -> Any:
    """A store for a store's path or a Dask DataFrame; anything else as it is."""
    from fastmf.data.store import RatingStore

    if isinstance(X, (str, os.PathLike)):
        return RatingStore.open(X)
    if type(X).__module__.startswith("dask.") and hasattr(X, "to_delayed"):
        if store_path is None:
            raise ValueError(
                "a Dask DataFrame is built into a rating store first: pass store_path=, a new "
                "folder on storage every worker reads"
            )
        chunks = (part.compute() for part in X.to_delayed())
        return RatingStore.build(store_path, chunks)
    return X


class DaskMatrixFactorization(MatrixFactorization):
    """``MatrixFactorization`` whose epochs run on a Dask cluster (DSGD).

    Each worker owns a share of the user strata (their factors, biases and optimizer state stay
    on it) and the blocks of those strata; item strata move from worker to worker at each
    sub-epoch. The sub-epochs come in the order the training's seed draws, never depending on
    the number of workers, so the model is the one ``MatrixFactorization.fit`` gives, bit for bit,
    with 1, 2 or N workers (of the same CPU model and versions: Numba compiles for the host, so
    on a cluster of mixed CPUs set ``NUMBA_CPU_NAME``, e.g. ``generic``, on the client and on
    every worker). A checkpoint is written after every epoch to ``checkpoint_dir`` (a temporary
    folder, removed after the fit, when not given); ``fit(..., resume=True)`` continues a killed
    fit from it to the same bits, and a worker lost during an epoch makes the fit re-run that
    epoch on the workers left.

    Parameters
    ----------
    client : distributed.Client or None
        The cluster's client; None uses the current one (``distributed.default_client()``).
    timeout : float, default 300
        Seconds an epoch, or the wait for a worker, may take before the fit stops with
        ``ClusterError`` naming what is missing (never a hang).
    **params
        Every parameter of ``MatrixFactorization``; ``n_jobs`` is unused (one kernel thread a
        worker: give workers one thread each, or several processes).
    """

    def __init__(self, client: Any = None, timeout: float = 300.0, **params: Any):
        self.client = client
        self.timeout = timeout
        MatrixFactorization.__init__(self, **params)

    @classmethod
    def _param_names(cls) -> list[str]:
        return [*_OWN, *MatrixFactorization._param_names()]

    def __repr__(self) -> str:
        defaults = DaskMatrixFactorization().get_params()
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if not same(v, defaults[k])]
        return f"DaskMatrixFactorization({', '.join(changed)})"

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["client"] = None  # a client does not travel; the unpickled model uses the current
        state.pop("_cluster", None)
        return state

    # ------------------------------------------------------------------ training
    def fit(
        self,
        X: Any,
        y: Any = None,
        validation: Any = None,
        item_titles: Any = None,
        resume: bool = False,
        store_path: str | os.PathLike | None = None,
    ) -> DaskMatrixFactorization:
        """Train on the cluster from scratch (or from the checkpoint, with ``resume``).

        ``X`` is a ``RatingStore`` or the path of one, on storage every worker reads under the
        same path (each worker reads its own blocks); a ``dask.dataframe`` with user, item,
        rating columns, built into a store at ``store_path`` first (partition by partition;
        give a shared folder on a cluster of several machines); or anything
        ``MatrixFactorization.fit`` takes (the client lays it out and hands each worker its
        blocks). The other arguments are ``MatrixFactorization.fit``'s. Returns self, fitted."""
        from fastmf.dask.runner import ClusterRun

        client = self._client()
        X = as_source(X, store_path)
        temporary = None
        if self.checkpoint_dir is None:
            if resume:
                raise ValueError("resume=True needs checkpoint_dir, the folder of the checkpoints")
            temporary = Path(tempfile.mkdtemp(prefix="fastmf-checkpoints-"))
        self._temporary_dir = temporary
        self._cluster = ClusterRun(client, self.timeout)
        try:
            MatrixFactorization.fit(self, X, y, validation, item_titles, resume=resume)
            self.cluster_stats_ = self._cluster.frame()
            self.cluster_setup_seconds_ = self._cluster.stats.get("setup_seconds", 0.0)
        finally:
            self._cluster.close()
            self.__dict__.pop("_cluster", None)
            self.__dict__.pop("_temporary_dir", None)
            if temporary is not None:
                shutil.rmtree(temporary, ignore_errors=True)
        return self

    def partial_fit(self, X: Any, y: Any = None, validation: Any = None):
        raise NotImplementedError(
            "DaskMatrixFactorization trains whole fits; continue one in one process with "
            "to_local().partial_fit(...)"
        )

    def _check_params(self) -> Params:
        params = super()._check_params()
        if params.checkpoint_dir is None:
            params = dataclasses.replace(params, checkpoint_dir=self.__dict__.get("_temporary_dir"))
        return params

    def _run_epoch(self, model, blocks, params: Params, lr: float, dtype, scratch) -> tuple:
        """The training loop's epoch, on the cluster."""
        return self._cluster.run_epoch(model, blocks, params, lr, dtype, scratch)

    def _client(self):
        if self.client is not None:
            return self.client
        try:
            from distributed import default_client
        except ImportError:
            raise ImportError(
                "DaskMatrixFactorization needs dask.distributed: pip install 'fastmf[dask]'"
            ) from None
        try:
            return default_client()
        except ValueError:
            raise ClusterError(
                "no Dask client: pass client=distributed.Client(...) or start one first"
            ) from None

    # ------------------------------------------------------------------ serving
    def to_local(self) -> MatrixFactorization:
        """A plain ``MatrixFactorization`` with this model's parameters and fitted state."""
        params = {k: v for k, v in self.get_params().items() if k not in _OWN}
        local = MatrixFactorization(**params)
        state = MatrixFactorization.__getstate__(self)
        for name in (*_OWN, "cluster_stats_", "cluster_setup_seconds_", "_cluster"):
            state.pop(name, None)
        local.__dict__.update(copy.deepcopy(state))
        return local

    def save(self, path: Any) -> None:
        """Write the model to one file as a plain ``MatrixFactorization`` (``to_local``)."""
        self.to_local().save(path)
