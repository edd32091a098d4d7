"""The epoch on a Dask cluster, run from the client: DSGD's schedule as a graph of block tasks.

Each worker holds its user strata (factors, biases, optimizer state) and their blocks for the
whole fit. An epoch is one task per block: the task of block (a, (a + t) mod S) runs on the
owner of user stratum a, after that stratum's previous task, and takes item stratum
(a + t) mod S from the task that trained it last, wherever that ran (Dask moves it from worker
to worker). The shifts come in the order the training's random stream draws, as in one process,
and every block runs the same kernel on the same rows, so the model is the same bit for bit with
any number of workers. At the end of an epoch the client gathers the model (for the history, the
checkpoint and the next epoch's restart point); a worker lost during the epoch makes the client
re-run the epoch from that state on the workers left.
"""

from __future__ import annotations

import operator
import time
import uuid
from typing import Any

import numpy as np
import pandas as pd

from fastmf._kernels import minibatch
from fastmf.dask import worker as W
from fastmf.dask.plan import (
    ITEM_STATE,
    USER_STATE,
    Plan,
    deal_strata,
    moved_bytes,
    put_stratum,
    side_arrays,
    stratum_slice,
)
from fastmf.errors import ClusterError, WorkerLostError
from fastmf.train import batch_points as bp
from fastmf.train.epoch import slots_per_batch, uses_batch_kernel
from fastmf.train.params import Params

POLL = 0.5  # seconds between checks that every worker of the fit is still there
GROUPED = True  # one task a worker a sub-epoch where that makes fewer tasks than one a block


class _Lost(Exception):
    """A worker of the fit went away (the epoch is re-run)."""


class ClusterRun:
    """One fit's use of the cluster: its plan, the workers' state, the epoch's tasks."""

    def __init__(self, client: Any, timeout: float, max_restarts: int = 3):
        self.client = client
        self.timeout = float(timeout)
        self.max_restarts = max_restarts
        self.fit_id = ""
        self.plan: Plan = None  # type: ignore[assignment]  # set by start() before any epoch
        self.item_futures: list | None = None
        self.plan_batch = False  # whether the fit runs the mini-batch kernel (set by start())
        self.stats: dict[str, Any] = {"restarts": 0, "epochs": []}

    # ------------------------------------------------------------------ the epoch
    def run_epoch(self, model, blocks, params: Params, lr: float, dtype, scratch) -> tuple:
        """One epoch on the cluster; returns what ``train.epoch.run_epoch`` returns."""
        st = model._state
        self._model = model
        shift_order = st.rng.permutation(blocks.n_strata).astype(np.int64)
        batch = uses_batch_kernel(params)
        hyper = (lr, model.global_mean_, params.reg, params.reg_bias,
                 params.biases == "learned", batch, params.batch_size,
                 minibatch.OPTIMIZER_CODES[params.optimizer])  # fmt: skip
        t0 = time.perf_counter()
        restarts = self.stats["restarts"]
        lost_before = False
        for attempt in range(self.max_restarts + 1):
            try:
                if self.plan is None or lost_before:  # the first epoch, or after a loss
                    t_setup = time.perf_counter()
                    self.restart(model, blocks, params)
                    self.stats.setdefault("setup_seconds", time.perf_counter() - t_setup)
                    t0 += 0.0 if lost_before else time.perf_counter() - t_setup
                users, items, losses = self.epoch_tasks(shift_order, hyper)
                break
            except Exception as lost:
                if not is_loss(lost):
                    raise
                if attempt == self.max_restarts:
                    raise WorkerLostError(
                        f"workers were lost {attempt + 1} times in epoch "
                        f"{model.n_epochs_done_ + 1} ({lost}); the model is kept at the last "
                        f"checkpoint: fit again with resume=True on a steadier cluster"
                    ) from None
                self.stats["restarts"] += 1
                lost_before = True
        plan = self.plan
        self.write_back(model, users, items)
        self.record(shift_order, time.perf_counter() - t0, self.stats["restarts"] - restarts)
        point_losses = np.zeros((plan.point_bounds.shape[0] - 1, 2), dtype=np.float64)
        for b, part in losses.items():
            point_losses[plan.block_points[b] : plan.block_points[b + 1]] = part
        points = None
        if model.record_batches:
            order = bp.execution_order(plan.block_points, shift_order, plan.n_strata)
            epoch = model.n_epochs_done_ + 1
            frame = bp.points_frame(epoch, plan.point_bounds, order, point_losses,
                                    params.batch_size)  # fmt: skip
            points, point_losses = frame, point_losses[order]
        totals = point_losses.sum(axis=0)  # fixed order: point by point, as in one process
        return float(totals[0]), float(totals[1]), points

    def epoch_tasks(self, shift_order: np.ndarray, hyper: tuple) -> tuple[dict, dict, dict]:
        """Submit the epoch's tasks and wait for them; the user strata, item strata and block
        losses at its end. With few workers, one task a worker a sub-epoch (and one a pair of
        workers that pass item strata, ``grouped_tasks``); else one task a block."""
        n = len(self.plan.workers())
        if GROUPED and n + n * n < self.plan.n_strata:
            return self.grouped_tasks(shift_order, hyper)
        return self.block_tasks(shift_order, hyper)

    def grouped_tasks(self, shift_order: np.ndarray, hyper: tuple) -> tuple[dict, dict, dict]:
        """The epoch as one task a worker a sub-epoch: each trains the worker's blocks of the
        shift and returns the item strata grouped by the worker that trains each next, and a
        small task on that worker hands each group to its next worker. The item strata come
        from the client's model at the start and go back to it at the end."""
        plan, client, s = self.plan, self.client, self.plan.n_strata
        workers = plan.workers()
        self.item_futures = None
        inputs = self.scatter_groups(int(shift_order[0]))
        prev: dict[str, Any] = dict.fromkeys(workers)
        for j, t in enumerate(int(x) for x in shift_order):
            nxt = int(shift_order[j + 1]) if j + 1 < s else None
            tasks, dests = {}, {}
            for w in workers:
                pairs = [(a, (a + t) % s) for a in plan.strata_of(w)]
                dest = None if nxt is None else {c: plan.owners[(c - nxt) % s] for _, c in pairs}
                dests[w] = sorted(set(dest.values())) if dest else []
                tasks[w] = self.on(w, W.train_shift, self.fit_id, pairs, hyper, j == 0, dest,
                                   prev[w], *inputs[w])  # fmt: skip
            prev, inputs = tasks, {w: [] for w in workers}
            for w in workers:
                for w2 in dests[w]:
                    inputs[w2].append(self.on(w, operator.getitem, tasks[w], w2))
        collects = [self.on(w, W.collect, self.fit_id, plan.strata_of(w), prev[w]) for w in workers]
        self.wait(collects + list(prev.values()))
        done = client.gather(collects)
        users = {a: state for part in done for a, state in part["user"].items()}
        losses = {b: x for part in done for b, x in part["losses"].items()}
        items = {c: st for part in client.gather(list(prev.values())) for c, st in part.items()}
        return users, items, losses

    def on(self, worker: str, fn, *args):
        """``fn(*args)`` as a task on ``worker`` only, never hashed (its key is new each time)."""
        return self.client.submit(
            fn, *args, workers=[worker], allow_other_workers=False, pure=False
        )

    def scatter_groups(self, first_shift: int) -> dict[str, list]:
        """The client's item strata, one group a worker: those it trains in the first shift."""
        model, plan, s = self._model, self.plan, self.plan.n_strata
        items = side_arrays(model, model._state.optimizer, ITEM_STATE)
        its = plan.item_starts
        groups: dict[str, dict] = {w: {} for w in plan.workers()}
        for c in range(s):
            groups[plan.owners[(c - first_shift) % s]][c] = stratum_slice(items, its[c], its[c + 1])
        return {
            w: [self.client.scatter([g], workers=[w], hash=False)[0]] for w, g in groups.items()
        }

    def block_tasks(self, shift_order: np.ndarray, hyper: tuple) -> tuple[dict, dict, dict]:
        """The epoch as one task a block: block (a, c) on the owner of a, after a's previous
        task, on item stratum c from the task that trained it last."""
        plan, client, s = self.plan, self.client, self.plan.n_strata
        if self.item_futures is None:
            self.item_futures = self.scatter_items(int(shift_order[0]))
        items = list(self.item_futures)
        last: list[Any] = [None] * s
        for j, t in enumerate(shift_order):
            for a in range(s):
                c = (a + int(t)) % s
                last[a] = items[c] = client.submit(
                    W.train_block, self.fit_id, a, c, hyper, j == 0, items[c], last[a],
                    workers=[plan.owners[a]], allow_other_workers=False, pure=False,
                )  # fmt: skip
        collects = [
            self.on(
                w, W.collect, self.fit_id, plan.strata_of(w), *[last[a] for a in plan.strata_of(w)]
            )  # fmt: skip
            for w in plan.workers()
        ]
        self.wait(collects + items)
        self.item_futures = items
        done = client.gather(collects)
        users = {a: state for part in done for a, state in part["user"].items()}
        losses = {b: x for part in done for b, x in part["losses"].items()}
        return users, dict(enumerate(client.gather(items))), losses

    def wait(self, futures: list) -> None:
        """Until every future is done; a lost worker raises _Lost, a task's error is raised,
        and no answer within the time-out raises ClusterError naming what is missing."""
        from distributed import wait

        deadline = time.monotonic() + self.timeout
        pending = list(futures)
        while pending:
            try:
                wait(pending, timeout=POLL)
            except TimeoutError:
                pass
            for f in pending:
                if f.status == "error":
                    self.raise_task_error(f)
                if f.status in ("cancelled", "lost"):
                    raise _Lost(f"a task was {f.status} (its worker left)")
            pending = [f for f in pending if f.status != "finished"]
            if not pending:
                return
            alive = set(self.client.scheduler_info()["workers"])
            gone = sorted(set(self.plan.owners) - alive)
            if gone:
                raise _Lost(f"lost {', '.join(gone)}")
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"the cluster did not finish the epoch within timeout={self.timeout:g} s: "
                    f"{len(pending)} of its final tasks are pending on {self.plan.workers()}; "
                    f"check the workers (their logs, memory), or raise timeout"
                )

    def raise_task_error(self, future) -> None:
        exc = future.exception()
        if is_loss(exc):
            raise _Lost(f"{type(exc).__name__}: {exc}")
        raise exc

    # ------------------------------------------------------------------ set-up and recovery
    def start(self, model, blocks, params: Params) -> None:
        """Deal the user strata to the workers there are, and hand each its state and blocks
        (one worker at a time, so the first compiles the kernel and the others load it)."""
        workers = self.live_workers()
        s = blocks.n_strata
        if model.record_batches:
            bounds, owned = bp.batch_points(blocks.block_offsets, params.batch_size)
        else:
            bounds, owned = bp.block_points(blocks.block_offsets)
        st = model._state
        self.plan = plan = Plan(
            s, st.user_strata.starts, st.item_strata.starts,
            np.asarray(blocks.block_offsets, dtype=np.int64), bounds, owned,
            deal_strata(blocks.block_offsets, s, workers),
        )  # fmt: skip
        self.fit_id = f"fastmf-{uuid.uuid4().hex}"
        self.item_futures = None
        config = self.config(model, blocks, params)
        self.plan_batch = config["batch"]
        users = side_arrays(model, st.optimizer, USER_STATE)
        us = plan.user_starts
        for w in plan.workers():
            mine = plan.strata_of(w)
            state = {a: stratum_slice(users, us[a], us[a + 1]) for a in mine}
            data = None if config["store"] else self.block_data(blocks, mine)
            state_f = self.client.scatter([state], workers=[w], hash=False)[0]
            data_f = (
                None if data is None else self.client.scatter([data], workers=[w], hash=False)[0]
            )
            opened = self.client.submit(
                W.open_fit, self.fit_id, config, state_f, data_f,
                workers=[w], allow_other_workers=False, pure=False,
            )  # fmt: skip
            self.wait([opened])
            opened.result()

    def config(self, model, blocks, params: Params) -> dict:
        plan, st = self.plan, model._state
        empty = tuple(
            tuple(x[:0].copy() for x in side_arrays(model, st.optimizer, names)[2:])
            for names in (USER_STATE, ITEM_STATE)
        )
        return {
            "n_strata": plan.n_strata,
            "user_starts": plan.user_starts,
            "item_starts": plan.item_starts,
            "bounds": {b: plan.local_bounds(b) for b in range(plan.n_strata**2)},
            "dtype": str(model.user_factors_.dtype),
            "n_factors": int(model.user_factors_.shape[1]),
            "batch": uses_batch_kernel(params),
            "slots": slots_per_batch(params.batch_size, blocks),
            "empty_state": empty,
            "store": store_path(blocks),
        }

    def block_data(self, blocks, strata: list[int]) -> dict:
        o, s = self.plan.block_offsets, self.plan.n_strata
        return {
            b: (
                blocks.users[o[b] : o[b + 1]],
                blocks.items[o[b] : o[b + 1]],
                blocks.values[o[b] : o[b + 1]],
            )  # fmt: skip
            for b in (a * s + c for a in strata for c in range(s))
        }

    def scatter_items(self, first_shift: int) -> list:
        """Each item stratum, from the client's model, to the worker that trains it first."""
        model = self._model
        plan, s = self.plan, self.plan.n_strata
        items = side_arrays(model, model._state.optimizer, ITEM_STATE)
        its = plan.item_starts
        out = []
        for c in range(s):
            part = stratum_slice(items, its[c], its[c + 1])
            w = plan.owners[(c - first_shift) % s]
            out.append(self.client.scatter([part], workers=[w], hash=False)[0])
        return out

    def restart(self, model, blocks, params: Params) -> None:
        """After a lost worker: forget the fit on the workers left and start it again from the
        client's model (the state at the epoch's start)."""
        self.close()
        self.plan = None  # type: ignore[assignment]  # start() draws the next plan
        self.start(model, blocks, params)

    def live_workers(self) -> list[str]:
        """The cluster's workers, waiting up to the time-out for one when there is none."""
        deadline = time.monotonic() + self.timeout
        while True:
            workers = sorted(self.client.scheduler_info()["workers"])
            if workers:
                return workers
            if time.monotonic() > deadline:
                raise WorkerLostError(
                    f"the cluster has no worker (waited {self.timeout:g} s); start workers, "
                    f"then fit again with resume=True"
                )
            time.sleep(POLL)

    def close(self) -> None:
        """Forget this fit on every worker (a worker that cannot answer is skipped)."""
        self.item_futures = None
        if self.fit_id:
            try:
                self.client.run(W.close_fit, self.fit_id, on_error="ignore")
            except Exception:  # noqa: BLE001 - a cluster going down has nothing left to free
                pass

    # ------------------------------------------------------------------ results
    def write_back(self, model, users: dict, items: dict) -> None:
        plan, opt = self.plan, model._state.optimizer
        u_arrays = side_arrays(model, opt, USER_STATE)
        i_arrays = side_arrays(model, opt, ITEM_STATE)
        for a, state in users.items():
            put_stratum(u_arrays, plan.user_starts[a], plan.user_starts[a + 1], state)
        for c, state in items.items():  # an item stratum's norms travel after its state
            put_stratum(i_arrays, plan.item_starts[c], plan.item_starts[c + 1],
                        state[: len(ITEM_STATE)])  # fmt: skip

    def record(self, shift_order: np.ndarray, seconds: float, restarts: int) -> None:
        """The epoch's seconds and the bytes its sub-epochs moved between workers."""
        model = self._model
        plan = self.plan
        items = side_arrays(model, model._state.optimizer, ITEM_STATE)
        its = plan.item_starts
        per_row = sum(x[0:1].nbytes for x in items if x.shape[0])
        if not self.plan_batch:
            per_row += np.dtype(np.float64).itemsize  # the row's carried squared norm
        item_bytes = np.diff(its) * per_row
        moved = [moved_bytes(plan, item_bytes, int(a), int(b))
                 for a, b in zip(shift_order[:-1], shift_order[1:], strict=True)]  # fmt: skip
        self.stats["epochs"].append(
            {
                "seconds": seconds,
                "workers": len(plan.workers()),
                "sub_epochs": plan.n_strata,
                "bytes_moved": int(sum(moved)),
                "restarts": restarts,
            }  # fmt: skip
        )

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.stats["epochs"])


_LOSSES = {"KilledWorker", "CommClosedError", "FutureCancelledError", "FuturesCancelledError",
           "CancelledError", "StreamClosedError"}  # fmt: skip


def is_loss(exc: BaseException) -> bool:
    """Whether ``exc`` says a worker (or its data) went away, rather than a task failing."""
    if isinstance(exc, _Lost):
        return True
    if isinstance(exc, ClusterError) and "restarted" in str(exc):
        return True
    return any(k.__name__ in _LOSSES for k in type(exc).__mro__)


def store_path(blocks) -> str | None:
    """The folder of the rating store the layout streams from, or None for ratings in memory."""
    store = getattr(blocks, "store", None)
    return None if store is None else str(store.path)
