"""Every error fastmf raises on purpose, in one place.

Each derives from the built-in error a caller would catch anyway (ValueError for a bad value,
RuntimeError for a state that forbids the call, ArithmeticError for training that diverged,
OSError for the network), so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class NotFittedError(ValueError, AttributeError):
    """The model is used before ``fit``."""


class NonFiniteModelError(FloatingPointError):
    """Training diverged (NaN or infinite values, or an error beyond the ratings' range); the
    previous fitted state is kept."""


class ModelFileError(ValueError):
    """A file that :func:`fastmf.load` cannot read: not a fastmf model, truncated or corrupted,
    holding what a fastmf model cannot hold, or written by a newer fastmf."""


class ModelStateError(RuntimeError):
    """The model's arrays do not fit together (edited by hand, or from a damaged source);
    nothing was run. Refit the model, or load it again from its file."""


class ModelBusyError(RuntimeError):
    """A model's training was started from inside its own training (for example by a callback)."""


class DownloadError(OSError):
    """A MovieLens archive could not be downloaded (no network, server error, cut connection)."""


class ClusterError(RuntimeError):
    """A fit on a Dask cluster cannot go on: no client, no worker left, a worker that cannot read
    the rating store, or a cluster that stopped answering within the time-out."""


class WorkerLostError(ClusterError):
    """Workers were lost more often than a fit re-runs an epoch, or none is left to train on."""
