"""Next-item slices of MovieLens interaction sequences, as Zhang et al. (NeurIPS 2024, App. D.2) cut them.

Every rating is an interaction (explicit feedback read as implicit, as the paper does after Feng et
al.); a user's sequence is their items in time order (ties by item id). Users are split at random
into training (80%), validation (10%) and test (10%) users. A *slice* is one prediction: the
target is the item at position t of a sequence and the context is the up to ``MAX_CONTEXT`` = 69
items before it, most recent first (App. D.2: slices of length 70 at most, the first 69 items the
context and the 70-th the target). Training users give a slice at every position t >= 1 (a sliding
window); validation and test users give their first half as context, and the slices whose target
lies in the second half (App. D.2: "the first half as context and others as ground truth", one
target per slice here).

A context becomes a vector by pooling item representations over the paper's ten time windows of
[1, 1, 1, 2, 2, 2, 10, 10, 20, 20] items (most recent first): the mean representation of each
window, zero where the history is too short (the paper pads with zeros), concatenated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twostage_gym.core.checks import integer, nonnegative_int
from twostage_gym.datasets.movielens import MovieLensRatings

__all__ = [
    "MAX_CONTEXT",
    "MIN_INTERACTIONS",
    "TIME_WINDOWS",
    "SequenceSlices",
    "holdout_slices",
    "pool_windows",
    "split_users",
    "train_slices",
    "user_sequences",
]

MAX_CONTEXT = 69
"""The most items a context holds (a slice is at most 70 items long)."""

TIME_WINDOWS = (1, 1, 1, 2, 2, 2, 10, 10, 20, 20)
"""Items per time window, most recent first (they sum to ``MAX_CONTEXT``)."""

MIN_INTERACTIONS = 16
"""Users with at most 15 interactions are dropped (App. D.1); every MovieLens-100K user has 20 or more."""

_POOL_CHUNK = 2**20  # (slices x context) entries gathered at a time while pooling


@dataclass(frozen=True)
class SequenceSlices:
    """Next-item slices: each row a target and the items before it (most recent first).

    Attributes:
        history: int64 ``(n, MAX_CONTEXT)`` item ids, most recent first, -1 padding.
        targets: int64 ``(n,)`` the item to predict.
        users: int64 ``(n,)`` the user each slice comes from.
    """

    history: np.ndarray
    targets: np.ndarray
    users: np.ndarray

    def __len__(self) -> int:
        return int(self.targets.shape[0])


def user_sequences(data: MovieLensRatings) -> tuple[np.ndarray, np.ndarray]:
    """Every user's items in time order, as a CSR pair.

    Returns:
        ``(ptr, items)``: user u's sequence is ``items[ptr[u]:ptr[u + 1]]``; ties in time go to
        the lower item id, so the order is deterministic.
    """
    order = np.lexsort((data.items, data.timestamps, data.users))
    counts = np.bincount(data.users, minlength=data.n_users)
    ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return ptr, data.items[order].astype(np.int64)


def split_users(n_users: int, seed: int, fractions: tuple[float, float] = (0.1, 0.1)) -> dict[str, np.ndarray]:
    """A random split of users into ``train``, ``validation`` and ``test`` (App. D.2: 80/10/10).

    Args:
        n_users: how many users.
        seed: a non-negative integer.
        fractions: the validation and test shares; each share gets at least one user.

    Returns:
        Sorted int64 user indices per split.
    """
    n_users = integer("n_users", n_users, low=3)
    rng = np.random.default_rng(nonnegative_int("seed", seed))
    perm = rng.permutation(n_users)
    n_val = max(1, round(fractions[0] * n_users))
    n_test = max(1, round(fractions[1] * n_users))
    return {
        "validation": np.sort(perm[:n_val]),
        "test": np.sort(perm[n_val : n_val + n_test]),
        "train": np.sort(perm[n_val + n_test :]),
    }


def _slices(ptr: np.ndarray, items: np.ndarray, users: np.ndarray, first: np.ndarray) -> SequenceSlices:
    """Slices of ``users`` whose target position t (within the user's sequence) is >= ``first`` (per user)."""
    lengths = ptr[users + 1] - ptr[users]
    keep = lengths > first
    users, lengths, first = users[keep], lengths[keep], first[keep]
    per_user = lengths - first
    owner = np.repeat(np.arange(users.size), per_user)
    offset = np.arange(int(per_user.sum())) - np.repeat(np.cumsum(per_user) - per_user, per_user)
    t = first[owner] + offset  # target positions within the sequences
    start = ptr[users][owner]
    targets = items[start + t]
    back = np.arange(1, MAX_CONTEXT + 1)  # 1 = the item just before the target
    pos = t[:, None] - back[None, :]
    history = np.where(pos >= 0, items[start[:, None] + np.maximum(pos, 0)], -1)
    return SequenceSlices(history=history, targets=targets, users=users[owner])


def train_slices(ptr: np.ndarray, items: np.ndarray, users: np.ndarray) -> SequenceSlices:
    """A slice at every position t >= 1 of each training user's sequence (the sliding window)."""
    return _slices(ptr, items, np.asarray(users, dtype=np.int64), np.ones(len(users), dtype=np.int64))


def holdout_slices(ptr: np.ndarray, items: np.ndarray, users: np.ndarray) -> SequenceSlices:
    """Slices whose target lies in the second half of each held-out user's sequence."""
    users = np.asarray(users, dtype=np.int64)
    half = (ptr[users + 1] - ptr[users]) // 2
    return _slices(ptr, items, users, np.maximum(half, 1))


def pool_windows(representations: np.ndarray, history: np.ndarray) -> np.ndarray:
    """Contexts from histories: the mean representation over each of the ten time windows, concatenated.

    Args:
        representations: float ``(n_items, f)`` item representations.
        history: int64 ``(n, MAX_CONTEXT)`` item ids, most recent first, -1 padding.

    Returns:
        float32 ``(n, len(TIME_WINDOWS) * f)``; a window with no item is zero.
    """
    reps = np.asarray(representations, dtype=np.float64)
    n, f = history.shape[0], reps.shape[1]
    padded = np.concatenate([reps, np.zeros((1, f))])  # row -1: the padding
    bounds = np.concatenate([[0], np.cumsum(TIME_WINDOWS)[:-1]])
    out = np.empty((n, len(TIME_WINDOWS), f), dtype=np.float32)
    step = max(1, _POOL_CHUNK // max(1, MAX_CONTEXT * f))
    for i in range(0, n, step):  # chunks bound the (rows, 69, f) gather
        h = history[i : i + step]
        sums = np.add.reduceat(padded[h], bounds, axis=1)
        counts = np.add.reduceat((h >= 0).astype(np.float64), bounds, axis=1)
        out[i : i + step] = sums / np.maximum(counts, 1.0)[..., None]
    return out.reshape(n, -1)
