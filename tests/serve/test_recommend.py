"""Top-n recommendations, similar items and users, and fold-in, against plain-numpy references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastmf.serve.topk as topk
from fastmf._kernels import ranking as rk
from fastmf.datasets.synthetic import synthetic
from fastmf.model import MatrixFactorization, NotFittedError
from fastmf.ratings import IdMap
from fastmf.recommend import (
    FoldedUser,
    Recommendations,
    fold_in,
    recommend,
    recommend_many,
    similar_items,
    similar_users,
)

# --------------------------------------------------------------------------- helpers


def hand_model(
    n_users: int = 40,
    n_items: int = 30,
    k: int = 4,
    *,
    dtype: str = "float64",
    seed: int = 0,
    user_ids: np.ndarray | None = None,
    item_ids: np.ndarray | None = None,
    max_seen: int = 12,
) -> MatrixFactorization:
    """A fitted-looking model built by setting attributes (no training)."""
    rng = np.random.default_rng(seed)
    m = MatrixFactorization(n_factors=k, dtype=dtype, verbose=0, reg=0.05)
    m.global_mean_ = 3.5
    m.user_bias_ = rng.normal(0, 0.2, n_users).astype(dtype)
    m.item_bias_ = rng.normal(0, 0.4, n_items).astype(dtype)
    m.user_factors_ = rng.normal(0, 0.5, (n_users, k)).astype(dtype)
    m.item_factors_ = rng.normal(0, 0.5, (n_items, k)).astype(dtype)
    m.user_map_ = IdMap(np.arange(100, 100 + n_users) if user_ids is None else user_ids)
    m.item_map_ = IdMap(np.arange(1000, 1000 + n_items) if item_ids is None else item_ids)
    seen = [
        np.sort(rng.choice(n_items, rng.integers(0, max_seen + 1), replace=False))
        for _ in range(n_users)
    ]
    m.seen_indptr_ = np.concatenate([[0], np.cumsum([len(s) for s in seen])]).astype(np.int64)
    m.seen_items_ = np.concatenate(seen).astype(np.int32)
    m.rating_scale_ = (0.5, 5.0)
    m.item_titles_ = None
    m.n_epochs_done_ = 0
    m.best_epoch_ = None
    return m


def reference_scores(m: MatrixFactorization) -> np.ndarray:
    """Every predicted rating, users x items, in float64."""
    P = m.user_factors_.astype(np.float64)
    Q = m.item_factors_.astype(np.float64)
    return (
        m.global_mean_
        + m.user_bias_.astype(np.float64)[:, None]
        + m.item_bias_.astype(np.float64)[None, :]
        + P @ Q.T
    )


def reference_topn(scores: np.ndarray, n: int, excluded: list[np.ndarray]) -> list[np.ndarray]:
    """Brute force: sort each row by score (ties: lower index first) after excluding items."""
    out = []
    for u in range(scores.shape[0]):
        row = scores[u].copy()
        row[excluded[u]] = -np.inf
        order = np.lexsort((np.arange(row.shape[0]), -row))
        order = order[np.isfinite(row[order])]
        out.append(order[:n])
    return out


def seen_of(m: MatrixFactorization) -> list[np.ndarray]:
    return [
        m.seen_items_[m.seen_indptr_[u] : m.seen_indptr_[u + 1]]
        for u in range(m.user_factors_.shape[0])
    ]


# --------------------------------------------------------------------------- kernels


def run_tiles(kernel, S, bias, excl_lists, k, cols):
    """Drive a tile kernel over S in tiles of ``cols`` columns, as recommend does."""
    m, n = S.shape
    excl_pos = np.concatenate([np.sort(e) for e in excl_lists] + [np.zeros(0)]).astype(np.int32)
    ends = np.cumsum([len(e) for e in excl_lists]).astype(np.int64)
    cursor = ends - np.array([len(e) for e in excl_lists], dtype=np.int64)
    hs = np.full((m, k), -np.inf, dtype=S.dtype)
    hi = np.full((m, k), -1, dtype=np.int32)
    for c0 in range(0, n, cols):
        tile = np.ascontiguousarray(S[:, c0 : c0 + cols])
        kernel(tile, np.ascontiguousarray(bias[c0 : c0 + cols]), c0, excl_pos, cursor, ends, hs, hi)
    rk.finish_rows(hs, hi)
    return hs, hi


def stable_top(row, k):
    order = np.lexsort((np.arange(row.shape[0]), -row))
    return order[np.isfinite(row[order])][:k]


@pytest.mark.parametrize("cols", [7, 64, 130, 1000])
def test_tile_kernel_matches_argsort_and_serial_twin(cols):
    rng = np.random.default_rng(1)
    S = rng.normal(size=(25, 300))
    bias = rng.normal(size=300)
    excl = [rng.choice(300, int(rng.integers(0, 40)), replace=False) for _ in range(25)]
    par = run_tiles(rk.topk_tile, S, bias, excl, 7, cols)
    ser = run_tiles(rk.topk_tile_serial, S, bias, excl, 7, cols)
    np.testing.assert_array_equal(par[0], ser[0])
    np.testing.assert_array_equal(par[1], ser[1])
    for r in range(25):
        row = S[r] + bias
        row[excl[r]] = -np.inf
        expected = stable_top(row, 7)
        np.testing.assert_array_equal(par[1][r], expected)
        np.testing.assert_array_equal(par[0][r], row[expected])


def test_tile_kernel_ties_go_to_lower_position_and_pads():
    S = np.zeros((1, 6), np.float32)
    bias = np.array([1, 2, 2, -np.inf, 2, 1], np.float32)
    for cols in (2, 6):
        hs, hi = run_tiles(rk.topk_tile, S, bias, [np.zeros(0, int)], 8, cols)
        np.testing.assert_array_equal(hi[0], [1, 2, 4, 0, 5, -1, -1, -1])
        np.testing.assert_array_equal(hs[0, :5], [2, 2, 2, 1, 1])
        assert np.all(np.isneginf(hs[0, 5:]))


@settings(max_examples=40, deadline=None)
@given(
    n_rows=st.integers(1, 6),
    n_cols=st.integers(1, 300),
    k=st.integers(1, 12),
    cols=st.integers(1, 300),
    seed=st.integers(0, 2**31 - 1),
    levels=st.integers(1, 5),
)
def test_tile_kernel_property(n_rows, n_cols, k, cols, seed, levels):
    """Any scores, with many ties (few distinct levels), any tiling and exclusions: the kernel
    equals a stable argsort."""
    rng = np.random.default_rng(seed)
    S = rng.integers(0, levels, (n_rows, n_cols)).astype(np.float64)
    excl = [rng.choice(n_cols, int(rng.integers(0, n_cols + 1)), replace=False) for _ in S]
    _hs, hi = run_tiles(rk.topk_tile_serial, S, np.zeros(n_cols), excl, k, cols)
    for r in range(n_rows):
        row = S[r].copy()
        row[excl[r]] = -np.inf
        expected = stable_top(row, k)
        np.testing.assert_array_equal(hi[r, : len(expected)], expected)
        assert np.all(hi[r, len(expected) :] == -1)


def test_rows_sorted_check():
    items = np.array([1, 5, 9, 2, 3, 0, 7], np.int32)
    assert topk.rows_sorted(items, np.array([0, 3, 5]), np.array([3, 5, 7]))
    assert topk.rows_sorted(items, np.array([3, 0]), np.array([5, 2]))
    assert not topk.rows_sorted(items, np.array([0]), np.array([4]))
    assert not topk.rows_sorted(items, np.array([5, 1]), np.array([6, 4]))
    pos, start, end = topk.exclusion_positions(
        np.arange(10), True, 10, np.array([1]), np.array([4]), items
    )
    assert pos[start[0] : end[0]].tolist() == [2, 5, 9]


# --------------------------------------------------------------------------- recommend


@pytest.mark.parametrize("exclude_seen", [True, False])
def test_recommend_many_matches_brute_force(exclude_seen):
    m = hand_model(n_users=60, n_items=45, k=5)
    n = 8
    recs = recommend_many(m, m.user_ids_, n=n, exclude_seen=exclude_seen)
    assert isinstance(recs, Recommendations)
    scores = reference_scores(m)
    excluded = seen_of(m) if exclude_seen else [np.zeros(0, int)] * 60
    expected = reference_topn(scores, n, excluded)
    for u in range(60):
        np.testing.assert_array_equal(recs.item_indices[u], expected[u])
        np.testing.assert_array_equal(recs.items[u], m.item_ids_[expected[u]])
        np.testing.assert_allclose(recs.scores[u], scores[u, expected[u]], rtol=0, atol=1e-12)
    assert not recs.fallback.any()
    assert (recs.counts == n).all()


def test_seen_items_never_come_back():
    m = hand_model(n_users=30, n_items=20, k=3, max_seen=15, dtype="float32")
    recs = recommend_many(m, m.user_ids_, n=20)
    for u, seen in enumerate(seen_of(m)):
        got = recs.item_indices[u][: recs.counts[u]]
        assert not set(got.tolist()) & set(seen.tolist())
        assert recs.counts[u] == 20 - len(seen)  # every unseen item is listed
        assert set(got.tolist()) | set(seen.tolist()) == set(range(20))


def test_unsorted_seen_lists_are_still_excluded():
    m = hand_model(n_users=20, n_items=40, max_seen=30)
    rng = np.random.default_rng(3)
    for u in range(20):  # shuffle each user's seen items in place
        a, b = m.seen_indptr_[u], m.seen_indptr_[u + 1]
        m.seen_items_[a:b] = rng.permutation(m.seen_items_[a:b])
    recs = recommend_many(m, m.user_ids_[::-1], n=40)
    for row, u in enumerate(range(19, -1, -1)):
        seen = m.seen_items_[m.seen_indptr_[u] : m.seen_indptr_[u + 1]]
        got = recs.item_indices[row][: recs.counts[row]]
        assert not set(got.tolist()) & set(seen.tolist())
        assert recs.counts[row] == 40 - len(seen)


def test_memory_does_not_grow_with_users_times_items(monkeypatch):
    """Peak memory of recommend_many stays far below one users x items score matrix."""
    import tracemalloc

    m = hand_model(n_users=3000, n_items=4000, k=8, dtype="float32", max_seen=20)
    recommend_many(m, m.user_ids_[:10], n=5)  # compile first
    monkeypatch.setattr(topk, "TILE_ROWS", 64)
    tracemalloc.start()
    recs = recommend_many(m, m.user_ids_, n=5)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    full = 3000 * 4000 * 4  # 48 MB
    outputs = recs.item_indices.nbytes + recs.scores.nbytes + recs.items.nbytes
    assert peak < full / 8, (peak, full)
    assert peak < 8 * 2**20 + 10 * outputs


def test_float32_scores_agree_with_float64_reference():
    m = hand_model(n_users=50, n_items=70, k=8, dtype="float32")
    recs = recommend_many(m, m.user_ids_, n=10)
    scores = reference_scores(m)
    expected = reference_topn(scores, 10, seen_of(m))
    for u in range(50):
        # The same top-10 scores (indices may swap only between near-ties of float32).
        np.testing.assert_allclose(
            np.sort(scores[u, recs.item_indices[u]]), np.sort(scores[u, expected[u]]), atol=1e-5
        )
        np.testing.assert_allclose(recs.scores[u], scores[u, recs.item_indices[u]], atol=1e-5)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_chunks_and_tiles_give_the_same_result(monkeypatch, n_jobs):
    m = hand_model(n_users=90, n_items=600, k=4, max_seen=300)
    m.set_params(n_jobs=n_jobs)
    whole = recommend_many(m, m.user_ids_, n=6)
    monkeypatch.setattr(topk, "TILE_ROWS", 16)  # 6 chunks of users, for the worker threads
    monkeypatch.setattr(topk, "TILE_BYTES", 1)  # 256-candidate tiles
    tiled = recommend_many(m, m.user_ids_, n=6)
    np.testing.assert_array_equal(whole.item_indices, tiled.item_indices)
    np.testing.assert_array_equal(whole.scores, tiled.scores)
    expected = reference_topn(reference_scores(m), 6, seen_of(m))
    for u in range(90):
        np.testing.assert_array_equal(tiled.item_indices[u], expected[u])


def test_recommend_one_user_frame_and_delegation():
    m = hand_model()
    m.item_titles_ = {iid: f"Movie {iid}" for iid in m.item_ids_[:10]}
    user = int(m.user_ids_[3])
    frame = recommend(m, user, n=5)
    assert list(frame.columns) == ["item", "score", "title", "fallback"]
    assert not frame["fallback"].any() and frame.attrs["fallback"] is False
    expected = reference_topn(reference_scores(m), 5, seen_of(m))[3]
    np.testing.assert_array_equal(frame["item"].to_numpy(), m.item_ids_[expected])
    for item, title in zip(frame["item"], frame["title"], strict=True):
        expected_title = m.item_titles_.get(item)
        assert title == expected_title if expected_title is not None else pd.isna(title)
    pd.testing.assert_frame_equal(m.recommend(user, n=5), frame)
    # a raw id given as text (as from a command line) finds the integer id
    pd.testing.assert_frame_equal(recommend(m, str(user), n=5), frame)


def test_unknown_user_gets_fallback_by_item_bias():
    m = hand_model()
    frame = recommend(m, "nobody", n=4)
    assert frame["fallback"].all() and frame.attrs["fallback"] is True
    expected = np.lexsort((np.arange(30), -m.item_bias_))[:4]
    np.testing.assert_array_equal(frame["item"].to_numpy(), m.item_ids_[expected])
    np.testing.assert_allclose(frame["score"], m.global_mean_ + m.item_bias_[expected])
    recs = recommend_many(m, [m.user_ids_[0], "nobody", -5], n=3)
    np.testing.assert_array_equal(recs.fallback, [False, True, True])
    long = recs.to_frame()
    assert list(long.columns) == ["user", "rank", "item", "score", "fallback"]
    assert long["rank"].tolist() == [1, 2, 3] * 3


def test_items_restricts_candidates():
    m = hand_model(n_items=30)
    subset = m.item_ids_[[3, 7, 7, 11, 20, 25]]
    recs = recommend_many(m, m.user_ids_, n=4, items=subset, exclude_seen=True)
    scores = reference_scores(m)
    allowed = np.array([3, 7, 11, 20, 25])
    for u, seen in enumerate(seen_of(m)):
        row = np.full(30, -np.inf)
        row[allowed] = scores[u, allowed]
        row[seen] = -np.inf
        order = np.lexsort((np.arange(30), -row))
        order = order[np.isfinite(row[order])][:4]
        np.testing.assert_array_equal(recs.item_indices[u][: recs.counts[u]], order)
    with pytest.raises(ValueError, match="unknown to the model"):
        recommend_many(m, m.user_ids_, items=[m.item_ids_[0], 999_999])


def test_short_lists_are_padded():
    m = hand_model(n_users=2, n_items=5, max_seen=0)
    m.seen_indptr_ = np.array([0, 4, 4], np.int64)
    m.seen_items_ = np.array([0, 1, 2, 4], np.int32)
    recs = recommend_many(m, m.user_ids_, n=3)
    assert recs.counts.tolist() == [1, 3]
    assert recs.items[0].tolist() == [m.item_ids_[3], -1, -1]
    assert np.isnan(recs.scores[0, 1:]).all()
    assert len(recs.to_frame()) == 4
    assert len(recommend(m, m.user_ids_[0], n=3)) == 1


def test_string_ids():
    users = np.array([f"u{j}" for j in range(40)], dtype=object)
    items = np.array([f"movie-{j}" for j in range(30)], dtype=object)
    m = hand_model(user_ids=users, item_ids=items)
    frame = recommend(m, "u7", n=3)
    expected = reference_topn(reference_scores(m), 3, seen_of(m))[7]
    assert frame["item"].tolist() == items[expected].tolist()


def test_bad_arguments():
    m = hand_model()
    with pytest.raises(TypeError, match="n must be an integer"):
        recommend(m, 100, n=2.5)
    with pytest.raises(ValueError, match="n must be >= 1"):
        recommend(m, 100, n=0)
    with pytest.raises(TypeError, match="users must be a sequence"):
        recommend_many(m, 100)
    with pytest.raises(NotFittedError):
        recommend(MatrixFactorization(), 1)


# --------------------------------------------------------------------------- similar


def cosine_reference(F: np.ndarray, row: int) -> np.ndarray:
    F = F.astype(np.float64)
    norms = np.linalg.norm(F, axis=1)
    return (F @ F[row]) / (np.where(norms > 0, norms, 1.0) * norms[row])


def test_similar_items_matches_numpy_cosine():
    m = hand_model(n_items=50, k=6)
    m.item_factors_[10] = 0.0  # a zero vector gets similarity 0
    m.item_titles_ = {m.item_ids_[j]: f"t{j}" for j in range(50)}
    frame = similar_items(m, m.item_ids_[4], n=7)
    sims = cosine_reference(m.item_factors_, 4)
    sims[4] = -np.inf
    expected = np.lexsort((np.arange(50), -sims))[:7]
    assert list(frame.columns) == ["item", "similarity", "title"]
    np.testing.assert_array_equal(frame["item"].to_numpy(), m.item_ids_[expected])
    np.testing.assert_allclose(frame["similarity"], sims[expected], atol=1e-12)
    assert m.item_ids_[4] not in frame["item"].tolist()
    pd.testing.assert_frame_equal(m.similar_items(m.item_ids_[4], n=7), frame)
    everything = similar_items(m, m.item_ids_[4], n=100)
    assert len(everything) == 49
    assert everything.loc[everything["item"] == m.item_ids_[10], "similarity"].item() == 0.0


def test_similar_users_matches_numpy_cosine():
    m = hand_model(n_users=35, k=5)
    frame = similar_users(m, m.user_ids_[2], n=5)
    sims = cosine_reference(m.user_factors_, 2)
    sims[2] = -np.inf
    expected = np.lexsort((np.arange(35), -sims))[:5]
    np.testing.assert_array_equal(frame["user"].to_numpy(), m.user_ids_[expected])
    np.testing.assert_allclose(frame["similarity"], sims[expected], atol=1e-12)


def test_similar_unknown_id_raises_key_error():
    m = hand_model()
    with pytest.raises(KeyError, match="unknown item 'x'"):
        similar_items(m, "x")
    with pytest.raises(KeyError, match="unknown user 7"):
        similar_users(m, 7)


# --------------------------------------------------------------------------- fold-in


@pytest.mark.parametrize("biases", ["learned", "fixed", "none"])
def test_fold_in_minimizes_the_objective(biases):
    """The solution zeroes the gradient of the user's objective (independent numpy check)."""
    m = hand_model(k=4)
    m.set_params(biases=biases, reg=0.07, reg_bias=0.03, bias_damping=5.0)
    rng = np.random.default_rng(5)
    idx = rng.choice(30, 9, replace=False)
    r = rng.uniform(1, 5, 9).round()
    fu = fold_in(m, dict(zip(m.item_ids_[idx], r, strict=True)))
    Q, bi = m.item_factors_[idx], m.item_bias_[idx]
    resid = r - (m.global_mean_ + fu.user_bias + bi + Q @ fu.user_factors)
    n = len(idx)
    grad_p = -2 * Q.T @ resid + 2 * 0.07 * n * fu.user_factors
    np.testing.assert_allclose(grad_p, 0, atol=1e-9)
    if biases == "learned":
        np.testing.assert_allclose(-2 * resid.sum() + 2 * 0.03 * n * fu.user_bias, 0, atol=1e-9)
    elif biases == "fixed":
        expected = (r - m.global_mean_ - bi).sum() / (n + 5.0)
        assert fu.user_bias == pytest.approx(expected, abs=1e-12)
    else:
        assert fu.user_bias == 0.0
    np.testing.assert_array_equal(fu.seen_items, np.sort(idx))


def test_folded_user_is_recommended_and_excludes_its_items():
    m = hand_model(k=4)
    ratings = pd.DataFrame({"item": m.item_ids_[[1, 4, 9, 12]], "rating": [5.0, 1.0, 4.0, 2.0]})
    fu = m.fold_in(ratings)
    assert isinstance(fu, FoldedUser)
    frame = recommend(m, fu, n=30)
    assert not set(frame["item"]) & set(ratings["item"])
    assert len(frame) == 26
    scores = m.global_mean_ + fu.user_bias + m.item_bias_ + m.item_factors_ @ fu.user_factors
    np.testing.assert_allclose(frame["score"], scores[m.item_map_.lookup(frame["item"])])
    np.testing.assert_allclose(fu.predict(m.item_ids_, clip=False), scores, rtol=0, atol=1e-12)
    mixed = recommend_many(m, [m.user_ids_[0], fu], n=3)
    assert mixed.items[1].tolist() == frame["item"].tolist()[:3]
    assert len(similar_users(m, fu, n=4)) == 4


def test_fold_in_input_errors():
    m = hand_model()
    with pytest.raises(TypeError, match="DataFrame"):
        fold_in(m, [(1000, 4.0)])
    with pytest.raises(ValueError, match="none of the 1 rated items are known"):
        fold_in(m, {"nope": 4.0})
    with pytest.raises(ValueError, match="one user at a time"):
        fold_in(m, pd.DataFrame({"user": [1, 2], "item": [1000, 1001], "rating": [4.0, 3.0]}))
    with pytest.raises(ValueError, match="repeat an item"):
        fold_in(m, pd.DataFrame({"item": [1000, 1000], "rating": [4.0, 3.0]}))
    with pytest.raises(ValueError, match="NaN"):
        fold_in(m, {1000: np.nan})
    with pytest.warns(UserWarning, match="1 of 2 rated items are unknown"):
        fu = fold_in(m, pd.Series({1000: 4.0, 5: 3.0}))
    assert fu.n_ignored == 1


def test_fold_in_predicts_held_out_ratings_as_well_as_training_with_them():
    """Users held out of training, folded in from 80% of their ratings, predict the other 20%
    about as well as a model trained with that 80%, and far better than the unknown-user
    fallback."""
    df = synthetic(500, 300, 40000, rank=8, noise=0.5, random_state=3)
    rng = np.random.default_rng(0)
    counts = df["user"].value_counts()
    held = rng.choice(counts.index[counts >= 40].to_numpy(), 30, replace=False)
    is_held = df["user"].isin(held).to_numpy()
    part = rng.random(len(df)) < 0.8
    fold_rows, test_rows = df[is_held & part], df[is_held & ~part]
    params = {
        "n_factors": 8,
        "n_epochs": 40,
        "learning_rate": 0.01,
        "reg": 0.05,
        "random_state": 0,
        "verbose": 0,
    }
    without = MatrixFactorization(**params).fit(df[~is_held])
    with_them = MatrixFactorization(**params).fit(pd.concat([df[~is_held], fold_rows]))

    pred = np.empty(len(test_rows))
    test_users = test_rows["user"].to_numpy()
    for user, rows in fold_rows.groupby("user"):
        folded = without.fold_in(rows)
        at = test_users == user
        pred[at] = folded.predict(test_rows["item"].to_numpy()[at])
    truth = test_rows["rating"].to_numpy()
    rmse_fold = np.sqrt(np.mean((pred - truth) ** 2))
    rmse_trained = np.sqrt(np.mean((with_them.predict(test_rows) - truth) ** 2))
    fallback = without.predict(test_rows.assign(user=-1))
    rmse_fallback = np.sqrt(np.mean((fallback - truth) ** 2))
    assert rmse_fold <= 1.05 * rmse_trained + 0.02, (rmse_fold, rmse_trained)
    assert rmse_fold < rmse_fallback - 0.15, (rmse_fold, rmse_fallback)


def test_real_fit_recommendations_match_brute_force():
    df = synthetic(120, 80, 4000, random_state=2)
    m = MatrixFactorization(n_factors=6, n_epochs=5, random_state=0, verbose=0).fit(df)
    recs = m.recommend_many(m.user_ids_, n=10)
    scores = reference_scores(m)
    expected = reference_topn(scores, 10, seen_of(m))
    for u in range(len(m.user_ids_)):
        np.testing.assert_allclose(
            np.sort(scores[u, recs.item_indices[u]]), np.sort(scores[u, expected[u]]), atol=1e-5
        )
        rated = set(df.loc[df["user"] == m.user_ids_[u], "item"])
        assert not rated & set(recs.items[u].tolist())
    # scores are the model's unclipped predictions
    frame = recs.to_frame()
    pred = m.predict(frame[["user", "item"]], clip=False)
    np.testing.assert_allclose(frame["score"], pred, atol=1e-5)
