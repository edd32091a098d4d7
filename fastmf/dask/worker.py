"""What runs on a Dask worker: its user strata and blocks, held between tasks in this process,
and the task that trains one block.

Kernels are called under ``KERNEL_LOCK``, so a worker with several threads still runs them one
at a time; the warm-up call compiles (or loads from Numba's cache) before any training task.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import numpy as np

from fastmf._kernels import minibatch
from fastmf._kernels import training as K
from fastmf._threads import KERNEL_LOCK
from fastmf.dask.plan import ITEM_STATE
from fastmf.errors import ClusterError
from fastmf.train.aligned import aligned_zeros

_FITS: dict[str, dict[str, Any]] = {}
"""The fits this worker takes part in, by fit id."""


def open_fit(fit_id: str, config: dict, user_states: dict, blocks: dict | None) -> int:
    """Hold this worker's user strata and their blocks for ``fit_id``; returns its ratings.

    ``blocks`` maps block b to (users, items, values) in model rows; when None the worker reads
    its blocks from the rating store at ``config["store"]`` (a folder every worker can read)."""
    if blocks is None:
        blocks = read_store_blocks(config, sorted(user_states))
    s = config["n_strata"]
    us, its = config["user_starts"], config["item_starts"]
    local = {}
    for b, (u, i, v) in blocks.items():
        a, c = divmod(b, s)
        local[b] = (
            np.ascontiguousarray(u - np.int32(us[a]), dtype=np.int32),
            np.ascontiguousarray(i - np.int32(its[c]), dtype=np.int32),
            np.ascontiguousarray(v, dtype=np.float32),
        )
    fit: dict[str, Any] = {"config": config, "user": dict(user_states), "blocks": local}
    fit["losses"] = {}
    fit["user_norms"] = {a: np.full(us[a + 1] - us[a], -1.0) for a in user_states}
    if config["batch"]:
        fit["scratch"] = batch_scratch(config)
        fit["slot_u"] = {a: np.full(us[a + 1] - us[a], -1, np.int32) for a in user_states}
    _FITS[fit_id] = fit
    warm_up(config)
    return int(sum(v.shape[0] for _, _, v in local.values()))


def read_store_blocks(config: dict, strata: list[int]) -> dict:
    """This worker's blocks from the rating store, read in order."""
    from fastmf.data.store import RatingStore, StoreError

    path = config["store"]
    try:
        store = RatingStore.open(path)
    except (OSError, StoreError) as exc:
        raise ClusterError(
            f"a worker cannot read the rating store at {path} ({exc}): the store must be on "
            f"storage every worker reads under the same path (a shared folder)"
        ) from exc
    s = config["n_strata"]
    wanted = [a * s + c for a in strata for c in range(s)]
    return {b: (u, i, v) for b, u, i, v in store.iter_blocks(wanted)}


def batch_scratch(config: dict) -> tuple:
    """One worker's mini-batch scratch per side, as ``train.epoch.scratch_for`` gives each
    thread (the slot maps are per stratum, apart)."""
    dtype, b, k = np.dtype(config["dtype"]), config["slots"], config["n_factors"]

    def side():
        return aligned_zeros((b, k), dtype), np.zeros((b, 2), dtype), np.zeros((b, 2), np.int32)

    return side(), side()


def warm_up(config: dict) -> None:
    """Compile this fit's kernel before training starts: first in a child process, which writes
    Numba's cache, then here, from that cache. A kernel just compiled and the same kernel loaded
    from the cache may round differently (LLVM contracts a product and a sum into one FMA across
    a call only when it compiles both at once), so every worker, the first one too, runs the
    cached code, as does a process that trains after the cache is written."""
    child = (
        "import json, sys; from fastmf.dask.worker import run_warm_up; "
        "run_warm_up(json.loads(sys.argv[1]))"
    )
    plain = {k: config[k] for k in ("dtype", "n_factors", "batch")}
    plain["empty_state"] = [
        [(str(x.dtype), x.ndim) for x in side] for side in config["empty_state"]
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    subprocess.run([sys.executable, "-c", child, json.dumps(plain)], check=False, env=env,
                   capture_output=True, timeout=600)  # fmt: skip
    run_warm_up(plain)


def run_warm_up(plain: dict) -> None:
    """The kernel of a fit of this dtype, factor count and kind, called on one rating."""
    config = dict(plain)
    config["empty_state"] = tuple(
        tuple(np.zeros((0,) * ndim if ndim == 1 else (0, 1), dtype) for dtype, ndim in side)
        for side in plain["empty_state"]
    )
    dtype, k = np.dtype(config["dtype"]), config["n_factors"]
    one = (np.zeros(1, np.int32), np.zeros(1, np.int32), np.ones(1, np.float32))
    bounds = np.array([0, 1], dtype=np.int64)
    user = tuple(np.zeros((1, k) if n == 0 else 1, dtype) for n in range(2))
    item = tuple(np.zeros((1, k) if n == 0 else 1, dtype) for n in range(2))
    hyper = (0.0, 0.0, 0.0, 0.0, False, config["batch"], 1, 0)
    opt = config["empty_state"]
    carried: tuple
    if config["batch"]:
        carried = (batch_scratch({**config, "slots": 1}), np.full(1, -1, np.int32))
    else:
        carried = (np.full(1, -1.0), np.full(1, -1.0))
    train_arrays(config, one, bounds, hyper, (*user, *opt[0]), (*item, *opt[1]), carried,
                 np.zeros((1, 2)))  # fmt: skip


def train_shift(
    fit_id: str, pairs: list, hyper: tuple, fresh: bool, dest: dict | None, after: Any,
    *groups: dict,
) -> dict:  # fmt: skip
    """Train this worker's blocks (a, c) of one sub-epoch, in ``pairs`` order, on the item
    strata ``groups`` bring ({c: state} each). Returns the new item strata by the worker that
    trains each next (``dest``: {c: worker}), or by stratum after the epoch's last sub-epoch.
    ``after`` is this worker's previous task, so its sub-epochs run in the schedule's order;
    ``fresh`` marks the epoch's first sub-epoch (see ``train_block``)."""
    held: dict = {}
    for group in groups:
        held.update(group)
    out = {c: train_block(fit_id, a, c, hyper, fresh, held[c], None) for a, c in pairs}
    if dest is None:
        return out
    by_worker: dict = {}
    for c, state in out.items():
        by_worker.setdefault(dest[c], {})[c] = state
    return by_worker


def train_block(
    fit_id: str, a: int, c: int, hyper: tuple, fresh: bool, item_state: tuple, after: Any
) -> tuple:
    """Train block (a, c) on this worker's user stratum a and the item stratum c it is given;
    returns item stratum c's new state (user stratum a's stays here). ``after`` is the previous
    task of stratum a, so the strata train in the schedule's order. Per-rating SGD carries each
    row's squared norm (for the regularization loss) as one process does: the user strata's stay
    here, an item stratum's travel after its state (``ITEM_STATE``'s arrays, then the norms), and
    in the epoch's first sub-epoch (``fresh``: every stratum's first block of the epoch) they are
    set to -1, not known yet: the kernel sums each at the row's first rating, as in one process."""
    fit = _FITS.get(fit_id)
    if fit is None:
        raise ClusterError(f"this worker does not hold fit {fit_id} (it was restarted)")
    config = fit["config"]
    b = a * config["n_strata"] + c
    n_state = len(ITEM_STATE)
    item = tuple(x.copy() for x in item_state[:n_state])
    losses = np.zeros((len(config["bounds"][b]) - 1, 2), dtype=np.float64)
    if config["batch"]:
        train_arrays(config, fit["blocks"][b], config["bounds"][b], hyper, fit["user"][a], item,
                     (fit["scratch"], fit["slot_u"][a]), losses)  # fmt: skip
        fit["losses"][b] = losses
        return item
    NU = fit["user_norms"][a]
    if fresh:
        NU.fill(-1.0)
    NI = np.full(item[0].shape[0], -1.0) if fresh else item_state[n_state].copy()
    train_arrays(config, fit["blocks"][b], config["bounds"][b], hyper, fit["user"][a], item,
                 (NU, NI), losses)  # fmt: skip
    fit["losses"][b] = losses
    return (*item, NI)


def train_arrays(config, block, bounds, hyper, user, item, carried, losses) -> None:
    """The kernel call itself: one block, its strata's slices, the fit's dtype. ``carried`` is
    what the kernel carries from block to block beside the strata: (user norms, item norms)
    for per-rating SGD, (scratch, the user stratum's slot map) for mini-batches."""
    dtype = np.dtype(config["dtype"])
    lr, mu, lam, lam_b, learn_bias, batch, batch_size, opt = hyper
    f = dtype.type
    P, bu, bu_s1, bu_s2, P_s1, P_s2, u_steps = user
    Q, bi, bi_s1, bi_s2, Q_s1, Q_s2, i_steps = item
    u, i, v = block
    with KERNEL_LOCK:
        if not batch:
            NU, NI = carried
            K.sgd_block_points(u, i, v, bounds, f(mu), bu, bi, P, Q, NU, NI, f(lr), f(lam),
                               f(lam_b), learn_bias, losses)  # fmt: skip
            return
        (su, si), slot_u = carried
        slot_i = np.full(Q.shape[0], -1, np.int32)
        SU = grouped_state(P_s1, P_s2, bu_s1, bu_s2, P.shape[1])
        SI = grouped_state(Q_s1, Q_s2, bi_s1, bi_s2, Q.shape[1])
        minibatch.batch_block_points(
            u, i, v, bounds, batch_size, f(mu), bu, bi, P, Q, f(lr), f(lam), f(lam_b), learn_bias,
            opt, SU, u_steps, SI, i_steps, su[0], su[1], su[2], slot_u, si[0], si[1], si[2],
            slot_i, losses,
        )  # fmt: skip
        ungroup_state(SU, P_s1, P_s2, bu_s1, bu_s2)
        ungroup_state(SI, Q_s1, Q_s2, bi_s1, bi_s2)


def grouped_state(s1, s2, b1, b2, k: int) -> np.ndarray:
    """One side's optimizer state of a stratum as the batch kernel takes it: moment m of row r
    in ``S[m, r, :width]`` and of its bias in ``S[m, r, width]`` (``train.kernel_state``)."""
    moments = [(s, b) for s, b in ((s1, b1), (s2, b2)) if s.shape[0] > 0]
    width = s1.shape[1] if moments else k
    S = np.zeros((len(moments), s1.shape[0] if moments else 0, width + 1), dtype=s1.dtype)
    for m, (s, b) in enumerate(moments):
        S[m, :, :width] = s
        S[m, :, width] = b
    return S


def ungroup_state(S: np.ndarray, s1, s2, b1, b2) -> None:
    """The kernel's grouped state back into the stratum's named arrays, in place."""
    width = S.shape[2] - 1
    for m, (s, b) in enumerate(((s1, b1), (s2, b2))[: S.shape[0]]):
        s[...] = S[m, :, :width]
        b[...] = S[m, :, width]


def collect(fit_id: str, strata: list[int], *after: Any) -> dict:
    """This worker's user strata and the block losses of the epoch, once its tasks are done."""
    fit = _FITS.get(fit_id)
    if fit is None:
        raise ClusterError(f"this worker does not hold fit {fit_id} (it was restarted)")
    losses, fit["losses"] = fit["losses"], {}
    return {"user": {a: fit["user"][a] for a in strata}, "losses": losses}


def close_fit(fit_id: str) -> None:
    """Forget ``fit_id`` on this worker."""
    _FITS.pop(fit_id, None)
