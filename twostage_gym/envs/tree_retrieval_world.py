"""The world behind ``TwoStage/TreeRetrieval-v0``: configuration, the drawn world, and one batched step.

Zhang, Liu, Lian, Chen, *Generalization Error Bounds for Two-stage Recommender Systems with Tree
Structure* (NeurIPS 2024): a tree retriever (Sec. 3.2.1) narrows N items to a beam of K leaves by
beam search, and a late-stage ranker serves one of them (Sec. 3.2.2); a query is a user context x
with one target item y, and the two-stage error splits as Prop. 4.1 says.

The configuration (validated arguments and the fixed spaces), the world (item embeddings, the item
tree of :func:`~twostage_gym.core.tree.build_tree`, node features and the query distribution), and
:class:`Descents`, the state of a batch of queries with the step both env classes share, live here;
:mod:`twostage_gym.envs.tree_retrieval` composes them, so the single and the vector env cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces

from twostage_gym.core.checks import (
    check_memory,
    choice,
    integer,
    nonnegative_int,
    number,
    optional,
    positive_int,
    within_bound,
)
from twostage_gym.core.tree import TREE_METHODS, ItemTree, beam_search, build_tree, item_representations
from twostage_gym.core.vector import check_vector_memory
from twostage_gym.datasets.movielens import check_data_dir, fit_low_rank, load_movielens
from twostage_gym.datasets.sequences import (
    MIN_INTERACTIONS,
    TIME_WINDOWS,
    holdout_slices,
    pool_windows,
    split_users,
    train_slices,
    user_sequences,
)

__all__ = [
    "INFO_KEYS",
    "MODES",
    "SCORE_BOUND",
    "Descents",
    "TreeRetrievalConfig",
    "TreeRetrievalWorld",
    "check_scores",
    "expand_beam",
    "select_beam",
    "world_key",
]

MODES = ("levelwise", "scores")

SCORE_BOUND = 1e6
"""Bound of the scores action space. Only the order of the scores matters (the top K of a level),
so any finite bound works; the suite's other score actions use 1e6 too."""

N_ITEMS, DIM, TAU = 1024, 16, 0.03
"""Synthetic defaults. With them the target is the argmax of q in 13-18% of queries and lies in the
top 20 items of q in 73-83% (worlds 0-4, 4,000 queries each): retrieval is learnable, and a K = 20
beam leaves room for both stages to err."""

GEN_BRANCHES = 4
GEN_SPREADS = (1.0, 0.6, 0.35)
"""The item clusters: level l has min(4^l, N) cluster centres, each its parent's plus Gaussian noise of
standard deviation GEN_SPREADS[l - 1] / sqrt(d) per coordinate (a planted hierarchy a tree can mirror)."""
ITEM_SPREAD = 0.25
"""Standard deviation (times sqrt(d)) of an item's offset from its finest cluster's centre."""
CONTEXT_NOISE = 0.5
"""A context is x = e_a + CONTEXT_NOISE z / sqrt(d), a a uniformly random item and z ~ N(0, I)."""

WORLD_STREAM = 0x7BEE
"""The world is drawn from ``np.random.default_rng([WORLD_STREAM, key])``, key the world seed or reset seed."""
QUERY_STREAM = 0x9E1
"""Query block j of a stream is drawn from ``default_rng([QUERY_STREAM, stream_key, j])``."""
RANKER_STREAM = 0x7A4C
"""The oracle ranker's noise of block j: ``default_rng([RANKER_STREAM, stream_key, j])`` (apart from the
queries, so ``ranker_noise`` never changes the queries)."""
DATASET_STREAM = 0xDA7A
"""``sample_dataset(n, seed)`` draws from ``default_rng([DATASET_STREAM, world key, seed])``."""

_BLOCK_ELEMENTS = 2**21  # queries x items x dim of one block of queries (16 MiB of float64)
_MAX_BLOCK = 256

INFO_KEYS = (
    "query",
    "level",
    "query_complete",
    "beams",
    "retrieved",
    "target",
    "served",
    "retrieval_hit",
    "ranker_hit",
    "recall@K",
    "expected_reward",
    "optimal_expected_reward",
    "regret",
    "nominator_regret",
    "ranker_regret",
    "optimal_item",
)
"""The keys of every step's info, in order."""

_FLOATS = ("recall@K", "expected_reward", "optimal_expected_reward", "regret", "nominator_regret", "ranker_regret")
_BOOLS = ("query_complete", "retrieval_hit", "ranker_hit")


class TreeRetrievalConfig:
    """Validated constructor arguments shared by the single and the vector env, and the fixed spaces.

    Raises:
        ValueError: naming the argument, for every invalid value or combination.
    """

    def __init__(
        self,
        n_items: int | None = None,
        dim: int = DIM,
        branches: int = 4,
        beam: int = 20,
        tree_method: str = "balanced-kmeans",
        mode: str = "levelwise",
        ranker: str | Callable[[np.ndarray, np.ndarray], np.ndarray] = "oracle",
        ranker_noise: float = 0.0,
        tau: float | None = None,
        data_dir: str | None = None,
        world_seed: int | None = None,
    ) -> None:
        n_items = optional(integer, "n_items", n_items, low=2)
        self.dim = positive_int("dim", dim)
        self.branches = integer("branches", branches, low=2)
        self.beam = positive_int("beam", beam)
        self.tree_method = choice("tree_method", tree_method, TREE_METHODS)
        self.mode = choice("mode", mode, MODES)
        if isinstance(ranker, str) or not callable(ranker):
            choice("ranker", ranker, ("oracle",))
        self.ranker = ranker
        self.ranker_noise = number("ranker_noise", ranker_noise, 0.0, SCORE_BOUND)
        if callable(ranker) and self.ranker_noise != 0.0:
            raise ValueError("ranker_noise applies to ranker='oracle' only (a callable ranker is used as given)")
        tau = optional(number, "tau", tau, 0.0, 1e6)
        if tau is not None and 0.0 < tau < 1e-6:
            raise ValueError(f"tau must be 0 (the argmax) or in [1e-6, 1e6], got {tau!r}")
        self.world_seed = optional(nonnegative_int, "world_seed", world_seed)
        self.data = None
        if data_dir is not None:
            path = check_data_dir(data_dir)
            for name, value in (("n_items", n_items), ("tau", tau)):
                if value is not None:
                    raise ValueError(
                        f"{name} applies to the synthetic world only; with data_dir the data decide it (got {value!r})"
                    )
            self.data_dir = str(path)
            self.data = load_movielens(path)
            active = int((np.bincount(self.data.users) >= MIN_INTERACTIONS).sum())
            if active < 10:
                raise ValueError(
                    f"data_dir={self.data_dir!r}: {active} users have at least {MIN_INTERACTIONS} interactions; "
                    "the training / validation / test split needs 10 or more"
                )
            self.n_items = self.data.n_items
            self.tau = None
            self.context_dim = len(TIME_WINDOWS) * self.dim
        else:
            self.data_dir = None
            self.n_items = N_ITEMS if n_items is None else n_items
            self.tau = TAU if tau is None else tau
            self.context_dim = self.dim
        if self.beam >= self.n_items:
            raise ValueError(f"beam (K={self.beam}) must be below n_items (N={self.n_items}): K < N")
        if self.tree_method == "kmeans" and self.world_seed is None:
            raise ValueError(
                "tree_method='kmeans' gives trees of varying size, and the spaces must be fixed at make: "
                "pass world_seed (the world and its tree are then built at make)"
            )
        self.slots = self.beam * self.branches
        self.check_memory()
        self.block = int(max(1, min(_MAX_BLOCK, _BLOCK_ELEMENTS // (self.n_items * self.dim))))
        self.world = None
        if self.world_seed is not None:
            self.world = TreeRetrievalWorld(self, self.world_seed)
            shape = self.world.tree
        else:
            # Balanced and random trees have the same shape for every world: that of a random tree.
            shape = build_tree(np.zeros((self.n_items, 1)), self.branches, "random", 0)
        self.n_nodes, self.n_levels = shape.n_nodes, shape.n_levels

    # -- memory ---------------------------------------------------------------------------------
    def memory_parts(self, num_envs: int = 1) -> dict[str, int]:
        """Estimated bytes of the largest arrays the env allocates, by what they hold.

        Args:
            num_envs: sub-envs of a vector env (1 for the single env); without ``world_seed`` each
                sub-env seeded on its own draws its own world, so worlds count num_envs times.
        """
        N, d, B, K, S = self.n_items, self.dim, self.branches, self.beam, self.slots
        worlds = 1 if self.world_seed is not None else num_envs
        nodes = 2 * N  # every internal node has >= 2 children
        parts = {
            # Embeddings and the k-means temporaries (about 5 copies), node features, the tree's arrays.
            "worlds (embeddings, tree, node features)": worlds * (48 * N * d + 4 * nodes * d + 8 * nodes * (B + 10)),
            # One block of queries: contexts, the (block, N, d) relevance product, Gumbel and noise draws.
            "query blocks": num_envs * 24 * min(_BLOCK_ELEMENTS, N * d) + num_envs * 24 * _MAX_BLOCK * N,
            # Space bounds (float32 low and high, two bool masks) and one observation per sub-env.
            "spaces and observations": (10 + 4 * num_envs) * (S * (d + 3) + nodes + self.context_dim),
            "descent state (beams, candidates)": num_envs * 8 * (64 * K + 4 * S),
        }
        if self.data is not None:
            n_ratings = self.data.n_ratings
            parts["sequence slices (69 items each)"] = 2 * worlds * 8 * 70 * n_ratings
        return parts

    def check_memory(self, num_envs: int = 1) -> int:
        """Refuse sizes whose arrays exceed :data:`twostage_gym.core.checks.MEMORY_LIMIT_BYTES`.

        Raises:
            ValueError: naming the size arguments and giving the estimate.
        """
        sizes: dict[str, Any] = {"n_items": self.n_items, "dim": self.dim, "branches": self.branches, "beam": self.beam}
        return check_vector_memory(sizes, self.memory_parts(num_envs), num_envs, self.world_seed)

    # -- spaces ---------------------------------------------------------------------------------
    def action_space(self) -> spaces.Box:
        width = self.slots if self.mode == "levelwise" else self.n_nodes
        return spaces.Box(-SCORE_BOUND, SCORE_BOUND, (width,), np.float32)

    def observation_space(self) -> spaces.Dict:
        context = spaces.Box(-np.inf, np.inf, (self.context_dim,), np.float32)
        if self.mode == "scores":
            return spaces.Dict({"context": context})
        S = self.slots
        return spaces.Dict(
            {
                "context": context,
                "candidate_nodes": spaces.Box(-1, self.n_nodes - 1, (S,), np.int64),
                # Means of unit (or zero) item representations: every coordinate is in [-1, 1].
                "candidate_features": spaces.Box(-1.0, 1.0, (S, self.dim), np.float32),
                "mask": spaces.MultiBinary(S),
                "level": spaces.Discrete(self.n_levels),
            }
        )


def world_key(config: TreeRetrievalConfig, seed: int | None, np_random: np.random.Generator) -> int:
    """The key a (re)seeded row's world is drawn from: ``world_seed``, else the reset seed, else a fresh draw."""
    if config.world_seed is not None:
        return config.world_seed
    if seed is not None:
        return int(seed)
    return int(np_random.integers(0, 2**63 - 1))


def relevance(contexts: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """q(x, a) = <x, e_a> for ``contexts`` ``(n, d)`` and ``embeddings`` ``(n, k, d)`` or ``(k, d)``: ``(n, k)``.

    An elementwise product summed over the last axis rather than a matrix product: BLAS may round a
    product differently with the batch's shape, while this sum gives every pair the same value
    whichever batch it is computed in (the oracle's optimum and the served item's value must agree).
    """
    x = np.asarray(contexts, dtype=np.float64)[:, None, :]
    e = embeddings if embeddings.ndim == 3 else embeddings[None]
    return (x * e).sum(axis=-1)


class TreeRetrievalWorld:
    """One drawn world: the items, their tree, the node features and the query distribution.

    Attributes:
        key: the world's seed (``world_seed`` or the reset seed).
        item_embeddings: float64 ``(N, d)``: the synthetic embeddings e_a (unit rows), or on
            MovieLens the item representations z_i of Sec. 3.2.1 (unit rows; zero for an item
            no training user interacted with).
        tree: the :class:`~twostage_gym.core.tree.ItemTree` built from ``item_embeddings``.
        node_features: float32 ``(n_nodes, d)``: the mean item embedding of each node's subtree.
        context_dim: the size of a context x.
    """

    def __init__(self, config: TreeRetrievalConfig, key: int) -> None:
        self.key = int(key)
        self.config = config
        self.tau = config.tau
        rng = np.random.default_rng([WORLD_STREAM, self.key])
        if config.data is None:
            self.item_embeddings = _clustered_embeddings(config.n_items, config.dim, rng)
        else:
            self._movielens(config, rng)
        self.item_embeddings.setflags(write=False)
        self.tree: ItemTree = build_tree(self.item_embeddings, config.branches, config.tree_method, rng)
        t = self.tree
        cum = np.concatenate([np.zeros((1, config.dim)), np.cumsum(self.item_embeddings[t.item_order], axis=0)])
        sizes = (t.node_stop - t.node_start)[:, None]
        self.node_features = ((cum[t.node_stop] - cum[t.node_start]) / sizes).astype(np.float32)
        self.node_features.setflags(write=False)
        self.context_dim = config.context_dim

    def _movielens(self, config: TreeRetrievalConfig, rng: np.random.Generator) -> None:
        """Item representations, user split and slices from the ratings (App. D.1-D.2)."""
        data = config.data
        ptr, items = user_sequences(data)
        active = np.flatnonzero(np.diff(ptr) >= MIN_INTERACTIONS)
        split = split_users(active.size, int(rng.integers(0, 2**63 - 1)))
        self.users = {name: active[idx] for name, idx in split.items()}
        train = self.users["train"]
        # Y: the training users' instance-item matrix; f_j: each user's rank-d factor (Sec. 3.2.1's
        # enhanced y_i = sum_j Y_ji f_j), fitted on the training users only.
        y = np.zeros((train.size, data.n_items))
        counts = ptr[train + 1] - ptr[train]
        row = np.repeat(np.arange(train.size), counts)
        at = np.repeat(ptr[train] - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))
        y[row, items[at]] = 1.0
        user_factors, _ = fit_low_rank(y, min(config.dim, *y.shape), seed=0)
        if user_factors.shape[1] < config.dim:
            user_factors = np.pad(user_factors, ((0, 0), (0, config.dim - user_factors.shape[1])))
        self.item_embeddings = item_representations(y, user_factors)
        self.train_slices = train_slices(ptr, items, train)
        self.validation_slices = holdout_slices(ptr, items, self.users["validation"])
        self.test_slices = holdout_slices(ptr, items, self.users["test"])
        self.test_contexts = pool_windows(self.item_embeddings, self.test_slices.history)

    # -- queries ----------------------------------------------------------------------------------
    def _draw(self, rng: np.random.Generator, n: int, data_split: str = "test") -> dict[str, np.ndarray]:
        """``n`` queries: contexts, targets, each query's best item and the softmax's log-normaliser."""
        if self.config.data is not None:
            if data_split == "test":
                idx = rng.integers(0, len(self.test_slices), size=n)
                contexts = self.test_contexts[idx]
                targets = self.test_slices.targets[idx]
            else:
                slices = self.train_slices if data_split == "train" else self.validation_slices
                idx = rng.integers(0, len(slices), size=n)
                contexts = pool_windows(self.item_embeddings, slices.history[idx])
                targets = slices.targets[idx]
            # Real data hold one relevant item per query, the logged target: q(x, a) = 1[a = y].
            return {"contexts": contexts, "targets": targets, "optimal": targets.copy(), "lse": np.zeros(n)}
        N, d = self.item_embeddings.shape
        anchor = rng.integers(0, N, size=n)
        noise = rng.standard_normal((n, d))
        contexts = (self.item_embeddings[anchor] + CONTEXT_NOISE / np.sqrt(d) * noise).astype(np.float32)
        uniform = 1.0 - rng.random(n)  # in (0, 1]; drawn whatever tau, so that tau never shifts the stream
        # einsum's own loops rather than BLAS: as fast single-threaded, and no thread pool to contend for.
        q = np.einsum("nd,kd->nk", contexts.astype(np.float64), self.item_embeddings)
        optimal = _exact_argmax(contexts, self.item_embeddings, q)
        if self.tau == 0.0:
            targets, lse = optimal.copy(), np.zeros(n)
        else:
            z = q / self.tau
            top = z.max(axis=1)
            cum = np.cumsum(np.exp(z - top[:, None]), axis=1)
            lse = top + np.log(cum[:, -1])
            # Inverse-CDF sampling, y ~ softmax(q / tau): the first item whose cumulative weight
            # reaches u * total (u > 0, so an item of weight 0 is never drawn).
            targets = (cum < (uniform * cum[:, -1])[:, None]).sum(axis=1)
        return {"contexts": contexts, "targets": targets, "optimal": optimal, "lse": lse}

    def query_block(self, stream_key: int, block: int, ranker_noise: float) -> dict[str, np.ndarray]:
        """Block ``block`` of the query stream ``stream_key`` (``config.block`` queries), a function of both only."""
        n = self.config.block
        out = self._draw(np.random.default_rng([QUERY_STREAM, int(stream_key), int(block)]), n)
        if ranker_noise > 0.0:
            noise_rng = np.random.default_rng([RANKER_STREAM, int(stream_key), int(block)])
            out["noise"] = ranker_noise * noise_rng.standard_normal((n, self.item_embeddings.shape[0]))
        return out

    def sample_dataset(self, n: int, seed: int = 0, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """Supervised training data (x_i, y_i), as the paper trains, from a stream apart from the env's queries.

        Synthetic: ``n`` queries from the env's query distribution (drawn from
        ``default_rng([DATASET_STREAM, key, seed])``, never the env's stream). MovieLens: ``n``
        slices drawn with replacement from the training users' (``split="train"``) or the
        validation users' (``"validation"``) slices; the env's queries come from the test users.

        Args:
            n: how many examples (a positive int).
            seed: a non-negative int; the same (world, ``n``, ``seed``) gives the same data.
            split: ``"train"`` or ``"validation"`` (MovieLens; the synthetic world has one distribution).

        Returns:
            ``(contexts, targets)``: float32 ``(n, context_dim)`` and int64 ``(n,)``.
        """
        n = positive_int("n", n)
        seed = nonnegative_int("seed", seed)
        split = choice("split", split, ("train", "validation"))
        check_memory(
            {"n": n}, {"dataset": n * (self.context_dim * 4 + 8 + 8 * 70)}, "ask for fewer examples", "dataset"
        )
        rng = np.random.default_rng([DATASET_STREAM, self.key, seed])
        contexts = np.empty((n, self.context_dim), dtype=np.float32)
        targets = np.empty(n, dtype=np.int64)
        step = self.config.block
        for i in range(0, n, step):  # blocks bound the (block, N, d) relevance product
            part = self._draw(rng, min(step, n - i), split)
            contexts[i : i + step], targets[i : i + step] = part["contexts"], part["targets"]
        return contexts, targets

    # -- oracle -----------------------------------------------------------------------------------
    def target_probabilities(
        self, contexts: np.ndarray, items: np.ndarray, lse: np.ndarray, targets: np.ndarray
    ) -> np.ndarray:
        """Oracle: P(y = a | x) for the ``items`` ``(n, k)`` of each query: softmax(q / tau), or 1[a = argmax q].

        On MovieLens the logged target is the query's only relevant item: 1[a = y].
        """
        if self.config.data is not None:
            return (items == targets[:, None]).astype(np.float64)
        q = relevance(contexts, self.item_embeddings[items])
        if self.tau == 0.0:
            return (items == targets[:, None]).astype(np.float64)  # tau = 0: the target is the argmax
        return np.exp(q / self.tau - lse[:, None])

    def ranker_values(
        self, contexts: np.ndarray, items: np.ndarray, targets: np.ndarray, noise: np.ndarray | None
    ) -> np.ndarray:
        """The oracle ranker's values of ``items`` ``(n, K)``: q(x, a) plus its noise (if any)."""
        if self.config.data is not None:
            q = (items == targets[:, None]).astype(np.float64)
        else:
            q = relevance(contexts, self.item_embeddings[items])
        if noise is not None:
            q = q + np.take_along_axis(noise, items, axis=1)
        return q


def _exact_argmax(contexts: np.ndarray, embeddings: np.ndarray, q: np.ndarray) -> np.ndarray:
    """argmax_a of :func:`relevance` per row, found from a faster product ``q`` of the same values.

    The product may round differently from :func:`relevance` (which the served items' values come
    from); the items within 1e-9 of the product's maximum, far above its rounding error, are
    re-scored by :func:`relevance`, so the optimum is never below a retrieved item.
    """
    top = q.max(axis=1, keepdims=True)
    rows, cols = np.nonzero(q >= top - 1e-9 * (1.0 + np.abs(top)))
    exact = np.full(q.shape, -np.inf)
    x = np.asarray(contexts, dtype=np.float64)
    exact[rows, cols] = (x[rows] * embeddings[cols]).sum(axis=-1)
    return exact.argmax(axis=1)


def _clustered_embeddings(n_items: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Unit item embeddings around a planted hierarchy of cluster centres (see :data:`GEN_SPREADS`)."""
    centres = np.zeros((1, dim))
    scale = 1.0 / np.sqrt(dim)
    for level, spread in enumerate(GEN_SPREADS, start=1):
        n = min(GEN_BRANCHES**level, n_items)
        parent = np.arange(n) % centres.shape[0]
        centres = centres[parent] + spread * scale * rng.standard_normal((n, dim))
    cluster = rng.permutation(n_items) % centres.shape[0]
    e = centres[cluster] + ITEM_SPREAD * scale * rng.standard_normal((n_items, dim))
    return e / np.linalg.norm(e, axis=1, keepdims=True)


# -- one level of beam search, batched -------------------------------------------------------------


def expand_beam(tree: ItemTree, beam: np.ndarray) -> np.ndarray:
    """D(B_l(x)) for a batch of beams ``(n, K)`` (-1 padding): int64 ``(n, K * B)``, slot j * B + b.

    The candidates of beam node j sit in slots j * B .. j * B + B - 1: its children in tree order,
    or the node itself in the first slot if it is a leaf (D(v) = {v}, Sec. 3.2.1); -1 elsewhere.
    The same expansion as :func:`~twostage_gym.core.tree.beam_search` performs inside its loop,
    kept here at a fixed width so that one env step is one level and the slots never depend on
    the other rows of a batch.
    """
    n, k = beam.shape
    valid = beam >= 0
    safe = np.where(valid, beam, 0)
    cand = tree.children[safe]  # (n, K, B), a fresh array
    leaf = valid & (tree.leaf_item[safe] >= 0)
    cand[leaf] = -1
    cand[leaf, 0] = beam[leaf]
    cand[~valid] = -1
    return cand.reshape(n, k * tree.branches)


def select_beam(candidates: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """B_{l+1}(x): the top ``k`` candidates of each row by score, best first, -1 padded (padding slots ignored).

    Ties go to the earlier slot, the rule of :func:`~twostage_gym.core.tree.beam_search`.
    """
    valid = candidates >= 0
    top = np.lexsort((-scores.astype(np.float64), ~valid), axis=1)[:, :k]
    chosen = np.take_along_axis(candidates, top, axis=1)
    return np.where(np.take_along_axis(valid, top, axis=1), chosen, -1)


def check_scores(action: Any, shape: tuple[int, ...], what: str = "scores") -> np.ndarray:
    """Validate a scores action (float32, the space's shape, finite, within the bound) and return it.

    Raises:
        ValueError: wrong shape, a dtype other than float32, a NaN or infinite score, or a score
            outside [-SCORE_BOUND, SCORE_BOUND].
    """
    a = np.asarray(action)
    if a.shape != shape:
        raise ValueError(f"{what} must have shape {shape}, got {a.shape}")
    if a.dtype != np.float32:
        raise ValueError(f"{what} must have dtype float32 (the action space's dtype), got dtype {a.dtype}")
    within_bound(what, a, SCORE_BOUND, "score")
    return a


# -- the state of a batch of queries --------------------------------------------------------------


class Descents:
    """The queries in progress of n rows (the single env has one, the vector env one per sub-env).

    Each row has its world, its query stream (a key; query i is a function of the key and i only,
    computed a block at a time), the query in progress (its context, target and oracle values)
    and, in ``"levelwise"`` mode, how far the descent has gone: the beams chosen so far and the
    candidates D(B_l(x)) of the next level. Rows of one world are stepped as one batch.
    """

    def __init__(self, config: TreeRetrievalConfig, n: int) -> None:
        c = self.config = config
        self.n = n
        L, K, S, N = c.n_levels, c.beam, c.slots, c.n_items
        self.worlds: list[TreeRetrievalWorld | None] = [None] * n
        self.stream_keys = np.zeros(n, dtype=np.int64)
        self.queries = np.zeros(n, dtype=np.int64)
        self.levels = np.zeros(n, dtype=np.int64)
        self.beams = np.full((n, L, K), -1, dtype=np.int64)
        self.candidates = np.full((n, S), -1, dtype=np.int64)
        self.contexts = np.zeros((n, c.context_dim), dtype=np.float32)
        self.targets = np.zeros(n, dtype=np.int64)
        self.optimal = np.zeros(n, dtype=np.int64)
        self.lse = np.zeros(n)
        noisy = c.ranker_noise > 0 and not callable(c.ranker)
        self.noise = np.zeros((n, N)) if noisy else None
        # Each row's current block of queries, stacked so that starting queries is one gather.
        b = c.block
        self._block_ids = np.full(n, -1, dtype=np.int64)
        self._block = {
            "contexts": np.zeros((n, b, c.context_dim), dtype=np.float32),
            "targets": np.zeros((n, b), dtype=np.int64),
            "optimal": np.zeros((n, b), dtype=np.int64),
            "lse": np.zeros((n, b)),
        }
        if noisy:
            self._block["noise"] = np.zeros((n, b, N))
        self._world_index = np.full(n, -1, dtype=np.int64)
        self._world_list: list[TreeRetrievalWorld] = []

    @property
    def ready(self) -> bool:
        return all(w is not None for w in self.worlds)

    def seed_row(self, row: int, seed: int | None, np_random: np.random.Generator, cache: dict) -> None:
        """(Re)seed a row from its generator: its world (shared through ``cache`` by key) and its query stream."""
        key = world_key(self.config, seed, np_random)
        self.stream_keys[row] = int(np_random.integers(0, 2**63 - 1))
        if key not in cache:
            cache[key] = self.config.world if self.config.world is not None else TreeRetrievalWorld(self.config, key)
        self.set_world(row, cache[key])
        self.queries[row] = -1  # start_queries moves on to query 0
        self._block_ids[row] = -1

    def set_world(self, row: int, world: TreeRetrievalWorld) -> None:
        """Give ``row`` the world ``world`` (rows of one world are stepped together)."""
        self.worlds[row] = world
        if not any(w is world for w in self._world_list):
            self._world_list.append(world)
        self._world_index[row] = next(i for i, w in enumerate(self._world_list) if w is world)
        used = {int(i) for i in self._world_index if i >= 0}
        if len(used) < len(self._world_list):  # forget worlds no row uses (a seed sweep keeps none)
            keep = sorted(used)
            self._world_list = [self._world_list[i] for i in keep]
            remap = np.full(max(keep) + 1, -1, dtype=np.int64)
            remap[keep] = np.arange(len(keep))
            self._world_index = np.where(self._world_index >= 0, remap[np.maximum(self._world_index, 0)], -1)

    def by_world(self, rows: np.ndarray) -> list[tuple[TreeRetrievalWorld, np.ndarray]]:
        """``rows`` split by world: (world, positions in ``rows``) pairs."""
        index = self._world_index[rows]
        if len(self._world_list) == 1 or (index == index[0]).all():
            return [(self._world_list[index[0]], np.arange(rows.size))]
        return [(self._world_list[i], np.flatnonzero(index == i)) for i in np.unique(index)]

    def start_queries(self, rows: np.ndarray) -> None:
        """Begin the next query of ``rows``: its context, target and oracle values, and the root's beam."""
        c = self.config
        self.queries[rows] += 1
        blocks, pos = np.divmod(self.queries[rows], c.block)
        stale = np.flatnonzero(self._block_ids[rows] != blocks)
        for j in stale:  # a new block once every config.block queries of a row: one generator per block
            r = rows[j]
            fresh = self.worlds[r].query_block(int(self.stream_keys[r]), int(blocks[j]), c.ranker_noise)
            for key, value in self._block.items():
                value[r] = fresh[key]
            self._block_ids[r] = blocks[j]
        self.contexts[rows] = self._block["contexts"][rows, pos]
        self.targets[rows] = self._block["targets"][rows, pos]
        self.optimal[rows] = self._block["optimal"][rows, pos]
        self.lse[rows] = self._block["lse"][rows, pos]
        if self.noise is not None:
            self.noise[rows] = self._block["noise"][rows, pos]
        self.levels[rows] = 0
        self.beams[rows] = -1
        root = np.full((rows.size, c.beam), -1, dtype=np.int64)
        root[:, 0] = 0
        for world, sel in self.by_world(rows):
            self.candidates[rows[sel]] = expand_beam(world.tree, root[sel])

    def observations(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The observations of ``rows``, batched (a leading axis of len(rows))."""
        obs: dict[str, np.ndarray] = {"context": self.contexts[rows].copy()}
        if self.config.mode == "scores":
            return obs
        cand = self.candidates[rows]
        valid = cand >= 0
        features = np.zeros((rows.size, self.config.slots, self.config.dim), dtype=np.float32)
        for world, sel in self.by_world(rows):
            features[sel] = np.where(valid[sel, :, None], world.node_features[np.maximum(cand[sel], 0)], 0.0)
        obs["candidate_nodes"] = cand
        obs["candidate_features"] = features
        obs["mask"] = valid.astype(np.int8)
        obs["level"] = self.levels[rows].copy()
        return obs

    def play(self, rows: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One step of ``rows`` with their checked ``scores`` (len(rows), action width): rewards and info rows.

        Levelwise: the top K of the candidates form the next beam; rows whose last level this
        was are served. Scores: a whole beam search per row, then serving. Everything is computed
        before the state changes, so a ranker that raises leaves the rows as they were.
        """
        c = self.config
        n, L, K = rows.size, c.n_levels, c.beam
        beams = self.beams[rows].copy()
        levels = self.levels[rows].copy()
        next_candidates = np.full((n, c.slots), -1, dtype=np.int64)
        for world, sel in self.by_world(rows):
            r = rows[sel]
            if c.mode == "levelwise":
                chosen = select_beam(self.candidates[r], scores[sel], K)
                beams[sel, levels[sel]] = chosen
                next_candidates[sel] = expand_beam(world.tree, chosen)
                levels[sel] += 1
            else:
                node_scores = scores[sel]
                result = beam_search(
                    world.tree,
                    lambda ids, nodes, s=node_scores: np.take_along_axis(s, nodes, axis=1),
                    np.zeros((sel.size, 1)),
                    K,
                )
                beams[sel] = np.stack(result.levels, axis=1)
                levels[sel] = L
        complete = levels == L
        info = _empty_info(n, L, K)
        info["query"] = self.queries[rows].copy()
        info["level"] = levels.copy()
        info["query_complete"] = complete.copy()
        info["beams"] = beams
        reward = np.zeros(n)
        done = np.flatnonzero(complete)
        if done.size:
            served_rows = self._serve(rows[done], beams[done, L - 1])
            for key, value in served_rows.items():
                info[key][done] = value
            reward[done] = info["ranker_hit"][done]
        # Commit.
        self.beams[rows] = beams
        self.levels[rows] = levels
        if c.mode == "levelwise":
            self.candidates[rows] = next_candidates
        if done.size:
            self.start_queries(rows[done])
        return reward, info

    def _serve(self, rows: np.ndarray, leaves: np.ndarray) -> dict[str, np.ndarray]:
        """The late-stage ranker on the final beams of ``rows`` and the oracle quantities."""
        c = self.config
        n = rows.size
        out = {
            key: np.zeros(n, dtype=np.float64)
            for key in ("recall@K", "expected_reward", "optimal_expected_reward", "nominator_regret", "ranker_regret")
        }
        out["retrieved"] = np.empty((n, c.beam), dtype=np.int64)
        for key in ("target", "served", "optimal_item"):
            out[key] = np.empty(n, dtype=np.int64)
        for world, sel in self.by_world(rows):
            r = rows[sel]
            items = world.tree.leaf_item[leaves[sel]]  # K < N, so the final beam holds K leaves
            contexts, targets = self.contexts[r], self.targets[r]
            if callable(c.ranker):
                served = _call_ranker(c.ranker, contexts.copy(), items.copy())
                pos = np.argmax(items == served[:, None], axis=1)
            else:
                noise = None if self.noise is None else self.noise[r]
                pos = np.argmax(world.ranker_values(contexts, items, targets, noise), axis=1)
            served = items[np.arange(sel.size), pos]
            p = world.target_probabilities(contexts, items, self.lse[r], targets)
            p_opt = world.target_probabilities(contexts, self.optimal[r][:, None], self.lse[r], targets)[:, 0]
            best = p.max(axis=1)
            expected = p[np.arange(sel.size), pos]
            out["retrieved"][sel] = items
            out["target"][sel], out["served"][sel], out["optimal_item"][sel] = targets, served, self.optimal[r]
            out["expected_reward"][sel], out["optimal_expected_reward"][sel] = expected, p_opt
            out["nominator_regret"][sel] = p_opt - best
            out["ranker_regret"][sel] = best - expected
        out["retrieval_hit"] = (out["retrieved"] == out["target"][:, None]).any(axis=1)
        out["ranker_hit"] = out["served"] == out["target"]
        out["recall@K"] = out["retrieval_hit"].astype(np.float64)  # one target: recall@K is the hit
        out["regret"] = out["nominator_regret"] + out["ranker_regret"]
        return out


def _empty_info(n: int, levels: int, k: int) -> dict[str, np.ndarray]:
    """Info rows of steps that serve nothing: ids -1, flags False, rewards and regrets 0."""
    info: dict[str, np.ndarray] = {
        "query": np.zeros(n, dtype=np.int64),
        "level": np.zeros(n, dtype=np.int64),
        "beams": np.full((n, levels, k), -1, dtype=np.int64),
        "retrieved": np.full((n, k), -1, dtype=np.int64),
    }
    for key in ("target", "served", "optimal_item"):
        info[key] = np.full(n, -1, dtype=np.int64)
    for key in _BOOLS:
        info[key] = np.zeros(n, dtype=bool)
    for key in _FLOATS:
        info[key] = np.zeros(n)
    return {key: info[key] for key in INFO_KEYS}


def _call_ranker(ranker: Callable[..., Any], contexts: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Call a user ranker and check that it served one of each row's items.

    Raises:
        ValueError: naming ``ranker``, for a result of the wrong shape or type or an item not retrieved.
    """
    served = np.asarray(ranker(contexts, items))
    n = items.shape[0]
    if served.shape != (n,) or served.dtype.kind not in "iu":
        raise ValueError(
            f"ranker must return int64 served items of shape ({n},), got shape {served.shape} dtype {served.dtype}"
        )
    served = served.astype(np.int64)
    bad = ~(items == served[:, None]).any(axis=1)
    if bad.any():
        j = int(np.argmax(bad))
        raise ValueError(
            f"ranker served item {int(served[j])} in row {j}, which is not among its retrieved items "
            f"{items[j].tolist()}"
        )
    return served
