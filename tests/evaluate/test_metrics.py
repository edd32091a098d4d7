"""RMSE, MAE and the ranking metrics, against plain-python references on small cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fastmf.datasets.synthetic import synthetic
from fastmf.evaluate.metrics import (
    evaluate,
    hit_rate,
    mae,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
    rmse,
)
from fastmf.model import MatrixFactorization

# --------------------------------------------------------------------------- references


def reference_metrics(recommended, relevant, k):
    """Plain python: the four metrics averaged over users with a relevant item."""
    rows = []
    for rec, rel in zip(recommended, relevant, strict=True):
        rel = set(rel)
        if not rel:
            continue
        top = [x for x in list(rec)[:k]]
        gains = [1.0 if x in rel else 0.0 for x in top]
        hits = sum(gains)
        dcg = sum(g / math.log2(r + 2) for r, g in enumerate(gains))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(rel))))
        rows.append((hits / k, hits / len(rel), dcg / idcg, float(hits > 0)))
    if not rows:
        return dict.fromkeys(("precision", "recall", "ndcg", "hit_rate"), math.nan)
    arr = np.array(rows)
    return dict(zip(("precision", "recall", "ndcg", "hit_rate"), arr.mean(axis=0), strict=True))


# --------------------------------------------------------------------------- rating errors


def test_rmse_and_mae_match_numpy():
    y = np.array([4.0, 3.5, 1.0, 5.0])
    p = np.array([3.0, 3.5, 2.5, 4.0])
    assert rmse(y, p) == pytest.approx(np.sqrt(np.mean((y - p) ** 2)))
    assert mae(y, p) == pytest.approx(1.0 / 4 * (1 + 0 + 1.5 + 1))
    assert rmse([2], [2]) == 0.0


def test_rating_error_inputs():
    with pytest.raises(ValueError, match="y_true has 2 values but y_pred has 3"):
        rmse([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="empty"):
        mae([], [])
    with pytest.raises(ValueError, match="y_pred has 1 NaN"):
        rmse([1.0], [np.nan])
    with pytest.raises(TypeError, match="numeric"):
        mae(["a"], [1.0])


# --------------------------------------------------------------------------- ranking, given lists


def test_hand_made_case_by_hand():
    recommended = [["a", "b", "c"], ["x", "y", "z"], ["p", "q"]]
    relevant = [{"b", "d"}, {"z"}, set()]
    k = 3
    # user 0: hit at rank 2; user 1: hit at rank 3; user 2 has nothing relevant: left out
    assert precision_at_k(recommended, relevant, k) == pytest.approx((1 / 3 + 1 / 3) / 2)
    assert recall_at_k(recommended, relevant, k) == pytest.approx((1 / 2 + 1) / 2)
    ndcg0 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    ndcg1 = (1 / math.log2(4)) / 1
    assert ndcg_at_k(recommended, relevant, k) == pytest.approx((ndcg0 + ndcg1) / 2)
    assert hit_rate(recommended, relevant, k) == 1.0
    assert hit_rate(recommended, relevant, 1) == 0.0


def test_random_lists_match_reference():
    rng = np.random.default_rng(4)
    for trial in range(20):
        n_users = int(rng.integers(1, 15))
        k = int(rng.integers(1, 8))
        recommended, relevant = [], []
        for _ in range(n_users):
            length = int(rng.integers(0, 10))
            recommended.append(list(rng.choice(30, length, replace=False)))
            relevant.append(set(rng.choice(30, int(rng.integers(0, 8)), replace=False).tolist()))
        ref = reference_metrics(recommended, relevant, k)
        got = {
            "precision": precision_at_k(recommended, relevant, k),
            "recall": recall_at_k(recommended, relevant, k),
            "ndcg": ndcg_at_k(recommended, relevant, k),
            "hit_rate": hit_rate(recommended, relevant, k),
        }
        for name in ref:
            np.testing.assert_allclose(got[name], ref[name], rtol=1e-12, err_msg=f"{trial} {name}")


def test_array_input_with_padding_and_int_ids():
    recommended = np.array([[5, 3, -1], [1, 2, 3]])
    relevant = [[3], [9, 2]]
    ref = reference_metrics([[5, 3], [1, 2, 3]], relevant, 3)
    assert precision_at_k(recommended, relevant, 3) == pytest.approx(ref["precision"])
    assert ndcg_at_k(recommended, relevant, 3) == pytest.approx(ref["ndcg"])


def test_no_relevant_anywhere_gives_nan_and_errors():
    assert math.isnan(recall_at_k([[1, 2]], [[]], 2))
    with pytest.raises(ValueError, match="recommended has 1 lists but relevant has 2"):
        precision_at_k([[1]], [[1], [2]], 1)
    with pytest.raises(ValueError, match="k must be >= 1"):
        ndcg_at_k([[1]], [[1]], 0)
    with pytest.raises(TypeError, match="relevant\\[0\\] must be a collection"):
        hit_rate([[1]], [1], 1)


# --------------------------------------------------------------------------- model-level


@pytest.fixture(scope="module")
def fitted():
    df = synthetic(150, 90, 6000, random_state=7)
    rng = np.random.default_rng(0)
    test = rng.random(len(df)) < 0.2
    train_df, test_df = df[~test].reset_index(drop=True), df[test].reset_index(drop=True)
    m = MatrixFactorization(n_factors=6, n_epochs=8, random_state=0, verbose=0).fit(train_df)
    return m, train_df, test_df


def brute_force_lists(m, train_df, users, k):
    """Each user's top k by numpy over all items not rated in train (ties: lower model row)."""
    scores = (
        m.global_mean_
        + m.user_bias_.astype(np.float64)[:, None]
        + m.item_bias_.astype(np.float64)[None, :]
        + m.user_factors_.astype(np.float64) @ m.item_factors_.astype(np.float64).T
    )
    out = []
    for user in users:
        u = m.user_map_.index_of(user)
        row = scores[u].copy()
        row[m.item_map_.lookup(train_df.loc[train_df["user"] == user, "item"].to_numpy())] = -np.inf
        order = np.lexsort((np.arange(row.shape[0]), -row))[:k]
        out.append(m.item_ids_[order].tolist())
    return out


def test_ranking_metrics_of_a_model_match_reference(fitted):
    m, train_df, test_df = fitted
    k = 5
    got = ranking_metrics(m, test_df, k=k, threshold=4.0)
    rel = test_df[test_df["rating"] >= 4.0]
    users = sorted(rel["user"].unique(), key=lambda u: m.user_map_.index_of(u))
    relevant = [set(rel.loc[rel["user"] == u, "item"]) for u in users]
    ref = reference_metrics(brute_force_lists(m, train_df, users, k), relevant, k)
    for name in ref:
        assert got[name] == pytest.approx(ref[name], abs=1e-12), name
    assert got["n_users"] == len(users) and got["n_users_skipped"] == 0
    # an explicit train set of the same ratings gives the same numbers
    again = ranking_metrics(m, test_df, k=k, train=train_df)
    for name in ref:
        assert again[name] == pytest.approx(got[name], abs=1e-12)
    per = ranking_metrics(m, test_df, k=k, per_user=True)
    assert list(per.columns) == [
        "user", "n_relevant", "hits", "precision", "recall", "ndcg", "hit_rate",
    ]  # fmt: skip
    assert per["precision"].mean() == pytest.approx(got["precision"])
    assert (per["n_relevant"].to_numpy() == [len(r) for r in relevant]).all()


def test_ranking_metrics_unknown_users_and_items(fitted):
    m, _train_df, test_df = fitted
    extra = pd.DataFrame(
        {"user": [10**6, m.user_ids_[0]], "item": [m.item_ids_[0], 10**6], "rating": [5.0, 5.0]}
    )
    got = ranking_metrics(m, pd.concat([test_df, extra]), k=5)
    assert got["n_users_skipped"] == 1
    per = ranking_metrics(m, pd.concat([test_df, extra]), k=5, per_user=True)
    base = ranking_metrics(m, test_df, k=5, per_user=True).set_index("user")
    row = per.set_index("user").loc[m.user_ids_[0]]
    # the unknown relevant item counts in n_relevant but is never hit
    assert row["n_relevant"] == base["n_relevant"].get(m.user_ids_[0], 0) + 1


def test_evaluate_reports_errors_and_ranking(fitted):
    m, _, test_df = fitted
    out = evaluate(m, test_df, k=10)
    pred = m.predict(test_df)
    truth = test_df["rating"].to_numpy()
    assert out["rmse"] == pytest.approx(np.sqrt(np.mean((pred - truth) ** 2)))
    assert out["mae"] == pytest.approx(np.mean(np.abs(pred - truth)))
    assert out["n_ratings"] == len(test_df)
    for name in ("precision", "recall", "ndcg", "hit_rate"):
        assert 0.0 <= out[name] <= 1.0
    with pytest.raises(ValueError, match="no column 'rating'"):
        evaluate(m, test_df.drop(columns="rating"))


def test_real_movielens_small_evaluation(movielens_small):
    """On ml-latest-small: a held-out RMSE in the expected band, and the ranking metrics of
    the model equal the brute-force reference on a sample of users."""
    df = movielens_small
    rng = np.random.default_rng(0)
    test = rng.random(len(df)) < 0.1
    train_df, test_df = df[~test], df[test]
    m = MatrixFactorization(
        n_factors=32, n_epochs=20, learning_rate=0.01, reg=0.05, random_state=0, verbose=0
    ).fit(train_df)
    out = evaluate(m, test_df, k=10)
    assert 0.80 < out["rmse"] < 0.90, out
    assert out["n_users"] > 500
    sample = rng.choice(test_df["user"].unique(), 40, replace=False)
    sub = test_df[test_df["user"].isin(sample)]
    got = ranking_metrics(m, sub, k=10)
    rel = sub[sub["rating"] >= 4.0]
    users = sorted(rel["user"].unique(), key=lambda u: m.user_map_.index_of(u))
    relevant = [set(rel.loc[rel["user"] == u, "item"]) for u in users]
    ref = reference_metrics(brute_force_lists(m, train_df, users, 10), relevant, 10)
    for name in ref:
        assert got[name] == pytest.approx(ref[name], abs=1e-12), name
