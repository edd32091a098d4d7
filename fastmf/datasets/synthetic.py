"""Old home of the synthetic generator: it lives in ``fastmf.data.datasets.synthetic`` now."""

from fastmf.data.datasets.synthetic import MOVIELENS_SIZES, SyntheticTruth, synthetic

__all__ = ["MOVIELENS_SIZES", "SyntheticTruth", "synthetic"]
