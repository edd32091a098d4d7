"""Training from a RatingStore gives the in-memory model bit for bit; serving, predicting and
evaluating from a store; the memory estimate before a fit from memory."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from fastmf import MatrixFactorization, RatingStore, load, metrics, save
from fastmf.data.store import split_store
from fastmf.train import checks

FITTED = ("user_factors_", "item_factors_", "user_bias_", "item_bias_")


def synthetic(n: int, n_users: int, n_items: int, seed: int = 0) -> pd.DataFrame:
    """Ratings of a hidden rank-4 model, on half stars."""
    rng = np.random.default_rng(seed)
    u = rng.integers(0, n_users, n)
    i = rng.integers(0, n_items, n)
    P = rng.normal(0, 0.5, (n_users, 4))
    Q = rng.normal(0, 0.5, (n_items, 4))
    r = 3.5 + np.einsum("ij,ij->i", P[u], Q[i]) + rng.normal(0, 0.3, n)
    df = pd.DataFrame({"user": u, "item": i, "rating": np.clip(np.round(r * 2) / 2, 0.5, 5)})
    return df.drop_duplicates(["user", "item"]).reset_index(drop=True)


def assert_same_model(a, b):
    for name in FITTED:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.global_mean_ == b.global_mean_
    assert np.array_equal(a.user_map_.ids, b.user_map_.ids)
    assert np.array_equal(a.item_map_.ids, b.item_map_.ids)
    pd.testing.assert_frame_equal(
        a.history_.drop(columns="seconds"), b.history_.drop(columns="seconds")
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    df = synthetic(120_000, 2_000, 600)
    folder = tmp_path_factory.mktemp("stores")
    whole = RatingStore.build(folder / "whole", df)
    parts = (df.iloc[i : i + 17_000] for i in range(0, len(df), 17_000))
    chunked = RatingStore.build(folder / "chunked", parts, chunk_size=5_000)
    return df, whole, chunked


BASE = dict(n_factors=32, n_epochs=3, n_jobs=2, verbose=0, random_state=7)


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"n_jobs": 1},
        {"batch_size": 128},
        {"optimizer": "adam", "batch_size": 16},
        {"biases": "fixed", "bias_damping": 3.0},
        {"record_batches": True, "batch_size": 8},
        {"dtype": "float64", "n_factors": 5},
    ],
)
def test_fit_from_a_store_is_the_in_memory_fit_bit_for_bit(data, extra):
    df, whole, chunked = data
    params = {**BASE, **extra}
    memory = MatrixFactorization(**params).fit(df)
    assert_same_model(memory, MatrixFactorization(**params).fit(whole))
    assert_same_model(memory, MatrixFactorization(**params).fit(chunked))


def test_the_model_does_not_depend_on_the_threads(data):
    _, whole, _ = data
    one = MatrixFactorization(**{**BASE, "n_jobs": 1}).fit(whole)
    two = MatrixFactorization(**BASE).fit(whole)
    assert_same_model(one, two)


def test_partial_fit_from_a_store_continues_the_fit(data):
    df, whole, _ = data
    memory = MatrixFactorization(**BASE).fit(df)
    memory.partial_fit(df)
    from_store = MatrixFactorization(**BASE).fit(whole)
    from_store.partial_fit(whole)
    mixed = MatrixFactorization(**BASE).fit(df)
    mixed.partial_fit(whole)  # a store of the same ratings continues a fit from memory
    assert_same_model(memory, from_store)
    assert_same_model(memory, mixed)
    fresh = MatrixFactorization(**BASE).partial_fit(whole)
    assert fresh.n_epochs_done_ == 1


def test_partial_fit_refuses_a_store_of_other_ids(data, tmp_path):
    df, whole, _ = data
    model = MatrixFactorization(**BASE).fit(whole)
    other = RatingStore.build(tmp_path / "o", synthetic(5_000, 300, 100, seed=1))
    with pytest.raises(ValueError, match="numbers its users and items unlike the fitted model"):
        model.partial_fit(other)


def test_validation_store_scores_as_the_frame_does(data, tmp_path):
    df, whole, _ = data
    train, test = split_store(whole, tmp_path / "tr", tmp_path / "te", random_state=0)
    frame = pd.concat([pd.DataFrame({"user": test.user_map.ids[u], "item": test.item_map.ids[i],
                       "rating": v}) for _, u, i, v in test.iter_blocks()])  # fmt: skip
    a = MatrixFactorization(**BASE).fit(train, validation=test)
    b = MatrixFactorization(**BASE).fit(train, validation=frame)
    np.testing.assert_allclose(a.history_["val_rmse"], b.history_["val_rmse"], rtol=1e-12)
    assert a.history_["val_rmse"].iloc[-1] < a.history_["val_rmse"].iloc[0]
    with pytest.raises(ValueError, match="split the store"):
        MatrixFactorization(**BASE, validation_fraction=0.1).fit(train)


def test_split_store_follows_the_rules(data, tmp_path):
    _, whole, _ = data
    train, test = split_store(whole, tmp_path / "a", tmp_path / "b", test_size=0.2, random_state=3)
    assert test.n_ratings == int(np.ceil(0.2 * whole.n_ratings))
    assert train.n_ratings + test.n_ratings == whole.n_ratings
    again = split_store(whole, tmp_path / "c", tmp_path / "d", test_size=0.2, random_state=3)
    assert again[1].layout_fingerprint == test.layout_fingerprint
    _, dropped = split_store(whole, tmp_path / "e", tmp_path / "f", test_size=0.5,
                             random_state=3, unknown="drop")  # fmt: skip
    assert set(dropped.user_map.ids) <= set(train.user_map.ids) | set(again[0].user_map.ids)


def test_seen_items_predict_and_evaluate_from_a_store(data, tmp_path):
    df, whole, _ = data
    memory = MatrixFactorization(**BASE).fit(df)
    model = MatrixFactorization(**BASE).fit(whole)
    assert np.array_equal(model.seen_indptr_, memory.seen_indptr_)
    assert np.array_equal(model.seen_items_, memory.seen_items_)
    u0 = df.user.iloc[0]
    assert model.recommend(u0, n=5).equals(memory.recommend(u0, n=5))
    # predict(store) is predict of its ratings, in the store's order
    frame = pd.concat([pd.DataFrame({"user": whole.user_map.ids[u], "item": whole.item_map.ids[i],
                       "rating": v}) for _, u, i, v in whole.iter_blocks()])  # fmt: skip
    assert np.array_equal(model.predict(whole), memory.predict(frame))
    got = metrics.evaluate(model, whole, k=5)
    want = metrics.evaluate(memory, frame, k=5)
    for key in ("rmse", "mae", "n_ratings", "precision", "recall", "ndcg", "hit_rate", "n_users"):
        assert got[key] == pytest.approx(want[key], rel=1e-9), key


def test_a_saved_store_model_embeds_what_it_needs(data, tmp_path):
    _, whole, _ = data
    model = MatrixFactorization(**BASE).fit(whole)
    path = tmp_path / "model.fastmf"
    save(model, path)
    assert str(whole.path).encode() not in path.read_bytes()
    assert str(whole.path).encode() not in pickle.dumps(model)
    loaded = load(path)
    u0 = whole.user_map.ids[0]
    assert loaded.recommend(u0, n=5).equals(model.recommend(u0, n=5))


def test_a_fit_from_memory_that_cannot_fit_says_so(data, monkeypatch):
    df, _, _ = data
    monkeypatch.setattr(checks, "available_memory", lambda: 1 << 20)
    with pytest.raises(
        MemoryError, match=r"needs about 0\.\d\d GiB .*1[0-9]{5} ratings.*RatingStore"
    ):
        MatrixFactorization(**BASE).fit(df)


def test_available_memory_reads_the_system():
    room = checks.available_memory()
    assert room is None or 0 < room <= checks.physical_memory()


@pytest.mark.slow
def test_two_million_ratings_from_frame_and_chunks_bit_for_bit(tmp_path):
    df = synthetic(2_000_000, 40_000, 4_000, seed=11)
    params = dict(n_factors=32, n_epochs=2, n_jobs=2, verbose=0, random_state=1)
    memory = MatrixFactorization(**params).fit(df)
    whole = RatingStore.build(tmp_path / "w", df)
    chunked = RatingStore.build(
        tmp_path / "c", (df.iloc[i : i + 250_000] for i in range(0, len(df), 250_000))
    )
    assert_same_model(memory, MatrixFactorization(**params).fit(whole))
    assert_same_model(memory, MatrixFactorization(**params).fit(chunked))


def test_reading_past_the_page_cache_trains_the_same_model(data, monkeypatch):
    df, whole, _ = data
    from fastmf.train import from_store

    monkeypatch.setattr(from_store, "available_memory", lambda: 1 << 20)
    model = MatrixFactorization(**BASE).fit(whole)
    assert model._state.blocks.drop_cache
    assert_same_model(MatrixFactorization(**BASE).fit(df), model)
