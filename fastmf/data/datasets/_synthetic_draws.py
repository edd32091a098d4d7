"""Who rates what, and when, in a synthetic data set: heavy-tailed user activity and item
popularity, each user's items drawn by popularity without replacement, every item rated, and
increasing timestamps within each user."""

from __future__ import annotations

import numpy as np

# No user rates more than this share of the items unless the requested density forces it.
_MAX_USER_SHARE = 0.8
# First and last timestamps of the MovieLens releases (1995-01-09 .. 2023-10-12), in seconds.
_T_FIRST, _T_LAST = 789_652_009, 1_697_164_000


def who_rates_what(
    rng: np.random.Generator,
    n_users: int,
    n_items: int,
    n_ratings: int,
    min_user_ratings: int,
    user_skew: float,
    item_skew: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (user, item) pairs rated, grouped by user, and the number of ratings of each user."""
    counts = user_counts(rng, n_users, n_items, n_ratings, min_user_ratings, user_skew)
    log_w = rng.normal(0.0, item_skew, n_items) if item_skew > 0 else np.zeros(n_items)
    users, items = sample_pairs(rng, counts, log_w)
    cover_every_item(rng, items, n_items)
    return users, items, counts


def user_counts(
    rng: np.random.Generator,
    n_users: int,
    n_items: int,
    n_ratings: int,
    min_user_ratings: int,
    user_skew: float,
) -> np.ndarray:
    """Ratings per user: the minimum plus a lognormal share of the rest, capped, summing exactly."""
    cap = max(min_user_ratings, int(_MAX_USER_SHARE * n_items))
    if cap * n_users < n_ratings:
        cap = n_items
    w = np.exp(rng.normal(0.0, user_skew, n_users)) if user_skew > 0 else np.ones(n_users)
    counts = np.full(n_users, min_user_ratings, dtype=np.int64)
    extra = n_ratings - int(counts.sum())
    while extra > 0:
        open_ = counts < cap
        p = np.where(open_, w, 0.0)
        counts += rng.multinomial(extra, p / p.sum())
        over = counts > cap
        extra = int((counts[over] - cap).sum())
        counts[over] = cap
    return counts


def sample_pairs(
    rng: np.random.Generator, counts: np.ndarray, log_w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's items, drawn by popularity without replacement; rows grouped by user."""
    n_items = log_w.shape[0]
    heavy = counts * 8 > n_items
    parts_u, parts_i = [], []
    light_users = np.flatnonzero(~heavy)
    if light_users.size:
        u, i = _sample_light(rng, light_users, counts[light_users], log_w)
        parts_u.append(u)
        parts_i.append(i)
    heavy_users = np.flatnonzero(heavy)
    if heavy_users.size:
        u, i = _sample_heavy(rng, heavy_users, counts[heavy_users], log_w)
        parts_u.append(u)
        parts_i.append(i)
    users = np.concatenate(parts_u)
    items = np.concatenate(parts_i)
    order = np.argsort(users, kind="stable")
    return users[order], items[order]


def _sample_light(
    rng: np.random.Generator, users: np.ndarray, need: np.ndarray, log_w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Successive sampling without replacement by drawing with replacement and keeping firsts.

    Draws a little more than each user needs, keeps the first occurrence of each (user, item)
    pair in draw order, and tops up the users still short. Keeping first occurrences in draw order
    is exactly sampling without replacement proportional to weight.
    """
    n_items = log_w.shape[0]
    cdf = np.cumsum(np.exp(log_w - log_w.max()))
    out_u, out_i = [], []
    have_u = np.empty(0, dtype=np.int32)
    have_i = np.empty(0, dtype=np.int32)
    need_of = np.zeros(int(users.max()) + 1, dtype=np.int64)
    need_of[users] = need
    pending, short = users, need
    factor = 1.15
    while pending.size:
        m = np.ceil(short * factor).astype(np.int64) + 1
        new_u = np.repeat(pending.astype(np.int32), m)
        draws = np.searchsorted(cdf, rng.random(new_u.shape[0]) * cdf[-1], side="right")
        new_i = np.minimum(draws, n_items - 1).astype(np.int32)
        cand_u = np.concatenate([have_u, new_u])
        cand_i = np.concatenate([have_i, new_i])
        if have_u.size:  # earlier accepted rows first within each user, then the new draws
            order = np.argsort(cand_u, kind="stable")
            cand_u, cand_i = cand_u[order], cand_i[order]
        key = cand_u.astype(np.int64) * n_items + cand_i
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        first = np.ones(key.shape[0], dtype=bool)
        first[1:] = sorted_key[1:] != sorted_key[:-1]
        keep = np.zeros(key.shape[0], dtype=bool)
        keep[order[first]] = True
        del key, order, sorted_key, first
        cand_u, cand_i = cand_u[keep], cand_i[keep]
        # Rank of each kept row within its user, in draw order; keep the first `need`.
        starts = np.flatnonzero(np.r_[True, cand_u[1:] != cand_u[:-1]])
        lengths = np.diff(np.r_[starts, cand_u.shape[0]])
        rank = np.arange(cand_u.shape[0]) - np.repeat(starts, lengths)
        ok = rank < need_of[cand_u]
        cand_u, cand_i = cand_u[ok], cand_i[ok]
        got = np.bincount(cand_u, minlength=need_of.shape[0])
        done_user = got >= need_of
        done_row = done_user[cand_u]
        out_u.append(cand_u[done_row])
        out_i.append(cand_i[done_row])
        have_u, have_i = cand_u[~done_row], cand_i[~done_row]
        pending = pending[~done_user[pending]]
        short = need_of[pending] - got[pending]
        factor *= 2.0
    return np.concatenate(out_u), np.concatenate(out_i)


def _sample_heavy(
    rng: np.random.Generator, users: np.ndarray, need: np.ndarray, log_w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sampling without replacement by popularity for users who rate many of the items.

    Uses the Gumbel top-k trick (exact), a block of users at a time, costing n_items per user.
    """
    n_items = log_w.shape[0]
    block = max(1, (1 << 22) // n_items)
    out_u, out_i = [], []
    for lo in range(0, users.shape[0], block):
        u = users[lo : lo + block]
        k = need[lo : lo + block]
        keys = log_w[None, :] + rng.gumbel(size=(u.shape[0], n_items))
        order = np.argsort(-keys, axis=1)
        take = np.arange(n_items)[None, :] < k[:, None]
        out_u.append(np.repeat(u, k).astype(np.int32))
        out_i.append(order[take].astype(np.int32))
    return np.concatenate(out_u), np.concatenate(out_i)


def cover_every_item(rng: np.random.Generator, items: np.ndarray, n_items: int) -> None:
    """Give every unrated item one rating, taken from a more popular item (in place).

    The taken rows are spares: never the only row of their item. Rows are grouped by user and no
    user rated an unrated item, so no duplicate pair can arise; user counts are unchanged.
    """
    item_counts = np.bincount(items, minlength=n_items)
    unrated = np.flatnonzero(item_counts == 0)
    if unrated.size == 0:
        return
    order = np.argsort(items, kind="stable")
    sorted_items = items[order]
    is_first = np.r_[True, sorted_items[1:] != sorted_items[:-1]]
    spare_rows = order[~is_first]
    # The first row of an item in user order is kept, so the spares are the later rows.
    take = rng.choice(spare_rows.shape[0], size=unrated.shape[0], replace=False)
    items[spare_rows[take]] = rng.permutation(unrated).astype(items.dtype)


def timestamps(rng: np.random.Generator, counts: np.ndarray) -> np.ndarray:
    """Increasing seconds within each user: a start time and a lognormal span, spread evenly."""
    n_users = counts.shape[0]
    span = np.exp(rng.normal(np.log(30 * 86_400.0), 2.5, n_users))
    span = np.clip(span, 60.0 * counts, 0.9 * (_T_LAST - _T_FIRST))
    start = _T_FIRST + rng.random(n_users) * (_T_LAST - _T_FIRST - span)
    # Sorted uniforms per user from exponential spacings: cumulative gaps over each user's total.
    gaps = rng.standard_exponential(int(counts.sum()))
    csum = np.cumsum(gaps)
    ends = np.cumsum(counts)
    before = np.r_[0.0, csum[ends[:-1] - 1]]
    total = csum[ends - 1] - before + rng.standard_exponential(n_users)
    user_of_row = np.repeat(np.arange(n_users), counts)
    frac = (csum - before[user_of_row]) / total[user_of_row]
    return (start[user_of_row] + frac * span[user_of_row]).astype(np.int64)
