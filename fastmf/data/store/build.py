"""Building a store in bounded memory, in three passes over the data on disk.

1. The source is read chunk by chunk; each chunk is checked, its ids get provisional codes
   (first seen, first numbered) and the coded chunk is spilled to disk. Counts per id are kept.
2. The ids are sorted (the order ``fit`` numbers them in), the strata drawn from the counts
   (``fastmf.data.blocks.balanced_strata``), and the spill is read back and dealt to one bucket
   file per block.
3. Each bucket is read alone, its duplicates found, laid out by ``fastmf.data.blocks`` and
   appended to the store's arrays; μ is summed block by block as it goes.

Memory beyond the id maps is a chunk, the buckets' write buffers and one block. Everything is
written into a hidden folder beside ``path`` that is renamed into place once the manifest is
written: a failed build leaves nothing behind.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fastmf._validation import check_choice
from fastmf.data._id_values import plain_value
from fastmf.data.blocks import balanced_strata, choose_n_strata, lay_out_block
from fastmf.data.ids import IdMap, normalize_ids
from fastmf.data.store import _files as F
from fastmf.data.store._errors import StoreBuildError
from fastmf.data.store._sources import chunks_of

CHUNK = 1 << 20  # ratings per chunk read from the source or the spill
BUCKET_BUFFER = 1 << 16  # write buffer of each bucket file, bytes


def build(
    path: str | os.PathLike[str], source: Any, *, duplicates: str = "error",
    chunk_size: int = CHUNK,
) -> Path:  # fmt: skip
    """Build the store of ``source`` at ``path`` (which must not exist); returns the path."""
    check_choice(duplicates, "duplicates", ("error", "last"))
    final = Path(path)
    if final.exists():
        raise FileExistsError(
            f"{final} already exists; remove it or choose another path for the new store"
        )
    final.parent.mkdir(parents=True, exist_ok=True)
    work = final.parent / f".{final.name}.building-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    try:
        spill = spill_source(chunks_of(source, chunk_size), work / "spill")
        n_dups, plan, scale = write_store(spill, work, duplicates, chunk_size)
        if n_dups:  # the last rating of each pair was kept: lay out the rest anew
            again = reread_as_spill(work, plan, spill.has_timestamps, scale, chunk_size)
            write_store(again, work, "error", chunk_size, dropped_before=n_dups)
        os.rename(work, final)
    except OSError as exc:
        shutil.rmtree(work, ignore_errors=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StoreBuildError(
                f"the disk filled up while building the store at {final} ({exc}); nothing was "
                f"left behind: free space (a store takes about 12 bytes a rating, twice that "
                f"while it is built) or build it elsewhere"
            ) from exc
        raise
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return final


# ---------------------------------------------------------------------------------------------
# pass 1: the source, spilled with provisional codes


class GrowingIds:
    """Provisional codes of the ids seen so far, numbered in the order first seen."""

    def __init__(self, column: str):
        self.column = column
        self.ids: np.ndarray | None = None
        self.map: IdMap | None = None
        self.kind = ""
        self.first_kind_chunk = 0

    def codes(self, raw: np.ndarray, k: int) -> np.ndarray:
        arr = normalize_ids(raw, column=self.column)
        kind = "integers" if arr.dtype.kind in "iu" else _object_kind(arr)
        if not self.kind:
            self.kind, self.first_kind_chunk = kind, k
        elif kind != self.kind and arr.size:
            raise TypeError(
                f"{self.column} ids of mixed types: chunk {self.first_kind_chunk} holds "
                f"{self.kind}, chunk {k} holds {kind}; give every chunk ids of one type "
                f"(convert them with .astype(str) or .astype('int64'))"
            )
        if self.map is None:
            out = np.full(arr.shape[0], -1, dtype=np.int32)
        else:
            out = self.map.lookup(arr, column=self.column)
        new = out < 0
        if new.any():
            fresh = pd.unique(arr[new])
            fresh = fresh.astype(np.int64) if kind == "integers" else fresh.astype(object)
            self.ids = fresh if self.ids is None else np.concatenate([self.ids, fresh])
            self.map = IdMap(self.ids)
            out[new] = self.map.lookup(arr[new], column=self.column)
        return out

    def __len__(self) -> int:
        return 0 if self.ids is None else int(self.ids.shape[0])


def _object_kind(arr: np.ndarray) -> str:
    if not arr.size:
        return ""
    is_str = np.fromiter((isinstance(x, str) for x in arr), dtype=bool, count=arr.size)
    if is_str.all():
        return "strings"
    if not is_str.any():
        return "integers"
    raise TypeError(
        "ids of mixed types in one chunk (strings and integers); convert them with .astype(str)"
    )


@dataclass
class Spill:
    """Rating columns on disk in provisional codes, with what pass 1 learned."""

    folder: Path
    user_ids: np.ndarray  # raw id of each provisional code
    item_ids: np.ndarray
    user_counts: np.ndarray  # int64 ratings per provisional code
    item_counts: np.ndarray
    n_ratings: int
    has_timestamps: bool
    low: float
    high: float
    files: dict[str, Path] = field(default_factory=dict)


def spill_source(chunks, folder: Path) -> Spill:
    """Pass 1: every chunk checked, coded and appended to the spill columns."""
    folder.mkdir()
    users, items = GrowingIds("user"), GrowingIds("item")
    writers: dict[str, F.ColumnWriter] = {}
    cu = np.zeros(0, np.int64)
    ci = np.zeros(0, np.int64)
    n, low, high, has_ts = 0, np.inf, -np.inf, None
    for k, chunk in enumerate(chunks):
        if has_ts is None:
            has_ts = chunk.timestamps is not None
            names = ["users", "items", "values"] + (["timestamps"] if has_ts else [])
            for name in names:
                writers[name] = F.ColumnWriter(folder / F.COLUMNS[name][0], F.COLUMNS[name][1])
        elif has_ts != (chunk.timestamps is not None):
            raise ValueError(
                f"chunk {k} of the source {'lacks' if has_ts else 'has'} a timestamp column "
                f"and chunk 0 {'has' if has_ts else 'lacks'} one; give every chunk the same "
                f"columns"
            )
        pu = users.codes(chunk.users, k)
        pi = items.codes(chunk.items, k)
        cu = _add_counts(cu, pu, len(users))
        ci = _add_counts(ci, pi, len(items))
        writers["users"].write(pu)
        writers["items"].write(pi)
        writers["values"].write(chunk.values)
        if has_ts:
            writers["timestamps"].write(chunk.timestamps)
        if chunk.values.size:
            low = min(low, float(chunk.values.min()))
            high = max(high, float(chunk.values.max()))
        n += int(chunk.values.size)
    for w in writers.values():
        w.close()
    if n == 0:
        raise ValueError("the source holds no ratings; a store needs at least one")
    files = {name: w.path for name, w in writers.items()}
    assert users.ids is not None and items.ids is not None  # n > 0: both have ids
    return Spill(folder, users.ids, items.ids, cu, ci, n, bool(has_ts), low, high, files)


def _add_counts(counts: np.ndarray, codes: np.ndarray, n: int) -> np.ndarray:
    if counts.shape[0] < n:
        counts = np.concatenate([counts, np.zeros(n - counts.shape[0], np.int64)])
    counts += np.bincount(codes, minlength=n)
    return counts


def read_columns(spill: Spill, lo: int, hi: int) -> dict[str, np.ndarray]:
    """Ratings lo..hi of the spill's columns."""
    out = {}
    for name, path in spill.files.items():
        dtype = F.COLUMNS[name][1]
        with open(path, "rb") as f:
            f.seek(lo * dtype.itemsize)
            out[name] = np.fromfile(f, dtype=dtype, count=hi - lo)
        if out[name].shape[0] != hi - lo:
            raise StoreBuildError(f"{path} ended early: the spill was changed during the build")
    return out


# ---------------------------------------------------------------------------------------------
# pass 2 and 3: the layout, the buckets and the store's arrays


@dataclass
class Plan:
    """Model rows and strata: the layout, as a function of the ratings alone."""

    user_row: np.ndarray  # model row of each provisional user code
    item_row: np.ndarray
    user_ids: np.ndarray  # raw id of each model row
    item_ids: np.ndarray
    user_starts: np.ndarray  # int64 (S + 1,)
    item_starts: np.ndarray
    user_stratum: np.ndarray  # int32 stratum of each model row
    item_stratum: np.ndarray

    @property
    def n_strata(self) -> int:
        return int(self.user_starts.shape[0] - 1)


def plan_of(spill: Spill) -> Plan:
    """Sort the ids (``fit`` numbers them so) and deal the rows to strata by count."""
    s = choose_n_strata(spill.n_ratings, len(spill.user_ids), len(spill.item_ids))
    sides = []
    for ids, counts in ((spill.user_ids, spill.user_counts), (spill.item_ids, spill.item_counts)):
        order = np.argsort(ids, kind="stable")  # provisional code of each sorted index
        position, strata = balanced_strata(counts[order], s)
        row = np.empty(ids.shape[0], dtype=np.int32)
        row[order] = position
        row_ids = np.empty_like(ids)
        row_ids[row] = ids
        sides.append((row, row_ids, strata.starts, strata.of_rows(ids.shape[0])))
    (ur, uids, us, ust), (ir, iids, is_, ist) = sides
    return Plan(ur, ir, uids, iids, us, is_, ust, ist)


def write_store(
    spill: Spill, work: Path, duplicates: str, chunk_size: int, dropped_before: int = 0
) -> tuple[int, Plan, tuple[float, float]]:
    """Passes 2 and 3 into ``work``; returns the number of duplicate ratings dropped (then the
    store is to be laid out again from its own arrays: no manifest is written), the plan and
    the ratings' range (``dropped_before``: duplicates an earlier pass dropped)."""
    plan = plan_of(spill)
    buckets = partition(spill, plan, work / "buckets", chunk_size)
    shutil.rmtree(spill.folder)
    files, n_kept, n_dups, total, offsets = lay_out_buckets(buckets, plan, work, duplicates)
    shutil.rmtree(buckets.folder)
    s = plan.n_strata
    uid, ukind = F.ids_for_disk(plan.user_ids)
    iid, ikind = F.ids_for_disk(plan.item_ids)
    files["user_ids.npy"] = F.save_small(work, "user_ids", uid)
    files["item_ids.npy"] = F.save_small(work, "item_ids", iid)
    files["user_strata.npy"] = F.save_small(work, "user_strata", plan.user_starts)
    files["item_strata.npy"] = F.save_small(work, "item_strata", plan.item_starts)
    files["block_offsets.npy"] = F.save_small(work, "block_offsets", offsets)
    sides = {"user": (plan.user_row, spill.user_counts), "item": (plan.item_row, spill.item_counts)}
    for side, (row, counts) in sides.items():  # the ratings of each model row
        files[f"{side}_counts.npy"] = F.save_small(work, f"{side}_counts", counts[np.argsort(row)])
    manifest = {
        "n_ratings": n_kept, "n_users": len(plan.user_ids), "n_items": len(plan.item_ids),
        "n_strata": s, "has_timestamps": spill.has_timestamps, "user_id_kind": ukind,
        "item_id_kind": ikind, "mean": (total / n_kept).hex() if n_kept else None,
        "rating_scale": [spill.low, spill.high], "files": files,
        "duplicates_dropped": n_dups + dropped_before,
    }  # fmt: skip
    if not n_dups:
        F.write_manifest(work, manifest)
    return n_dups, plan, (spill.low, spill.high)


@dataclass
class Buckets:
    folder: Path
    n_blocks: int
    has_timestamps: bool
    record: np.dtype


def _record(has_ts: bool) -> np.dtype:
    fields = [("u", "<i4"), ("i", "<i4"), ("v", "<f4")] + ([("t", "<i8")] if has_ts else [])
    return np.dtype(fields)


def partition(spill: Spill, plan: Plan, folder: Path, chunk_size: int) -> Buckets:
    """Pass 2: the spill read back in chunks, each rating appended to its block's bucket."""
    folder.mkdir()
    s = plan.n_strata
    rec = _record(spill.has_timestamps)
    out = [open(folder / f"{b}.bin", "wb", buffering=BUCKET_BUFFER) for b in range(s * s)]  # noqa: SIM115
    try:
        for lo in range(0, spill.n_ratings, chunk_size):
            cols = read_columns(spill, lo, min(lo + chunk_size, spill.n_ratings))
            u = plan.user_row[cols["users"]]
            i = plan.item_row[cols["items"]]
            block = plan.user_stratum[u].astype(np.int64) * s + plan.item_stratum[i]
            order = np.argsort(block, kind="stable")
            recs = np.empty(order.shape[0], dtype=rec)
            recs["u"], recs["i"], recs["v"] = u[order], i[order], cols["values"][order]
            if spill.has_timestamps:
                recs["t"] = cols["timestamps"][order]
            edges = np.searchsorted(block[order], np.arange(s * s + 1))
            for b in np.flatnonzero(np.diff(edges)):
                out[b].write(memoryview(recs[edges[b] : edges[b + 1]]).cast("B"))  # type: ignore[arg-type]
        for f in out:
            f.flush()
    finally:
        for f in out:
            f.close()
    return Buckets(folder, s * s, spill.has_timestamps, rec)


def lay_out_buckets(buckets: Buckets, plan: Plan, work: Path, duplicates: str):
    """Pass 3: each bucket alone, duplicates found, laid out and appended to the columns."""
    names = ["users", "items", "values"] + (["timestamps"] if buckets.has_timestamps else [])
    writers = {n: F.ColumnWriter(work / F.COLUMNS[n][0], F.COLUMNS[n][1]) for n in names}
    s = plan.n_strata
    offsets = np.zeros(s * s + 1, dtype=np.int64)
    total, n_dups = 0.0, 0
    try:
        for b in range(s * s):
            path = buckets.folder / f"{b}.bin"
            recs = np.fromfile(path, dtype=buckets.record)
            path.unlink()
            a, c = divmod(b, s)
            ua, ia = int(plan.user_starts[a]), int(plan.item_starts[c])
            order, dropped = _distinct(recs, ua, ia, int(plan.item_starts[c + 1]) - ia)
            if dropped and duplicates == "error":
                raise _duplicate_error(recs, order, plan, dropped)
            n_dups += dropped
            lu = (recs["u"][order] - ua).astype(np.int32)
            li = (recs["i"][order] - ia).astype(np.int32)
            n_u, n_i = int(plan.user_starts[a + 1]) - ua, int(plan.item_starts[c + 1]) - ia
            final = order[lay_out_block(lu, li, n_u, n_i)]
            values = recs["v"][final]
            writers["users"].write(recs["u"][final])
            writers["items"].write(recs["i"][final])
            writers["values"].write(values)
            if buckets.has_timestamps:
                writers["timestamps"].write(recs["t"][final])
            total += float(np.sum(values, dtype=np.float64))  # as fastmf.data.blocks.block_mean
            offsets[b + 1] = offsets[b] + final.shape[0]
    finally:
        entries = {F.COLUMNS[n][0]: w.close() for n, w in writers.items()}
    return entries, int(offsets[-1]), n_dups, total, offsets


def _distinct(recs: np.ndarray, ua: int, ia: int, n_i: int) -> tuple[np.ndarray, int]:
    """The records sorted by (user, item), keeping the last (in source order) of each pair,
    and how many were dropped."""
    key = (recs["u"].astype(np.int64) - ua) * max(n_i, 1) + (recs["i"].astype(np.int64) - ia)
    order = np.argsort(key, kind="stable")
    ks = key[order]
    if ks.shape[0] < 2 or not (ks[1:] == ks[:-1]).any():
        return order, 0
    last = np.ones(ks.shape[0], dtype=bool)
    last[:-1] = ks[1:] != ks[:-1]
    return order[last], int((~last).sum())


def _duplicate_error(recs, order, plan: Plan, dropped: int) -> ValueError:
    pairs = recs["u"].astype(np.int64) * (1 << 32) + recs["i"]
    vals, counts = np.unique(pairs, return_counts=True)
    u, i = divmod(int(vals[counts > 1][0]), 1 << 32)
    return ValueError(
        f"the source holds duplicate (user, item) pairs ({dropped} in one block), such as "
        f"({plain_value(plan.user_ids[u])!r}, {plain_value(plan.item_ids[i])!r}); pass "
        f"duplicates='last' to keep the last rating of each pair"
    )


def reread_as_spill(
    work: Path, plan: Plan, has_ts: bool, scale: tuple[float, float], chunk_size: int
) -> Spill:
    """The arrays just written, as the spill of a new layout (their codes are the plan's model
    rows), with the counts of what is left."""
    folder = work / "again"
    folder.mkdir()
    files = {}
    for name in ("users", "items", "values") + (("timestamps",) if has_ts else ()):
        files[name] = folder / F.COLUMNS[name][0]
        os.rename(work / F.COLUMNS[name][0], files[name])
    n = files["values"].stat().st_size // 4
    spill = Spill(folder, plan.user_ids, plan.item_ids, np.zeros(len(plan.user_ids), np.int64),
                  np.zeros(len(plan.item_ids), np.int64), n, has_ts, *scale, files)  # fmt: skip
    for lo in range(0, n, chunk_size):
        cols = read_columns(spill, lo, min(n, lo + chunk_size))
        spill.user_counts += np.bincount(cols["users"], minlength=len(plan.user_ids))
        spill.item_counts += np.bincount(cols["items"], minlength=len(plan.item_ids))
    return spill
