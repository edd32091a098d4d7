"""The sizes of a synthetic data set: taken from a MovieLens release's counts where not given,
and checked against what a data set without repeated pairs can hold."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastmf._validation import check_int
from fastmf.data.datasets.releases import MOVIELENS_SIZES

# A twin scaled down keeps ratings per user; its item count is raised where needed so that the
# rating matrix is at most this dense (small twins of large releases would be full otherwise).
_MAX_TWIN_DENSITY = 0.1


def resolve_sizes(
    n_users: Any, n_items: Any, n_ratings: Any, like: Any, min_user_ratings: Any
) -> tuple[int, int, int]:
    """Fill the sizes not given from ``like`` and check that they can be met."""
    min_user_ratings = check_int(min_user_ratings, "min_user_ratings", low=1)
    given = {"n_users": n_users, "n_items": n_items, "n_ratings": n_ratings}
    for name, value in given.items():
        if value is not None:
            check_int(value, name, low=1)
    if like is not None and not isinstance(like, str):
        raise TypeError(f"like must be a MovieLens release name, got {type(like).__name__}")
    if like is not None and like not in MOVIELENS_SIZES:
        raise ValueError(f"like must be one of {sorted(MOVIELENS_SIZES)}, got {like!r}")
    missing = [name for name, value in given.items() if value is None]
    if like is None and missing:
        if len(missing) < 3:
            raise ValueError(
                f"{', '.join(missing)} not given; give n_users, n_items and n_ratings together, "
                "or name a release with like='ml-25m' (say) to fill in the missing sizes"
            )
        like = "ml-100k"
    if missing:
        ref_r, ref_u, ref_i = MOVIELENS_SIZES[like]
        if n_ratings is not None:
            s = n_ratings / ref_r
        elif n_users is not None:
            s = n_users / ref_u
        elif n_items is not None:
            s = n_items / ref_i
        else:
            s = 1.0
        if n_ratings is None:
            n_ratings = max(1, round(ref_r * s))
        if n_users is None:
            n_users = max(1, min(round(ref_u * s), n_ratings // min_user_ratings))
        if n_items is None:
            dense = int(np.ceil(n_ratings / (n_users * _MAX_TWIN_DENSITY)))
            n_items = max(round(ref_i * s), min_user_ratings, min(dense, n_ratings))
    n_users, n_items, n_ratings = int(n_users), int(n_items), int(n_ratings)
    if n_items < min_user_ratings:
        raise ValueError(
            f"n_items={n_items} is below min_user_ratings={min_user_ratings}: every user must "
            "rate at least min_user_ratings distinct items; raise n_items or lower "
            "min_user_ratings"
        )
    if n_ratings < n_users * min_user_ratings:
        raise ValueError(
            f"n_ratings={n_ratings} is below n_users * min_user_ratings = "
            f"{n_users * min_user_ratings}; raise n_ratings or lower n_users or min_user_ratings"
        )
    if n_ratings > n_users * n_items:
        raise ValueError(
            f"n_ratings={n_ratings} exceeds n_users * n_items = {n_users * n_items} (each pair "
            "is rated at most once); lower n_ratings or raise n_users or n_items"
        )
    if n_ratings < n_items:
        raise ValueError(
            f"n_ratings={n_ratings} is below n_items={n_items} (every item gets a rating); "
            "raise n_ratings or lower n_items"
        )
    if n_users >= 2**31 or n_items >= 2**31:
        raise ValueError("n_users and n_items must be below 2**31 (int32 indices)")
    return n_users, n_items, n_ratings
