"""Tree-structured retrieval with beam search, then a late-stage ranker (Zhang et al., NeurIPS 2024)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from twostage_gym.core.checks import choice
from twostage_gym.core.tree import ItemTree
from twostage_gym.core.vector import advance_steps, scatter_info, seed_list, vector_arguments
from twostage_gym.envs.tree_retrieval_world import (
    INFO_KEYS,
    SCORE_BOUND,
    Descents,
    TreeRetrievalConfig,
    TreeRetrievalWorld,
    check_scores,
)

__all__ = ["INFO_KEYS", "TreeRetrievalEnv", "TreeRetrievalVectorEnv"]

_BOOL_KEYS = ("query_complete", "retrieval_hit", "ranker_hit")


class _WorldAPI(ABC):
    """The public world (items, tree, node features, training data), shared by the single and the vector env."""

    config: TreeRetrievalConfig

    @abstractmethod
    def _shared_world(self) -> TreeRetrievalWorld:
        """The world this env (or every sub-env of the vector env) plays."""

    @property
    def world(self) -> TreeRetrievalWorld:
        """The current world (:class:`~twostage_gym.envs.tree_retrieval_world.TreeRetrievalWorld`)."""
        return self._shared_world()

    @property
    def tree(self) -> ItemTree:
        """The item tree the beam search descends."""
        return self._shared_world().tree

    @property
    def item_embeddings(self) -> np.ndarray:
        """float64 ``(N, d)``: the item embeddings (representations) the tree was built from."""
        return self._shared_world().item_embeddings

    @property
    def node_features(self) -> np.ndarray:
        """float32 ``(n_nodes, d)``: each node's mean item embedding (what the levelwise observation shows)."""
        return self._shared_world().node_features

    @property
    def context_dim(self) -> int:
        """The size of a context x."""
        return self.config.context_dim

    def sample_dataset(self, n: int, seed: int = 0, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """Supervised training data ``(contexts (n, d) float32, targets (n,) int64)`` from a stream apart
        from the env's queries (see :meth:`TreeRetrievalWorld.sample_dataset`)."""
        return self._shared_world().sample_dataset(n, seed, split)

    def context_observation(self, obs: Any) -> np.ndarray:
        """The part of an observation that never depends on the agent's actions: the context x.

        The levelwise observation's candidates are the children of the beam the agent's scores
        chose, so two agents on one seed face the same queries but see their own candidates.
        """
        return np.asarray(obs["context"])


class TreeRetrievalEnv(_WorldAPI, gym.Env):
    """## Description

    The two-stage recommender with a tree-structured retriever of Zhang, Liu, Lian, Chen,
    *Generalization Error Bounds for Two-stage Recommender Systems with Tree Structure* (NeurIPS
    2024). Every leaf of a tree is an item; the tree comes from recursive (balanced) k-means on the
    item embeddings with B branches (Sec. 3.2.1). A query is a user context x with a target item y.
    The retriever is a beam search of size K down the tree: B_1(x) is the top K of the root's
    children by the retriever's scores, B_{l+1}(x) the top K of D(B_l(x)) (a leaf is its own child),
    and the K leaves of the last level are the retrieved set B(x). A fixed late-stage ranker then
    serves one of the K items (Sec. 3.2.2), and the reward is 1 when it is the target. The agent is
    the retriever: it supplies the node scores f(x, c); the env enforces the tree, the beam and the
    ranker.

    **The synthetic world.** N item embeddings e_a (unit vectors, d = ``dim``) around a planted
    hierarchy of clusters (4, 16 and 64 cluster centres, each its parent's plus Gaussian noise), so
    that a tree can mirror it and retrieval is learnable. A context is x = e_a + 0.5 z / sqrt(d)
    for a uniformly random item a and z ~ N(0, I); the relevance is q(x, a) = <x, e_a> (the
    paper's linear score); the target is y ~ softmax(q(x, .) / ``tau``) (``tau=0``: the argmax of q).

    **MovieLens** (``data_dir``): App. D's setting on the ratings in ``data_dir``. Every rating is an
    interaction; users are split 80/10/10 into training, validation and test users; the item
    representations are Sec. 3.2.1's z_i = y_i / ||y_i|| with y_i = sum_j Y_ji f_j over the
    training users j (f_j their rank-d factors of Y); a query is a test user's history slice (up to
    69 items before the target, in the paper's ten time windows [1, 1, 1, 2, 2, 2, 10, 10, 20, 20],
    each pooled to its mean representation: the context has 10 d entries) and the target is the
    next item, one in the second half of the user's sequence (App. D.2). Real data hold one relevant
    item per query: q(x, a) = 1[a = y]. See :mod:`twostage_gym.datasets.sequences`.

    **Two modes.** ``mode="levelwise"`` (default): a query is a descent of L steps, one per level of
    the tree (L = 5 at the defaults: 1024 items, B = 4); each step shows the candidates
    D(B_l(x)) and the agent scores them; the env keeps the top K. ``mode="scores"``: one step per
    query; the agent scores every node and the env runs the whole beam search
    (:func:`~twostage_gym.core.tree.beam_search`), the mode for batch learners and the vector env.

    **The late-stage ranker.** ``ranker="oracle"``: the argmax over B(x) of q(x, a) plus Gaussian
    noise of standard deviation ``ranker_noise`` (drawn per query and item, from a stream of its
    own); or any callable ``ranker(contexts (n, d) float32, items (n, K) int64) -> (n,) int``
    returning one of each row's items (else ``ValueError``). It must be deterministic for the
    native vector env to equal the sync one.

    **Prop. 4.1.** With P_err = P(served != y), P_retrieve = P(y not in B(x)) and
    P_rank(K) = P(served != y | y in B(x)), P_err = P_retrieve + P_rank(K) (1 - P_retrieve) holds
    exactly on the counts of ``retrieval_hit`` and ``ranker_hit`` over any run.

    ## Action Space

    ``Box(-1e6, 1e6, (K * B,), float32)`` in levelwise mode: one score per candidate slot (the
    scores of padding slots are ignored). ``Box(-1e6, 1e6, (n_nodes,), float32)`` in scores mode:
    one score per tree node (node ids as in ``env.unwrapped.tree``). Ties go to the earlier slot
    (beam order, then children in tree order). Every entry must be finite and within the bound:
    NaN, infinite or out-of-bound scores (also in padding slots), another dtype or shape raise
    ``ValueError`` and leave the env as it was.

    ## Observation Space

    A ``Dict``. Both modes: ``"context"``, ``Box(-inf, inf, (context_dim,), float32)``, the query's
    x (``context_dim`` = d, or 10 d on MovieLens). Levelwise mode also: ``"candidate_nodes"``,
    ``Box(-1, n_nodes - 1, (K * B,), int64)``, the candidates D(B_l(x)) with slot j * B + b holding
    child b of the beam's j-th node (or the node itself if it is a leaf), -1 padding;
    ``"candidate_features"``, ``Box(-1, 1, (K * B, d), float32)``, each candidate's node feature
    (the mean item embedding of its subtree, ``env.unwrapped.node_features``), 0 padding;
    ``"mask"``, ``MultiBinary(K * B)``, 1 for a real candidate; ``"level"``, ``Discrete(L)``, the
    number of levels already descended (0: the candidates are the root's children).

    ## Rewards

    1.0 when the served item is the target y, else 0.0, at the step that completes a query (the
    last level, or every step in scores mode); 0.0 at the other levels. The documented
    alternative: ``info["expected_reward"]``, P(y = served | x) = softmax(q(x, .) / tau) at the
    served item, the reward's expectation given the context.

    ## Episode End

    Never terminates: an episode is a stream of queries, each L steps long in levelwise mode (one
    in scores mode); the next query begins right after the last level. Truncation comes from
    ``max_episode_steps`` (5000 at registration: 1000 queries at the defaults in levelwise mode,
    5000 in scores mode); a truncation may cut a descent. An unseeded ``reset`` keeps the world,
    drops the descent in progress and continues the query stream with the next query.

    ## Seeding

    The world (embeddings, tree; on MovieLens the user split) is drawn from ``world_seed`` if given,
    else from the reset seed: ``gym.make(id, world_seed=7)`` and ``reset(seed=7)`` give the same
    world. Query i of the stream (context, target, the oracle ranker's noise) is a function of the
    reset seed and i only, whatever the agent does (common random numbers). ``sample_dataset(n,
    seed)`` draws training data from a stream of its own, so training never sees the env's queries.

    ## Arguments

    - ``n_items`` (int >= 2, None = 1024): N, synthetic only (MovieLens: the data's catalog).
    - ``dim`` (int, 16): d, the embedding dimension (and the synthetic context's).
    - ``branches`` (int >= 2, 4): B, the children per node.
    - ``beam`` (int, 20): K, in [1, N - 1].
    - ``tree_method`` (``"balanced-kmeans"``, ``"kmeans"`` or ``"random"``): see
      :func:`~twostage_gym.core.tree.build_tree`; ``"kmeans"`` needs ``world_seed`` (its trees vary
      in size, and the spaces are fixed at ``make``).
    - ``mode`` (``"levelwise"`` or ``"scores"``).
    - ``ranker`` (``"oracle"`` or a callable, see above); ``ranker_noise`` (float >= 0, 0.0): the
      standard deviation of the oracle ranker's Gaussian noise on q (``"oracle"`` only).
    - ``tau`` (float, None = 0.03): the target's softmax temperature, 0 (the argmax) or in
      [1e-6, 1e6]; synthetic only.
    - ``data_dir`` (path or None): a folder with MovieLens-100K or -1M files (never downloaded).
    - ``world_seed`` (int >= 0 or None): draw the world from this seed instead of the reset seed.
    - ``render_mode`` (``"ansi"`` or None).

    Invalid values raise ``ValueError`` naming the argument at ``gym.make``, and so do sizes whose
    arrays are estimated above ``twostage_gym.core.checks.MEMORY_LIMIT_BYTES``. A new world builds
    its tree in well under a second at the defaults.

    ## Info keys

    Every step: ``query`` (int64, the query's index in the stream since the seeded reset),
    ``level`` (int64, levels descended after this step; L when the query is complete),
    ``query_complete`` (bool), ``beams`` (int64 (L, K): B_1(x), ..., B_L(x) so far, best first,
    -1 for levels not reached). When a query completes: ``retrieved`` (int64 (K,): the items of
    B(x)), ``target`` (int64: y), ``served`` (int64: the ranker's item), ``retrieval_hit`` (bool:
    y in B(x)), ``ranker_hit`` (bool: served = y; the reward), ``recall@K`` (float64: the share of
    the query's targets in B(x), = ``retrieval_hit`` for one target), and the oracle keys
    ``expected_reward`` (P(y = served | x)), ``optimal_expected_reward`` (max_a P(y = a | x)),
    ``regret`` (their difference), split as ``nominator_regret`` (the optimum minus the best
    retrieved item's: the retriever's share) + ``ranker_regret`` (the best retrieved item's minus
    the served item's), exactly, and ``optimal_item`` (int64: argmax_a q(x, a)). Before a query
    completes these hold -1, False and 0.0. ``reset`` returns an empty dict.

    ## Version History

    - v0: initial version.

    ## Example

    >>> import gymnasium as gym
    >>> import numpy as np
    >>> import twostage_gym
    >>> env = gym.make("TwoStage/TreeRetrieval-v0", n_items=256, beam=8)
    >>> obs, info = env.reset(seed=0)
    >>> int(obs["level"]), int(obs["mask"].sum())  # the root's four children
    (0, 4)
    >>> for _ in range(env.unwrapped.tree.n_levels):  # a two-tower score: <x, mean embedding>
    ...     scores = (obs["candidate_features"] @ obs["context"]).astype(np.float32)
    ...     obs, reward, terminated, truncated, info = env.step(scores)
    >>> bool(info["query_complete"]), info["retrieved"].shape
    (True, (8,))
    >>> bool(info["regret"] == info["nominator_regret"] + info["ranker_regret"])
    True
    >>> contexts, targets = env.unwrapped.sample_dataset(100, seed=1)  # supervised training data
    >>> contexts.shape, targets.dtype
    ((100, 16), dtype('int64'))
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        n_items: int | None = None,
        dim: int = 16,
        branches: int = 4,
        beam: int = 20,
        tree_method: str = "balanced-kmeans",
        mode: str = "levelwise",
        ranker: str | Callable[[np.ndarray, np.ndarray], np.ndarray] = "oracle",
        ranker_noise: float = 0.0,
        tau: float | None = None,
        data_dir: str | None = None,
        world_seed: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        choice("render_mode", render_mode, self.metadata["render_modes"], allow_none=True)
        self.config = TreeRetrievalConfig(
            n_items, dim, branches, beam, tree_method, mode, ranker, ranker_noise, tau, data_dir, world_seed
        )
        self.render_mode = render_mode
        self.action_space = self.config.action_space()
        self.observation_space = self.config.observation_space()
        self._descents = Descents(self.config, 1)
        self._worlds: dict[int, TreeRetrievalWorld] = {}
        if self.config.world is not None:
            self._descents.set_world(0, self.config.world)
        self._last: dict[str, Any] | None = None
        self._t = 0
        self._seeded = False

    def _shared_world(self) -> TreeRetrievalWorld:
        if self._descents.worlds[0] is None:
            raise RuntimeError("call reset() first (or pass world_seed to draw the world at construction)")
        return self._descents.worlds[0]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        rows = np.zeros(1, dtype=np.int64)
        if seed is not None or not self._seeded:
            current = self._descents.worlds[0]
            self._worlds = {} if current is None else {current.key: current}  # a seed sweep keeps one world
            self._descents.seed_row(0, seed, self.np_random, self._worlds)
            self._seeded = True
        self._descents.start_queries(rows)
        self._last, self._t = None, 0
        return _single(self._descents.observations(rows)), {}

    def step(self, action):
        if not self._seeded:
            raise RuntimeError("call reset() before step()")
        scores = check_scores(action, self.action_space.shape)
        rows = np.zeros(1, dtype=np.int64)
        reward, info = self._descents.play(rows, scores[None, :])
        out: dict[str, Any] = {}
        for key in INFO_KEYS:
            value = info[key][0]
            out[key] = bool(value) if key in _BOOL_KEYS else (value.copy() if value.ndim else value)
        self._t += 1
        self._last = out
        return _single(self._descents.observations(rows)), float(reward[0]), False, False, out

    def render(self) -> str | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' to make()")
            return None
        return _summary(self.config, self._t, self._last) + "\n"


def _single(obs: dict[str, np.ndarray]) -> dict[str, Any]:
    """The first row of a batched observation (``level`` as a numpy int64 scalar, as ``Discrete`` holds it)."""
    out: dict[str, Any] = {key: value[0] for key, value in obs.items()}
    if "level" in out:
        out["level"] = np.int64(out["level"])
    return out


def _summary(config: TreeRetrievalConfig, t: int, info: dict[str, Any] | None) -> str:
    L = config.n_levels
    if info is None:
        return f"query start, level 0 of {L}: no item served yet"
    if not info["query_complete"]:
        beam = info["beams"][int(info["level"]) - 1]
        return (
            f"step {t}, query {int(info['query'])}, level {int(info['level'])} of {L}: beam "
            f"{beam[beam >= 0].tolist()}; the served item and its regret come after level {L}"
        )
    where = "in" if info["retrieval_hit"] else "not in"
    return (
        f"step {t}, query {int(info['query'])}: retrieved {info['retrieved'].tolist()} (target "
        f"{int(info['target'])} {where} the beam) -> served item {int(info['served'])}; expected reward "
        f"{float(info['expected_reward']):.3f} (optimal {float(info['optimal_expected_reward']):.3f}); regret "
        f"{float(info['regret']):.3f} = retriever {float(info['nominator_regret']):.3f} + ranker "
        f"{float(info['ranker_regret']):.3f}"
    )


_CONFIG_ARGS = (
    "n_items", "dim", "branches", "beam", "tree_method", "mode", "ranker", "ranker_noise", "tau", "data_dir",
    "world_seed",
)  # fmt: skip


class TreeRetrievalVectorEnv(_WorldAPI, VectorEnv):
    """Native vector version of :class:`TreeRetrievalEnv`.

    Gives exactly what ``gym.make_vec(id, n, vectorization_mode="sync")`` gives for the same seeds
    (observations, rewards, terminations, truncations and info with ``_key`` masks, next-step
    autoreset), also when sub-envs are at different levels of their descents. Each sub-env keeps
    its own query stream, read a block of queries at a time; the beam steps, the ranker, the
    observations and the info are batched computations over the sub-envs that share a world.
    With ``world_seed`` all sub-envs share one world, and ``tree``, ``sample_dataset`` etc. are
    available on the vector env itself.

    Actions: float32 ``(num_envs, K * B)`` (levelwise) or ``(num_envs, n_nodes)`` (scores).

    Arguments: ``num_envs`` (a positive int), ``max_episode_steps`` (a positive int, 5000 by
    default, or None for no truncation: the vector env truncates itself, as ``TimeLimit`` does in
    the sync env), and the keyword arguments of :class:`TreeRetrievalEnv` (``render_mode`` excepted).
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, max_episode_steps: int | None = 5000, **kwargs: Any) -> None:
        self.num_envs, self.max_episode_steps = vector_arguments(
            "TreeRetrievalVectorEnv", num_envs, max_episode_steps, kwargs
        )
        unknown = set(kwargs) - set(_CONFIG_ARGS)
        if unknown:
            raise TypeError(f"unexpected keyword arguments {sorted(unknown)}")
        self.config = TreeRetrievalConfig(**kwargs)
        self.config.check_memory(self.num_envs)
        self.single_action_space = self.config.action_space()
        self.single_observation_space = self.config.observation_space()
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._descents = Descents(self.config, self.num_envs)
        if self.config.world is not None:
            for e in range(self.num_envs):
                self._descents.set_world(e, self.config.world)
        self._steps = np.zeros(self.num_envs, dtype=np.int64)
        self._prev_done = np.zeros(self.num_envs, dtype=bool)
        self._all = np.arange(self.num_envs)
        self._seeded = np.zeros(self.num_envs, dtype=bool)

    def _shared_world(self) -> TreeRetrievalWorld:
        worlds = self._descents.worlds
        if any(w is None for w in worlds):
            raise RuntimeError("call reset() first (or pass world_seed to draw the world at construction)")
        if len({id(w) for w in worlds}) > 1:
            raise RuntimeError("the sub-envs have different worlds; pass world_seed to share one")
        return worlds[0]

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        seeds = seed_list(seed, self.num_envs)
        cache = {w.key: w for w in self._descents.worlds if w is not None}
        for e, s in enumerate(seeds):
            if s is not None or not self._seeded[e]:
                np_random, _ = seeding.np_random(s)
                self._descents.seed_row(e, s, np_random, cache)
                self._seeded[e] = True
        self._descents.start_queries(self._all)
        self._steps[:] = 0
        self._prev_done[:] = False
        return self._descents.observations(self._all), {}

    def get_state(self) -> dict[str, Any]:
        """Everything that changes as the vector env steps, as plain Python values (for checkpoints).

        The worlds are named by their keys (a world is a function of the config and its key), each
        query stream by its key and position, each descent by its level, beams and candidates.
        With :meth:`set_state` on a vector env made with the same arguments, the run continues
        exactly as if it had never stopped.

        Raises:
            RuntimeError: before the first ``reset``.
        """
        if not self._seeded.all():
            raise RuntimeError("call reset() before get_state()")
        d = self._descents
        return {
            "world_keys": [w.key for w in d.worlds],
            "stream_keys": d.stream_keys.tolist(),
            "queries": d.queries.tolist(),
            "levels": d.levels.tolist(),
            "beams": d.beams.tolist(),
            "candidates": d.candidates.tolist(),
            "steps": self._steps.tolist(),
            "prev_done": self._prev_done.tolist(),
        }

    def set_state(self, state: dict[str, Any]) -> dict[str, np.ndarray]:
        """Continue from what :meth:`get_state` returned.

        Returns:
            The observations of the sub-envs' descents in progress, those ``step`` returned last.

        Raises:
            ValueError: a state of another number of sub-envs (nothing is changed then).
        """
        if len(state["world_keys"]) != self.num_envs:
            raise ValueError(f"the state holds {len(state['world_keys'])} sub-envs, this vector env {self.num_envs}")
        d = self._descents
        cache = {w.key: w for w in d.worlds if w is not None}
        for e, key in enumerate(state["world_keys"]):
            if key not in cache:
                cache[key] = (
                    self.config.world if self.config.world is not None else TreeRetrievalWorld(self.config, key)
                )
            d.set_world(e, cache[key])
        d.stream_keys[:] = state["stream_keys"]
        d.queries[:] = np.asarray(state["queries"]) - 1
        d.start_queries(self._all)  # the queries in progress: contexts, targets, oracle values
        d.levels[:] = state["levels"]
        d.beams[:] = state["beams"]
        d.candidates[:] = state["candidates"]
        self._steps[:] = state["steps"]
        self._prev_done[:] = state["prev_done"]
        self._seeded[:] = True
        return d.observations(self._all)

    def step(self, actions):
        if not self._seeded.all():
            raise RuntimeError("call reset() before step()")
        active = np.flatnonzero(~self._prev_done)
        scores = self._check_actions(actions, active)
        rewards = np.zeros(self.num_envs)
        info: dict[str, Any] = {}
        if active.size:
            reward, rows_info = self._descents.play(active, scores[active])
            rewards[active] = reward
            info = scatter_info({key: rows_info[key] for key in INFO_KEYS}, active, self.num_envs)
        # Sub-envs whose episode ended last step autoreset now (an unseeded reset: same world,
        # the query stream continues with the next query).
        done = np.flatnonzero(self._prev_done)
        if done.size:
            self._descents.start_queries(done)
        terminated, truncated = advance_steps(self._steps, self._prev_done, self.max_episode_steps)
        self._prev_done = truncated.copy()
        return self._descents.observations(self._all), rewards, terminated, truncated, info

    def _check_actions(self, actions: Any, active: np.ndarray) -> np.ndarray:
        """The checked scores (num_envs, width); rows of sub-envs about to autoreset are not read."""
        shape = (self.num_envs, *self.single_action_space.shape)
        a = np.asarray(actions)
        if a.shape != shape:
            raise ValueError(f"actions must have shape {shape} (scores of each sub-env), got {a.shape}")
        if a.dtype != np.float32:
            raise ValueError(f"scores must have dtype float32 (the action space's dtype), got dtype {a.dtype}")
        rows = a if active.size == self.num_envs else a[active]
        if rows.size and not (rows.min() >= -SCORE_BOUND and rows.max() <= SCORE_BOUND):
            for e in active:
                try:
                    check_scores(a[e], self.single_action_space.shape)
                except ValueError as err:
                    raise ValueError(f"sub-env {e}: {err}") from None
        return a
