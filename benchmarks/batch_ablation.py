"""Where a batch-1024 epoch's time goes: the batch kernel's body with parts taken out, against
per-rating SGD, one thread, CPU time, the variants taking turns in one process.

    python -m benchmarks.batch_ablation                  # the 25M twin, 64 factors, 5 rounds
    python -m benchmarks.batch_ablation --data 5M --reps 7

The model is fitted once (batch 1024, ``damped_sgd``, 1 thread) for its blocks and parameters;
each round, every variant runs from a copy of them over all blocks in order, serially. A variant
that leaves a gradient out also leaves out the steps (the parameters stay as they are): stepping
rows with part of their gradient missing shrinks them towards zero, and float32 arithmetic on
denormal numbers is many times slower, which would be measured instead. The figure is ns a
rating, median and fastest of the rounds.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from numba import njit

from benchmarks.batch_defaults import load
from fastmf._kernels import minibatch as KB
from fastmf._kernels import training as K
from fastmf._kernels.jit import JIT, JIT_INLINE
from fastmf._kernels.simd import (
    cast_like,
    prefetch_row,
    simd_accumulate_pair,
    simd_dot_sqnorms,
    simd_segment_dots,
    simd_segment_gradient,
)
from fastmf._kernels.simd_batch import (
    simd_wide_segment_dots,
    simd_wide_segment_gradient,
)

# the vector work: the kernel's one loop a run (``minibatch.batch_run_wide``: each rating's dot
# and gradient from the rows it loads once), the body before (a segment at a time: a dots pass,
# then a gradient pass), the segments' dots pass alone, neither
ONE_LOOP, TWO_PASSES, DOTS_ONLY, NO_VECTORS = 0, 1, 2, 3
# name: (the vector work, users step, items step, ratings prefetched ahead, 512-bit
# vectors)
AHEAD = KB.PREFETCH_AHEAD
VARIANTS = {
    "whole batch kernel": (ONE_LOOP, True, True, AHEAD, True),
    "without the items' step": (ONE_LOOP, True, False, AHEAD, True),
    "without any step (parameters fixed)": (ONE_LOOP, False, False, AHEAD, True),
    "a segment at a time: no step, no gradient (dots, losses, slot bookkeeping)": (
        DOTS_ONLY, False, False, AHEAD, True,
    ),
    "a segment at a time: no step, no gradient, no dots": (
        NO_VECTORS, False, False, AHEAD, True,
    ),
    "whole, a segment at a time: a dots pass and a gradient pass": (
        TWO_PASSES, True, True, AHEAD, True,
    ),
    "whole, two passes in 256-bit vectors": (TWO_PASSES, True, True, AHEAD, False),
}  # fmt: skip
INTERLEAVED = "whole, the ratings in block order (the kernel before the run order)"


@njit(**JIT_INLINE)
def _free(n, CR, slot_of):
    for s in range(n):
        slot_of[CR[s, 1]] = -1
        CR[s, 0] = 0


@njit(**JIT_INLINE)
def _flat(CR):
    """A slot array as ``minibatch.batch_run_wide`` reads it, flat (made once a block: a view
    is a call and reference counts)."""
    return CR.reshape(CR.size)


@njit(**JIT_INLINE)
def _two_passes(j, stop, run_end, then, hi, users, items, values, mu, bu, bi, P, Q, lam, scratch,
                flat, seg, n_u, n_i, base, flags):  # fmt: skip
    """The body before (``minibatch.batch_segment`` at 8 chunks: the segment found by its dots
    pass, then a gradient pass), with the parts ``flags`` name."""
    _, _, _, distance, wide = flags
    GU, GHU, CRU, slot_u, GI, GHI, CRI, slot_i = scratch
    CRU_flat, CRI_flat, _, _ = flat
    D, N, C, S = seg
    u = np.uint32(users[j])
    if wide:
        sp, n = simd_wide_segment_dots(P, u, Q, users, items, j, KB.STREAMS, stop, D, N, 8)
    else:
        sp, n = simd_segment_dots(P, u, Q, users, items, j, KB.STREAMS, stop, D, N, 8)
    su, n_u = KB.claim_slot(slot_u, CRU_flat, u, n_u)
    CRU[su, 0] += n - 1
    b_u = bu[u]
    norms_u = GHU[su, 1]
    bias_u = GHU[su, 0]
    j0, step, end, after = np.uint64(j), np.uint64(KB.STREAMS), np.uint64(run_end), np.uint64(then)
    for m in range(np.uint64(n)):
        pos = j0 + step * m
        KB.prefetch_ahead(P, Q, users, items, pos, end, after, np.uint64(hi - 1), 8, distance)
        i = np.uint32(items[pos])
        si, n_i = KB.claim_slot(slot_i, CRI_flat, i, n_i)
        e = values[pos] - mu - b_u - bi[i] - D[m]
        base += e * e
        norms_u += N[m]
        GHI[si, 1] += sp
        e2 = e + e
        C[m] = -e2
        S[m] = si
        bias_u -= e2
        GHI[si, 0] -= e2
    GHU[su, 1] = norms_u
    GHU[su, 0] = bias_u
    if wide:
        simd_wide_segment_gradient(GU, su, GI, S, P, u, Q, items, j, KB.STREAMS, n, C, 8)
    else:
        simd_segment_gradient(GU, su, GI, S, P, u, Q, items, j, KB.STREAMS, n, C, 8)
    return base, n_u, n_i, j + KB.STREAMS * n


@njit(**JIT_INLINE)
def _segment(j, stop, run_end, then, hi, users, items, values, mu, bu, bi, P, Q, lam, scratch, flat,
             seg, n_u, n_i, base, flags):  # fmt: skip
    """A segment at a time as the kernel before the one loop a run took it (8 chunks), with
    the parts ``flags`` name: a loop finds the segment and claims its slots, the vector work,
    then a loop sums the losses and the slots' scalars."""
    vectors, _, _, distance, _ = flags
    if vectors == TWO_PASSES:
        return _two_passes(j, stop, run_end, then, hi, users, items, values, mu, bu, bi, P, Q,
                           lam, scratch, flat, seg, n_u, n_i, base, flags)  # fmt: skip
    GU, GHU, CRU, slot_u, GI, GHI, CRI, slot_i = scratch
    D, N, C, S = seg
    u = np.uint32(users[j])
    CRU_flat, CRI_flat, _, _ = flat
    su, n_u = KB.claim_slot(slot_u, CRU_flat, u, n_u)
    b_u = bu[u]
    j0, step, end, after = np.uint64(j), np.uint64(KB.STREAMS), np.uint64(run_end), np.uint64(then)
    pos = j0
    n = np.uint64(0)
    while True:  # the segment, its item slots, r − μ − b_u − b_i
        KB.prefetch_ahead(P, Q, users, items, pos, end, after, np.uint64(hi - 1), 8, distance)
        i = np.uint32(items[pos])
        si, n_i = KB.claim_slot(slot_i, CRI_flat, i, n_i)
        D[n] = values[pos] - mu - b_u - bi[i]
        S[n] = si
        n += np.uint64(1)
        pos += step
        if pos >= np.uint64(stop) or users[pos] != u:
            break
    CRU[su, 0] += np.intp(n) - 1
    sp = cast_like(0.0, mu)
    if vectors == DOTS_ONLY:
        sp, _ = simd_wide_segment_dots(P, u, Q, users, items, j, KB.STREAMS, stop, C, N, 8)
        for m in range(n):
            D[m] -= C[m]
    norms_u = GHU[su, 1]
    bias_u = GHU[su, 0]
    for m in range(n):
        si = S[m]
        e = D[m]
        base += e * e
        norms_u += N[m]
        GHI[si, 1] += sp
        e2 = e + e
        bias_u -= e2
        GHI[si, 0] -= e2
    GHU[su, 1] = norms_u
    GHU[su, 0] = bias_u
    return base, n_u, n_i, j + KB.STREAMS * np.intp(n)


@njit(**JIT_INLINE)
def _body(lo, hi, B, users, items, values, mu, bu, bi, P, Q, NU, lr, lam, lam_b, scratch, flags):
    """``minibatch.batch_ratings`` for damped SGD at 8 chunks, with the parts ``flags`` name (the
    segment variants leave out the regularization loss, which no step reads; the one loop a run
    is the kernel's own, ``minibatch.batch_run_wide``, and sums it)."""
    vectors, step_u, step_i, _, _ = flags
    GU, GHU, CRU, slot_u, GI, GHI, CRI, slot_i = scratch
    flat = (_flat(CRU), _flat(CRI), _flat(GHU), _flat(GHI))
    one_loop = vectors == ONE_LOOP
    base = 0.0
    lam2, lam_b2 = lam + lam, lam_b + lam_b
    scale = cast_like(1.0 / B, lr)
    cap = min(B, max(hi - lo, 1)) // KB.STREAMS + 1
    seg = (np.zeros(cap, P.dtype), np.zeros(cap, P.dtype), np.zeros(cap, P.dtype),
           np.zeros(cap, np.intp))  # fmt: skip
    start = lo
    while start < hi:
        stop = min(start + B, hi)
        n_u = 0
        n_i = 0
        for t in range(KB.STREAMS):
            j = start + t
            run_end = j + KB.STREAMS * ((stop - j + KB.STREAMS - 1) // KB.STREAMS)
            then = stop if t == KB.STREAMS - 1 else j + 1
            if one_loop:
                base, _, n_u, n_i = KB.batch_run_wide(
                    j, stop, run_end, then, hi, users, items, values, mu, bu, bi, P, Q, NU, lam,
                    lam_b, scratch, flat, n_u, n_i, base, 0.0, 8,
                )  # fmt: skip
                continue
            while j < stop:
                base, n_u, n_i, j = _segment(j, stop, run_end, then, hi, users, items, values,
                                             mu, bu, bi, P, Q, lam, scratch, flat, seg, n_u,
                                             n_i, base, flags)  # fmt: skip
        if step_u:
            KB.step_touched_rows_sgd(n_u, CRU, slot_u, bu, P, NU, one_loop, GU, GHU, True, True,
                                    lr, scale, lam2, lam_b2, 8, False)  # fmt: skip
        else:
            _free(n_u, CRU, slot_u)
        if step_i:
            KB.step_touched_rows_sgd(n_i, CRI, slot_i, bi, Q, NU, False, GI, GHI, True, True,
                                    lr, scale, lam2, lam_b2, 8, False)  # fmt: skip
        else:
            _free(n_i, CRI, slot_i)
        start = stop
    return base


@njit(**JIT_INLINE)
def _interleaved(lo, hi, B, users, items, values, mu, bu, bi, P, Q, lr, lam, lam_b, scratch):
    """The batch kernel before the run order (damped SGD, 8 chunks): each rating's dot product
    and its two rows' gradient slots, in block order."""
    GU, GHU, CRU, slot_u, GI, GHI, CRI, slot_i = scratch
    CRU_flat, CRI_flat = _flat(CRU), _flat(CRI)
    base = 0.0
    lam2, lam_b2 = lam + lam, lam_b + lam_b
    scale = cast_like(1.0 / B, lr)
    start = lo
    while start < hi:
        stop = min(start + B, hi)
        n_u = 0
        n_i = 0
        for j in range(start, stop):
            u = users[j]
            i = items[j]
            if j + KB.PREFETCH_AHEAD < hi:
                ahead = users[j + KB.PREFETCH_AHEAD]
                if ahead != users[j + KB.PREFETCH_AHEAD - KB.STREAMS]:
                    prefetch_row(P, ahead, 8)
                prefetch_row(Q, items[j + KB.PREFETCH_AHEAD], 8)
            su, n_u = KB.claim_slot(slot_u, CRU_flat, u, n_u)
            si, n_i = KB.claim_slot(slot_i, CRI_flat, i, n_i)
            d, sp, sq = simd_dot_sqnorms(P, u, Q, i, 8)
            e = values[j] - mu - bu[u] - bi[i] - d
            base += e * e
            GHU[su, 1] += sq
            GHI[si, 1] += sp
            e2 = e + e
            simd_accumulate_pair(GU, su, GI, si, P, u, Q, i, -e2, 8)
            GHU[su, 0] -= e2
            GHI[si, 0] -= e2
        no_norms = bu[:0]  # this body carries no row norms
        KB.step_touched_rows_sgd(n_u, CRU, slot_u, bu, P, no_norms, False, GU, GHU, True, True, lr,
                                scale, lam2, lam_b2, 8, False)  # fmt: skip
        KB.step_touched_rows_sgd(n_i, CRI, slot_i, bi, Q, no_norms, False, GI, GHI, True, True, lr,
                                scale, lam2, lam_b2, 8, False)  # fmt: skip
        start = stop
    return base


@njit(**JIT)
def _run_interleaved(offs, B, users, items, values, mu, bu, bi, P, Q, lr, lam, lam_b, scratch):
    total = 0.0
    for b in range(offs.shape[0] - 1):
        total += _interleaved(offs[b], offs[b + 1], B, users, items, values, mu, bu, bi, P, Q,
                              lr, lam, lam_b, scratch)  # fmt: skip
    return total


def _variant(flags):
    @njit(**JIT)
    def run(offs, B, users, items, values, mu, bu, bi, P, Q, lr, lam, lam_b, scratch):
        total = 0.0
        NU = np.full(P.shape[0], cast_like(-1.0, mu))  # ‖p_u‖², not known yet
        for b in range(offs.shape[0] - 1):
            total += _body(offs[b], offs[b + 1], B, users, items, values, mu, bu, bi, P, Q, NU,
                           lr, lam, lam_b, scratch, flags)  # fmt: skip
        return total

    return run


# per-rating SGD's body for 8 chunks (64 float32 factors, as the batch variants above): a width
# kernel picks its variant in Python, so a kernel calling it names the variant
_SGD_BLOCK = K.sgd_block.variant(8)


@njit(**JIT)
def _sgd(offs, users, items, values, mu, bu, bi, P, Q, NU, NI, lr, lam, lam_b):
    total = 0.0
    for b in range(offs.shape[0] - 1):
        total += _SGD_BLOCK(offs[b], offs[b + 1], users, items, values, mu, bu, bi, P, Q, NU,
                            NI, lr, lam, lam_b, True)[0]  # fmt: skip
    return total


def _copy(x: np.ndarray) -> np.ndarray:
    """A copy that starts on a cache line, as a fit's rows do (a plain copy of a 256-byte row
    may span five lines, which slows every kernel and hides part of the gap between them)."""
    from fastmf.train.aligned import aligned_empty

    out = aligned_empty(x.shape, x.dtype)
    out[...] = x
    return out


def main(argv: list[str] | None = None) -> None:
    from fastmf import MatrixFactorization
    from fastmf.train.aligned import aligned_zeros

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="25M")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)
    train, *_ = load(args.data)
    B, k, f32 = 1024, 64, np.float32
    m = MatrixFactorization(n_factors=k, n_epochs=1, n_jobs=1, batch_size=B, random_state=0,
                            verbose=0).fit(train)  # fmt: skip
    blocks = m._state.blocks
    offs = np.asarray(blocks.block_offsets, np.int64)
    data = (blocks.users, blocks.items, blocks.values)
    start = (m.user_bias_, m.item_bias_, m.user_factors_, m.item_factors_)
    mu, lam, lam_b = f32(m.global_mean_), f32(m.reg_), f32(0.01)

    def scratch(n_rows):
        return (aligned_zeros((B, k), f32), np.zeros((B, 2), f32), np.zeros((B, 2), np.int32),
                np.full(n_rows, -1, np.int32))  # fmt: skip

    runs = {name: _variant(flags) for name, flags in VARIANTS.items()}
    runs[INTERLEAVED] = _run_interleaved
    times: dict[str, list[float]] = {"per-rating SGD (sgd_block)": [], **{n: [] for n in runs}}
    print(f"load at start: {os.getloadavg()}")
    for rep in range(args.reps + 1):  # round 0 compiles
        bu, bi, P, Q = (_copy(x) for x in start)
        NU = np.einsum("ij,ij->i", P, P).astype(np.float64)
        NI = np.einsum("ij,ij->i", Q, Q).astype(np.float64)
        t0 = time.process_time()
        _sgd(offs, *data, mu, bu, bi, P, Q, NU, NI, f32(0.03), lam, lam_b)
        if rep:
            times["per-rating SGD (sgd_block)"].append(time.process_time() - t0)
        for name, run in runs.items():
            bu, bi, P, Q = (_copy(x) for x in start)
            sc = (*scratch(P.shape[0]), *scratch(Q.shape[0]))
            t0 = time.process_time()
            run(offs, B, *data, mu, bu, bi, P, Q, f32(0.03 * B), lam, lam_b, sc)
            if rep:
                times[name].append(time.process_time() - t0)
    n = len(blocks.values)
    print(f"{args.data}, 64 factors, batch {B}, damped_sgd, 1 thread, CPU time, {args.reps} rounds")
    print("| variant | ns a rating, median | fastest |")
    print("|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {np.median(t) / n * 1e9:.1f} | {min(t) / n * 1e9:.1f} |")
    print(f"load at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
