"""A biased MF written here in PyTorch: dense embeddings with Adam, or sparse with SparseAdam."""

from __future__ import annotations

import time

import numpy as np

from benchmarks.compare.peers.harness import Context


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
