"""Tree retrievers (linear and MLP node scorers trained along the target's path) and the brute-force reference.

Zhang et al. (NeurIPS 2024), Secs. 3.2.1 and 4.1.1. :func:`fit_tree_retriever` trains a node scorer
f(x, v) on (context, target item) pairs (:mod:`agents.tree.training`) and returns a
:class:`TreeRetriever`, whose :meth:`~TreeRetriever.retrieve` is the beam search of
:func:`twostage_gym.core.tree.beam_search`. :func:`fit_brute_force` trains a linear item scorer
<x, u_i> with a full softmax over the catalog and retrieves the exact top K of every item's score;
as node scores it gives each node the largest score under it, with which beam search returns
exactly that top K (a max-heap tree, the best any tree can do for one item scorer).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.tree.scorers import TORCH_HINT, LinearScorer
from agents.tree.training import LOSSES, fit_scorer, level_candidates, target_paths, train_lists
from twostage_gym.core.checks import choice, integer, number, positive_int
from twostage_gym.core.tree import BeamSearchResult, ItemTree, beam_search

__all__ = [
    "SCORERS",
    "BruteForceRetriever",
    "TreeRetriever",
    "check_dataset",
    "check_device",
    "check_hidden",
    "fit_brute_force",
    "fit_tree_retriever",
    "make_scorer",
]

SCORERS = ("linear", "mlp")
"""The node scorers: f(x, v) = <x, w_v> and MLP((x; w_v)) (Sec. 4.1.1)."""


def check_dataset(contexts: Any, targets: Any, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """``contexts`` as float64 ``(n, d)`` and ``targets`` as int64 ``(n,)`` item ids, or ``ValueError`` naming them."""
    x = np.asarray(contexts)
    if x.ndim != 2 or x.shape[0] < 1 or x.dtype.kind not in "iuf" or not np.isfinite(x).all():
        raise ValueError(f"contexts must be a non-empty finite 2-D (n, d) real array, got shape {x.shape}")
    y = np.asarray(targets)
    if y.shape != (x.shape[0],) or y.dtype.kind not in "iu":
        raise ValueError(f"targets must be ({x.shape[0]},) integer item ids, got shape {y.shape} dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= n_items):
        raise ValueError(f"targets must be item ids in [0, {n_items}), got values in [{y.min()}, {y.max()}]")
    return x.astype(np.float64), y.astype(np.int64)


def check_hidden(hidden: Any) -> tuple[int, ...]:
    """The MLP's hidden widths: a non-empty tuple of ints in [1, 4096]."""
    if not isinstance(hidden, (tuple, list)) or not hidden:
        raise ValueError(f"hidden must be a non-empty tuple of layer widths, got {hidden!r}")
    return tuple(integer("hidden", h, 1, 4096) for h in hidden)


def check_device(device: Any) -> str:
    """A torch device name usable here ("cpu" by default), or ``ValueError`` naming ``device``.

    Raises:
        ImportError: torch is not installed (with the install hint).
    """
    try:
        import torch
    except ModuleNotFoundError as err:
        raise ImportError(TORCH_HINT) from err
    if device is None:
        return "cpu"
    if not isinstance(device, str):
        raise ValueError(f"device must be a torch device name such as 'cpu', got {type(device).__name__} {device!r}")
    try:
        torch.empty(0, device=torch.device(device))  # e.g. "cuda" on a CPU-only build fails here
    except (RuntimeError, TypeError, AssertionError) as err:
        raise ValueError(f"device {device!r} is not usable: {err}") from None
    return device


class TreeRetriever:
    """A trained node scorer on a tree: scores, all node scores, and beam-search retrieval.

    Attributes:
        tree: the item tree.
        scorer: the :class:`~agents.tree.scorers.LinearScorer` or :class:`~agents.tree.scorers.MLPScorer`.
        losses: the mean training loss of every epoch.
    """

    def __init__(self, tree: ItemTree, scorer: Any, losses: list[float]) -> None:
        self.tree, self.scorer, self.losses = tree, scorer, losses

    def scores(self, contexts: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """f(x, v) for ``nodes (n, c)`` and ``contexts (n, d)``: float64 ``(n, c)``."""
        return self.scorer.scores(contexts, nodes)

    def node_scores(self, contexts: np.ndarray) -> np.ndarray:
        """f(x, v) for every node: float64 ``(n, n_nodes)``."""
        return self.scorer.scores(contexts, None)

    def retrieve(self, contexts: np.ndarray, beam: int) -> BeamSearchResult:
        """The beam search of size ``beam`` for every context (:func:`~twostage_gym.core.tree.beam_search`)."""
        return beam_search(self.tree, self.scores, np.asarray(contexts, dtype=np.float64), beam)


def fit_tree_retriever(
    tree: ItemTree,
    contexts: Any,
    targets: Any,
    scorer: str = "linear",
    loss: str = "beam",
    beam: int = 20,
    n_negatives: int = 100,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float = 1e-2,
    weight_decay: float = 0.0,
    hidden: tuple[int, ...] | None = None,
    device: str | None = None,
    seed: int = 0,
) -> TreeRetriever:
    """Train a tree retriever on (context, target item) pairs.

    Args:
        tree: the item tree (e.g. the env's ``world.tree``).
        contexts: ``(n, d)`` user representations.
        targets: ``(n,)`` the target items.
        scorer: ``"linear"`` (numpy) or ``"mlp"`` (torch).
        loss: ``"beam"``, the softmax over the beam's candidates at every level of the target's path
            (Eq. 13), or ``"sampled"``, App. D's sampled softmax.
        beam: K of the beam-aware loss (that of the retrieval it trains for), 1..N.
        n_negatives: negatives per level of the sampled softmax (App. D: 50 to 200), 1..100,000.
        epochs: passes over the data, 1..10,000.
        batch_size: minibatch size, 1..65,536.
        lr: Adam's learning rate, in (0, 10].
        weight_decay: L2 penalty, in [0, 10].
        hidden: the MLP's hidden widths ((64,) by default); ``"mlp"`` only.
        device: the MLP's torch device ("cpu" by default); ``"mlp"`` only.
        seed: the seed of the initial weights, the minibatches and the negatives.

    Raises:
        ValueError: naming the argument; ``hidden`` or ``device`` given to the linear scorer.
        ImportError: ``"mlp"`` without torch.
    """
    if not isinstance(tree, ItemTree):
        raise ValueError(f"tree must be an ItemTree (from build_tree), got {type(tree).__name__}")
    scorer = choice("scorer", scorer, SCORERS)
    loss = choice("loss", loss, LOSSES)
    beam = integer("beam", beam, 1, tree.n_items)
    n_negatives = integer("n_negatives", n_negatives, 1, 100_000)
    epochs = integer("epochs", epochs, 1, 10_000)
    batch_size = integer("batch_size", batch_size, 1, 65_536)
    lr = number("lr", lr, 0.0, 10.0, low_open=True)
    weight_decay = number("weight_decay", weight_decay, 0.0, 10.0)
    seed = integer("seed", seed, 0)
    x, y = check_dataset(contexts, targets, tree.n_items)
    if tree.n_levels == 0:
        raise ValueError("tree must have at least two items (a one-item tree has nothing to retrieve)")
    rng = np.random.default_rng([seed, 0x7EE])
    model = make_scorer(scorer, tree.n_nodes, x.shape[1], rng, seed, lr, weight_decay, hidden, device, bias=False)
    paths = target_paths(tree, y)
    pools = [level_candidates(tree, lvl) for lvl in range(1, tree.n_levels + 1)] if loss == "sampled" else None
    index = np.arange(x.shape[0])

    def lists(xb: np.ndarray, yb: np.ndarray, r: np.random.Generator) -> list:
        # ``yb`` holds example indices here, so the precomputed paths are looked up, not recomputed.
        return train_lists(tree, model.scores, xb, paths[yb], loss, beam, n_negatives, r, pools)

    losses = fit_scorer(model, lists, x, index, epochs, batch_size, rng)
    return TreeRetriever(tree, model, losses)


def make_scorer(
    kind: str,
    n_rows: int,
    dim: int,
    rng: np.random.Generator,
    seed: int,
    lr: float,
    weight_decay: float,
    hidden: Any,
    device: Any,
    bias: bool,
) -> Any:
    """A fresh :class:`~agents.tree.scorers.LinearScorer` or :class:`~agents.tree.scorers.MLPScorer`.

    Raises:
        ValueError: ``hidden`` or ``device`` given to the linear scorer, or invalid.
        ImportError: ``"mlp"`` without torch.
    """
    if kind == "linear":
        for name, value in (("hidden", hidden), ("device", device)):
            if value is not None:
                raise ValueError(f"{name} is an argument of the MLP scorer only; the linear scorer does not use it")
        return LinearScorer(n_rows, dim, rng, lr=lr, weight_decay=weight_decay, bias=bias)
    hidden = (64,) if hidden is None else check_hidden(hidden)
    device = check_device(device)
    from agents.tree.scorers import MLPScorer

    return MLPScorer(n_rows, dim, seed, hidden=hidden, lr=lr, weight_decay=weight_decay, bias=bias, device=device)


class BruteForceRetriever:
    """A linear item scorer <x, u_i> that scores every item: the exact top K, the reference of the tree.

    Attributes:
        tree: the item tree (for :meth:`node_scores`), or None.
        scorer: the item :class:`~agents.tree.scorers.LinearScorer`.
        losses: the mean training loss of every epoch.
    """

    def __init__(self, tree: ItemTree | None, scorer: LinearScorer, losses: list[float]) -> None:
        self.tree, self.scorer, self.losses = tree, scorer, losses

    def item_scores(self, contexts: np.ndarray) -> np.ndarray:
        """<x, u_i> for every item: float64 ``(n, n_items)``."""
        return self.scorer.scores(contexts, None)

    def node_scores(self, contexts: np.ndarray) -> np.ndarray:
        """Each node's score, the largest item score under it: ``(n, n_nodes)``; beam search on it is exact."""
        if self.tree is None:
            raise ValueError("node scores need the tree: fit_brute_force(..., tree=tree)")
        tree = self.tree
        s = self.item_scores(contexts)
        out = np.full((s.shape[0], tree.n_nodes), -np.inf)
        leaves = np.flatnonzero(tree.leaf_item >= 0)
        out[:, leaves] = s[:, tree.leaf_item[leaves]]
        # Bottom-up, one level at a time: an internal node's score is its children's largest.
        for level in range(tree.n_levels - 1, -1, -1):
            nodes = tree.level_nodes(level)
            internal = nodes[tree.leaf_item[nodes] < 0]
            children = tree.children[internal]
            vals = np.where(children >= 0, out[:, np.maximum(children, 0)], -np.inf)
            out[:, internal] = vals.max(axis=2)
        return out

    def scores(self, contexts: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """Node scores of ``nodes (n, c)`` (:meth:`node_scores`)."""
        return np.take_along_axis(self.node_scores(contexts), nodes, axis=1)

    def retrieve(self, contexts: np.ndarray, beam: int) -> np.ndarray:
        """The ``beam`` best items of every context by score, best first: int64 ``(n, beam)``."""
        beam = positive_int("beam", beam)
        s = self.item_scores(np.asarray(contexts, dtype=np.float64))
        k = min(beam, s.shape[1])
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1, kind="stable")
        return np.take_along_axis(part, order, axis=1)


def fit_brute_force(
    contexts: Any,
    targets: Any,
    n_items: int,
    tree: ItemTree | None = None,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float = 1e-2,
    weight_decay: float = 0.0,
    seed: int = 0,
) -> BruteForceRetriever:
    """Train the brute-force reference: <x, u_i> with a full softmax over every item.

    Args:
        contexts, targets: the training pairs.
        n_items: the catalog size N.
        tree: the item tree, for :meth:`BruteForceRetriever.node_scores` (optional).
        epochs, batch_size, lr, weight_decay, seed: as :func:`fit_tree_retriever`.
    """
    n_items = positive_int("n_items", n_items)
    if tree is not None and (not isinstance(tree, ItemTree) or tree.n_items != n_items):
        raise ValueError(f"tree must be an ItemTree over the n_items = {n_items} items, got {tree!r:.60}")
    epochs = integer("epochs", epochs, 1, 10_000)
    batch_size = integer("batch_size", batch_size, 1, 65_536)
    lr = number("lr", lr, 0.0, 10.0, low_open=True)
    weight_decay = number("weight_decay", weight_decay, 0.0, 10.0)
    seed = integer("seed", seed, 0)
    x, y = check_dataset(contexts, targets, n_items)
    rng = np.random.default_rng([seed, 0xB7F])
    model = LinearScorer(n_items, x.shape[1], rng, lr=lr, weight_decay=weight_decay)
    losses = fit_scorer(model, lambda xb, yb, r: [(None, None, yb)], x, y, epochs, batch_size, rng)
    return BruteForceRetriever(tree, model, losses)
