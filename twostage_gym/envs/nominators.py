"""Nominators with item pools and a full-feature ranker (Hron et al., NeurIPS 2021)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from twostage_gym.core import (
    GaussianContexts,
    LinearReward,
    Prop2Contexts,
    random_feature_subsets,
    random_pools,
    resolve_nominator_dim,
    round_summary,
    stage_regret,
    unit_sphere,
    validate_feature_subsets,
    validate_pools,
)
from twostage_gym.core.checks import check_memory, choice, index_dtype, number, positive_int
from twostage_gym.core.prop2 import PROP2_BANDIT_MEANS, PROP2_BANDIT_X
from twostage_gym.core.rewards import NOISE_MODELS
from twostage_gym.core.vector import advance_steps, scatter_info, seed_list, vector_arguments

__all__ = ["NominatorsConfig", "NominatorsEnv", "NominatorsInstance", "NominatorsVectorEnv"]

CONTEXT_MODELS = ("gaussian", "prop2")


@dataclass
class NominatorsInstance:
    """One problem instance: the true parameter, the pools and the nominators' feature views.

    Attributes:
        reward: the linear reward model holding theta*.
        pools: N sorted arrays of item ids.
        pool_items: ``(N, P)`` int64, pool n's items padded with its last item to P = max pool size.
        feature_subsets: ``(N, s)`` int64, the features nominator n sees.
    """

    reward: LinearReward
    pools: list[np.ndarray]
    pool_items: np.ndarray
    feature_subsets: np.ndarray


def memory_parts(
    n_items: int,
    dim: int,
    n_nominators: int,
    nominator_dim: int,
    pool_width: int,
    num_envs: int = 1,
    batched_spaces: bool = False,
) -> dict[str, int]:
    """Estimated bytes of the largest arrays a Nominators env allocates, by what they hold.

    Args:
        n_items, dim, n_nominators, nominator_dim: |A|, d, N and s.
        pool_width: P, the largest pool size (``pool_items`` is padded to (N, P)).
        num_envs: sub-envs of a vector env (1 for the single env).
        batched_spaces: whether a batched observation space is built too (the vector env).
    """
    cells = n_items * dim
    # A float32 Box keeps low and high (4 bytes each) and two bool masks (bounded below/above).
    box = 10 * cells
    return {
        "observation space": box * (1 + num_envs * batched_spaces),
        # Per sub-env, the float32 context (the one returned and the next one drawn) and its
        # float64 mean rewards.
        "contexts": 2 * num_envs * (4 * cells + 8 * n_items),
        # pool_items (N, P) int64, the permutation and the pools cut from it, and a few hundred
        # bytes of Python objects per nominator (one array per pool).
        "pools": num_envs * (8 * n_nominators * pool_width + 16 * n_items + 512 * n_nominators),
        "feature subsets": num_envs * 8 * n_nominators * nominator_dim,
    }


class NominatorsConfig:
    """Validated constructor arguments shared by the single, vector and multi-agent envs.

    Every check of the Arguments section of :class:`NominatorsEnv` is made here (with
    :mod:`twostage_gym.core.checks`), before anything large is allocated.
    """

    def __init__(
        self,
        n_items: int,
        dim: int,
        n_nominators: int,
        nominator_dim: int | None,
        misspecification: float | None,
        noise_std: float,
        pools: Sequence[Sequence[int]] | None,
        feature_subsets: Sequence[Sequence[int]] | None,
        context_model: str,
        reward_noise: str,
    ) -> None:
        self.n_items = positive_int("n_items", n_items)
        self.dim = positive_int("dim", dim)
        self.n_nominators = positive_int("n_nominators", n_nominators)
        if self.n_nominators > self.n_items:
            raise ValueError(f"n_nominators (N={n_nominators}) must not exceed n_items (|A|={n_items})")
        self.context_model = choice("context_model", context_model, CONTEXT_MODELS)
        self.reward_noise = choice("reward_noise", reward_noise, NOISE_MODELS)
        if context_model == "prop2" and (self.n_items, self.dim) != (4, 4):
            raise ValueError(f"context_model='prop2' needs n_items=4 and dim=4, got {n_items} and {dim}")
        if reward_noise == "bernoulli" and context_model != "prop2":
            # r ~ Bernoulli(f*) needs f* in [0, 1]. Under Gaussian contexts f* = <theta*, x_a> is
            # N(0, 1) (theta* is a unit vector), outside [0, 1] for 66% of items and rounds; the
            # draw would then be 0 or 1 with certainty and no longer average expected_reward.
            raise ValueError(
                "reward_noise='bernoulli' needs context_model='prop2': with Gaussian contexts the mean "
                "rewards <theta*, x_a> ~ N(0, 1) leave [0, 1] about 66% of the time, so the Bernoulli "
                "reward would not have mean info['expected_reward']"
            )
        self.noise_std = number("noise_std", noise_std, low=0.0)
        if feature_subsets is not None:
            if nominator_dim is not None or misspecification is not None:
                raise ValueError("give feature_subsets or nominator_dim/misspecification, not both")
            self.feature_subsets = validate_feature_subsets(feature_subsets, self.dim, self.n_nominators)
            self.nominator_dim = int(self.feature_subsets.shape[1])
        else:
            self.feature_subsets = None
            # The dim as given: with misspecification its numpy type (if any) sets the division's precision.
            self.nominator_dim = resolve_nominator_dim(dim, nominator_dim, misspecification)
        # Sizes first, with the default split (explicit pools are checked against the catalog with
        # arrays of |A| entries), then again with the explicit pools' padded width.
        size, extra = divmod(self.n_items, self.n_nominators)
        self.check_memory(size + (extra > 0))
        if pools is not None:
            self.pools = validate_pools(pools, self.n_items, self.n_nominators)
            self.pool_sizes = np.array([len(p) for p in self.pools], dtype=np.int64)
            self.check_memory(int(self.pool_sizes.max()))
        else:
            self.pools = None
            self.pool_sizes = size + (np.arange(self.n_nominators) < extra).astype(np.int64)
        self.contexts = Prop2Contexts() if context_model == "prop2" else GaussianContexts(self.n_items, self.dim)

    def memory_parts(
        self, pool_width: int | None = None, num_envs: int = 1, batched_spaces: bool = False
    ) -> dict[str, int]:
        """:func:`memory_parts` for this configuration (``pool_width`` defaults to the largest pool)."""
        width = int(self.pool_sizes.max()) if pool_width is None else pool_width
        return memory_parts(
            self.n_items, self.dim, self.n_nominators, self.nominator_dim, width, num_envs, batched_spaces
        )

    def check_memory(
        self,
        pool_width: int | None = None,
        num_envs: int = 1,
        batched_spaces: bool = False,
        extra: Mapping[str, int] | None = None,
    ) -> int:
        """Refuse sizes whose arrays (plus ``extra`` parts, in bytes) exceed the memory limit.

        Raises:
            ValueError: naming the size arguments and the estimate (:func:`twostage_gym.core.checks.check_memory`).
        """
        sizes = {"n_items": self.n_items, "dim": self.dim, "n_nominators": self.n_nominators}
        if num_envs > 1:
            sizes["num_envs"] = num_envs
        parts = {**self.memory_parts(pool_width, num_envs, batched_spaces), **(extra or {})}
        return check_memory(sizes, parts)

    def draw_instance(self, rng: np.random.Generator) -> NominatorsInstance:
        """Draw theta*, the pools and the feature subsets (those not given explicitly)."""
        if self.context_model == "prop2":
            theta = np.linalg.solve(PROP2_BANDIT_X, PROP2_BANDIT_MEANS)
        else:
            theta = unit_sphere(self.dim, rng)
        pools = self.pools if self.pools is not None else random_pools(self.n_items, self.n_nominators, rng)
        feats = self.feature_subsets
        if feats is None:
            feats = random_feature_subsets(self.dim, self.n_nominators, self.nominator_dim, rng)
        width = int(self.pool_sizes.max())
        pool_items = np.stack([np.pad(p, (0, width - len(p)), mode="edge") for p in pools])
        return NominatorsInstance(
            reward=LinearReward(theta, self.reward_noise, self.noise_std),
            pools=[p.copy() for p in pools],
            pool_items=pool_items,
            feature_subsets=feats.copy(),
        )


def seed_streams(np_random: np.random.Generator) -> tuple[np.random.Generator, ...]:
    """Split an env's generator into independent instance, context and noise streams.

    Contexts and the instance never depend on what the agent does; only the reward noise
    stream is consumed by actions. Agents compared on one seed face the same users.
    """
    seeds = np_random.integers(0, 2**63 - 1, size=3)
    return tuple(np.random.default_rng(int(s)) for s in seeds)


def check_action(action: Any, pool_sizes: np.ndarray) -> np.ndarray:
    """Validate a joint action ``[a_1, ..., a_N, c]`` and return it as an int64 array.

    Raises:
        ValueError: wrong shape or dtype, a nomination outside its pool, or a ranker pick
            outside the candidate set.
    """
    a = np.asarray(action)
    n = pool_sizes.shape[0]
    if a.shape != (n + 1,):
        raise ValueError(f"action must have shape ({n + 1},) = N nominations + 1 ranker pick, got {a.shape}")
    index_dtype("action", a)
    bad = (a[:n] < 0) | (a[:n] >= pool_sizes)
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(
            f"nomination outside the pool: nominator {k} chose index {int(a[k])}, "
            f"its pool holds {int(pool_sizes[k])} items (valid 0..{int(pool_sizes[k]) - 1})"
        )
    if not 0 <= a[n] < n:
        raise ValueError(f"ranker pick {int(a[n])} is outside the candidate set (valid 0..{n - 1})")
    return a.astype(np.int64, copy=False)


class NominatorsEnv(gym.Env):
    """## Description

    The two-stage bandit of Hron et al., *On component interactions in two-stage recommender
    systems* (NeurIPS 2021), Sections 2-3 and Appendix B. Each round a user brings a fresh
    context X_t (|A| x d), one feature vector x_{t,a} ~ N(0, I_d) per item. Each of N
    *nominators* nominates one item from its *pool* A_n, using only its feature subset of size
    s; the *ranker*, which sees all d features, serves one item of the *candidate set*
    C_t = {a_{1,t}, ..., a_{N,t}}. Only the served item's reward r = <theta*, x_{t,a}> + eps is
    revealed, with theta* uniform on the unit sphere (drawn per instance) and eps ~ N(0, noise_std^2).

    The agent plays the whole system: one action holds every nomination and the ranker's pick.
    Respecting the feature views is the agent's part (the learners in ``agents`` do); the pools
    are enforced by the action encoding. With ``n_nominators=1`` the single pool is the whole
    catalog and the env is the paper's *single-stage* system.

    Pools and feature subsets follow Appendix B unless given: items are permuted and split into
    N pools of floor(|A|/N), the remainder handed out to the first nominators; each nominator
    gets s' = min(s, floor(d/N)) permuted features, topped up to s at random. They are exposed as
    the attributes ``pools`` (list of N sorted item-id arrays) and ``feature_subsets``
    ((N, s) array), and are redrawn only when ``reset`` is given a seed.

    Two registered variants reproduce the bandit part of Proposition 2 (Eq. 6): contexts are
    X_(j) drawn uniformly, mean rewards r_bar = [3/4, 7/8, 1/6, 1], Bernoulli rewards, and all
    nominators see only the last two columns. ``TwoStage/Nominators-Prop2A-v0`` uses pools
    {a1}, {a2, a3, a4}, {a2}, where 'training-on-own' reaches sublinear regret and
    'training-on-all' does not; ``TwoStage/Nominators-Prop2B-v0`` uses {a1}, {a2, a3, a4}, {a4},
    where the reverse holds. ``twostage_gym.core.prop2`` has the supervised constructions
    (Eqs. 5, 6) and the closed-form limits theta_2*.

    ## Action Space

    ``MultiDiscrete([|A_1|, ..., |A_N|, N])``: entry n < N is the index, within pool n (sorted
    item ids, ``pools[n]``), of nominator n's nomination; the last entry is the ranker's pick, an
    index into the candidate set (i.e. which nominator's item is served).

    ## Observation Space

    ``Box(-inf, inf, (|A|, d), float32)``: the context X_t. Row a is item a's features; nominator
    n may use only ``X_t[pools[n]][:, feature_subsets[n]]``.

    ## Rewards

    The served item's observed reward: Gaussian noise around <theta*, x_{t,a}> (or a Bernoulli
    draw in the Proposition 2 variants).

    ## Episode End

    Never terminates. Truncation comes from ``max_episode_steps`` (1000 at registration; the
    paper's horizon T). An unseeded ``reset`` keeps the instance (theta*, pools, feature subsets)
    and continues the context stream, so an RL learner trained over many episodes faces one problem.

    ## Arguments

    - ``n_items`` (int, 100): catalog size |A|.
    - ``dim`` (int, 20): feature dimension d.
    - ``n_nominators`` (int, 5): N, at most ``n_items``.
    - ``nominator_dim`` (int, None): s, the features each nominator sees, in [1, d]; default d.
    - ``misspecification`` (float, None): rho = d/s >= 1, giving s = floor(d/rho) >= 1; exclusive
      with ``nominator_dim``. (The paper's Table 2 lists the reciprocal, rho <= 1.)
    - ``noise_std`` (float, 0.1): reward noise standard deviation, finite and >= 0.
    - ``pools`` (list of N lists of int item ids, None): explicit pools; non-empty, in range,
      without repeats, covering all items (pools may overlap).
    - ``feature_subsets`` (list of N equal-length lists of int feature indices, None): explicit
      feature views, in [0, d), without repeats; exclusive with ``nominator_dim`` and
      ``misspecification``.
    - ``context_model`` (``"gaussian"`` or ``"prop2"``): how contexts are drawn; ``"prop2"``
      needs ``n_items=4`` and ``dim=4``.
    - ``reward_noise`` (``"gaussian"`` or ``"bernoulli"``): how rewards are observed;
      ``"bernoulli"`` needs ``context_model="prop2"`` (Gaussian contexts give mean rewards
      outside [0, 1]).
    - ``render_mode`` (``"ansi"`` or None).

    Integer arguments take Python or numpy integers (not bools, floats or strings), real ones
    also floats (not bools or strings). Invalid values raise ``ValueError`` naming the argument
    at ``gym.make``, and so do sizes whose arrays (observation space bounds, contexts, pools)
    are estimated above ``twostage_gym.core.checks.MEMORY_LIMIT_BYTES`` (64 GiB); the message
    gives the estimate.

    ## Info keys

    After ``step``: ``candidates`` (int64 (N,), the candidate set in nominator order),
    ``chosen_item`` (int64, the served item), ``expected_reward`` (f* of the served item),
    ``optimal_expected_reward`` (max_a f*), ``regret`` (= ``nominator_regret`` +
    ``ranker_regret`` exactly, Eq. 1), ``nominator_regret`` (max_a f* - max_{C_t} f*),
    ``ranker_regret`` (max_{C_t} f* - f* of the served item), ``best_candidate`` and
    ``optimal_item`` (int64). All regrets are expected (pseudo-) regrets, float64. ``reset``
    returns an empty dict.

    ## Version History

    - v0: initial version.

    ## Example

    >>> import gymnasium as gym
    >>> import twostage_gym
    >>> env = gym.make("TwoStage/Nominators-v0", n_items=20, dim=4, n_nominators=2)
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape
    (20, 4)
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    >>> bool(info["regret"] == info["nominator_regret"] + info["ranker_regret"])
    True
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        n_items: int = 100,
        dim: int = 20,
        n_nominators: int = 5,
        nominator_dim: int | None = None,
        misspecification: float | None = None,
        noise_std: float = 0.1,
        pools: Sequence[Sequence[int]] | None = None,
        feature_subsets: Sequence[Sequence[int]] | None = None,
        context_model: str = "gaussian",
        reward_noise: str = "gaussian",
        render_mode: str | None = None,
    ) -> None:
        choice("render_mode", render_mode, self.metadata["render_modes"], allow_none=True)
        self.config = NominatorsConfig(
            n_items, dim, n_nominators, nominator_dim, misspecification, noise_std,
            pools, feature_subsets, context_model, reward_noise,
        )  # fmt: skip
        self.render_mode = render_mode
        self.n_items, self.dim, self.n_nominators = self.config.n_items, self.config.dim, self.config.n_nominators
        self.nominator_dim = self.config.nominator_dim
        self.pool_sizes = self.config.pool_sizes
        self.action_space = spaces.MultiDiscrete(np.append(self.pool_sizes, self.n_nominators))
        self.observation_space = spaces.Box(-np.inf, np.inf, (self.n_items, self.dim), np.float32)
        self.instance: NominatorsInstance | None = None
        self._mean: np.ndarray | None = None
        self._last: dict[str, Any] | None = None
        self._t = 0

    # -- public structure -------------------------------------------------------------------
    @property
    def pools(self) -> list[np.ndarray]:
        """The N pools (sorted item-id arrays) of the current instance."""
        return self._require_instance().pools

    @property
    def feature_subsets(self) -> np.ndarray:
        """``(N, s)`` feature indices each nominator sees, for the current instance."""
        return self._require_instance().feature_subsets

    def expected_rewards(self, context: np.ndarray) -> np.ndarray:
        """Oracle: f*(x, a) of every item under ``context`` (used by the ``oracle`` agent and tests)."""
        return self._require_instance().reward.mean(context)

    def _require_instance(self) -> NominatorsInstance:
        if self.instance is None:
            raise RuntimeError("call reset() before using the environment")
        return self.instance

    # -- gymnasium API ----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None or self.instance is None:
            instance_rng, self._context_rng, self._noise_rng = seed_streams(self.np_random)
            self.instance = self.config.draw_instance(instance_rng)
        obs = self.config.contexts.sample(self._context_rng)
        self._mean = self.instance.reward.mean(obs)
        self._last, self._t = None, 0
        return obs, {}

    def step(self, action):
        if self._mean is None:
            raise RuntimeError("call reset() before step()")
        a = check_action(action, self.pool_sizes)
        n = self.n_nominators
        inst = self.instance
        candidates = inst.pool_items[np.arange(n), a[:n]]
        chosen = candidates[a[n]]
        info = stage_regret(self._mean, candidates, chosen)
        reward = inst.reward.sample(info["expected_reward"], self._noise_rng)
        info["candidates"] = candidates
        info["chosen_item"] = np.int64(chosen)
        obs = self.config.contexts.sample(self._context_rng)
        self._mean = inst.reward.mean(obs)
        self._t += 1
        self._last = info
        return obs, float(reward), False, False, info

    def render(self) -> str | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' to make()")
            return None
        return round_summary(self._t, self._last) + "\n"


class NominatorsVectorEnv(VectorEnv):
    """Native vector version of :class:`NominatorsEnv`.

    Gives exactly what ``gym.make_vec(id, n, vectorization_mode="sync")`` gives for the same seeds
    (observations, rewards, terminations, truncations and info, with next-step autoreset).
    Each sub-env keeps its own context and noise generators, as the sync env does, so the
    draws loop over sub-envs; everything else (nominations, candidate sets, regrets, info)
    is batched.

    Arguments: ``num_envs`` (a positive int, not a bool), ``max_episode_steps`` (a positive int,
    1000 by default, or None for no truncation: the vector env truncates itself, as the
    ``TimeLimit`` wrapper does in the sync env; note that ``gym.make_vec(..., "sync",
    max_episode_steps=None)`` means the registered horizon instead), and the keyword arguments of
    :class:`NominatorsEnv` (``render_mode`` excepted). Invalid values raise ``ValueError`` naming
    the argument, as do sizes whose arrays for all sub-envs would exceed the memory limit.
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, max_episode_steps: int | None = 1000, **kwargs: Any) -> None:
        self.num_envs, self.max_episode_steps = vector_arguments(
            "NominatorsVectorEnv", num_envs, max_episode_steps, kwargs
        )
        self.single_env = NominatorsEnv(**kwargs)
        self.config = self.single_env.config
        self.config.check_memory(num_envs=self.num_envs, batched_spaces=True)
        self.single_action_space = self.single_env.action_space
        self.single_observation_space = self.single_env.observation_space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.instances: list[NominatorsInstance] = []
        self._steps = np.zeros(self.num_envs, dtype=np.int64)
        self._prev_done = np.zeros(self.num_envs, dtype=bool)
        self._mean: np.ndarray | None = None

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        seeds = seed_list(seed, self.num_envs)
        if not self.instances:
            self.instances = [None] * self.num_envs  # type: ignore[list-item]
            self._context_rngs = [None] * self.num_envs
            self._noise_rngs = [None] * self.num_envs
        for e, s in enumerate(seeds):
            if s is not None or self.instances[e] is None:
                np_random, _ = seeding.np_random(s)
                inst_rng, self._context_rngs[e], self._noise_rngs[e] = seed_streams(np_random)
                self.instances[e] = self.config.draw_instance(inst_rng)
        self._pool_items = np.stack([i.pool_items for i in self.instances])
        self._pool_sizes = self.single_env.pool_sizes
        obs = self._draw_contexts(np.arange(self.num_envs))
        self._steps[:] = 0
        self._prev_done[:] = False
        return obs, {}

    def _draw_contexts(self, envs: np.ndarray, obs: np.ndarray | None = None) -> np.ndarray:
        """Draw the next context for the sub-envs in ``envs`` (into ``obs``) and refresh their means."""
        if obs is None:
            obs = np.empty((self.num_envs, self.config.n_items, self.config.dim), dtype=np.float32)
        if self._mean is None:
            self._mean = np.zeros((self.num_envs, self.config.n_items))
        for e in envs:
            obs[e] = self.config.contexts.sample(self._context_rngs[e])
            self._mean[e] = self.instances[e].reward.mean(obs[e])
        return obs

    def step(self, actions):
        if self._mean is None:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions)
        n = self.config.n_nominators
        if actions.shape != (self.num_envs, n + 1):
            raise ValueError(f"actions must have shape ({self.num_envs}, {n + 1}), got {actions.shape}")
        active = np.flatnonzero(~self._prev_done)
        for e in active:
            try:
                check_action(actions[e], self._pool_sizes)
            except ValueError as err:
                raise ValueError(f"sub-env {e}: {err}") from None
        rewards = np.zeros(self.num_envs)
        info: dict[str, Any] = {}
        if active.size:
            a = actions[active].astype(np.int64)
            candidates = np.take_along_axis(self._pool_items[active], a[:, :n, None], 2)[..., 0]
            chosen = np.take_along_axis(candidates, a[:, n, None], 1)[:, 0]
            metrics = stage_regret(self._mean[active], candidates, chosen)
            for j, e in enumerate(active):
                rewards[e] = self.instances[e].reward.sample(metrics["expected_reward"][j], self._noise_rngs[e])
            metrics["candidates"], metrics["chosen_item"] = candidates, chosen
            info = scatter_info(metrics, active, self.num_envs)
        obs = self._draw_contexts(np.arange(self.num_envs))
        terminated, truncated = advance_steps(self._steps, self._prev_done, self.max_episode_steps)
        self._prev_done = truncated.copy()
        return obs, rewards, terminated, truncated, info
