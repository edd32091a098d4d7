"""What a fastmf model file may hold: its names, the attributes of a fitted model and their
kinds (the allowlist load decodes by), and the error for a state that breaks it."""

from __future__ import annotations

import numpy as np

FORMAT_VERSION = 1
"""Version of the file layout written by :func:`save`; :func:`load` reads versions up to it."""

MARKER_NAME = "fastmf-model"
MARKER_CONTENT = b"fastmf model file\n"
MANIFEST = "manifest.json"
MANIFEST_LIMIT = 1 << 28
MANIFEST_RATIO = 32  # JSON expands in memory: a deflated manifest may not expand more than this
ZIP_MAGIC = b"PK\x03\x04"
# names that fastmf 0.1.0 wrote for its classes: labels of the format, never resolved as imports
MODEL_CLASS = "fastmf.model:MatrixFactorization"
STATE_CLASS = "fastmf.model:_TrainState"
STRATA_CLASS = "fastmf._schedule:Strata"
BIT_GENERATORS = ("PCG64", "PCG64DXSM")
SCALAR_DTYPES = {
    np.dtype(t).str: np.dtype(t)
    for t in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
              "float16", "float32", "float64")
}  # fmt: skip
ARRAYS = ("user_bias_", "item_bias_", "user_factors_", "item_factors_")
MAPS = ("user_map_", "item_map_")
SEEN = ("seen_indptr_", "seen_items_")
SCALARS = ("global_mean_", "rating_scale_", "n_epochs_done_", "best_epoch_", "item_titles_")
# the values the "auto" parameters resolved to at fit (written since 0.3; optional in a file)
RESOLVED = ("n_factors_", "n_epochs_", "reg_", "init_std_")
ATTRIBUTES = (*SCALARS[:1], *ARRAYS, *MAPS, *SCALARS[1:2], "history_", *SCALARS[2:], *SEEN,
              *RESOLVED)  # fmt: skip
# fitted attributes a file does not hold: the resolved defaults are rebuilt at load from the
# parameters and the training state; the batch-resolution loss record is not kept
DERIVED = ("optimizer_", "learning_rate_", "batch_history_")
OPTIMIZER_KEYS = ("bu_s1", "bu_s2", "bi_s1", "bi_s2", "P_s1", "P_s2", "Q_s1", "Q_s2",
                  "u_steps", "i_steps")  # fmt: skip
STATE_FIELDS = ("rng", "user_strata", "item_strata", "optimizer", "learning_rate", "plateau_best")
# written since 0.2: which optimizer the state belongs to, and the shape parameters at fit
STATE_OPTIONAL = ("optimizer_name", "fit_params")
FIT_PARAMS = ("n_factors", "dtype", "biases", "bias_damping")
HISTORY_COLUMNS = ("epoch", "base_loss", "reg_loss", "total_loss", "train_rmse", "val_rmse",
                   "val_mae", "learning_rate", "seconds")  # fmt: skip


class Invalid(ValueError):
    """An inconsistency in a fitted model's state, with the attribute (or member) it is in."""

    def __init__(self, where: str, message: str):
        super().__init__(message)
        self.where = where
