"""Regret and its stage decomposition (Hron et al. 2021, Eq. 1), and shared metric helpers.

R = R^N + R^R per round, with R^N = f*(a*) - max_{a in C_t} f*(a) the nominator regret and
R^R = max_{a in C_t} f*(a) - f*(a_t) the ranker regret. ``regret`` is defined as their sum, so
the identity holds exactly in floating point.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from twostage_gym.core.checks import integer

__all__ = [
    "ORACLE_INFO_KEYS",
    "log_checkpoints",
    "precision_at_k",
    "public_info",
    "recall_at_k",
    "round_summary",
    "stage_regret",
    "top_k_items",
]

ORACLE_INFO_KEYS = frozenset(
    {
        "expected_reward",
        "optimal_expected_reward",
        "regret",
        "nominator_regret",
        "ranker_regret",
        "topic_regret",
        "item_regret",
        "reachable_expected_reward",
        "best_item_reachable",
        "best_candidate",
        "optimal_item",
        "recall",
        "lsr_gap",
        "positive",
    }
)
"""Keys of ``info`` that reveal the true reward model; learners in ``agents`` never read them."""


def stage_regret(mean: np.ndarray, candidates: np.ndarray, chosen: np.ndarray | int) -> dict[str, np.ndarray]:
    """Expected regret of one round (or a batch of rounds), split by stage.

    Args:
        mean: expected reward of every item, shape (..., |A|).
        candidates: the candidate set's item ids, shape (..., N).
        chosen: the served item id, shape (...).

    Returns:
        float64 arrays (numpy scalars for a single round) keyed ``expected_reward``,
        ``optimal_expected_reward``, ``regret``, ``nominator_regret``, ``ranker_regret``, and
        int64 ``best_candidate`` and ``optimal_item``.
    """
    if mean.ndim == 1:
        # One round: plain indexing is several times faster than take_along_axis, and exact.
        optimal_item = mean.argmax()
        cand_mean = mean[candidates]
        best_pos = cand_mean.argmax()
        optimal, best, served = mean[optimal_item], cand_mean[best_pos], mean[chosen]
        best_candidate = candidates[best_pos]
    else:
        chosen = np.asarray(chosen)
        optimal_item = mean.argmax(axis=-1)
        optimal = _pick(mean, optimal_item)
        cand_mean = np.take_along_axis(mean, candidates, -1)
        best_pos = cand_mean.argmax(axis=-1)
        best = _pick(cand_mean, best_pos)
        served = _pick(mean, chosen)
        best_candidate = _pick(candidates, best_pos)
    nominator_regret = optimal - best
    ranker_regret = best - served
    return {
        "expected_reward": served,
        "optimal_expected_reward": optimal,
        "regret": nominator_regret + ranker_regret,
        "nominator_regret": nominator_regret,
        "ranker_regret": ranker_regret,
        "best_candidate": best_candidate,
        "optimal_item": optimal_item,
    }


def _pick(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """values[..., index] along the last axis."""
    return np.take_along_axis(values, index[..., None], -1)[..., 0]


def public_info(info: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``info`` without the oracle keys (and, for a vector env, their ``_key`` masks)."""
    return {k: v for k, v in info.items() if k.removeprefix("_") not in ORACLE_INFO_KEYS}


def log_checkpoints(steps: int, num: int = 20) -> np.ndarray:
    """Log-spaced step counts in [1, steps] (unique, increasing, ``steps`` included)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return np.unique(np.round(np.geomspace(1, steps, num)).astype(np.int64))


def round_summary(t: int, info: Mapping[str, Any] | None) -> str:
    """One line for ``render``: round ``t``'s candidate set, served item(s) and regret decomposition.

    The served part is ``chosen_item`` (one item) or ``ranking`` (the L items a late-stage ranker showed).
    """
    if info is None:
        return f"round {t}: no item served yet"
    if "chosen_item" in info:
        served = f"served item {int(info['chosen_item'])}"
    else:
        served = f"served items {np.asarray(info['ranking']).tolist()}"
    return (
        f"round {t}: candidates {np.asarray(info['candidates']).tolist()} -> {served}; "
        f"expected reward {float(info['expected_reward']):.3f} (optimal {float(info['optimal_expected_reward']):.3f}); "
        f"regret {float(info['regret']):.3f} = nominator {float(info['nominator_regret']):.3f} "
        f"+ ranker {float(info['ranker_regret']):.3f}"
    )


# -- retrieval metrics: precision@K and recall@K (Hron et al. 2021, Sec. 4, Fig. 5) ----------
#
# Offline evaluation of a retriever on multi-label data: each row (a user) has a set of positive
# items; the retriever returns K distinct items. precision@K = hits / K and recall@K =
# hits / (number of positives). Rows with no positive score 0 in both (Fig. 5's convention:
# about 5.5% of its test set), so the mean over rows is over *all* rows, not only the rows
# where recall is defined.


def top_k_items(scores: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` highest-scoring items of every row, best first.

    Args:
        scores: ``(m, |A|)`` real scores (NaN refused: it would sort arbitrarily).
        k: K, in [1, |A|].

    Returns:
        ``(m, k)`` int64 item ids. Ties go to the lower item id (a stable sort), so the result
        is deterministic.

    Raises:
        ValueError: naming ``scores`` or ``k``.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] == 0:
        raise ValueError(f"scores must be a 2-D (rows, items) array with at least one item, got shape {scores.shape}")
    if scores.dtype.kind not in "iuf":
        raise ValueError(f"scores must be real numbers, got dtype {scores.dtype}")
    if np.isnan(scores).any():
        raise ValueError("scores must not contain NaN")
    k = integer("k", k, 1, scores.shape[1])
    m = scores.shape[0]
    # O(|A|) per row: the k-th largest score, every item above it, and then the lowest-id items
    # tied with it (argpartition alone would cut a tie at an arbitrary item).
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
    above = scores > kth[:, None]
    tied = scores == kth[:, None]
    need = k - above.sum(axis=1)
    take = above | (tied & (np.cumsum(tied, axis=1) <= need[:, None]))
    ids = np.nonzero(take)[1].reshape(m, k)  # row by row, in increasing id
    order = np.argsort(-np.take_along_axis(scores, ids, 1), axis=1, kind="stable")
    top = np.take_along_axis(ids, order, 1)
    return top.astype(np.int64, copy=False)


def _hits(retrieved: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated ``(retrieved, labels)`` and the hits per row."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a 2-D (rows, items) array, got shape {labels.shape}")
    if labels.dtype != bool:
        if labels.dtype.kind not in "iu" or not np.isin(labels, (0, 1)).all():
            raise ValueError(f"labels must be booleans (or 0/1 integers), got dtype {labels.dtype}")
        labels = labels.astype(bool)
    retrieved = np.asarray(retrieved)
    if retrieved.ndim != 2 or retrieved.shape[0] != labels.shape[0] or retrieved.shape[1] == 0:
        raise ValueError(
            f"retrieved must be a (rows, K) array of item ids with the rows of labels ({labels.shape[0]}) "
            f"and K >= 1, got shape {retrieved.shape}"
        )
    if retrieved.dtype.kind not in "iu":
        raise ValueError(f"retrieved must hold integer item ids, got dtype {retrieved.dtype}")
    if retrieved.size and (retrieved.min() < 0 or retrieved.max() >= labels.shape[1]):
        raise ValueError(f"retrieved has item ids outside [0, n_items={labels.shape[1]})")
    ordered = np.sort(retrieved, axis=1)
    if (ordered[:, 1:] == ordered[:, :-1]).any():
        # A repeated item would count its hit twice.
        row = int(np.argmax((ordered[:, 1:] == ordered[:, :-1]).any(axis=1)))
        raise ValueError(f"retrieved lists an item twice in row {row}: {retrieved[row].tolist()}")
    hits = np.take_along_axis(labels, retrieved.astype(np.int64, copy=False), 1).sum(axis=1)
    return retrieved, labels, hits


def precision_at_k(retrieved: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """precision@K of every row: the share of the K retrieved items that are positive.

    Args:
        retrieved: ``(m, K)`` distinct item ids per row (e.g. :func:`top_k_items`).
        labels: ``(m, |A|)`` booleans (or 0/1 integers), True where the item is positive.

    Returns:
        ``(m,)`` float64 in [0, 1]; a row with no positive scores 0.

    Raises:
        ValueError: naming ``retrieved`` or ``labels``.
    """
    retrieved, _, hits = _hits(retrieved, labels)
    return hits / retrieved.shape[1]


def recall_at_k(retrieved: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """recall@K of every row: the share of the row's positives among the K retrieved items.

    Args:
        retrieved: ``(m, K)`` distinct item ids per row.
        labels: ``(m, |A|)`` booleans (or 0/1 integers).

    Returns:
        ``(m,)`` float64 in [0, 1]; a row with no positive scores 0 (not NaN), the convention of
        Hron et al. (2021, Fig. 5).

    Raises:
        ValueError: naming ``retrieved`` or ``labels``.
    """
    _, labels, hits = _hits(retrieved, labels)
    positives = labels.sum(axis=1)
    return np.divide(hits, positives, out=np.zeros(hits.shape, dtype=np.float64), where=positives > 0)
