"""Each library the runner compares: how to train it on the split and what to record.

Every ``run_*`` function runs inside its own worker process (``benchmarks.compare.worker``) and
talks to the runner only through the :class:`Context`: ``ctx.epoch`` records a point of the
test-RMSE-against-time curve as soon as it is known (so a peer killed later still reports what it
reached) and the function returns the summary of the fit.

Protocol, the same for every library:
- ``prepare_seconds``: turning the split into the library's input (id maps, its data object).
- ``fit_seconds``: the library's training call for ``n_epochs`` epochs, without evaluation.
- the curve's time axis: prepare plus training time up to the end of each epoch; evaluating the
  test set after an epoch is not counted.
- final test RMSE and MAE: computed here from the model's parameters for every library, with
  predictions clipped to the training rating scale.
Each library keeps its documented learning rate and initialization; the factors, the epochs, the
L2 weight ``reg`` (per rating, on the factors) and the threads are shared.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from benchmarks.compare.data import Split
from benchmarks.compare.machine import package_version


@dataclass
class Context:
    """What a peer sees: the split, the shared settings and a way to report progress."""

    split: Split
    n_factors: int
    n_epochs: int
    reg: float
    threads: int
    seed: int
    options: dict
    emit: Callable[..., None]
    curve: list = field(default_factory=list)
    baseline_rss_gb: float | None = None

    def imported(self) -> None:
        """Mark the resident memory once the library is imported: the fit's own memory is
        measured above it (the split is loaded already)."""
        self.baseline_rss_gb = rss_gb()

    @property
    def rating_range(self) -> tuple[float, float]:
        return float(self.split.meta["rating_min"]), float(self.split.meta["rating_max"])

    def evaluate(self, pred: np.ndarray) -> tuple[float, float]:
        """Test RMSE and MAE of ``pred`` (clipped to the training rating scale)."""
        lo, hi = self.rating_range
        err = np.clip(np.asarray(pred, dtype=np.float64), lo, hi) - self.split.test["rating"]
        return float(np.sqrt(np.mean(err * err))), float(np.mean(np.abs(err)))

    def epoch(self, epoch: int, seconds: float, rmse: float, mae: float | None = None) -> None:
        """Record that after ``epoch`` (1-based) at ``seconds`` the test RMSE was ``rmse``."""
        point = {"epoch": int(epoch), "seconds": float(seconds), "test_rmse": float(rmse)}
        if mae is not None:
            point["test_mae"] = float(mae)
        self.curve.append(point)
        self.emit("epoch", **point)

    def option(self, name: str, default):
        """A per-library setting given with ``--set LIBRARY.NAME=VALUE``, else ``default``."""
        value = self.options.get(name, default)
        return type(default)(value) if default is not None and value is not None else value


def rss_gb() -> float:
    """Resident memory of this process now, in GiB (NaN where /proc is absent)."""
    try:
        with open("/proc/self/statm", encoding="utf-8") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (OSError, ValueError):
        return float("nan")


def biased_predict(mu, bu, bi, P, Q, users, items) -> np.ndarray:
    """mu + bu[u] + bi[i] + P[u].Q[i] for each test pair, in float64, a million rows at a time."""
    out = np.empty(users.shape[0], dtype=np.float64)
    for lo in range(0, users.shape[0], 1 << 20):
        u, i = users[lo : lo + (1 << 20)], items[lo : lo + (1 << 20)]
        dot = np.einsum("nk,nk->n", P[u].astype(np.float64), Q[i].astype(np.float64))
        out[lo : lo + (1 << 20)] = (
            dot + mu + (bu[u] if bu is not None else 0.0) + (bi[i] if bi is not None else 0.0)
        )
    return out


class LineClock:
    """Capture what is written to a file descriptor (C or Python), stamping each line's time.

    ``lines`` holds ``(seconds since start, text)``. Used for libraries that print per-epoch
    progress from compiled code (LIBMF) or from Python (Surprise).
    """

    def __init__(self, fd: int = 1) -> None:
        self.fd = fd
        self.lines: list[tuple[float, str]] = []

    def __enter__(self) -> LineClock:  # noqa: PYI034
        sys.stdout.flush()
        self._saved = os.dup(self.fd)
        self._read, write = os.pipe()
        os.dup2(write, self.fd)
        os.close(write)
        self.start = time.perf_counter()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()
        return self

    def _pump(self) -> None:
        buf = b""
        while True:
            chunk = os.read(self._read, 65536)
            if not chunk:
                break
            now = time.perf_counter() - self.start
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self.lines.append((now, line.decode(errors="replace")))
        if buf:
            self.lines.append((time.perf_counter() - self.start, buf.decode(errors="replace")))

    def __exit__(self, *exc) -> None:
        sys.stdout.flush()
        os.dup2(self._saved, self.fd)
        os.close(self._saved)
        self._thread.join(timeout=10)
        os.close(self._read)


class PrintClock:
    """Swap ``sys.stdout`` for a writer that stamps each line with the time it was printed.

    For libraries that print progress from Python while holding the GIL (Surprise), where a
    reader thread (:class:`LineClock`) would only see the lines late.
    """

    def __enter__(self) -> PrintClock:  # noqa: PYI034
        self.lines: list[tuple[float, str]] = []
        self._saved = sys.stdout
        sys.stdout = self
        self.start = time.perf_counter()
        return self

    def write(self, text: str) -> int:
        now = time.perf_counter() - self.start
        for line in text.splitlines():
            if line.strip():
                self.lines.append((now, line))
        return len(text)

    def flush(self) -> None:
        pass

    def __exit__(self, *exc) -> None:
        sys.stdout = self._saved


# --------------------------------------------------------------------------- fastmf


def run_fastmf(ctx: Context, **preset) -> dict:
    """fastmf's MatrixFactorization with its defaults (plus ``preset``, e.g. a batch size)."""
    import pandas as pd

    from fastmf import MatrixFactorization
    from fastmf.datasets.synthetic import synthetic

    ctx.imported()

    params = {
        "n_factors": ctx.n_factors,
        "n_epochs": ctx.n_epochs,
        "reg": ctx.reg,
        "random_state": ctx.seed,
        "n_jobs": ctx.threads,
        "verbose": 0,
    }
    params.update(preset)
    params.update(ctx.options)
    # Compile the kernels (or load them from Numba's cache) outside the timing.
    t0 = time.perf_counter()
    warm = synthetic(60, 80, 3_000, random_state=1)
    MatrixFactorization(**dict(params, n_epochs=1)).fit(warm)
    compile_seconds = time.perf_counter() - t0

    train = ctx.split.frame("train")
    test = ctx.split.frame("test")
    t0 = time.perf_counter()
    model = MatrixFactorization(**params).fit(train)
    fit_seconds = time.perf_counter() - t0
    epoch_seconds = _history_seconds(model)
    rmse, mae = ctx.evaluate(model.predict(test[["user", "item"]]))

    # A second fit with the test set as validation data gives the per-epoch curve; its time
    # axis is the first fit's setup plus the epochs' own seconds (validation not counted).
    setup = fit_seconds - sum(epoch_seconds) if epoch_seconds else 0.0
    curve_model = MatrixFactorization(**params).fit(train, validation=test)
    hist = curve_model.history_
    if isinstance(hist, pd.DataFrame) and "val_rmse" in hist.columns:
        secs = _history_seconds(curve_model) or [fit_seconds / len(hist)] * len(hist)
        elapsed = setup
        for e, (s, row) in enumerate(
            zip(secs, hist.itertuples(index=False), strict=False), start=1
        ):
            elapsed += s
            ctx.epoch(e, elapsed, row.val_rmse, getattr(row, "val_mae", None))
    return {
        "fit_seconds": fit_seconds,
        "setup_seconds": setup,
        "epoch_seconds": epoch_seconds,
        "compile_seconds": compile_seconds,
        "final_rmse": rmse,
        "final_mae": mae,
        "threads": ctx.threads,
        "settings": {k: v for k, v in params.items() if k != "verbose"},
    }


def _history_seconds(model) -> list[float]:
    hist = getattr(model, "history_", None)
    if hist is None or "seconds" not in getattr(hist, "columns", ()):
        return []
    return [float(s) for s in hist["seconds"]]


# --------------------------------------------------------------------------- LIBMF

_LIBMF_HANG = (
    "LIBMF hung when stopping (a race in its scheduler when epochs are very short; use more "
    "ratings or 1 thread)"
)


class _Watched:
    """Run ``fn(*args)`` in a daemon thread, timing it, so the caller can stop waiting."""

    def __init__(self, fn, *args) -> None:
        self.seconds = float("nan")

        def target() -> None:
            t0 = time.perf_counter()
            fn(*args)
            self.seconds = time.perf_counter() - t0

        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()

    def wait(self, timeout: float) -> bool:
        """True once the call has returned."""
        self._thread.join(timeout)
        return not self._thread.is_alive()


_LIBMF_LINE = re.compile(r"^\s*(\d+)\s+([0-9.]+)\s+([0-9.]+)\s+\S+\s*$")


def run_libmf(ctx: Context, avx: bool = False) -> dict:
    """LIBMF through the ``libmf`` package's binding: as installed, or the AVX/OpenMP build.

    LIBMF has no biases and uses AdaGrad-scaled SGD on blocks (FPSG); its documented step
    ``eta=0.1`` and ``nr_bins=26`` are kept. LIBMF trains all epochs in one call, so its epoch
    time is measured from two quiet runs, of ``n_epochs`` and of one epoch: (T_n - T_1) / (n - 1),
    and its setup as T_1 less one epoch. The curve's test RMSE comes from a third run that prints
    LIBMF's own per-iteration validation RMSE (unclipped); its time axis is setup + epochs.

    LIBMF's scheduler can deadlock when it stops if an epoch is very short (its worker threads
    finish one more pass before the stop flag is set and then wait forever; seen on tens of
    thousands of ratings with 2 threads). Each call therefore runs in a watched thread: a call that
    has not returned long after its work is done is reported as that hang instead of waiting for
    the runner's time budget.
    """
    if avx:
        from benchmarks.compare.libmf_build import built_library

        os.environ["LIBMF_OBJ"] = str(built_library())
    with LineClock() as _:  # the binding prints where it found its library at import
        from libmf import mf
    ctx.imported()

    tr, te = ctx.split.train, ctx.split.test
    t0 = time.perf_counter()
    X = np.column_stack([tr["user"], tr["item"], tr["rating"]]).astype(np.float32)
    V = np.column_stack([te["user"], te["item"], te["rating"]]).astype(np.float32)
    prepare_seconds = time.perf_counter() - t0
    params = {
        "k": ctx.n_factors,
        "nr_threads": ctx.threads,
        "nr_iters": ctx.n_epochs,
        "nr_bins": ctx.option("nr_bins", 26),
        "eta": ctx.option("eta", 0.1),
        "lambda_p1": 0.0,
        "lambda_q1": 0.0,
        "lambda_p2": ctx.reg,
        "lambda_q2": ctx.reg,
    }

    # The verbose run first: its printed lines show when the work is done, so a hang shows.
    verbose = mf.MF(quiet=False, **params)
    with LineClock() as clock:
        call = _Watched(verbose.mf_train_test, X, V)
        while not call.wait(0.05):
            stamps = [t for t, line in clock.lines if _LIBMF_LINE.match(line)]
            if len(stamps) >= ctx.n_epochs:
                per = (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1)
                if time.perf_counter() - clock.start - stamps[-1] > 5.0 + 20 * per:
                    raise RuntimeError(_LIBMF_HANG)
    curve = [m for m in (_LIBMF_LINE.match(line) for _, line in clock.lines) if m]
    limit = 30.0 + 10 * call.seconds

    def quiet_fit(n_iters: int):
        engine = mf.MF(quiet=True, **dict(params, nr_iters=n_iters))
        call = _Watched(engine.fit, X)
        if not call.wait(limit):
            raise RuntimeError(_LIBMF_HANG)
        return engine, call.seconds

    engine, fit_seconds = quiet_fit(ctx.n_epochs)
    P, Q = engine.p_factors(), engine.q_factors()
    rmse, mae = ctx.evaluate(biased_predict(0.0, None, None, P, Q, te["user"], te["item"]))
    if ctx.n_epochs > 1:
        one = quiet_fit(1)[1]
        per_epoch = max(0.0, (fit_seconds - one) / (ctx.n_epochs - 1))
        setup_seconds = max(0.0, one - per_epoch)
    else:
        per_epoch, setup_seconds = fit_seconds, 0.0
    for m in curve:
        it = int(m.group(1)) + 1
        ctx.epoch(it, prepare_seconds + setup_seconds + it * per_epoch, float(m.group(3)))
    return {
        "prepare_seconds": prepare_seconds,
        "setup_seconds": setup_seconds,
        "fit_seconds": fit_seconds,
        "epoch_seconds": [per_epoch] * ctx.n_epochs,
        "final_rmse": rmse,
        "final_mae": mae,
        "threads": ctx.threads,
        "settings": dict(params, build=("-O3 -march=native -DUSEAVX -DUSEOMP" if avx else "pip")),
        "notes": "no biases (LIBMF's model is P.Q); AdaGrad steps",
    }


# --------------------------------------------------------------------------- Surprise


def run_surprise(ctx: Context) -> dict:
    """Surprise's SVD (per-rating SGD with biases, single thread), its default learning rate."""
    from surprise import SVD, Dataset, Reader

    ctx.imported()

    lo, hi = ctx.rating_range
    t0 = time.perf_counter()
    data = Dataset.load_from_df(ctx.split.frame("train"), Reader(rating_scale=(lo, hi)))
    trainset = data.build_full_trainset()
    prepare_seconds = time.perf_counter() - t0
    algo = SVD(
        n_factors=ctx.n_factors,
        n_epochs=ctx.n_epochs,
        reg_all=ctx.reg,
        lr_all=ctx.option("lr_all", 0.005),
        random_state=ctx.seed,
        verbose=True,  # prints each epoch's start: the clock below stamps them
    )
    with PrintClock() as clock:
        algo.fit(trainset)
        fit_seconds = time.perf_counter() - clock.start
    starts = [t for t, line in clock.lines if line.startswith("Processing epoch")]
    ends = starts[1:] + [fit_seconds]
    epoch_seconds = [b - a for a, b in zip(starts, ends, strict=False)]
    users = _inner_ids(trainset._raw2inner_id_users, ctx.split.n_users)
    items = _inner_ids(trainset._raw2inner_id_items, ctx.split.n_items)
    te = ctx.split.test
    pred = biased_predict(
        trainset.global_mean,
        algo.bu,
        algo.bi,
        algo.pu,
        algo.qi,
        users[te["user"]],
        items[te["item"]],
    )
    rmse, mae = ctx.evaluate(pred)
    return {
        "prepare_seconds": prepare_seconds,
        "fit_seconds": fit_seconds,
        "epoch_seconds": epoch_seconds,
        "final_rmse": rmse,
        "final_mae": mae,
        "threads": 1,
        "settings": {
            "n_factors": ctx.n_factors,
            "n_epochs": ctx.n_epochs,
            "reg_all": ctx.reg,
            "lr_all": algo.lr_bu,
        },
        "notes": "no per-epoch curve (all epochs run in one compiled call); single-threaded",
    }


def _inner_ids(mapping: dict, n: int) -> np.ndarray:
    lookup = np.full(n, -1, dtype=np.int64)
    raw = np.fromiter(mapping.keys(), dtype=np.int64, count=len(mapping))
    inner = np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))
    lookup[raw] = inner
    return lookup


# --------------------------------------------------------------------------- cornac


def run_cornac(ctx: Context) -> dict:
    """cornac's MF (Hogwild per-rating SGD with biases), stepped one epoch at a time.

    cornac's SGD visits ratings in data order and keeps no optimizer state, so calling its
    trainer for one epoch at a time on the same arrays is the same as one call for all epochs.
    """
    from cornac.data import Dataset
    from cornac.models import MF

    ctx.imported()

    tr, te = ctx.split.train, ctx.split.test
    t0 = time.perf_counter()
    train_set = Dataset.from_uir(
        zip(tr["user"].tolist(), tr["item"].tolist(), tr["rating"].tolist(), strict=False)
    )
    prepare_seconds = time.perf_counter() - t0
    model = MF(
        k=ctx.n_factors,
        max_iter=1,
        learning_rate=ctx.option("learning_rate", 0.01),
        lambda_reg=ctx.reg,
        use_bias=True,
        num_threads=ctx.threads,
        verbose=False,
    )
    users = _inner_ids(train_set.uid_map, ctx.split.n_users)[te["user"]]
    items = _inner_ids(train_set.iid_map, ctx.split.n_items)[te["item"]]
    fit_seconds = 0.0
    epoch_seconds = []
    for e in range(1, ctx.n_epochs + 1):
        t0 = time.perf_counter()
        if e == 1:
            model.fit(train_set)
        else:
            model._fit_cpu(train_set, None)  # one more epoch on the same parameter arrays
        dt = time.perf_counter() - t0
        fit_seconds += dt
        epoch_seconds.append(dt)
        pred = biased_predict(
            model.global_mean,
            model.u_biases,
            model.i_biases,
            model.u_factors,
            model.i_factors,
            users,
            items,
        )
        rmse, mae = ctx.evaluate(pred)
        ctx.epoch(e, prepare_seconds + fit_seconds, rmse, mae)
    return {
        "prepare_seconds": prepare_seconds,
        "fit_seconds": fit_seconds,
        "epoch_seconds": epoch_seconds,
        "final_rmse": rmse,
        "final_mae": mae,
        "threads": model.num_threads,
        "settings": {
            "k": ctx.n_factors,
            "lambda_reg": ctx.reg,
            "learning_rate": model.learning_rate,
            "use_bias": True,
        },
        "notes": "biases regularized too",
    }


# --------------------------------------------------------------------------- PyTorch


def run_torch(ctx: Context, batch_size: int = 1024, sparse: bool = False) -> dict:
    """A biased MF in PyTorch as a user writes it: nn.Embedding, the exact batch loss, Adam.

    L_B = (sum (r - r_hat)^2 + reg * sum (|p_u|^2 + |q_i|^2)) / |B| over a shuffled batch B;
    dense embeddings with Adam, or sparse embeddings with SparseAdam (the fastest setting).
    """
    import torch

    ctx.imported()
    torch.set_num_threads(ctx.threads)
    torch.manual_seed(ctx.seed)
    gen = torch.Generator().manual_seed(ctx.seed)
    batch_size = ctx.option("batch_size", batch_size)
    lr = ctx.option("lr", 0.01 if sparse else 0.001)
    init_std = ctx.option("init_std", 0.1)
    tr, te = ctx.split.train, ctx.split.test
    t0 = time.perf_counter()
    u = torch.from_numpy(tr["user"].astype(np.int64))
    i = torch.from_numpy(tr["item"].astype(np.int64))
    r = torch.from_numpy(tr["rating"])
    mu = float(r.mean())
    prepare_seconds = time.perf_counter() - t0

    class BiasedMF(torch.nn.Module):
        def __init__(self, n_users: int, n_items: int, k: int) -> None:
            super().__init__()
            self.P = torch.nn.Embedding(n_users, k, sparse=sparse)
            self.Q = torch.nn.Embedding(n_items, k, sparse=sparse)
            self.bu = torch.nn.Embedding(n_users, 1, sparse=sparse)
            self.bi = torch.nn.Embedding(n_items, 1, sparse=sparse)
            torch.nn.init.normal_(self.P.weight, std=init_std)
            torch.nn.init.normal_(self.Q.weight, std=init_std)
            torch.nn.init.zeros_(self.bu.weight)
            torch.nn.init.zeros_(self.bi.weight)

        def forward(self, users, items):
            p, q = self.P(users), self.Q(items)
            pred = mu + self.bu(users).squeeze(1) + self.bi(items).squeeze(1) + (p * q).sum(1)
            return pred, p, q

    opt_cls = torch.optim.SparseAdam if sparse else torch.optim.Adam
    # Warm up outside the timing: the first optimizer step imports and initializes parts of
    # PyTorch (about 2 s), a one-off cost of the process, not of training.
    t0 = time.perf_counter()
    warm = BiasedMF(4, 4, ctx.n_factors)
    warm_opt = opt_cls(warm.parameters(), lr=lr)
    warm(torch.arange(4), torch.arange(4))[0].sum().backward()
    warm_opt.step()
    compile_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    model = BiasedMF(ctx.split.n_users, ctx.split.n_items, ctx.n_factors)
    opt = opt_cls(model.parameters(), lr=lr)
    fit_seconds = time.perf_counter() - t0
    test_u = torch.from_numpy(te["user"].astype(np.int64))
    test_i = torch.from_numpy(te["item"].astype(np.int64))
    n = r.shape[0]
    epoch_seconds = []
    for e in range(1, ctx.n_epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            pred, p, q = model(u[idx], i[idx])
            loss = ((r[idx] - pred) ** 2).sum() + ctx.reg * ((p * p).sum() + (q * q).sum())
            loss = loss / idx.shape[0]
            opt.zero_grad()
            loss.backward()
            opt.step()
        dt = time.perf_counter() - t0
        fit_seconds += dt
        epoch_seconds.append(dt)
        model.eval()
        with torch.no_grad():
            step = 1 << 20
            pred = torch.cat(
                [
                    model(test_u[s : s + step], test_i[s : s + step])[0]
                    for s in range(0, test_u.shape[0], step)
                ]
            )
        rmse, mae = ctx.evaluate(pred.numpy())
        ctx.epoch(e, prepare_seconds + fit_seconds, rmse, mae)
    return {
        "prepare_seconds": prepare_seconds,
        "fit_seconds": fit_seconds,
        "epoch_seconds": epoch_seconds,
        "final_rmse": rmse,
        "final_mae": mae,
        "threads": torch.get_num_threads(),
        "compile_seconds": compile_seconds,
        "settings": {
            "batch_size": batch_size,
            "optimizer": opt_cls.__name__,
            "lr": lr,
            "init_std": init_std,
            "sparse": sparse,
            "reg": ctx.reg,
        },
    }


# --------------------------------------------------------------------------- LensKit


def run_lenskit(ctx: Context) -> dict:
    """LensKit's biased matrix factorization, trained by alternating least squares.

    ALS is another optimizer (each half-epoch solves every user's or item's row exactly), so its
    epochs are not comparable one for one with SGD's; it is here for a user choosing between
    toolkits. LensKit's trainer is stepped one epoch at a time, evaluated with the clock stopped.
    Its biases are damped means (damping 5), not learned.
    """
    import pandas as pd
    from lenskit.als import BiasedMFScorer
    from lenskit.data import from_interactions_df
    from lenskit.training import TrainingOptions

    ctx.imported()

    tr, te = ctx.split.train, ctx.split.test
    t0 = time.perf_counter()
    frame = pd.DataFrame({"user_id": tr["user"], "item_id": tr["item"], "rating": tr["rating"]})
    data = from_interactions_df(frame, user_col="user_id", item_col="item_id", rating_col="rating")
    prepare_seconds = time.perf_counter() - t0
    scorer = BiasedMFScorer(
        embedding_size=ctx.n_factors, epochs=ctx.n_epochs, regularization=ctx.reg
    )
    t0 = time.perf_counter()
    trainer = scorer.create_trainer(data, TrainingOptions(rng=ctx.seed))
    fit_seconds = time.perf_counter() - t0
    setup_seconds = fit_seconds
    users = scorer.users.numbers(te["user"], missing="negative")
    items = scorer.items.numbers(te["item"], missing="negative")
    epoch_seconds = []
    for e in range(1, ctx.n_epochs + 1):
        t0 = time.perf_counter()
        trainer.train_epoch()
        dt = time.perf_counter() - t0
        fit_seconds += dt
        epoch_seconds.append(dt)
        bias = scorer.bias
        pred = biased_predict(
            bias.global_bias,
            bias.user_biases,
            bias.item_biases,
            scorer.user_embeddings,
            scorer.item_embeddings,
            users,
            items,
        )
        rmse, mae = ctx.evaluate(pred)
        ctx.epoch(e, prepare_seconds + fit_seconds, rmse, mae)
    trainer.finalize()
    return {
        "prepare_seconds": prepare_seconds + setup_seconds,
        "fit_seconds": fit_seconds,
        "epoch_seconds": epoch_seconds,
        "final_rmse": rmse,
        "final_mae": mae,
        "threads": ctx.threads,
        "settings": {
            "embedding_size": ctx.n_factors,
            "epochs": ctx.n_epochs,
            "regularization": ctx.reg,
            "damping": 5.0,
        },
        "notes": "ALS, not SGD; damped-mean biases",
    }


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Peer:
    """A library the runner can compare, how to tell it is installed and how to run it."""

    name: str
    label: str
    module: str
    dist: str
    run: Callable[[Context], dict]
    install: str
    build_libmf: bool = False

    def version(self) -> str | None:
        return package_version(self.dist)


def _p(fn, **kw):
    return lambda ctx: fn(ctx, **kw)


PEERS: dict[str, Peer] = {
    p.name: p
    for p in (
        Peer("fastmf", "fastmf (defaults)", "fastmf", "fastmf", run_fastmf, "pip install -e ."),
        Peer(
            "fastmf-sgd",
            "fastmf (batch_size=1)",
            "fastmf",
            "fastmf",
            _p(run_fastmf, batch_size=1),
            "pip install -e .",
        ),
        Peer(
            "fastmf-b1024",
            "fastmf (batch_size=1024, row_adagrad)",
            "fastmf",
            "fastmf",
            _p(run_fastmf, batch_size=1024, optimizer="row_adagrad", learning_rate=0.2),
            "pip install -e .",
        ),
        Peer(
            "libmf-avx",
            "LIBMF (-O3 -march=native AVX OpenMP)",
            "libmf",
            "libmf",
            _p(run_libmf, avx=True),
            "pip install libmf (and a C++ compiler)",
            True,
        ),
        Peer("libmf", "LIBMF (pip libmf)", "libmf", "libmf", run_libmf, "pip install libmf"),
        Peer(
            "surprise",
            "Surprise SVD",
            "surprise",
            "scikit-surprise",
            run_surprise,
            "pip install scikit-surprise",
        ),
        Peer("cornac", "cornac MF", "cornac", "cornac", run_cornac, "pip install cornac"),
        Peer(
            "torch-b1024",
            "PyTorch Adam, batch 1024",
            "torch",
            "torch",
            run_torch,
            "pip install torch==2.13.0",
        ),
        Peer(
            "torch-sparse-b100k",
            "PyTorch SparseAdam, batch 100k",
            "torch",
            "torch",
            _p(run_torch, batch_size=100_000, sparse=True),
            "pip install torch==2.13.0",
        ),
        Peer(
            "lenskit",
            "LensKit biased MF (ALS)",
            "lenskit",
            "lenskit",
            run_lenskit,
            "pip install lenskit (needs pandas<3)",
        ),
    )
}
