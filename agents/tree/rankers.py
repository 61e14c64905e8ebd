"""Rankers of the two-stage model, trained on all data (TS) or on the examples the retriever retrieves (H-TS).

Zhang et al. (NeurIPS 2024), Sec. 3.2.2 and Sec. 4.2 (Theorem 4.8, Table 1): the ranker scores the
K retrieved items and serves the best, h(x). TS trains it on every training example, drawn from D;
the harmonized H-TS trains it only on the examples whose target the retriever retrieves (y in B(x)),
drawn from D', the distribution it meets at inference, at the price of fewer examples.

A :class:`Ranker` is the env's ``ranker=`` callable: ``ranker(contexts (n, d), items (n, K)) ->
(n,)`` served items. :func:`fit_ranker` builds one: ``kind="linear"`` scores <x, u_i> + b_i
(numpy), ``kind="mlp"`` MLP((x; u_i)) + b_i (torch), both trained with the softmax over every item
(or a sampled softmax with ``n_negatives``, App. D's 60).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.tree.retrievers import check_dataset, make_scorer
from agents.tree.training import fit_scorer
from twostage_gym.core.checks import choice, integer, number, positive_int

__all__ = ["RANKER_KINDS", "RANKER_MODES", "Ranker", "fit_ranker", "harmonized_rows"]

RANKER_KINDS = ("linear", "mlp")
RANKER_MODES = ("ts", "h-ts")
"""TS: trained on all examples; H-TS: only on those whose target the retriever retrieved."""


def harmonized_rows(targets: np.ndarray, retrieved: np.ndarray) -> np.ndarray:
    """Whether each example's target is among its retrieved items: bool ``(n,)`` (H-TS's training set)."""
    return (np.asarray(retrieved) == np.asarray(targets)[:, None]).any(axis=1)


class Ranker:
    """A trained ranker: scores items for contexts and serves the best of each candidate set.

    Attributes:
        kind: ``"linear"`` or ``"mlp"``.
        mode: ``"ts"`` or ``"h-ts"``.
        n_items: the catalog size.
        n_train: the examples it was trained on (fewer for H-TS).
        scorer: the item scorer.
        losses: the mean training loss of every epoch.
    """

    def __init__(self, kind: str, mode: str, n_items: int, n_train: int, scorer: Any, losses: list[float]) -> None:
        self.kind, self.mode, self.n_items, self.n_train = kind, mode, n_items, n_train
        self.scorer, self.losses = scorer, losses

    def scores(self, contexts: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Scores of ``items (n, K)`` (-1 padding scores -inf): float64 ``(n, K)``."""
        items = np.asarray(items)
        valid = items >= 0
        s = self.scorer.scores(np.asarray(contexts, dtype=np.float64), np.where(valid, items, 0))
        return np.where(valid, s, -np.inf)

    def __call__(self, contexts: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The served item of every row, h(x): the best-scored of ``items (n, K)``; int64 ``(n,)``.

        Raises:
            ValueError: ``items`` is not a 2-D integer array of item ids (-1 padding) with at least
                one item per row, or ``contexts`` does not match it.
        """
        items = np.asarray(items)
        x = np.asarray(contexts)
        if items.ndim != 2 or items.dtype.kind not in "iu" or x.ndim != 2 or x.shape[0] != items.shape[0]:
            raise ValueError(
                f"ranker needs contexts (n, d) and integer items (n, K), got shapes {x.shape} and {items.shape}"
            )
        if items.size and (items.min() < -1 or items.max() >= self.n_items):
            raise ValueError(f"items must be item ids in [0, {self.n_items}) or -1 padding")
        if not (items >= 0).any(axis=1).all():
            raise ValueError("items must hold at least one item (not -1) in every row")
        best = np.argmax(self.scores(x, items), axis=1)
        return items[np.arange(items.shape[0]), best].astype(np.int64)

    def precision_at_1(self, contexts: np.ndarray, items: np.ndarray, targets: np.ndarray) -> float:
        """The two-stage accuracy P(h(x) = y) over the rows (Table 1's precision@1)."""
        return float(np.mean(self(contexts, items) == np.asarray(targets)))


def fit_ranker(
    contexts: Any,
    targets: Any,
    n_items: int,
    kind: str = "linear",
    mode: str = "ts",
    retrieved: Any = None,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float = 1e-2,
    weight_decay: float = 0.0,
    n_negatives: int | None = None,
    hidden: tuple[int, ...] | None = None,
    device: str | None = None,
    seed: int = 0,
) -> Ranker:
    """Train a ranker as TS or H-TS.

    Args:
        contexts, targets: the training pairs, ``(n, d)`` and ``(n,)``.
        n_items: the catalog size N.
        kind: ``"linear"`` or ``"mlp"``.
        mode: ``"ts"`` (every example) or ``"h-ts"`` (the examples with the target in ``retrieved``).
        retrieved: ``(n, K)`` the retriever's items for every training example; ``"h-ts"`` only.
        epochs, batch_size, lr, weight_decay: as :func:`agents.tree.fit_tree_retriever`.
        n_negatives: None for the softmax over every item, else a sampled softmax with that many
            uniform negatives, 1..100,000.
        hidden, device: the MLP's widths ((64,)) and torch device ("cpu"); ``"mlp"`` only.
        seed: the seed of the initial weights, the minibatches and the negatives.

    Raises:
        ValueError: naming the argument; ``retrieved`` missing for H-TS or given for TS; H-TS with
            no example whose target was retrieved.
    """
    n_items = positive_int("n_items", n_items)
    kind = choice("kind", kind, RANKER_KINDS)
    mode = choice("mode", mode, RANKER_MODES)
    epochs = integer("epochs", epochs, 1, 10_000)
    batch_size = integer("batch_size", batch_size, 1, 65_536)
    lr = number("lr", lr, 0.0, 10.0, low_open=True)
    weight_decay = number("weight_decay", weight_decay, 0.0, 10.0)
    if n_negatives is not None:
        n_negatives = integer("n_negatives", n_negatives, 1, 100_000)
    seed = integer("seed", seed, 0)
    x, y = check_dataset(contexts, targets, n_items)
    if mode == "h-ts":
        if retrieved is None:
            raise ValueError("retrieved must be given for mode='h-ts': the retriever's (n, K) items per example")
        r = np.asarray(retrieved)
        if r.ndim != 2 or r.shape[0] != x.shape[0] or r.dtype.kind not in "iu":
            raise ValueError(f"retrieved must be ({x.shape[0]}, K) integer item ids, got shape {r.shape}")
        keep = harmonized_rows(y, r)
        if not keep.any():
            raise ValueError("retrieved holds no example's target: H-TS has nothing to train on")
        x, y = x[keep], y[keep]
    elif retrieved is not None:
        raise ValueError("retrieved is for mode='h-ts' only; mode='ts' trains on every example")
    rng = np.random.default_rng([seed, 0x4A7])
    model = make_scorer(kind, n_items, x.shape[1], rng, seed, lr, weight_decay, hidden, device, bias=True)

    def lists(xb: np.ndarray, yb: np.ndarray, r: np.random.Generator) -> list:
        if n_negatives is None:
            return [(None, None, yb)]
        ids = np.concatenate([yb[:, None], r.integers(0, n_items, (yb.shape[0], n_negatives))], axis=1)
        valid = ids != yb[:, None]
        valid[:, 0] = True
        return [(ids, valid, np.zeros(yb.shape[0], dtype=np.int64))]

    losses = fit_scorer(model, lists, x, y, epochs, batch_size, rng)
    return Ranker(kind, mode, n_items, int(x.shape[0]), model, losses)
