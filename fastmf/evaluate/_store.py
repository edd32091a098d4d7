"""``metrics.evaluate`` on a RatingStore: read one user stratum at a time, never whole."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from fastmf.data.store import RatingStore
from fastmf.evaluate._ranking import RANKING_METRICS
from fastmf.train.from_store import row_maps


def evaluate_store(
    model: Any, store: RatingStore, k: int, threshold: float, train: pd.DataFrame | None,
    ranking_metrics: Callable[..., Any],
) -> dict[str, Any]:  # fmt: skip
    """RMSE, MAE and the ranking metrics of ``model`` on every rating of ``store``; the
    ranking metrics (``metrics.ranking_metrics``, per user) are computed one user stratum at a
    time (a user's ratings all lie in one)."""
    u_of, i_of = row_maps(model, store)
    low, high = model.rating_scale_
    s = store.n_strata
    sq = ab = 0.0
    frames, unknown_users = [], np.zeros(store.n_users, dtype=bool)
    for a in range(s):
        parts = []
        for _, u, i, v in store.iter_blocks(range(a * s, (a + 1) * s)):
            pred = np.clip(model._predict_rows(u_of[u], i_of[i]), low, high)
            err = pred - v
            sq += float(np.dot(err, err))
            ab += float(np.abs(err).sum())
            rel = v >= threshold
            parts.append((u[rel], i[rel], v[rel]))
        users = np.concatenate([p[0] for p in parts])
        if not users.size:
            continue
        unknown_users[users[u_of[users] < 0]] = True
        frame = pd.DataFrame({
            "user": store.user_map.ids[users],
            "item": store.item_map.ids[np.concatenate([p[1] for p in parts])],
            "rating": np.concatenate([p[2] for p in parts]),
        })  # fmt: skip
        frames.append(ranking_metrics(model, frame, k, threshold, train, per_user=True))
    n = store.n_ratings
    out: dict[str, Any] = {"rmse": math.sqrt(sq / n), "mae": ab / n, "n_ratings": n}
    per = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    for name in RANKING_METRICS:
        out[name] = float(per[name].mean()) if len(per) else math.nan
    out.update(k=k, threshold=threshold, n_users=len(per),
               n_users_skipped=int(unknown_users.sum()))  # fmt: skip
    return out
