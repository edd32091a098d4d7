"""The slow twin of the training kernels: L_B, its gradient and each optimizer's step in plain
numpy (float64), written from the formulas and nothing else of fastmf.

L_B divides a batch's sums by the nominal batch size B (``divisor``), also for a batch cut short
by the end of its block; ``divisor=None`` divides by the batch's own length instead (the
alternative whose steps weigh the ratings of short batches more)."""

from __future__ import annotations

import numpy as np


def batch_loss(r, u, i, mu, bu, bi, P, Q, lam, lam_b=0.0):
    """(base, reg) numerators of L_B for the batch of ratings r at users u, items i."""
    pred = mu + bu[u] + bi[i] + np.sum(P[u] * Q[i], axis=1)
    base = np.sum((r - pred) ** 2)
    reg = lam * np.sum(np.sum(P[u] ** 2, axis=1) + np.sum(Q[i] ** 2, axis=1))
    reg += lam_b * np.sum(bu[u] ** 2 + bi[i] ** 2)
    return base, reg


def batch_objective(r, u, i, mu, bu, bi, P, Q, lam, lam_b=0.0, divisor=None):
    """L_B = (base + reg) / B (B = ``divisor``, or the batch's length when None)."""
    base, reg = batch_loss(r, u, i, mu, bu, bi, P, Q, lam, lam_b)
    return (base + reg) / (len(r) if divisor is None else divisor)


def batch_gradient(r, u, i, mu, bu, bi, P, Q, lam, lam_b=0.0, divisor=None):
    """∇L_B with respect to bu, bi, P, Q (dense arrays, zero for rows the batch misses)."""
    n = len(r) if divisor is None else divisor
    e = r - (mu + bu[u] + bi[i] + np.sum(P[u] * Q[i], axis=1))
    g_bu = np.zeros_like(bu)
    g_bi = np.zeros_like(bi)
    g_P = np.zeros_like(P)
    g_Q = np.zeros_like(Q)
    np.add.at(g_bu, u, -2 * e + 2 * lam_b * bu[u])
    np.add.at(g_bi, i, -2 * e + 2 * lam_b * bi[i])
    np.add.at(g_P, u, -2 * e[:, None] * Q[i] + 2 * lam * P[u])
    np.add.at(g_Q, i, -2 * e[:, None] * P[u] + 2 * lam * Q[i])
    return g_bu / n, g_bi / n, g_P / n, g_Q / n


def batch_curvature(u, i, bu, bi, P, Q, lam, lam_b, divisor):
    """Each row's bound on its curvature in L_B (zero for rows the batch misses): for a bias
    Σ 2(1 + λ_b)/B over its ratings, for a factor row Σ 2(‖other row‖² + λ)/B."""
    h = [np.zeros(len(bu)), np.zeros(len(bi)), np.zeros(len(bu)), np.zeros(len(bi))]
    np.add.at(h[0], u, 2 * (1 + lam_b) / divisor)
    np.add.at(h[1], i, 2 * (1 + lam_b) / divisor)
    np.add.at(h[2], u, 2 * (np.sum(Q[i] ** 2, axis=1) + lam) / divisor)
    np.add.at(h[3], i, 2 * (np.sum(P[u] ** 2, axis=1) + lam) / divisor)
    return h


class ReferenceOptimizer:
    """Per-row optimizer state for the reference: SGD, damped SGD (each row's rate η/(1 + η·h)
    for its curvature bound h), AdaGrad or Adam on the touched rows."""

    def __init__(self, name, shapes, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        self.name, self.lr, self.b1, self.b2, self.eps = name, lr, beta1, beta2, eps
        self.s1 = [np.zeros(s) for s in shapes]
        if name == "row_adagrad":  # one sum of squares per factor row
            self.s1[2] = np.zeros((shapes[2][0], 1))
            self.s1[3] = np.zeros((shapes[3][0], 1))
        self.s2 = [np.zeros(s) for s in shapes]
        self.steps = [np.zeros(shapes[2][0], int), np.zeros(shapes[3][0], int)]

    def step(self, params, grads, touched_users, touched_items, learn_bias=True, curvature=None):
        """Update params (bu, bi, P, Q) in place on the touched rows only (``curvature``: the
        rows' bounds h, for damped SGD)."""
        rows = [touched_users, touched_items, touched_users, touched_items]
        for side in (0, 1):
            if self.name == "adam":
                self.steps[side][rows[side]] += 1
        for k, (x, g, s1, s2, rr) in enumerate(
            zip(params, grads, self.s1, self.s2, rows, strict=True)
        ):
            if k < 2 and not learn_bias:
                continue
            if self.name == "sgd":
                x[rr] -= self.lr * g[rr]
            elif self.name == "damped_sgd":
                rate = self.lr / (1 + self.lr * curvature[k][rr])
                x[rr] -= (rate[:, None] if x.ndim == 2 else rate) * g[rr]
            elif self.name == "row_adagrad" and x.ndim == 2:
                s1[rr] += np.mean(g[rr] ** 2, axis=1, keepdims=True)
                x[rr] -= self.lr * g[rr] / (np.sqrt(s1[rr]) + self.eps)
            elif self.name in ("adagrad", "row_adagrad"):
                s1[rr] += g[rr] ** 2
                x[rr] -= self.lr * g[rr] / (np.sqrt(s1[rr]) + self.eps)
            else:
                t = self.steps[k % 2][rr]
                if x.ndim == 2:
                    t = t[:, None]
                s1[rr] = self.b1 * s1[rr] + (1 - self.b1) * g[rr]
                s2[rr] = self.b2 * s2[rr] + (1 - self.b2) * g[rr] ** 2
                mhat = s1[rr] / (1 - self.b1**t)
                vhat = s2[rr] / (1 - self.b2**t)
                x[rr] -= self.lr * mhat / (np.sqrt(vhat) + self.eps)


def train_in_order(
    users,
    items,
    values,
    batch_size,
    mu,
    bu,
    bi,
    P,
    Q,
    lam,
    lam_b,
    opt,
    block_offsets,
    block_order,
    learn_bias=True,
    nominal=True,
):
    """Train one epoch over blocks in ``block_order``, batches of consecutive ratings in each,
    every step's L_B divided by ``batch_size`` (by the batch's own length when not ``nominal``);
    returns the summed (base, reg) losses, each batch's at the parameters before its step."""
    base_sum = reg_sum = 0.0
    params = [bu, bi, P, Q]
    for b in block_order:
        lo, hi = block_offsets[b], block_offsets[b + 1]
        for start in range(lo, hi, batch_size):
            sl = slice(start, min(start + batch_size, hi))
            r, u, i = values[sl], users[sl], items[sl]
            base, reg = batch_loss(r, u, i, mu, bu, bi, P, Q, lam, lam_b)
            base_sum += base
            reg_sum += reg
            divisor = batch_size if nominal else None
            grads = batch_gradient(r, u, i, mu, bu, bi, P, Q, lam, lam_b, divisor)
            d = len(r) if divisor is None else divisor
            h = batch_curvature(u, i, bu, bi, P, Q, lam, lam_b, d)
            opt.step(params, grads, np.unique(u), np.unique(i), learn_bias, h)
    return base_sum, reg_sum
