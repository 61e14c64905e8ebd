"""Tree-structured retrieval: item representations, tree building by recursive (balanced) k-means and beam search.

Zhang, Liu, Lian, Chen, *Generalization Error Bounds for Two-stage Recommender Systems with Tree
Structure* (NeurIPS 2024), Sec. 3.2.1: every leaf of a tree
is one item; the tree comes from clustering item representations, all items at the root split into
B children, recursively, until every node holds a single item (balanced splits give an even tree).
Retrieval is a beam search of size K: B_1(x) is the top K of the root's children by the model score
f(x, c), B_{i+1}(x) the top K of D(B_i(x)), the children of the nodes in B_i(x), where a leaf is its
own child (D(v) = {v}), so a leaf reached above the last level survives to it; B(x) is the final
beam of K leaves.

Everything is numpy. Building loops over the levels of the tree, with every node of a level split at
once (segment operations over a permutation of the items); beam search loops over levels only,
vectorised over the batch of contexts and over the nodes of a level.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from os import PathLike
from typing import Any

import numpy as np

from twostage_gym.core.checks import choice, integer, nonnegative_int, positive_int

__all__ = [
    "TREE_METHODS",
    "BeamSearchResult",
    "ItemTree",
    "beam_search",
    "build_tree",
    "item_representations",
]

TREE_METHODS = ("balanced-kmeans", "kmeans", "random")
"""The ``method`` values of :func:`build_tree`."""

_ARRAYS = (
    "children",
    "parent",
    "depth",
    "leaf_item",
    "item_leaf",
    "node_start",
    "node_stop",
    "item_order",
    "level_ptr",
)
_CHUNK_ELEMENTS = 1 << 22  # bound on the (rows, B, d) temporaries of the distance computation (32 MiB of float64)


@dataclass(frozen=True, eq=False)
class ItemTree:
    """An immutable item tree, stored as flat int64 arrays (read-only) in breadth-first node order.

    Node 0 is the root; the nodes of depth l are ``level_ptr[l]:level_ptr[l + 1]``. Every node covers
    a contiguous range of ``item_order``: its subtree's items are ``item_order[node_start[v]:node_stop[v]]``.

    Attributes:
        branches: B, the most children a node has.
        children: ``(n_nodes, B)`` child ids, padded with -1 (a leaf's row is all -1).
        parent: ``(n_nodes,)`` parent id, -1 for the root.
        depth: ``(n_nodes,)`` the root has depth 0.
        leaf_item: ``(n_nodes,)`` the item of a leaf, -1 for an internal node.
        item_leaf: ``(n_items,)`` the leaf of each item.
        node_start, node_stop: ``(n_nodes,)`` the node's range in ``item_order``.
        item_order: ``(n_items,)`` item ids in depth-first leaf order.
        level_ptr: ``(n_levels + 2,)`` the nodes of depth l are ``level_ptr[l]:level_ptr[l + 1]``.
    """

    branches: int
    children: np.ndarray
    parent: np.ndarray
    depth: np.ndarray
    leaf_item: np.ndarray
    item_leaf: np.ndarray
    node_start: np.ndarray
    node_stop: np.ndarray
    item_order: np.ndarray
    level_ptr: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "branches", integer("branches", self.branches, low=2))
        for name in _ARRAYS:
            a = np.array(getattr(self, name), dtype=np.int64)  # a private copy, so no outside view can write it
            a.setflags(write=False)
            object.__setattr__(self, name, a)
        n_nodes, n_items = self.parent.shape[0], self.item_leaf.shape[0]
        if self.children.shape != (n_nodes, self.branches):
            raise ValueError(f"children must have shape ({n_nodes}, {self.branches}), got {self.children.shape}")
        for name in ("depth", "leaf_item", "node_start", "node_stop"):
            if getattr(self, name).shape != (n_nodes,):
                raise ValueError(f"{name} must have shape ({n_nodes},), got {getattr(self, name).shape}")
        if self.item_order.shape != (n_items,):
            raise ValueError(f"item_order must have shape ({n_items},), got {self.item_order.shape}")
        if self.level_ptr.ndim != 1 or self.level_ptr.shape[0] < 2 or self.level_ptr[-1] != n_nodes:
            raise ValueError("level_ptr must be 1-D, start at 0 and end at the number of nodes")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Through the constructor, so an unpickled tree's arrays are read-only too (pickle's default
        # would restore __dict__ with fresh, writeable arrays).
        return (type(self), tuple(getattr(self, f.name) for f in fields(self)))

    @property
    def n_items(self) -> int:
        return int(self.item_leaf.shape[0])

    @property
    def n_nodes(self) -> int:
        return int(self.parent.shape[0])

    @property
    def n_levels(self) -> int:
        """The largest leaf depth (0 for a one-item tree): the number of beam-search steps."""
        return int(self.level_ptr.shape[0] - 2)

    def level_nodes(self, level: int) -> np.ndarray:
        """The ids of the nodes of depth ``level`` (consecutive, in breadth-first order)."""
        return np.arange(self.level_ptr[level], self.level_ptr[level + 1])

    def subtree_items(self, node: int) -> np.ndarray:
        """The items under ``node`` (a read-only view of ``item_order``)."""
        return self.item_order[self.node_start[node] : self.node_stop[node]]

    def to_dict(self) -> dict[str, np.ndarray]:
        """The tree as arrays, the keyword arguments of ``numpy.savez``."""
        out = {name: getattr(self, name) for name in _ARRAYS}
        out["branches"] = np.asarray(self.branches, dtype=np.int64)
        return out

    @classmethod
    def from_dict(cls, arrays: Any) -> ItemTree:
        """The tree from :meth:`to_dict`'s arrays (a dict or an ``NpzFile``)."""
        return cls(branches=int(arrays["branches"]), **{name: arrays[name] for name in _ARRAYS})

    def to_npz(self, path: str | PathLike[str]) -> None:
        """Save with ``numpy.savez`` (no pickled objects in the file)."""
        np.savez(path, **self.to_dict())

    @classmethod
    def from_npz(cls, path: str | PathLike[str]) -> ItemTree:
        """Load a tree saved by :meth:`to_npz`."""
        with np.load(path, allow_pickle=False) as data:
            return cls.from_dict(data)


def item_representations(interactions: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
    """Item representations from the instance-item matrix, Sec. 3.2.1: z_i = y_i / ||y_i||.

    Args:
        interactions: ``(m, N)`` the instance-item matrix Y (0/1, or any finite weights).
        features: optional ``(m, f)`` instance features f_j; then y_i = sum_j Y_ji f_j, otherwise y_i
            is the i-th column of Y.

    Returns:
        float64 ``(N, m)`` (or ``(N, f)``), unit rows. An item with y_i = 0 (no interaction) has no
        direction; its row is kept at zero rather than NaN, so it still clusters (near the origin).

    Raises:
        ValueError: naming ``interactions`` or ``features`` when not 2-D, not finite, or mismatched.
    """
    y = np.asarray(interactions, dtype=np.float64)
    if y.ndim != 2 or not np.isfinite(y).all():
        raise ValueError(f"interactions must be a finite 2-D (instances, items) array, got shape {y.shape}")
    if features is not None:
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or f.shape[0] != y.shape[0] or not np.isfinite(f).all():
            raise ValueError(f"features must be a finite ({y.shape[0]}, f) array, got shape {f.shape}")
        y_items = y.T @ f
    else:
        y_items = y.T.copy()
    norm = np.linalg.norm(y_items, axis=1, keepdims=True)
    return np.divide(y_items, norm, out=np.zeros_like(y_items), where=norm > 0)


def _balanced_sizes(n: np.ndarray, branches: int) -> np.ndarray:
    """Children sizes ``(len(n), B)``: q + 1 for the first n % B children, q = n // B for the rest (0 drops)."""
    q, r = np.divmod(n, branches)
    return q[:, None] + (np.arange(branches) < r[:, None])


def _sq_distances(x: np.ndarray, seg: np.ndarray, centroids: np.ndarray, seg_n: np.ndarray | None = None) -> np.ndarray:
    """Squared distances ``(rows, B)`` from each row of ``x`` to the B centroids of its segment.

    When the rows are grouped by segment (``seg_n`` given: segment s holds the next ``seg_n[s]``
    rows) and the segments are about equal in size, as in a balanced tree, the rows are laid out
    as a padded ``(S, m, d)`` block and ||x||^2 - 2 x.c + ||c||^2 comes from one batched matrix
    product: several times faster than gathering each row's B centroids, which is what the
    fallback does, in chunks, for unequal segments (k-means trees).
    """
    n_seg, b, d = centroids.shape
    out = np.empty((x.shape[0], b))
    if seg_n is not None and n_seg * int(seg_n.max()) <= 2 * x.shape[0]:
        m = int(seg_n.max())
        pos = np.arange(x.shape[0]) - np.repeat(np.cumsum(seg_n) - seg_n, seg_n)
        block = np.zeros((n_seg, m, d))
        block[seg, pos] = x
        dots = block @ centroids.transpose(0, 2, 1)  # (S, m, B)
        out[:] = dots[seg, pos]
        out *= -2.0
        out += np.einsum("rd,rd->r", x, x)[:, None]
        out += np.einsum("sbd,sbd->sb", centroids, centroids)[seg]
        return out
    step = max(1, _CHUNK_ELEMENTS // max(1, b * d))
    for i in range(0, x.shape[0], step):
        diff = x[i : i + step, None, :] - centroids[seg[i : i + step]]
        out[i : i + step] = np.einsum("rbd,rbd->rb", diff, diff)
    return out


def _segment_kmeans(
    x: np.ndarray, seg: np.ndarray, seg_start: np.ndarray, seg_n: np.ndarray, branches: int, n_iter: int, rng: Any
) -> np.ndarray:
    """Lloyd's k-means with B centroids inside every segment at once; returns the final distances ``(rows, B)``.

    Initial centroids are B distinct items per segment, one drawn uniformly from each of B equal
    strata of the segment (every segment has more than B items, so the strata are non-empty). A
    centroid whose cluster empties keeps its position.
    """
    n_seg, d = seg_n.shape[0], x.shape[1]
    lo = (np.arange(branches) * seg_n[:, None]) // branches
    hi = (np.arange(1, branches + 1) * seg_n[:, None]) // branches
    centroids = x[seg_start[:, None] + lo + rng.integers(0, hi - lo)]  # (S, B, d)
    assign = None
    for _ in range(n_iter):
        dist = _sq_distances(x, seg, centroids, seg_n)
        new = np.argmin(dist, axis=1)
        if assign is not None and np.array_equal(new, assign):
            return dist  # converged: the centroids would not move
        assign = new
        cell = seg * branches + assign
        counts = np.bincount(cell, minlength=n_seg * branches).reshape(n_seg, branches)
        sums = np.stack([np.bincount(cell, weights=x[:, k], minlength=n_seg * branches) for k in range(d)], axis=1)
        sums = sums.reshape(n_seg, branches, d)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled][:, None]
    return _sq_distances(x, seg, centroids, seg_n)


def _balanced_assign(dist: np.ndarray, seg: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Assign rows to clusters so that cluster j of segment s gets exactly ``caps[s, j]`` rows.

    Greedy over clusters, vectorised over rows and segments: cluster j (in turn, j = 0..B-2) takes,
    among the rows of its segment still unassigned, the ``caps[s, j]`` rows that prefer it most over
    the later clusters (smallest dist_j - min_{k > j} dist_k); the last cluster takes the rest.
    """
    n_seg, branches = caps.shape
    assign = np.full(dist.shape[0], branches - 1, dtype=np.int64)
    left = np.arange(dist.shape[0])
    for j in range(branches - 1):
        key = dist[left, j] - dist[left, j + 1 :].min(axis=1)
        s = seg[left]
        order = np.lexsort((key, s))
        counts = np.bincount(s, minlength=n_seg)
        starts = np.cumsum(counts) - counts
        s_sorted = s[order]
        rank = np.arange(order.shape[0]) - starts[s_sorted]
        take = rank < caps[s_sorted, j]
        assign[left[order[take]]] = j
        left = left[order[~take]]
    return assign


def build_tree(
    item_embeddings: np.ndarray,
    branches: int,
    method: str = "balanced-kmeans",
    seed: int | np.random.Generator = 0,
    *,
    n_iter: int = 10,
) -> ItemTree:
    """Build the item tree by recursive clustering from the root into B children (Sec. 3.2.1).

    All items start at the root; each node with more than one item is split into at most B children,
    recursively, until every leaf holds one item. Methods:

    - ``"balanced-kmeans"``: k-means with B centroids on the node's items, then a capacity-constrained
      assignment (:func:`_balanced_assign`) that gives the children sizes ceil(n/B) or floor(n/B)
      (the first n mod B children get the larger size), so sibling sizes differ by at most one and
      the depth is ceil(log_B N) or close to it. A node with at most B items gets one leaf per item.
    - ``"kmeans"``: plain k-means (nearest centroid); empty clusters are dropped. A node whose
      items all fall in one cluster (e.g. identical embeddings) is split as balanced, so the
      recursion always ends.
    - ``"random"``: balanced splits of a uniformly random permutation of the items (embeddings only
      set the number of items), the randomly initialised tree some works start from.

    The k-means is written here in numpy rather than taken from SciPy's ``kmeans2`` (scikit-learn
    is not a dependency): a per-node call would be one Python call per internal node, about 10^6 for
    a binary tree over 10^6 items, while this one runs Lloyd's iterations for every node of a level
    at once (segment sums with ``bincount``), so building loops over levels only.

    Args:
        item_embeddings: finite ``(N, d)`` item representations (e.g. :func:`item_representations`).
        branches: B >= 2.
        method: one of :data:`TREE_METHODS`.
        seed: an int >= 0 or a ``numpy.random.Generator`` (k-means initialisation, the random tree).
        n_iter: Lloyd iterations per level (at most; it stops early when no assignment changes).

    Returns:
        The :class:`ItemTree`; the same arguments and seed give the same tree.

    Raises:
        ValueError: naming the argument, for embeddings that are not a non-empty finite 2-D real
            array, ``branches`` < 2, an unknown ``method``, a bad ``seed`` or ``n_iter`` < 1.
    """
    x = np.asarray(item_embeddings)
    if x.ndim != 2 or x.shape[0] < 1 or x.dtype.kind not in "iuf":
        raise ValueError(
            f"item_embeddings must be a non-empty 2-D (items, dim) real array, got shape {x.shape} dtype {x.dtype}"
        )
    x = x.astype(np.float64, copy=False)
    if not np.isfinite(x).all():
        raise ValueError("item_embeddings must be finite (no NaN or inf)")
    branches = integer("branches", branches, low=2)
    method = choice("method", method, TREE_METHODS)
    n_iter = positive_int("n_iter", n_iter)
    if not isinstance(seed, np.random.Generator):
        seed = nonnegative_int("seed", seed)
    rng = np.random.default_rng(seed)

    n_items = x.shape[0]
    order = rng.permutation(n_items) if method == "random" else np.arange(n_items)
    # Per-level node records, concatenated at the end (breadth-first ids follow from the order).
    starts, stops, parents, children_rows = [np.zeros(1, np.int64)], [np.full(1, n_items)], [np.full(1, -1)], []
    level_ptr = [0, 1]
    lvl_start, lvl_stop = starts[0], stops[0]
    while True:
        n = lvl_stop - lvl_start
        internal = np.flatnonzero(n > 1)
        rows = np.full((n.shape[0], branches), -1, dtype=np.int64)
        children_rows.append(rows)
        if internal.size == 0:
            break
        sizes = _balanced_sizes(n[internal], branches)
        if method != "random":
            big = np.flatnonzero(n[internal] > branches)  # nodes with at most B items need no clustering
            if big.size:
                seg_start, seg_n = lvl_start[internal[big]], n[internal[big]]
                sizes[big] = _split_segments(x, order, seg_start, seg_n, sizes[big], method, branches, n_iter, rng)
        has = sizes > 0
        offsets = np.cumsum(sizes, axis=1) - sizes
        c_start = (lvl_start[internal][:, None] + offsets)[has]
        c_stop = c_start + sizes[has]
        first_id = level_ptr[-1]
        ids = np.full(sizes.shape, -1, dtype=np.int64)
        ids[has] = first_id + np.arange(c_start.shape[0])
        rows[internal] = ids
        parent_of = np.broadcast_to((level_ptr[-2] + internal)[:, None], sizes.shape)[has]
        starts.append(c_start)
        stops.append(c_stop)
        parents.append(parent_of)
        level_ptr.append(first_id + c_start.shape[0])
        lvl_start, lvl_stop = c_start, c_stop

    node_start, node_stop = np.concatenate(starts), np.concatenate(stops)
    children = np.concatenate(children_rows)
    level_ptr_arr = np.asarray(level_ptr, dtype=np.int64)
    depth = np.repeat(np.arange(level_ptr_arr.shape[0] - 1), np.diff(level_ptr_arr))
    is_leaf = node_stop - node_start == 1
    leaf_item = np.where(is_leaf, order[np.minimum(node_start, n_items - 1)], -1)
    item_leaf = np.empty(n_items, dtype=np.int64)
    leaves = np.flatnonzero(is_leaf)
    item_leaf[leaf_item[leaves]] = leaves
    return ItemTree(
        branches=branches,
        children=children,
        parent=np.concatenate(parents),
        depth=depth,
        leaf_item=leaf_item,
        item_leaf=item_leaf,
        node_start=node_start,
        node_stop=node_stop,
        item_order=order,
        level_ptr=level_ptr_arr,
    )


def _split_segments(
    x: np.ndarray,
    order: np.ndarray,
    seg_start: np.ndarray,
    seg_n: np.ndarray,
    caps: np.ndarray,
    method: str,
    branches: int,
    n_iter: int,
    rng: Any,
) -> np.ndarray:
    """Cluster the segments ``order[start:start + n]`` (each n > B) and reorder each by cluster, in place.

    Returns:
        The children sizes ``(S, B)`` (``caps`` for the balanced method, the cluster sizes for k-means).
    """
    n_seg = seg_n.shape[0]
    total = int(seg_n.sum())
    seg = np.repeat(np.arange(n_seg), seg_n)
    sub_start = np.cumsum(seg_n) - seg_n
    pos = np.repeat(seg_start - sub_start, seg_n) + np.arange(total)  # positions in `order`, segment by segment
    dist = _segment_kmeans(x[order[pos]], seg, sub_start, seg_n, branches, n_iter, rng)
    assign = _balanced_assign(dist, seg, caps)
    sizes = caps
    if method == "kmeans":
        nearest = np.argmin(dist, axis=1)
        counts = np.bincount(seg * branches + nearest, minlength=n_seg * branches).reshape(n_seg, branches)
        split = counts.max(axis=1) < seg_n  # at least two non-empty clusters; otherwise keep the balanced split
        assign = np.where(split[seg], nearest, assign)
        sizes = np.where(split[:, None], counts, caps)
    # Stable sort by (segment, cluster): each segment's items grouped by child, in child order.
    o = np.lexsort((assign, seg))
    order[pos] = order[pos[o]]
    return sizes


def _top_k_stable(scores: np.ndarray, valid: np.ndarray, k: int) -> np.ndarray:
    """Column indices ``(n, min(k, c))`` of each row's top k: valid candidates first, then by decreasing
    score, ties in column order (the order a stable sort gives).

    A full stable sort of every row costs O(c log c); here a partition finds each row's k-th score
    t, the columns above t and the first columns equal to t make up the k, and only those k are
    sorted, several times faster at c = K * B in the thousands. Rows whose valid scores include
    -inf (a tie with the padding) take the plain stable sort.
    """
    n, c = scores.shape
    key = scores.astype(np.float64)
    if k >= c or np.isneginf(key[valid]).any():
        return np.lexsort((-key, ~valid), axis=1)[:, :k]
    key = np.where(valid, key, -np.inf)
    kth = -np.partition(-key, k - 1, axis=1)[:, k - 1 : k]  # (n, 1): each row's k-th largest score
    above = key > kth
    tied = key == kth
    need = k - above.sum(axis=1, keepdims=True)
    take = above | (tied & (np.cumsum(tied, axis=1) <= need))  # exactly k a row: the first ties in column order
    cols = np.nonzero(take)[1].reshape(n, k)  # ascending column order within each row
    order = np.argsort(-np.take_along_axis(key, cols, axis=1), axis=1, kind="stable")
    return np.take_along_axis(cols, order, axis=1)


@dataclass(frozen=True)
class BeamSearchResult:
    """The beams of :func:`beam_search` for a batch of n contexts.

    Attributes:
        levels: B_1(x), ..., B_L(x): one int64 ``(n, K)`` array of node ids per level, ordered by
            decreasing score, padded with -1 where fewer than K nodes were available.
        leaves: int64 ``(n, K)`` the final beam B(x) (= B_L(x)), all leaves.
        items: int64 ``(n, K)`` the items of those leaves, -1 for padding.
    """

    levels: tuple[np.ndarray, ...]
    leaves: np.ndarray
    items: np.ndarray


def beam_search(
    tree: ItemTree,
    node_scores_fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
    contexts: np.ndarray,
    beam: int,
) -> BeamSearchResult:
    """Beam search of size K down the tree, Sec. 3.2.1, for a batch of contexts at once.

    B_1(x) is the top K of the root's children by score (all of them if fewer than K);
    B_{l+1}(x) is the top K of D(B_l(x)), where D(v) is v's children, and D(v) = {v} for a leaf v,
    so a leaf reached above the deepest level stays in the candidate set until the end. Ties go
    to the earlier candidate (children in tree order, beam nodes in beam order).

    Args:
        tree: the :class:`ItemTree`.
        node_scores_fn: ``f(contexts, nodes) -> scores``; ``nodes`` is int64 ``(n, c)`` candidate ids
            and the result must be real ``(n, c)``, without NaN (-inf is allowed). Padding positions
            hold node 0 (the root); their scores are ignored. Called once per level.
        contexts: ``(n, d)`` the user representations x, passed to ``node_scores_fn`` as given.
        beam: K >= 1.

    Returns:
        A :class:`BeamSearchResult`: the beam at every level and the K leaves and their items.

    Raises:
        ValueError: naming the argument, for a non-tree, a non-callable scorer, contexts that are not
            2-D, ``beam`` < 1, or scores of the wrong shape or with NaN.
    """
    if not isinstance(tree, ItemTree):
        raise ValueError(f"tree must be an ItemTree (from build_tree), got {type(tree).__name__}")
    if not callable(node_scores_fn):
        raise ValueError("node_scores_fn must be callable as node_scores_fn(contexts, nodes)")
    ctx = np.asarray(contexts)
    if ctx.ndim != 2:
        raise ValueError(f"contexts must be 2-D (n, d), got shape {ctx.shape}")
    k = positive_int("beam", beam)
    n = ctx.shape[0]
    current = np.zeros((n, 1), dtype=np.int64)  # B_0 = {root}
    levels = []
    for _ in range(tree.n_levels):
        valid_beam = current >= 0
        safe = np.where(valid_beam, current, 0)
        cand = tree.children[safe]  # (n, w, B)
        leaf = valid_beam & (tree.leaf_item[safe] >= 0)
        cand[leaf] = -1
        cand[leaf, 0] = current[leaf]  # D(v) = {v} for a leaf
        cand[~valid_beam] = -1
        cand = cand.reshape(n, -1)
        cand = cand[:, (cand >= 0).any(axis=0)]  # drop columns that are padding in every row
        valid = cand >= 0
        scores = np.asarray(node_scores_fn(ctx, np.where(valid, cand, 0)))
        if scores.shape != cand.shape or scores.dtype.kind not in "iuf":
            raise ValueError(
                f"node_scores_fn must return real scores of shape {cand.shape}, got shape {scores.shape} "
                f"dtype {scores.dtype}"
            )
        if np.isnan(scores[valid]).any():
            raise ValueError("node_scores_fn returned NaN scores")
        top = _top_k_stable(scores, valid, k)
        chosen = np.take_along_axis(cand, top, axis=1)
        if chosen.shape[1] < k:
            chosen = np.concatenate([chosen, np.full((n, k - chosen.shape[1]), -1, dtype=np.int64)], axis=1)
        levels.append(chosen)
        current = chosen
    if not levels:  # a one-item tree: the root is the only leaf
        current = np.full((n, k), -1, dtype=np.int64)
        current[:, 0] = 0
    items = np.where(current >= 0, tree.leaf_item[np.maximum(current, 0)], -1)
    return BeamSearchResult(levels=tuple(levels), leaves=current, items=items)
