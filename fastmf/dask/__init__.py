"""Training on a Dask cluster: ``DaskMatrixFactorization`` (needs the ``dask`` extra,
``pip install 'fastmf[dask]'``; the rest of fastmf never imports Dask)."""

from fastmf.dask.estimator import DaskMatrixFactorization

__all__ = ["DaskMatrixFactorization"]
