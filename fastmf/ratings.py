"""Old home of the ratings container and the id maps: they live in ``fastmf.data`` now."""

from fastmf.data.ids import IdMap, factorize_ids, normalize_ids
from fastmf.data.ratings import DUPLICATE_POLICIES, Ratings

__all__ = ["DUPLICATE_POLICIES", "IdMap", "Ratings", "factorize_ids", "normalize_ids"]
