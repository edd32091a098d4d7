"""The on-disk rating store: its layout against an independent numpy layout, against the
in-memory fit's, and what it keeps (ids, timestamps, μ, biases)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmf import MatrixFactorization, RatingStore
from fastmf._biases import damped_biases
from fastmf._kernels.sorting import STREAMS
from fastmf.data.blocks import balanced_strata, choose_n_strata
from fastmf.data.coerce import to_ratings
from fastmf.train.params import check_params, resolve_for_data
from fastmf.train.state import initialize


def ratings_frame(n: int, n_users: int, n_items: int, seed: int = 0, ts: bool = False):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "user": rng.integers(0, n_users, n) * 7 + 3,
            "item": rng.integers(0, n_items, n) * 5 + 1,
            "rating": rng.integers(1, 11, n).astype(np.float32) / 2,
        }
    )
    if ts:
        df["timestamp"] = rng.integers(10**9, 2 * 10**9, n)
    return df.drop_duplicates(["user", "item"]).reset_index(drop=True)


def in_memory_layout(df: pd.DataFrame):
    """The model a fit from memory starts from, and its block layout."""
    model = MatrixFactorization(n_factors=4, verbose=0, random_state=0)
    ratings = to_ratings(df)
    params = resolve_for_data(check_params(model), ratings)
    initialize(model, ratings, params, np.random.default_rng(0))
    return model, model._state.blocks


def all_blocks(store: RatingStore):
    parts = [store.read_block(b) for b in range(store.n_strata**2)]
    return tuple(np.concatenate([p[j] for p in parts]) for j in range(3))


def reference_layout(users, items, values, u_row, i_row, u_starts, i_starts):
    """The layout in plain numpy: each block sorted by (user row, item row), its STREAMS runs
    interleaved."""
    s = len(u_starts) - 1
    ur, ir = u_row[users], i_row[items]
    ua = np.searchsorted(u_starts, ur, side="right") - 1
    ic = np.searchsorted(i_starts, ir, side="right") - 1
    out = []
    for b in range(s * s):
        sel = np.flatnonzero(ua * s + ic == b)
        sel = sel[np.lexsort((ir[sel], ur[sel]))]
        n = sel.size
        run = n // STREAMS
        dest = np.arange(n)
        if run:
            stream = np.minimum(dest // run, STREAMS - 1)
            within = dest - stream * run
            dest = np.where(within < run, within * STREAMS + stream, run * STREAMS + within - run)
        placed = np.empty(n, dtype=np.int64)
        placed[dest] = sel
        out.append(placed)
    order = np.concatenate(out) if out else np.zeros(0, np.int64)
    return ur[order], ir[order], values[order]


def test_store_holds_the_layout_fit_builds_in_memory(tmp_path):
    df = ratings_frame(60_000, 900, 300)
    store = RatingStore.build(tmp_path / "s", df, chunk_size=7_000)
    model, blocks = in_memory_layout(df)
    users, items, values = all_blocks(store)
    assert np.array_equal(users, blocks.users)
    assert np.array_equal(items, blocks.items)
    assert np.array_equal(values, blocks.values)
    assert np.array_equal(store.block_offsets, blocks.block_offsets)
    assert np.array_equal(store.user_map.ids, model.user_map_.ids)
    assert np.array_equal(store.item_map.ids, model.item_map_.ids)
    assert store.mean == model.global_mean_
    assert store.recompute_mean() == store.mean
    assert store.mean == pytest.approx(df.rating.mean(), rel=1e-9)
    assert store.rating_scale == (0.5, 5.0)


def test_blocks_match_an_independent_numpy_layout(tmp_path):
    df = ratings_frame(20_000, 400, 150, seed=3)
    store = RatingStore.build(tmp_path / "s", df)
    # model rows: the store's id order; strata from its starts
    u_row = store.user_map.lookup(df.user.to_numpy())
    i_row = store.item_map.lookup(df.item.to_numpy())
    want = reference_layout(
        np.arange(len(df)), np.arange(len(df)), df.rating.to_numpy(np.float32),
        u_row, i_row, store.user_strata.starts, store.item_strata.starts,
    )  # fmt: skip
    got = all_blocks(store)
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g, w)


def test_strata_deal_rows_by_count_with_ties_by_row():
    counts = np.array([5, 9, 5, 1, 9, 5, 0, 2])
    position, strata = balanced_strata(counts, 3)
    # the numpy reference: rank by count (desc), ties by row; snake order over strata
    ranked = sorted(range(len(counts)), key=lambda r: (-counts[r], r))
    stratum = np.empty(len(counts), dtype=int)
    for rank, r in enumerate(ranked):
        lap, slot = divmod(rank, 3)
        stratum[r] = slot if lap % 2 == 0 else 2 - slot
    expect = sorted(range(len(counts)), key=lambda r: (stratum[r], r))
    assert [int(np.flatnonzero(position == p)[0]) for p in range(len(counts))] == expect
    assert strata.starts.tolist() == [0, *np.cumsum(np.bincount(stratum, minlength=3))]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 3_000), shuffle=st.booleans())
def test_layout_is_a_function_of_the_ratings_alone(tmp_path_factory, seed, n, shuffle):
    df = ratings_frame(n, 60, 40, seed=seed)
    other = df.sample(frac=1.0, random_state=seed) if shuffle else df.iloc[::-1]
    _, a = in_memory_layout(df)
    _, b = in_memory_layout(other)
    assert np.array_equal(a.users, b.users) and np.array_equal(a.items, b.items)
    assert np.array_equal(a.values, b.values)
    store = RatingStore.build(tmp_path_factory.mktemp("s") / "s", other, chunk_size=257)
    got = all_blocks(store)
    assert np.array_equal(got[0], a.users) and np.array_equal(got[2], a.values)


def test_chunks_and_frame_give_the_same_store(tmp_path):
    df = ratings_frame(30_000, 500, 200, seed=5)
    whole = RatingStore.build(tmp_path / "a", df)
    chunks = RatingStore.build(
        tmp_path / "b", (df.iloc[i : i + 3333] for i in range(0, len(df), 3333))
    )
    assert whole.layout_fingerprint == chunks.layout_fingerprint
    assert whole.n_strata == choose_n_strata(len(df), whole.n_users, whole.n_items)


def test_store_from_a_ratings_file_in_movielens_formats(tmp_path, monkeypatch):
    df = ratings_frame(5_000, 200, 90, seed=2, ts=True)
    csv = tmp_path / "ratings.csv"
    with open(csv, "w") as f:
        f.write("userId,movieId,rating,timestamp\n")
        for r in df.itertuples():
            f.write(f"{r.user},{r.item},{r.rating:g},{r.timestamp}\n")
    udata = tmp_path / "u.data"
    with open(udata, "w") as f:
        for r in df.itertuples():
            f.write(f"{r.user}\t{r.item}\t{int(r.rating * 2) // 2 or 1}\t{r.timestamp}\n")
    monkeypatch.setattr("fastmf.data.store._sources.FILE_CHUNK_BYTES", 4096)  # many pieces
    from_file = RatingStore.build(tmp_path / "f", csv)
    from_frame = RatingStore.build(tmp_path / "d", df)
    assert from_file.layout_fingerprint == from_frame.layout_fingerprint
    assert RatingStore.build(tmp_path / "u", udata).n_ratings == len(df)


def test_timestamps_follow_their_ratings(tmp_path):
    df = ratings_frame(8_000, 150, 70, seed=4, ts=True)
    store = RatingStore.build(tmp_path / "s", df)
    assert store.has_timestamps
    lookup = {(u, i): t for u, i, t in zip(df.user, df.item, df.timestamp, strict=True)}
    for b in (0, 5, store.n_strata**2 - 1):
        u, i, _ = store.read_block(b)
        ts = store.read_block_timestamps(b)
        raw = zip(store.user_map.ids[u], store.item_map.ids[i], ts, strict=True)
        assert all(lookup[(x, y)] == t for x, y, t in raw)


def test_fixed_biases_are_the_one_sweep_damped_biases(tmp_path):
    df = ratings_frame(20_000, 300, 120, seed=6)
    store = RatingStore.build(tmp_path / "s", df)
    b_u, b_i = store.fixed_biases(4.0)
    r = to_ratings(df)
    ref_u, ref_i = damped_biases(r.users, r.items, r.values, store.mean, 4.0, 1)
    # the reference is in the container's rows: map them to the store's
    u_rows = store.user_map.lookup(r.user_map.ids)
    i_rows = store.item_map.lookup(r.item_map.ids)
    np.testing.assert_allclose(b_u[u_rows], ref_u, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b_i[i_rows], ref_i, rtol=1e-10, atol=1e-12)


def test_duplicates_last_keeps_the_last_rating_as_fit_does(tmp_path):
    df = ratings_frame(10_000, 200, 80, seed=8)
    again = df.iloc[:700].assign(rating=np.float32(5.0))
    both = pd.concat([df, again], ignore_index=True)
    store = RatingStore.build(tmp_path / "s", both, duplicates="last", chunk_size=1000)
    assert store.n_ratings == len(df)
    _, blocks = in_memory_layout(pd.concat([df.iloc[700:], again], ignore_index=True))
    got = all_blocks(store)
    assert np.array_equal(got[0], blocks.users) and np.array_equal(got[2], blocks.values)


def test_string_ids_round_trip(tmp_path):
    df = ratings_frame(3_000, 80, 40, seed=9)
    df = df.assign(user="u" + df.user.astype(str), item="i" + df.item.astype(str))
    store = RatingStore.build(tmp_path / "s", df)
    again = RatingStore.open(tmp_path / "s", verify=True)
    assert list(again.user_map.ids) == list(store.user_map.ids)
    assert all(isinstance(x, str) for x in again.user_map.ids)
    model, _ = in_memory_layout(df)
    assert list(model.user_map_.ids) == list(store.user_map.ids)


def test_iter_blocks_reads_in_the_asked_order(tmp_path):
    store = RatingStore.build(tmp_path / "s", ratings_frame(5_000, 100, 50))
    order = [3, 0, 7]
    got = list(store.iter_blocks(order))
    assert [g[0] for g in got] == order
    for b, u, _, v in got:
        ref = store.read_block(b)
        assert np.array_equal(u, ref[0]) and np.array_equal(v, ref[2])
