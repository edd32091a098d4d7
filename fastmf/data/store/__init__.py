"""The on-disk rating store: ratings already in the training layout, for data larger than memory.

A store is a folder holding the ratings block by block, each block contiguous and in the order
the training kernels read it, with the id maps, the layout and a manifest (format version,
counts, sizes and checksums)::

    store = RatingStore.build(path, source, duplicates="error")  # DataFrame, chunks or a file
    store = RatingStore.open(path)             # sizes checked; verify=True checks contents too

    store.path                                 # pathlib.Path of the folder
    store.n_ratings, store.n_users, store.n_items, store.n_strata
    store.user_map, store.item_map             # IdMap of the model's rows, in model-row order
    store.user_strata, store.item_strata       # fastmf.data.blocks.Strata (train.layout.Strata)
    store.block_offsets                        # int64 (S*S + 1,); block b = a*S + c
    store.read_block(b)                        # (users int32, items int32, values float32), in
                                               # exactly the order the in-process kernel trains
    store.read_block_timestamps(b)             # int64, same order (when store.has_timestamps)
    store.iter_blocks(blocks=None)             # (b, users, items, values), read in order
    store.rating_counts()                      # (per user, per item) int64, from the build
    store.mean                                 # μ as the fit computes it
    store.fixed_biases(damping)                # (b_u, b_i) float64 in model rows, as fit sets them
    store.rating_scale                         # (low, high)

    train, test = split_store(store, train_path, test_path, test_size=0.1)  # block by block

A model trained from a store is bit for bit the one ``fit`` gives for the same ratings in
memory: both lay ratings out with ``fastmf.data.blocks`` and sum μ and the biases block by block.
Files: ``manifest.json``, ``users.i32``, ``items.i32``, ``values.f32``, ``timestamps.i64``
(optional), ``user_ids.npy``, ``item_ids.npy``, ``user_strata.npy``, ``item_strata.npy``,
``block_offsets.npy``, ``user_counts.npy``, ``item_counts.npy`` (a store built before they
were written counts its blocks instead); the big arrays are raw little-endian, one file per array.
"""

from fastmf.data.store._errors import (
    StoreBuildError,
    StoreCorruptError,
    StoreError,
    StoreVersionError,
)
from fastmf.data.store.split import split_store
from fastmf.data.store.store import RatingStore

__all__ = [
    "RatingStore",
    "StoreBuildError",
    "StoreCorruptError",
    "StoreError",
    "StoreVersionError",
    "split_store",
]
