"""Training tree retrievers: the target's path, beam candidates, and the softmax losses along the path.

Zhang et al. (NeurIPS 2024), App. A, Eq. 13: the loss of an example (x, y) is the sum over the
ancestors v of the leaf y (one per level) of -log softmax of f(x, v) among B(v, x), the candidates
of the beam search at v's level, D(B_{l-1}(x)). The beam is that of the current model (beam-aware
training); where it has lost the target's ancestor, the ancestor is added to the candidates, so the
loss always has its positive. ``loss="sampled"`` is App. D's sampled softmax instead: the ancestor
against ``n_negatives`` nodes of its level drawn uniformly (all the level's nodes when it has no
more than that).

Everything is vectorised over the minibatch and the candidates; loops run over epochs, minibatches
and tree levels only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from agents.tree.scorers import SoftmaxList
from twostage_gym.core.tree import ItemTree

__all__ = ["LOSSES", "expand_beam", "fit_scorer", "level_candidates", "target_paths", "train_lists"]

LOSSES = ("beam", "sampled")
"""The ``loss`` values: the softmax over the beam's candidates (Eq. 13), or App. D's sampled softmax."""


def target_paths(tree: ItemTree, items: np.ndarray) -> np.ndarray:
    """The node on the path to each item's leaf at every level: int64 ``(n, n_levels)``.

    Column l - 1 is the ancestor of depth l, or the leaf itself where the leaf is shallower than l
    (D(v) = {v} for a leaf, so a beam search that reached it keeps it to the last level).
    """
    cur = tree.item_leaf[np.asarray(items, dtype=np.int64)]
    out = np.empty((cur.shape[0], tree.n_levels), dtype=np.int64)
    for level in range(tree.n_levels, 0, -1):
        cur = np.where(tree.depth[cur] > level, tree.parent[cur], cur)
        out[:, level - 1] = cur
    return out


def expand_beam(tree: ItemTree, beam_nodes: np.ndarray) -> np.ndarray:
    """D(B): the children of each beam node, a leaf being its own only child; int64 ``(n, w * B)``, -1 padding.

    Columns that are padding in every row are dropped, as :func:`twostage_gym.core.tree.beam_search` does.
    """
    n = beam_nodes.shape[0]
    valid = beam_nodes >= 0
    safe = np.where(valid, beam_nodes, 0)
    cand = tree.children[safe]
    leaf = valid & (tree.leaf_item[safe] >= 0)
    cand[leaf] = -1
    cand[leaf, 0] = beam_nodes[leaf]
    cand[~valid] = -1
    cand = cand.reshape(n, -1)
    return cand[:, (cand >= 0).any(axis=0)]


def top_k(cand: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best valid candidates of each row by decreasing score (ties to the earlier), -1 padded."""
    valid = cand >= 0
    order = np.lexsort((-scores, ~valid), axis=1)[:, :k]
    chosen = np.take_along_axis(cand, order, axis=1)
    chosen[~np.take_along_axis(valid, order, axis=1)] = -1
    if chosen.shape[1] < k:
        chosen = np.concatenate([chosen, np.full((cand.shape[0], k - chosen.shape[1]), -1, np.int64)], axis=1)
    return chosen


def level_candidates(tree: ItemTree, level: int) -> np.ndarray:
    """The nodes a beam can hold at ``level`` (1-based): those of depth ``level`` and the shallower leaves."""
    nodes = np.arange(tree.level_ptr[level + 1])
    keep = (tree.depth[nodes] == level) | ((tree.leaf_item[nodes] >= 0) & (tree.depth[nodes] >= 1))
    return nodes[keep]


def train_lists(
    tree: ItemTree,
    score_fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
    x: np.ndarray,
    paths: np.ndarray,
    loss: str,
    beam: int,
    n_negatives: int,
    rng: np.random.Generator,
    pools: list[np.ndarray] | None = None,
) -> list[SoftmaxList]:
    """The softmax lists of a minibatch, one per level (see the module docstring).

    Args:
        tree: the tree.
        score_fn: the current model's ``f(x, nodes)``.
        x: ``(n, d)`` contexts.
        paths: ``(n, L)`` the targets' paths (:func:`target_paths`).
        loss: ``"beam"`` or ``"sampled"``.
        beam: K of the beam-aware loss.
        n_negatives: negatives per level of the sampled loss.
        rng: the negatives' generator.
        pools: :func:`level_candidates` of every level (computed when None).
    """
    n = x.shape[0]
    lists: list[SoftmaxList] = []
    if loss == "sampled":
        pools = pools or [level_candidates(tree, lvl) for lvl in range(1, tree.n_levels + 1)]
        for lvl, pool in enumerate(pools):
            target = paths[:, lvl]
            if pool.shape[0] <= n_negatives + 1:
                ids = np.broadcast_to(pool, (n, pool.shape[0]))
                # Every node of the level: a full softmax over it.
                col = np.argmax(ids == target[:, None], axis=1)
                lists.append((ids, None, col))
                continue
            neg = pool[rng.integers(0, pool.shape[0], (n, n_negatives))]
            ids = np.concatenate([target[:, None], neg], axis=1)
            valid = ids != target[:, None]
            valid[:, 0] = True  # an accidental hit is dropped, not counted as a negative
            lists.append((ids, valid, np.zeros(n, dtype=np.int64)))
        return lists
    current = np.zeros((n, 1), dtype=np.int64)
    for lvl in range(tree.n_levels):
        cand = expand_beam(tree, current)
        valid = cand >= 0
        safe = np.where(valid, cand, 0)
        scores = score_fn(x, safe)
        target = paths[:, lvl]
        ids = np.concatenate([safe, target[:, None]], axis=1)
        # The target once, in the last column: a copy among the candidates is masked.
        mask = np.concatenate([valid & (cand != target[:, None]), np.ones((n, 1), bool)], axis=1)
        lists.append((ids, mask, np.full(n, ids.shape[1] - 1, dtype=np.int64)))
        current = top_k(cand, np.where(valid, scores, -np.inf), beam)
    return lists


def fit_scorer(
    scorer: Any,
    lists_fn: Callable[[np.ndarray, np.ndarray, np.random.Generator], list[SoftmaxList]],
    contexts: np.ndarray,
    targets: np.ndarray,
    epochs: int,
    batch_size: int,
    rng: np.random.Generator,
) -> list[float]:
    """Minibatch training: each epoch a permutation of the examples, one :meth:`step` per minibatch.

    Args:
        scorer: a :class:`~agents.tree.scorers.LinearScorer` or :class:`~agents.tree.scorers.MLPScorer`.
        lists_fn: ``(x, targets, rng) -> lists`` the softmax lists of a minibatch.
        contexts, targets: the training examples.
        epochs, batch_size: passes over the data and the minibatch size.
        rng: the permutations' (and the lists') generator.

    Returns:
        The mean loss of every epoch.
    """
    n = contexts.shape[0]
    losses = []
    for _ in range(epochs):
        order = rng.permutation(n)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            total += scorer.step(contexts[idx], lists_fn(contexts[idx], targets[idx], rng)) * idx.shape[0]
        losses.append(total / max(n, 1))
    return losses
