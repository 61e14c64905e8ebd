"""An early-stage ranker in front of a fixed late-stage ranker (Kiyohara et al., ICML 2026, Sec. 4.1)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from twostage_gym.core import round_summary
from twostage_gym.core.checks import choice, index_dtype
from twostage_gym.core.late_stage import MC_SAMPLES
from twostage_gym.core.plackett_luce import (
    candidate_noise,
    candidates_from_noise,
    greedy_candidates,
    noise_buffer,
)
from twostage_gym.core.vector import advance_steps, scatter_info, seed_list, vector_arguments
from twostage_gym.envs.esr_world import (
    LOGIT_BOUND,
    EarlyStageRankerConfig,
    EarlyStageRankerWorld,
    check_candidates,
    check_logits,
    play_round,
    round_info,
    seed_user_streams,
    world_key,
)

__all__ = ["EarlyStageRankerEnv", "EarlyStageRankerVectorEnv"]


class _WorldAPI(ABC):
    """The public catalog and the oracle, shared by the single and the vector env."""

    config: EarlyStageRankerConfig

    @abstractmethod
    def _shared_world(self) -> EarlyStageRankerWorld:
        """The world the env plays in (the vector env's sub-envs share one)."""

    @property
    def world(self) -> EarlyStageRankerWorld:
        """The current world (:class:`EarlyStageRankerWorld`)."""
        return self._shared_world()

    @property
    def user_features(self) -> np.ndarray:
        """``(n_users, dim)`` float32: every user's features x* (the observations)."""
        return self._shared_world().user_features

    @property
    def item_features(self) -> np.ndarray:
        """``(n_items, dim)`` float32: every item's features a* (the public catalog)."""
        return self._shared_world().item_features

    @property
    def alpha(self) -> np.ndarray:
        """``(L,)`` the position weights alpha_l."""
        return self.config.alpha

    @property
    def assignment(self) -> np.ndarray | None:
        """The k -> m(k) expert map (``expert_assignment(K, M)``), None for a single logit model."""
        return self.config.assignment

    @property
    def optimal_candidate_sets(self) -> np.ndarray:
        """Oracle: ``(n_users, K)`` the best candidate set of each user under the LSR."""
        return self._shared_world().optimal_sets

    @property
    def optimal_expected_rewards(self) -> np.ndarray:
        """Oracle: ``(n_users,)`` each user's ``optimal_expected_reward``; their mean is the best policy value."""
        return self._shared_world().optimal_values

    def expected_rewards(self, users: Any) -> np.ndarray:
        """Oracle: q(x_u, a) for every item, float64 ``(len(users), n_items)`` (for tests and oracle agents)."""
        users = np.asarray(users, dtype=np.int64).reshape(-1)
        if users.size and (users.min() < 0 or users.max() >= self.config.n_users):
            raise ValueError(f"users must be in 0..{self.config.n_users - 1}")
        return self._shared_world().q_matrix(users)

    def greedy_candidate_sets(self, logits: Any) -> np.ndarray:
        """The deterministic ESR's candidate sets from logits of every user.

        Args:
            logits: ``(n_users, n_items)``, or ``(n_users, M, n_items)`` with M experts.

        Returns:
            int64 ``(n_users, K)``: :func:`~twostage_gym.core.plackett_luce.greedy_candidates`.
        """
        c = self.config
        logits = np.asarray(logits)
        shape = (c.n_users, c.n_items) if c.n_experts == 1 else (c.n_users, c.n_experts, c.n_items)
        if logits.shape != shape:
            raise ValueError(f"logits must have shape {shape}, got {logits.shape}")
        if not np.isfinite(logits).all():
            raise ValueError("logits must be finite")
        return greedy_candidates(logits, c.n_candidates, c.assignment)

    def policy_value(self, candidate_sets: Any, n_samples: int = MC_SAMPLES, seed: int = 0) -> dict[str, Any]:
        """The paper's metric: the expected ranking reward under the LSR, averaged over all users.

        For a deterministic ESR, given as its candidate set for every user (e.g. from
        :meth:`greedy_candidate_sets`). Exact (``stderr`` 0) for L = 1 with every LSR and for
        any L with the optimal, anti-optimal and uniform LSRs, and for the noisy LSR while its
        subset programme is small (see :class:`~twostage_gym.core.late_stage.LateStageRanker`);
        otherwise each user's value is estimated from ``n_samples`` sampled rankings (generator
        seeded with ``seed``) and ``stderr`` is the standard error of the mean over users.

        Args:
            candidate_sets: int ``(n_users, K)``, distinct item ids per row.

        Returns:
            ``{"value": float, "stderr": float, "exact": bool}``.
        """
        c = self.config
        sets = np.asarray(candidate_sets)
        if sets.shape != (c.n_users, c.n_candidates):
            raise ValueError(f"candidate_sets must have shape ({c.n_users}, {c.n_candidates}), got {sets.shape}")
        index_dtype("candidate_sets", sets)
        if sets.min() < 0 or sets.max() >= c.n_items:
            raise ValueError(f"candidate_sets hold item ids outside the catalog (valid 0..{c.n_items - 1})")
        s = np.sort(sets, axis=1)
        if (s[:, 1:] == s[:, :-1]).any():
            row = int(np.argmax((s[:, 1:] == s[:, :-1]).any(axis=1)))
            raise ValueError(f"candidate_sets row {row} holds a duplicate item: the K items must be distinct")
        world = self._shared_world()
        q = world.q_pairs(np.arange(c.n_users), sets.astype(np.int64))
        value, stderr = c.lsr.expected_reward(q, c.alpha, np.random.default_rng(seed), n_samples)
        return {
            "value": float(value.mean()),
            "stderr": float(np.sqrt(np.sum(stderr**2)) / c.n_users),
            "exact": bool(c.mc_exact),
        }


class EarlyStageRankerEnv(_WorldAPI, gym.Env):
    """## Description

    The synthetic two-stage ranking problem of Kiyohara et al., *Credit-assigned Policy Gradient
    for Early Stage Retrieval in Two-stage Ranking* (ICML 2026), Section 4.1 and Appendices D.3
    and E. The agent is the *early-stage ranker* (ESR): each round a user arrives (uniformly at
    random from ``n_users``) and the ESR picks a *candidate set* of K items from the *catalog*
    of |A| items; a fixed *late-stage ranker* (LSR) shows L of the candidates in order, and the
    user reacts to each shown item independently, r_l ~ N(q(x, a_l), sigma_{a_l}^2). The reward
    is the ranking reward sum_l alpha_l r_l.

    The world: user and item features x*, a* ~ U[-1, 1]^d; projections M_x, M_a (d x d, N(0, 1)
    entries, each row scaled to unit norm); q(x, a) = softplus(s <M_a a*, M_x x*>) + c with
    c = 1 (Theorem 3.3 needs positive rewards) and ``reward_scale`` s = 3 by default. The paper
    leaves the scale of the inner product open; s = 3 puts q at the paper's scale (each user's
    best item averages about 9, the average item about 2.4, cf. the policy values of Table 2).
    The noise level sigma_a is item-dependent (the paper's sigma(x, a) is unspecified): drawn
    once per item, uniform on [0.5, 1.5].

    In ``"logits"`` mode the agent returns a score per item and the env samples the ordered
    candidate set by the Plackett-Luce policy at ``esr_temperature``: with one model by the Gumbel
    top-K trick (App. D.3); with a mixture of M experts (the k -> m(k) map being
    ``expert_assignment(K, M)``) position k draws from softmax(logit_{m(k)} / tau) over the items
    not yet taken, by inverse-CDF sampling (exact, and about as fast for M experts as for one;
    see :func:`~twostage_gym.core.plackett_luce.candidates_from_noise`). This is the paper's
    training-time (stochastic) ESR; the paper evaluates the deterministic (greedy)
    ESR, which :meth:`policy_value` scores exactly over all users.

    The LSR is the oracle Plackett-Luce policy on q with four alignments (App. E):
    ``"optimal"`` (exact sort), ``"noisy"`` (temperature ``lsr_temperature``), ``"uniform"`` and
    ``"anti-optimal"`` (exact reverse sort); see :mod:`twostage_gym.core.late_stage`.

    ## Action Space

    ``"logits"`` (default): ``Box(-1e6, 1e6, (|A|,), float32)`` for one logit model, or
    ``(M, |A|)`` for M experts. Any finite float32 logits within the bound are valid; NaN,
    infinite or out-of-bound values, another dtype or shape raise ``ValueError``.
    ``"candidates"``: ``MultiDiscrete([|A|] * K)``, the candidate set itself (K distinct item ids,
    in order; duplicates raise ``ValueError``, so a library that samples the MultiDiscrete
    space freely should use the logits mode).

    ## Observation Space

    ``Box(-1, 1, (d,), float32)``: the arriving user's features x*. The catalog is public:
    ``user_features`` ((n_users, d)) and ``item_features`` ((|A|, d)), float32, the exact values
    q is computed from. The user's index is ``info["user"]`` after the step.

    ## Rewards

    sum_l alpha_l r_l with alpha_l = 1 (``"sum"``) or 1 / log2(l + 1) (``"dcg"``), and
    r_l ~ N(q(x, a_l), sigma_{a_l}^2) for the item a_l the LSR shows at position l.

    ## Episode End

    Never terminates. Truncation comes from ``max_episode_steps`` (1000 at registration).
    An unseeded ``reset`` keeps the world and continues the user stream.

    ## Seeding

    The world (features, projections, sigma) is drawn from ``world_seed`` if given, else from
    the reset seed, by the same derivation: ``gym.make(id, world_seed=7)`` and ``reset(seed=7)``
    give the same world. So a vector env whose sub-envs are seeded seed + i shares one world when
    ``world_seed`` is given (learners train on a batch of users from one world). Users come from
    their own stream: the same seed gives the same users whatever the agent does. The ESR's
    sampling noise, the LSR's randomness and the reward noise come from a separate stream.

    ## Arguments

    - ``n_users`` (int, 1000), ``n_items`` (int, 1000): the numbers of users and items |A|, >= 1.
    - ``dim`` (int, 10): feature dimension d (= d_x = d_a = d_h), >= 1.
    - ``n_candidates`` (int, 10): K, in [1, ``n_items``].
    - ``n_outputs`` (int, 1): L, in [1, K].
    - ``position_weights`` (``"sum"`` or ``"dcg"``): alpha.
    - ``lsr`` (``"optimal"``, ``"noisy"``, ``"uniform"`` or ``"anti-optimal"``), ``lsr_temperature``
      (float, 1.0): finite and > 0.
    - ``esr_temperature`` (float, 1.0): tau of the Plackett-Luce candidate sampling, in [1e-6, 1e6].
    - ``n_experts`` (int, 1): M, in [1, K] (logits mode only).
    - ``action_type`` (``"logits"`` or ``"candidates"``).
    - ``reward_scale`` (float, 3.0): s in q = softplus(s <., .>) + 1, finite and > 0.
    - ``world_seed`` (int >= 0 or None): draw the world from this seed instead of the reset seed.
    - ``render_mode`` (``"ansi"`` or None).

    Integer arguments take Python or numpy integers (not bools, floats or strings), real ones
    also floats (not bools or strings). Invalid values raise ``ValueError`` naming the argument
    at ``gym.make``, and so do sizes whose arrays (user and item tables, the precomputed oracle
    tables, the action space bounds, the noisy LSR's working arrays) are estimated above
    ``twostage_gym.core.checks.MEMORY_LIMIT_BYTES`` (64 GiB); the message gives the estimate.

    Per step the env costs O(M |A|) in logits mode (one pass over the logits; q is computed
    for the K candidates only, O(K d)) and O(K d) in candidates mode, plus, for the noisy LSR
    with L > 1, an exact subset programme over sum_{i<L} C(K, i) partial sets (386 at K = 10,
    L = 5). A new world precomputes each user's top-K and optimal value in vectorised blocks,
    never holding a users x items matrix, so |A| = 10^6 works; it takes well under a second at
    the defaults, about 1 s at |A| = 10^6 with few users, and longest for the noisy LSR with
    large K and L (about 8 s for 1000 users at K = 20, L = 5).

    ## Info keys

    After ``step``: ``candidates`` (int64 (K,), the candidate set in sampled order),
    ``ranking`` (int64 (L,), the items a_{1:L} the LSR showed), ``position_rewards`` (float64
    (L,), r_{1:L}), ``user`` (int64, this round's user), ``expected_reward`` (this candidate
    set's expected ranking reward under the LSR, sum_l alpha_l E[q(a_l)]), ``optimal_expected_reward``
    (the best candidate set's, for this user under this LSR), ``regret`` (optimal minus
    expected; = ``nominator_regret`` + ``ranker_regret`` exactly), ``nominator_regret`` (= regret:
    the ESR is the nominating stage), ``ranker_regret`` (0.0: the LSR is fixed and the reference
    is the best set under it), ``recall`` (the share of the user's true top-K in the candidate
    set), ``lsr_gap`` (sum_l alpha_l q_(l) minus ``optimal_expected_reward``: what the fixed LSR
    costs even with the best candidates). Values are float64, ids int64. The best set is exact
    for every LSR at L = 1 (for ``"noisy"`` by Dinkelbach iteration: it is usually *not* the
    top-K) and for the optimal, uniform and anti-optimal LSRs at any L; for ``"noisy"`` with
    L > 1 it is the best of a family of sets (the top-j plus the K - j worst items), an
    approximation, so the regret can then be slightly negative (see
    :meth:`~twostage_gym.core.late_stage.LateStageRanker.best_candidate_sets`).
    ``expected_reward`` is exact except for the noisy LSR when sum_{i<L} C(K, i) > 20000, where
    it is a Monte-Carlo estimate from 1000 sampled rankings (so is the optimum then).
    ``reset`` returns an empty dict.

    ## Version History

    - v0: initial version.

    ## Example

    >>> import gymnasium as gym
    >>> import numpy as np
    >>> import twostage_gym
    >>> env = gym.make("TwoStage/EarlyStageRanker-v0", n_users=50, n_items=100, n_candidates=5)
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape
    (10,)
    >>> logits = env.unwrapped.item_features @ obs  # a (poor) fixed two-tower score
    >>> obs, reward, terminated, truncated, info = env.step(logits.astype(np.float32))
    >>> info["candidates"].shape, bool(info["regret"] == info["nominator_regret"] + info["ranker_regret"])
    ((5,), True)
    >>> env.unwrapped.policy_value(env.unwrapped.optimal_candidate_sets)["value"] == float(
    ...     env.unwrapped.optimal_expected_rewards.mean())
    True
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        n_users: int = 1000,
        n_items: int = 1000,
        dim: int = 10,
        n_candidates: int = 10,
        n_outputs: int = 1,
        position_weights: str = "sum",
        lsr: str = "optimal",
        lsr_temperature: float = 1.0,
        esr_temperature: float = 1.0,
        n_experts: int = 1,
        action_type: str = "logits",
        reward_scale: float = 3.0,
        world_seed: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        choice("render_mode", render_mode, self.metadata["render_modes"], allow_none=True)
        self.config = EarlyStageRankerConfig(
            n_users, n_items, dim, n_candidates, n_outputs, position_weights, lsr,
            lsr_temperature, esr_temperature, n_experts, action_type, reward_scale, world_seed,
        )  # fmt: skip
        self.render_mode = render_mode
        self.action_space = self.config.action_space()
        self.observation_space = self.config.observation_space()
        self.lsr = self.config.lsr
        self._world: EarlyStageRankerWorld | None = None
        if self.config.world_seed is not None:
            self._world = EarlyStageRankerWorld(self.config, self.config.world_seed)
        self._user: int | None = None
        self._streams: tuple[np.random.Generator, ...] | None = None
        self._last: dict[str, Any] | None = None
        self._t = 0

    def _shared_world(self) -> EarlyStageRankerWorld:
        if self._world is None:
            raise RuntimeError("call reset() first (or pass world_seed to draw the world at construction)")
        return self._world

    @property
    def current_user(self) -> int:
        """Oracle helper: the index of the user whose features are the current observation."""
        if self._user is None:
            raise RuntimeError("call reset() before using the environment")
        return self._user

    # -- gymnasium API ----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None or self._streams is None:
            key = world_key(self.config, seed, self.np_random)
            self._streams = seed_user_streams(self.np_random, self.config.n_users)
            if self._world is None or self._world.key != key:
                self._world = EarlyStageRankerWorld(self.config, key)
        self._user = self._streams[0].next()
        self._last, self._t = None, 0
        return self._world.user_features[self._user].copy(), {}

    def step(self, action):
        if self._user is None:
            raise RuntimeError("call reset() before step()")
        c = self.config
        _, sample_rng, oracle_rng = self._streams
        if c.action_type == "logits":
            logits = check_logits(action, self.action_space.shape)
            # gumbel_topk(logits, K, rng, tau, assignment) in two steps, as the vector env takes them.
            noise = candidate_noise(sample_rng, logits.shape, c.n_candidates, c.assignment)
            candidates = candidates_from_noise(logits, noise, c.n_candidates, c.esr_temperature, c.assignment)
        else:
            candidates = check_candidates(action, c.n_items, c.n_candidates)
        lsr_noise = c.lsr.draw_noise(1, c.n_candidates, sample_rng)
        normals = sample_rng.standard_normal((1, c.n_outputs))
        users = np.array([self._user], dtype=np.int64)
        out = play_round(c, self._world, users, candidates[None, :], lsr_noise, normals)
        expected, _ = c.lsr.expected_reward(out["q_cand"], c.alpha, oracle_rng)
        info = {k: (v[0] if v.ndim == 1 else v[0].copy()) for k, v in round_info(out, expected).items()}
        reward = float(out["reward"][0])
        self._user = self._streams[0].next()
        self._t += 1
        self._last = info
        return self._world.user_features[self._user].copy(), reward, False, False, info

    def render(self) -> str | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' to make()")
            return None
        return round_summary(self._t, self._last) + "\n"


class EarlyStageRankerVectorEnv(_WorldAPI, VectorEnv):
    """Native vector version of :class:`EarlyStageRankerEnv`.

    Gives exactly what ``gym.make_vec(id, n, vectorization_mode="sync")`` gives for the same seeds
    (observations, rewards, terminations, truncations and info with ``_key`` masks, next-step
    autoreset). Each sub-env keeps its own user, sampling and oracle generators, as in the sync
    env, so the draws loop over sub-envs; the candidate sampling, the LSR, the rewards and the info
    are one batched computation. Sub-envs that share a world (``world_seed`` given) share one
    :class:`EarlyStageRankerWorld`; then ``user_features``, ``item_features``,
    ``policy_value`` etc. are available on the vector env itself.

    The training path: ``gym.make_vec("TwoStage/EarlyStageRanker-v0", 128,
    vectorization_mode="vector_entry_point", world_seed=seed)`` and ``step(actions)`` with
    float32 logits of shape (128, |A|) (or (128, M, |A|)).

    Arguments: ``num_envs`` (a positive int, not a bool), ``max_episode_steps`` (a positive int,
    1000 by default, or None for no truncation: the vector env truncates itself, as the
    ``TimeLimit`` wrapper does in the sync env; note that ``gym.make_vec(..., "sync",
    max_episode_steps=None)`` means the registered horizon instead), and the keyword arguments of
    :class:`EarlyStageRankerEnv` (``render_mode`` excepted). Invalid values raise ``ValueError``
    naming the argument, as do sizes whose arrays would exceed the memory limit; without
    ``world_seed`` every sub-env may draw a world of its own, and the estimate counts them all.
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, max_episode_steps: int | None = 1000, **kwargs: Any) -> None:
        self.num_envs, self.max_episode_steps = vector_arguments(
            "EarlyStageRankerVectorEnv", num_envs, max_episode_steps, kwargs
        )
        defaults = dict(
            n_users=1000, n_items=1000, dim=10, n_candidates=10, n_outputs=1, position_weights="sum",
            lsr="optimal", lsr_temperature=1.0, esr_temperature=1.0, n_experts=1, action_type="logits",
            reward_scale=3.0, world_seed=None,
        )  # fmt: skip
        unknown = set(kwargs) - set(defaults)
        if unknown:
            raise TypeError(f"unexpected keyword arguments {sorted(unknown)}")
        self.config = EarlyStageRankerConfig(**{**defaults, **kwargs})
        self.config.check_memory(self.num_envs)
        self.single_action_space = self.config.action_space()
        self.single_observation_space = self.config.observation_space()
        self._action_space: spaces.Space | None = None
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.lsr = self.config.lsr
        self._noise: np.ndarray | None = None
        self._worlds: list[EarlyStageRankerWorld | None] = [None] * self.num_envs
        if self.config.world_seed is not None:
            self._worlds = [EarlyStageRankerWorld(self.config, self.config.world_seed)] * self.num_envs
        self._streams: list[tuple[np.random.Generator, ...] | None] = [None] * self.num_envs
        self._users = np.zeros(self.num_envs, dtype=np.int64)
        self._steps = np.zeros(self.num_envs, dtype=np.int64)
        self._prev_done = np.zeros(self.num_envs, dtype=bool)
        self._ready = False
        self._groups: list[tuple[EarlyStageRankerWorld, np.ndarray]] = []

    @property
    def action_space(self) -> spaces.Space:
        """The batched action space, built on first use: at |A| = 10^6 and 128 sub-envs a batched
        Box holds 1 GB of bounds, which the training path (``single_action_space``) never needs."""
        if self._action_space is None:
            self._action_space = batch_space(self.single_action_space, self.num_envs)
        return self._action_space

    @action_space.setter
    def action_space(self, space: spaces.Space) -> None:
        self._action_space = space

    def _shared_world(self) -> EarlyStageRankerWorld:
        worlds = {id(w) for w in self._worlds}
        if None in self._worlds:
            raise RuntimeError("call reset() first (or pass world_seed to draw the world at construction)")
        if len(worlds) > 1:
            raise RuntimeError("the sub-envs have different worlds; pass world_seed to share one")
        return self._worlds[0]

    @property
    def current_users(self) -> np.ndarray:
        """Oracle helper: int64 ``(num_envs,)`` the users whose features are the current observations."""
        return self._users.copy()

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        seeds = seed_list(seed, self.num_envs)
        by_key = {w.key: w for w in self._worlds if w is not None}
        for e, s in enumerate(seeds):
            if s is not None or self._streams[e] is None:
                np_random, _ = seeding.np_random(s)
                key = world_key(self.config, s, np_random)
                self._streams[e] = seed_user_streams(np_random, self.config.n_users)
                if key not in by_key:
                    by_key[key] = EarlyStageRankerWorld(self.config, key)
                self._worlds[e] = by_key[key]
        self._group_worlds()
        self._draw_users(np.arange(self.num_envs))
        self._steps[:] = 0
        self._prev_done[:] = False
        self._ready = True
        return self._observations(), {}

    def _group_worlds(self) -> None:
        groups: dict[int, list[int]] = {}
        for e, w in enumerate(self._worlds):
            groups.setdefault(id(w), []).append(e)
        self._groups = [(self._worlds[rows[0]], np.array(rows)) for rows in groups.values()]

    def get_state(self) -> dict[str, Any]:
        """Everything that changes as the vector env steps, as plain Python values (for checkpoints).

        The worlds are named by their seeds (a world is a function of the config and its seed);
        each sub-env's user, sampling and oracle streams by their generators' states. With
        :meth:`set_state` on a vector env made with the same arguments, the run continues exactly
        as if it had never stopped.

        Raises:
            RuntimeError: before the first ``reset``.
        """
        if not self._ready:
            raise RuntimeError("call reset() before get_state()")
        return {
            "world_keys": [w.key for w in self._worlds],
            "streams": [
                {"users": users.get_state(), "sample": sample.bit_generator.state, "oracle": oracle.bit_generator.state}
                for users, sample, oracle in self._streams
            ],
            "users": self._users.tolist(),
            "steps": self._steps.tolist(),
            "prev_done": self._prev_done.tolist(),
        }

    def set_state(self, state: dict[str, Any]) -> np.ndarray:
        """Continue from what :meth:`get_state` returned.

        Returns:
            The observations of the sub-envs' current users, those ``step`` returned last.

        Raises:
            ValueError: a state of another number of sub-envs (nothing is changed then).
        """
        if len(state["world_keys"]) != self.num_envs:
            raise ValueError(f"the state holds {len(state['world_keys'])} sub-envs, this vector env {self.num_envs}")
        by_key = {w.key: w for w in self._worlds if w is not None}
        for e, key in enumerate(state["world_keys"]):
            if key not in by_key:
                by_key[key] = EarlyStageRankerWorld(self.config, key)
            self._worlds[e] = by_key[key]
            users, sample, oracle = seed_user_streams(np.random.default_rng(0), self.config.n_users)
            users.set_state(state["streams"][e]["users"])
            sample.bit_generator.state = state["streams"][e]["sample"]
            oracle.bit_generator.state = state["streams"][e]["oracle"]
            self._streams[e] = (users, sample, oracle)
        self._group_worlds()
        self._users[:] = state["users"]
        self._steps[:] = state["steps"]
        self._prev_done[:] = state["prev_done"]
        self._ready = True
        return self._observations()

    def _draw_users(self, envs: np.ndarray) -> None:
        for e in envs:
            self._users[e] = self._streams[e][0].next()

    def _observations(self) -> np.ndarray:
        if len(self._groups) == 1:
            return self._groups[0][0].user_features[self._users]
        obs = np.empty((self.num_envs, self.config.dim), dtype=np.float32)
        for world, rows in self._groups:
            obs[rows] = world.user_features[self._users[rows]]
        return obs

    def _check_actions(self, actions: Any, active: np.ndarray) -> np.ndarray:
        c = self.config
        a = np.asarray(actions)
        single = self.single_action_space.shape
        if a.shape != (self.num_envs, *single):
            raise ValueError(f"actions must have shape {(self.num_envs, *single)}, got {a.shape}")
        rows = a if active.size == self.num_envs else a[active]
        if c.action_type == "logits":
            if a.dtype != np.float32:
                raise ValueError(f"logits must have dtype float32 (the action space's dtype), got dtype {a.dtype}")
            ok = rows.size == 0 or (rows.min() >= -LOGIT_BOUND and rows.max() <= LOGIT_BOUND)
            check = lambda x: check_logits(x, single)  # noqa: E731
        else:
            ok = False
            if a.dtype.kind in "iu" and np.can_cast(a.dtype, np.int64) and rows.size:
                s = np.sort(rows, axis=1)
                ok = s[:, 0].min() >= 0 and s[:, -1].max() < c.n_items and not (s[:, 1:] == s[:, :-1]).any()
            check = lambda x: check_candidates(x, c.n_items, c.n_candidates)  # noqa: E731
        if not ok:
            for e in active:
                try:
                    check(a[e])
                except ValueError as err:
                    raise ValueError(f"sub-env {e}: {err}") from None
        return a

    def step(self, actions):
        if not self._ready:
            raise RuntimeError("call reset() before step()")
        c = self.config
        active = np.flatnonzero(~self._prev_done)
        actions = self._check_actions(actions, active)
        rewards = np.zeros(self.num_envs)
        info: dict[str, Any] = {}
        if active.size:
            all_active = active.size == self.num_envs
            acts = actions if all_active else actions[active]
            n = active.size
            # Per sub-env draws, in the single env's order: ESR sampling noise, LSR noise, reward noise.
            lsr_noise = None
            if c.lsr.kind == "noisy":
                lsr_noise = np.empty((n, c.n_candidates), dtype=np.float32)
            elif c.lsr.kind == "uniform":
                lsr_noise = np.empty((n, c.n_candidates))
            normals = np.empty((n, c.n_outputs))
            if c.action_type == "logits":
                if self._noise is None or self._noise.shape[0] < n:
                    self._noise = noise_buffer(actions.shape, c.n_candidates, c.assignment)
                noise = self._noise[:n]
                for j, e in enumerate(active):
                    rng = self._streams[e][1]
                    candidate_noise(rng, actions.shape[1:], c.n_candidates, c.assignment, out=noise[j])
                    if lsr_noise is not None:
                        lsr_noise[j] = c.lsr.draw_noise(1, c.n_candidates, rng)[0]
                    rng.standard_normal(out=normals[j])
                candidates = candidates_from_noise(acts, noise, c.n_candidates, c.esr_temperature, c.assignment)
            else:
                for j, e in enumerate(active):
                    rng = self._streams[e][1]
                    if lsr_noise is not None:
                        lsr_noise[j] = c.lsr.draw_noise(1, c.n_candidates, rng)[0]
                    rng.standard_normal(out=normals[j])
                candidates = acts.astype(np.int64, copy=False)
            results = self._play(active, candidates, lsr_noise, normals)
            rewards[active] = results.pop("reward")
            info = scatter_info(results, active, self.num_envs)
        # Every sub-env gets its next user: active ones continue, finished ones autoreset (an
        # unseeded reset keeps the world and continues the user stream).
        self._draw_users(np.arange(self.num_envs))
        terminated, truncated = advance_steps(self._steps, self._prev_done, self.max_episode_steps)
        self._prev_done = truncated.copy()
        return self._observations(), rewards, terminated, truncated, info

    def _play(
        self, active: np.ndarray, candidates: np.ndarray, lsr_noise: np.ndarray | None, normals: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Play the active sub-envs' rounds, world group by world group; returns reward and info rows."""
        c = self.config
        users = self._users[active]
        parts: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
        for world, rows in self._groups:
            sel = np.flatnonzero(np.isin(active, rows)) if len(self._groups) > 1 else np.arange(active.size)
            if sel.size == 0:
                continue
            out = play_round(
                c, world, users[sel], candidates[sel], None if lsr_noise is None else lsr_noise[sel], normals[sel]
            )
            if c.lsr.closed_form(c.n_outputs) or c.mc_exact:
                expected, _ = c.lsr.expected_reward(out["q_cand"], c.alpha)
            else:  # Monte-Carlo: each sub-env's estimate from its own oracle stream
                expected = np.array(
                    [
                        c.lsr.expected_reward(out["q_cand"][j : j + 1], c.alpha, self._streams[active[s]][2])[0][0]
                        for j, s in enumerate(sel)
                    ]
                )
            info = round_info(out, expected)
            info["reward"] = out["reward"]
            parts.append((sel, info))
        if len(parts) == 1:
            return parts[0][1]
        merged = {}
        for key in parts[0][1]:
            first = parts[0][1][key]
            full = np.empty((active.size, *first.shape[1:]), dtype=first.dtype)
            for sel, info in parts:
                full[sel] = info[key]
            merged[key] = full
        return merged
