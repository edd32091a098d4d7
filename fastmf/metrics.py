"""The old home of the metrics; they now live in :mod:`fastmf.evaluate.metrics`."""

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

__all__ = [
    "evaluate",
    "hit_rate",
    "mae",
    "ndcg_at_k",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
    "rmse",
]
