"""A synthetic multi-label dataset for learning item pools offline (Hron et al. 2021, Sec. 4, Fig. 5).

Hron et al. learn pool allocations on AmazonCat-13K: reviews encoded by BERT (the first d = 400
of 768 dimensions), the 100 categories ranked 3rd to 102nd by frequency as the items, a positive
label where the product belongs to the category. That dataset (and the BERT model behind its
features) cannot ship with this package, so :func:`make_multilabel` generates a dataset with the
statistics the paper reports for it, from a world with the structure that makes specialised
nominators pay:

* **Items in clusters.** The |A| items are split at random into G clusters of (nearly) equal
  size. Cluster g owns an r-dimensional subspace of the d features (orthonormal columns
  ``B_g``; the G subspaces are mutually orthogonal), and item a of cluster g has the true
  reward model f*(x, a) = <x, theta_a> with theta_a = B_g z_a / ||z_a|| + eta w, z_a ~ N(0, I_r).
  A cluster's items span only r dimensions, so an expert with d_e >= r item-embedding
  dimensions can model a whole cluster, while a random pool of items from many clusters needs
  many more: this is the specialisation that a learned pool allocation can exploit.
* **A shared engagement direction** w (orthogonal to every cluster subspace, weight eta =
  ``engagement``): users with a low <x, w> like few items, so labels are correlated across
  items and some rows have no positive at all, as in the paper's data (most products belong to
  few categories, and about 5% to none of the kept ones).
* **Users in segments.** A user belongs to one of the G segments, uniformly; the context is
  x = xi + ``segment_strength`` B_k u with xi ~ N(0, I_d) and u ~ N(0, I_r), so a user of
  segment k varies more along cluster k's subspace and tends to like (and dislike) items of
  that cluster together.
* **Labels by threshold, power-law rates.** Item a is positive for x when f*(x, a) + eps clears
  the item's threshold tau_a, eps ~ N(0, ``label_noise``^2). The thresholds are set (as
  quantiles over a calibration sample of users) so that the positive rates follow a shifted
  power law over the items, pi_(i) ~ (i + ``rank_offset``)^(-``power_law_exponent``) for the
  i-th most popular item, scaled to the mean ``positive_rate``, with the ranks assigned to the
  items at random. The defaults (exponent 1.55, offset 18, mean rate 10.73%) match the paper's
  Fig. 2 (right): the top 5 items hold 19.26% of the positives (paper: 19.22%), the bottom 50
  hold 19.80% (paper: 19.85%); the engagement weight ``engagement=0.67`` gives 5.5-5.8% of rows
  with no positive (paper: about 5.5% of its test set). These defaults were set to match the
  paper's statistics of its data, before any model was trained on it. The power law's largest
  rate grows with |A| at a fixed mean: for |A| = 10^4 lower ``positive_rate`` (e.g. 0.002).

As in the paper's conversion of the multi-label data into bandit data, the training set has
``examples_per_item`` (c) examples per item: each is a fresh user x, an item a, and the label
r = y_a(x) in {0, 1}; every item appears exactly c times, in random order. The test set holds
``n_test`` further users with their full label rows, for precision@K and recall@K over the whole
catalog (:func:`twostage_gym.core.metrics.precision_at_k`); rows with no positive are kept (they
score 0). Train and test users are independent draws, so the split is a random train/test split.

The paper's other knobs (the nominators' feature subset size s, the number of experts N = 10 or
20, the item-embedding size d_e) belong to the model, not to the data: see
``agents.nominators.moe``. Everything is numpy; every random draw comes from generators spawned
from ``seed``, one stream each for the world, the calibration users, the training set and the test
set, so that changing ``n_test`` leaves the training set unchanged.

>>> data = make_multilabel(n_items=20, dim=12, n_clusters=4, examples_per_item=5, n_test=50, seed=0)
>>> data.train_contexts.shape, data.train_items.shape, data.test_labels.shape
((100, 12), (100,), (50, 20))
>>> int(data.train_items.min()), int(data.train_items.max()), sorted(set(data.train_rewards.tolist()))
(0, 19, [0.0, 1.0])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twostage_gym.core.checks import check_memory, integer, number, positive_int

__all__ = ["MultiLabelData", "check_training_data", "make_multilabel", "power_law_rates"]

PAPER_POSITIVE_RATE = 0.1073
"""The paper's overall reward positivity rate on its 100-category Amazon data (Sec. 3.1)."""

_CALIBRATION_USERS = 20_000
_BLOCK_CELLS = 2**22  # (users x items) scores computed at a time, to bound memory at large |A|


@dataclass(frozen=True)
class MultiLabelData:
    """A generated multi-label dataset: training triples, test rows, and the world behind them.

    Attributes:
        train_contexts: ``(|A| c, d)`` float32 user contexts of the training examples.
        train_items: ``(|A| c,)`` int64 item of each training example (every item c times).
        train_rewards: ``(|A| c,)`` float32 label in {0, 1} of the example's item for its user.
        test_contexts: ``(n_test, d)`` float32 test users.
        test_labels: ``(n_test, |A|)`` bool, every item's label for every test user.
        item_clusters: ``(|A|,)`` int64 planted cluster of each item (for diagnostics; a learner
            is not given it).
        positive_rates: ``(|A|,)`` float64 target positive rate of each item.
        thetas: ``(|A|, d)`` float64 true reward parameters theta_a (f*(x, a) = <x, theta_a>).
        thresholds: ``(|A|,)`` float64 label thresholds tau_a.
    """

    train_contexts: np.ndarray
    train_items: np.ndarray
    train_rewards: np.ndarray
    test_contexts: np.ndarray
    test_labels: np.ndarray
    item_clusters: np.ndarray
    positive_rates: np.ndarray
    thetas: np.ndarray
    thresholds: np.ndarray

    @property
    def n_items(self) -> int:
        """|A|."""
        return int(self.thresholds.shape[0])

    @property
    def dim(self) -> int:
        """d, the size of a user context."""
        return int(self.train_contexts.shape[1])

    @property
    def examples_per_item(self) -> int:
        """c, the training examples per item."""
        return int(self.train_items.shape[0]) // self.n_items

    def expected_rewards(self, contexts: np.ndarray) -> np.ndarray:
        """Oracle: f*(x, a) for every row of ``contexts`` ``(m, d)`` and item, ``(m, |A|)``."""
        return np.asarray(contexts, dtype=np.float64) @ self.thetas.T

    def summary(self) -> dict[str, float]:
        """The statistics the paper reports for its data, measured on the test rows.

        Returns:
            ``positive_rate`` (mean label), ``empty_rows`` (share of rows with no positive),
            ``top5_share`` and ``bottom50_share`` (shares of all positives held by the 5 most
            and the 50 least frequent items; Fig. 2, right) and ``train_positive_rate``.
        """
        counts = np.sort(self.test_labels.sum(axis=0))[::-1]
        total = max(int(counts.sum()), 1)
        return {
            "positive_rate": float(self.test_labels.mean()),
            "empty_rows": float((~self.test_labels.any(axis=1)).mean()),
            "top5_share": float(counts[:5].sum() / total),
            "bottom50_share": float(counts[-50:].sum() / total) if counts.size >= 100 else float("nan"),
            "train_positive_rate": float(self.train_rewards.mean()),
        }


def power_law_rates(n_items: int, mean_rate: float, exponent: float, offset: float) -> np.ndarray:
    """Positive rates pi_(i) ~ (i + offset)^(-exponent), i = 1..|A|, scaled to mean ``mean_rate``.

    Returns:
        ``(n_items,)`` float64, decreasing.

    Raises:
        ValueError: naming the argument, or when the most popular rate would reach 1.
    """
    n_items = positive_int("n_items", n_items)
    mean_rate = number("positive_rate", mean_rate, 0.0, 1.0, low_open=True, high_open=True)
    exponent = number("power_law_exponent", exponent, low=0.0)
    offset = number("rank_offset", offset, low=0.0)
    weights = (np.arange(1, n_items + 1) + offset) ** -exponent
    rates = weights / weights.mean() * mean_rate
    if rates[0] >= 1.0:
        raise ValueError(
            f"positive_rate={mean_rate} with power_law_exponent={exponent} and rank_offset={offset} gives the "
            f"most popular item a rate of {rates[0]:.3f} >= 1; lower the rate or flatten the power law"
        )
    return rates


@dataclass(frozen=True)
class _World:
    bases: np.ndarray  # (G, d, r): cluster subspaces
    engagement_dir: np.ndarray  # (d,)
    segment_strength: float
    label_noise: float
    thetas: np.ndarray  # (|A|, d)
    clusters: np.ndarray  # (|A|,)

    def users(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` user contexts: xi + segment_strength * B_k u, with the segment k uniform."""
        G, d, r = self.bases.shape
        x = rng.standard_normal((n, d))
        segment = rng.integers(0, G, size=n)
        u = rng.standard_normal((n, r)) * self.segment_strength
        # Place each user's u in the block of its segment: one (n, G r) @ (G r, d) product
        # instead of a gather of an (n, d, r) basis per user.
        coords = np.zeros((n, G * r))
        coords[np.arange(n)[:, None], segment[:, None] * r + np.arange(r)] = u
        x += coords @ self.bases.transpose(0, 2, 1).reshape(G * r, d)
        return x.astype(np.float32)


def _draw_world(
    n_items: int, dim: int, n_clusters: int, rank: int, engagement: float, strength: float, noise: float, rng
) -> _World:
    # One QR gives G r + 1 orthonormal directions: the cluster subspaces and the engagement
    # direction, exactly orthogonal, so clusters do not leak into each other.
    q, _ = np.linalg.qr(rng.standard_normal((dim, n_clusters * rank + 1)))
    bases = q[:, : n_clusters * rank].reshape(dim, n_clusters, rank).transpose(1, 0, 2)
    engagement_dir = q[:, -1]
    clusters = (rng.permutation(n_items) % n_clusters).astype(np.int64)
    z = rng.standard_normal((n_items, rank))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    thetas = np.einsum("adr,ar->ad", bases[clusters], z) + engagement * engagement_dir
    return _World(bases, engagement_dir, strength, noise, thetas, clusters)


def _thresholds(world: _World, rates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """tau_a: the (1 - pi_a) quantile of f*(x, a) + eps over calibration users, block by block of items."""
    users = world.users(_CALIBRATION_USERS, rng).astype(np.float64)
    n_items = rates.shape[0]
    # The order statistic of each item's (1 - pi_a) quantile.
    rank = np.clip(np.floor((1.0 - rates) * _CALIBRATION_USERS).astype(np.int64), 0, _CALIBRATION_USERS - 1)
    out = np.empty(n_items)
    block = max(1, _BLOCK_CELLS // _CALIBRATION_USERS)
    for start in range(0, n_items, block):  # blocks of items bound the memory; inside, all vectorised
        items = slice(start, start + block)
        scores = users @ world.thetas[items].T
        scores += world.label_noise * rng.standard_normal(scores.shape)
        scores.sort(axis=0)
        out[items] = np.take_along_axis(scores, rank[None, items], 0)[0]
    return out


def make_multilabel(
    n_items: int = 100,
    dim: int = 100,
    examples_per_item: int = 500,
    n_test: int = 50_000,
    n_clusters: int = 10,
    cluster_rank: int = 2,
    positive_rate: float = PAPER_POSITIVE_RATE,
    power_law_exponent: float = 1.55,
    rank_offset: float = 18.0,
    engagement: float = 0.67,
    segment_strength: float = 1.0,
    label_noise: float = 0.1,
    seed: int = 0,
) -> MultiLabelData:
    """Generate a multi-label dataset (see the module docstring for the world behind it).

    Args:
        n_items: |A|, the number of items (labels); 100 in the paper.
        dim: d, the size of a user context (the paper uses d = 400 BERT dimensions).
        examples_per_item: c, training examples per item (100, 500 and 750 in the paper's App. B.3).
        n_test: test users, each with its full label row (50,000 in the paper).
        n_clusters: G, item clusters (and user segments).
        cluster_rank: r, the dimension of each cluster's subspace; G r + 1 <= d.
        positive_rate: mean positive rate over items and users, in (0, 1).
        power_law_exponent: exponent of the power law of the items' positive rates (>= 0; 0 is flat).
        rank_offset: shift of the ranks in the power law (>= 0).
        engagement: eta, the weight of the shared engagement direction in every theta_a (>= 0).
        segment_strength: extra standard deviation of a user along its segment's subspace (>= 0).
        label_noise: standard deviation of the noise added to f* before the threshold (>= 0).
        seed: the seed of every draw (a non-negative integer).

    Returns:
        A :class:`MultiLabelData`.

    Raises:
        ValueError: an invalid argument (naming it), or sizes whose arrays would exceed
            :data:`twostage_gym.core.checks.MEMORY_LIMIT_BYTES`.
    """
    n_items = positive_int("n_items", n_items)
    dim = positive_int("dim", dim)
    c = positive_int("examples_per_item (c)", examples_per_item)
    n_test = positive_int("n_test", n_test)
    n_clusters = integer("n_clusters", n_clusters, 1, n_items)
    cluster_rank = positive_int("cluster_rank", cluster_rank)
    if n_clusters * cluster_rank + 1 > dim:
        raise ValueError(
            f"n_clusters * cluster_rank + 1 = {n_clusters * cluster_rank + 1} orthogonal directions do not fit "
            f"in dim={dim}: lower n_clusters or cluster_rank, or raise dim"
        )
    rates = power_law_rates(n_items, positive_rate, power_law_exponent, rank_offset)
    engagement = number("engagement", engagement, low=0.0)
    segment_strength = number("segment_strength", segment_strength, low=0.0)
    label_noise = number("label_noise", label_noise, low=0.0)
    seed = integer("seed", seed, low=0)
    n_train = n_items * c
    check_memory(
        {"n_items": n_items, "dim": dim, "examples_per_item": c, "n_test": n_test},
        {
            # float64 contexts while drawing, float32 kept; the gathered thetas of the examples.
            "training set": n_train * dim * (8 + 4 + 8) + n_train * 16,
            "test set": n_test * dim * 12 + n_test * n_items * 9,
        },
        "reduce n_items, dim, examples_per_item or n_test",
        owner="dataset",
    )
    world_rng, calibration_rng, train_rng, test_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )
    world = _draw_world(n_items, dim, n_clusters, cluster_rank, engagement, segment_strength, label_noise, world_rng)
    # Popularity ranks go to items at random, independently of their clusters.
    rates = rates[world_rng.permutation(n_items)]
    thresholds = _thresholds(world, rates, calibration_rng)

    items = train_rng.permutation(np.repeat(np.arange(n_items, dtype=np.int64), c))
    train_x = world.users(n_train, train_rng)
    score = np.einsum("nd,nd->n", train_x.astype(np.float64), world.thetas[items])
    score += label_noise * train_rng.standard_normal(n_train)
    train_r = (score > thresholds[items]).astype(np.float32)

    test_x = world.users(n_test, test_rng)
    labels = np.empty((n_test, n_items), dtype=bool)
    block = max(1, _BLOCK_CELLS // n_items)
    for start in range(0, n_test, block):  # blocks of users bound the memory of the score matrix
        rows = slice(start, start + block)
        s = test_x[rows].astype(np.float64) @ world.thetas.T
        s += label_noise * test_rng.standard_normal(s.shape)
        labels[rows] = s > thresholds
    return MultiLabelData(
        train_contexts=train_x,
        train_items=items,
        train_rewards=train_r,
        test_contexts=test_x,
        test_labels=labels,
        item_clusters=world.clusters,
        positive_rates=rates,
        thetas=world.thetas,
        thresholds=thresholds,
    )


def check_training_data(
    contexts: np.ndarray, items: np.ndarray, rewards: np.ndarray, n_items: int, dim: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check offline training triples (x_t, a_t, r_t) and return them as float32 / int64 / float32 arrays.

    Args:
        contexts: ``(n, d)`` real user contexts.
        items: ``(n,)`` integer item ids in [0, n_items).
        rewards: ``(n,)`` real rewards.
        n_items: |A|.
        dim: the expected d, or None to accept any.

    Raises:
        ValueError: naming ``contexts``, ``items`` or ``rewards`` and what is wrong with it (shape,
            dtype, range, NaN or infinity, or rows that do not match).
    """
    contexts, items, rewards = np.asarray(contexts), np.asarray(items), np.asarray(rewards)
    if contexts.ndim != 2 or contexts.shape[0] == 0 or contexts.shape[1] == 0:
        raise ValueError(f"contexts must be a non-empty 2-D (examples, d) array, got shape {contexts.shape}")
    if dim is not None and contexts.shape[1] != dim:
        raise ValueError(f"contexts must have d={dim} columns, got shape {contexts.shape}")
    if contexts.dtype.kind not in "iuf" or not np.isfinite(contexts).all():
        raise ValueError(f"contexts must hold finite real numbers, got dtype {contexts.dtype}")
    n = contexts.shape[0]
    if items.shape != (n,):
        raise ValueError(f"items must have shape ({n},), one item per row of contexts, got {items.shape}")
    if items.dtype.kind not in "iu":
        raise ValueError(f"items must hold integer item ids, got dtype {items.dtype}")
    if items.min() < 0 or items.max() >= n_items:
        raise ValueError(f"items has ids outside [0, n_items={n_items})")
    if rewards.shape != (n,):
        raise ValueError(f"rewards must have shape ({n},), one reward per row of contexts, got {rewards.shape}")
    if rewards.dtype.kind not in "iuf" or not np.isfinite(rewards).all():
        raise ValueError(f"rewards must hold finite real numbers, got dtype {rewards.dtype}")
    return contexts.astype(np.float32, copy=False), items.astype(np.int64, copy=False), rewards.astype(np.float32)
