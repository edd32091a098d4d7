"""``RatingStore``: an opened store, read block by block with positioned reads."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from fastmf.data.blocks import Strata, block_mean, damped_fixed_biases
from fastmf.data.ids import IdMap
from fastmf.data.store import _files as F
from fastmf.data.store._errors import StoreCorruptError

Triple = tuple[np.ndarray, np.ndarray, np.ndarray]


class RatingStore:
    """Ratings on disk in the training layout (see ``fastmf.data.store``).

    Build one with :meth:`build`, open one with :meth:`open`; ``fit``, ``partial_fit``,
    ``validation=``, ``predict`` and ``metrics.evaluate`` accept it wherever they accept
    ratings, and read it block by block.
    """

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self.path = path
        self.manifest = manifest
        m = manifest
        self.n_ratings = int(m["n_ratings"])
        self.n_users = int(m["n_users"])
        self.n_items = int(m["n_items"])
        self.n_strata = int(m["n_strata"])
        self.has_timestamps = bool(m["has_timestamps"])
        self.mean = float.fromhex(m["mean"])
        self.rating_scale = (float(m["rating_scale"][0]), float(m["rating_scale"][1]))
        uids = F.ids_from_disk(F.load_small(path, "user_ids"), m["user_id_kind"])
        iids = F.ids_from_disk(F.load_small(path, "item_ids"), m["item_id_kind"])
        self.user_map, self.item_map = IdMap(uids), IdMap(iids)
        self.user_strata = Strata(F.load_small(path, "user_strata").astype(np.int64))
        self.item_strata = Strata(F.load_small(path, "item_strata").astype(np.int64))
        self.block_offsets = F.load_small(path, "block_offsets").astype(np.int64)
        self.bytes_read = 0  # bytes this object has read from the rating columns
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()
        self._check_layout()

    # ------------------------------------------------------------------ opening and building
    @classmethod
    def open(cls, path: str | os.PathLike[str], *, verify: bool = False) -> RatingStore:
        """Open the store at ``path``: its manifest and the size of every file are checked
        (``verify=True`` also reads every file against its checksum). Raises
        ``StoreCorruptError`` or ``StoreVersionError`` for a store it cannot trust."""
        folder = Path(path)
        manifest = F.read_manifest(folder)
        F.check_files(folder, manifest, verify=verify)
        try:
            return cls(folder, manifest)
        except (KeyError, TypeError) as exc:
            raise StoreCorruptError(
                f"the manifest of {folder} lacks or garbles {exc}; build the store again"
            ) from exc

    @classmethod
    def build(
        cls, path: str | os.PathLike[str], source: Any, *, duplicates: str = "error",
        chunk_size: int = 1 << 20,
    ) -> RatingStore:  # fmt: skip
        """Build a store at ``path`` from ``source`` and open it.

        ``source`` is a ratings DataFrame (user, item, rating[, timestamp]), an iterable of
        such DataFrames (read once), or a ratings file in any format ``load_movielens`` reads
        (its path, folder or zip; read ``chunk_size``-sized pieces at a time). Memory stays
        bounded whatever the size: a chunk, the write buffers and one block beyond the id maps.
        The build is atomic: on any error (NaN ratings, duplicate pairs with
        ``duplicates="error"``, ids of mixed types, a malformed chunk, a full disk) nothing is
        left at ``path``.
        """
        from fastmf.data.store.build import build as _build

        return cls.open(_build(path, source, duplicates=duplicates, chunk_size=chunk_size))

    def _check_layout(self) -> None:
        s = self.n_strata
        off = self.block_offsets
        ok = (
            off.shape == (s * s + 1,)
            and off[0] == 0
            and off[-1] == self.n_ratings
            and bool(np.all(np.diff(off) >= 0))
        )
        for strata, n in ((self.user_strata, self.n_users), (self.item_strata, self.n_items)):
            st = strata.starts
            ok = ok and st.shape == (s + 1,) and st[0] == 0 and st[-1] == n
            ok = ok and bool(np.all(np.diff(st) >= 0))
        ok = ok and len(self.user_map) == self.n_users and len(self.item_map) == self.n_items
        if not ok:
            raise StoreCorruptError(
                f"the layout of {self.path} does not fit its counts (block offsets, strata or "
                f"id maps); build the store again"
            )

    def __repr__(self) -> str:
        return (
            f"RatingStore({str(self.path)!r}, n_ratings={self.n_ratings}, "
            f"n_users={self.n_users}, n_items={self.n_items}, n_strata={self.n_strata})"
        )

    def __len__(self) -> int:
        return self.n_ratings

    def close(self) -> None:
        """Close the open files (reading again reopens them)."""
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        other = RatingStore.open(state["path"])
        self.__dict__.update(other.__dict__)
        other._fds = {}

    # ------------------------------------------------------------------ reading
    def _fd(self, column: str) -> int:
        with self._lock:
            fd = self._fds.get(column)
            if fd is None:
                fd = os.open(self.path / F.COLUMNS[column][0], os.O_RDONLY)
                self._fds[column] = fd
            return fd

    def _read(self, column: str, lo: int, hi: int, out: np.ndarray | None = None) -> np.ndarray:
        """Ratings lo..hi of a column, with one positioned read (into ``out`` when given)."""
        dtype = F.COLUMNS[column][1]
        arr = np.empty(hi - lo, dtype=dtype) if out is None else out
        view = memoryview(arr).cast("B")  # type: ignore[arg-type]  # arrays are buffers
        fd, pos, done = self._fd(column), lo * dtype.itemsize, 0
        while done < view.nbytes:
            got = os.preadv(fd, [view[done:]], pos + done)
            if got == 0:
                raise StoreCorruptError(f"{self.path / F.COLUMNS[column][0]} ends early")
            done += got
        self.bytes_read += view.nbytes
        return arr

    def read_positions(self, rows: np.ndarray) -> Triple:
        """The ratings at a few scattered positions of the block order, each read alone
        with readahead off (for samples: a scan reads blocks)."""
        out = []
        for column in ("users", "items", "values"):
            dtype = F.COLUMNS[column][1]
            fd = os.open(self.path / F.COLUMNS[column][0], os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
                raw = b"".join(os.pread(fd, dtype.itemsize, int(r) * dtype.itemsize) for r in rows)
            finally:
                os.close(fd)
            if len(raw) != rows.shape[0] * dtype.itemsize:
                raise StoreCorruptError(f"{self.path / F.COLUMNS[column][0]} ends early")
            out.append(np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("=")))
        return out[0], out[1], out[2]

    def block_range(self, b: int) -> tuple[int, int]:
        if not 0 <= b < self.n_strata**2:
            raise ValueError(f"block {b} is not in 0..{self.n_strata**2 - 1}")
        return int(self.block_offsets[b]), int(self.block_offsets[b + 1])

    def read_block(self, b: int) -> Triple:
        """Block b (= a*S + c): user rows, item rows (int32, model rows) and values (float32),
        in exactly the order the training kernel reads them."""
        lo, hi = self.block_range(b)
        out = self._read("users", lo, hi), self._read("items", lo, hi), self._read("values", lo, hi)
        self._check_rows(out[0], out[1], b)
        return out

    def read_blocks_into(
        self, blocks: Sequence[int], out: Triple, *, drop_cache: bool = False
    ) -> None:
        """Blocks ``blocks`` laid end to end into the arrays ``out`` (sized to fit). With
        ``drop_cache`` the pages read leave the page cache at once: for a store larger than
        memory, which would only evict them later under pressure."""
        pos = 0
        for b in blocks:
            lo, hi = self.block_range(int(b))
            n = hi - lo
            parts = [arr[pos : pos + n] for arr in out]
            for column, part in zip(("users", "items", "values"), parts, strict=True):
                self._read(column, lo, hi, part)
                if drop_cache and n:
                    size = F.COLUMNS[column][1].itemsize
                    os.posix_fadvise(self._fd(column), lo * size, n * size,
                                     os.POSIX_FADV_DONTNEED)  # fmt: skip
            self._check_rows(parts[0], parts[1], int(b))
            pos += n

    def _check_rows(self, users: np.ndarray, items: np.ndarray, b: int) -> None:
        """Rows of block b inside its strata: a kernel never sees a row outside the model."""
        if users.size == 0:
            return
        a, c = divmod(b, self.n_strata)
        us, is_ = self.user_strata.starts, self.item_strata.starts
        if (
            int(users.min()) < us[a]
            or int(users.max()) >= us[a + 1]
            or int(items.min()) < is_[c]
            or int(items.max()) >= is_[c + 1]
        ):
            raise StoreCorruptError(
                f"block {b} of {self.path} holds rows outside its strata: the store was "
                f"changed after the build; build it again"
            )

    def read_block_timestamps(self, b: int) -> np.ndarray:
        """The timestamps (int64 seconds) of block b, in ``read_block`` order."""
        if not self.has_timestamps:
            raise ValueError(f"the store at {self.path} holds no timestamps")
        lo, hi = self.block_range(b)
        return self._read("timestamps", lo, hi)

    def iter_blocks(
        self, blocks: Sequence[int] | None = None
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """(b, users, items, values) for each block in ``blocks`` (default: all, in order),
        the next block read on a thread while the caller works on this one."""
        order = list(range(self.n_strata**2)) if blocks is None else [int(b) for b in blocks]
        if not order:
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastmf-store") as pool:
            ahead = pool.submit(self.read_block, order[0])
            for j, b in enumerate(order):
                triple = ahead.result()
                if j + 1 < len(order):
                    ahead = pool.submit(self.read_block, order[j + 1])
                yield (b, *triple)

    def triples(self) -> Iterator[Triple]:
        """Every block's (users, items, values), in block order."""
        for _, u, i, v in self.iter_blocks():
            yield u, i, v

    # ------------------------------------------------------------------ what a fit needs
    def rating_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """The number of ratings of each user and of each item (int64, in model rows): read
        from the counts the build wrote, checked against the block offsets, or counted block
        by block for a store built before they were written."""
        files = self.manifest["files"]
        if all(f"{name}.npy" in files for name in F.COUNTS):
            for name in F.COUNTS:  # small files: their checksums are always checked
                if F.file_crc(self.path / f"{name}.npy") != files[f"{name}.npy"]["crc32"]:
                    raise StoreCorruptError(
                        f"{self.path / name}.npy does not match its checksum in the manifest: "
                        f"the file was changed after the build; build the store again"
                    )
            users, items = (F.load_small(self.path, name) for name in F.COUNTS)
            self._check_counts(users, items)
            return users.astype(np.int64), items.astype(np.int64)
        users = np.zeros(self.n_users, np.int64)
        items = np.zeros(self.n_items, np.int64)
        us, its, s = self.user_strata.starts, self.item_strata.starts, self.n_strata
        for b, u, i, _ in self.iter_blocks():
            a, c = divmod(b, s)
            users[us[a] : us[a + 1]] += np.bincount(u - us[a], minlength=int(us[a + 1] - us[a]))
            items[its[c] : its[c + 1]] += np.bincount(
                i - its[c], minlength=int(its[c + 1] - its[c])
            )
        return users, items

    def _check_counts(self, users: np.ndarray, items: np.ndarray) -> None:
        """The stored counts fit the layout: one per row, none negative, and each stratum's
        sum is the number of ratings its row (or column) of blocks holds."""
        s = self.n_strata
        sizes = np.diff(self.block_offsets).reshape(s, s) if s else np.zeros((0, 0), np.int64)
        for counts, n, strata, held in (
            (users, self.n_users, self.user_strata, sizes.sum(axis=1)),
            (items, self.n_items, self.item_strata, sizes.sum(axis=0)),
        ):
            ok = counts.shape == (n,) and counts.dtype.kind in "iu"
            ok = ok and bool(np.all(counts >= 0))
            if ok:
                running = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
                st = strata.starts
                ok = np.array_equal(running[st[1:]] - running[st[:-1]], held)
            if not ok:
                raise StoreCorruptError(
                    f"the rating counts of {self.path} do not fit its blocks (one count per "
                    f"user and per item, summing to each stratum's ratings); build the store again"
                )

    def recompute_mean(self) -> float:
        """μ summed again from the blocks (``mean`` holds it from the build)."""
        return block_mean(self.triples(), self.n_ratings)

    def fixed_biases(self, damping: float) -> tuple[np.ndarray, np.ndarray]:
        """Damped biases in model rows, exactly as ``fit(biases="fixed")`` sets them (three
        sequential passes over the store)."""
        passes = [self.triples() for _ in range(3)]
        return damped_fixed_biases(passes, self.mean, float(damping), self.n_users, self.n_items)

    @property
    def layout_fingerprint(self) -> str:
        """A string that is the same for two stores of the same ratings and layout."""
        files = self.manifest["files"]
        return ",".join(f"{k}:{files[k]['size']}:{files[k]['crc32']}" for k in sorted(files))
