"""Nominators and a ranker as separate agents, in PettingZoo (Hron et al., NeurIPS 2021)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding

try:
    from pettingzoo import AECEnv, ParallelEnv
    from pettingzoo.utils.conversions import parallel_to_aec_wrapper
    from pettingzoo.utils.wrappers import OrderEnforcingWrapper
except ImportError as err:  # the core install is numpy + gymnasium only
    raise ImportError(
        'twostage_gym.multiagent needs pettingzoo; install it with: pip install "twostage-gym[multiagent]"'
    ) from err

from twostage_gym.core import round_summary, stage_regret
from twostage_gym.core.checks import choice, positive_int
from twostage_gym.envs.nominators import NominatorsConfig, NominatorsInstance, seed_streams

__all__ = ["RANKERS", "REWARD_MODES", "NominatorsAECEnv", "NominatorsParallelEnv", "env", "parallel_env", "raw_env"]

RANKERS = ("agent", "oracle", "random")
REWARD_MODES = ("shared", "own")
RANKER_AGENT = "ranker_0"


class NominatorsParallelEnv(ParallelEnv):
    """## Description

    The two-stage bandit of Hron et al., *On component interactions in two-stage recommender
    systems* (NeurIPS 2021), Sections 2-3, with every component a separate agent. Each round a
    user brings a fresh context X_t (|A| x d), x_{t,a} ~ N(0, I_d). Nominator n (agent
    ``nominator_n``) sees only its *pool* A_n under its feature view (s of the d features) and
    nominates one item of it; the *ranker* sees the *candidate set* C_t = {a_{1,t}, ..., a_{N,t}}
    with all d features and serves one item, whose reward r = <theta*, x_{t,a}> + eps is revealed.

    This is the setting of the paper's Section 3.2: independently trained nominators, each with
    limited features and data, whose learning signal depends on what the ranker serves. The
    instance (theta*, pools, feature subsets) and the context stream are those of
    ``TwoStage/Nominators-v0`` for the same keyword arguments and seed.

    The ranker is either an agent (``ranker="agent"``, the agent ``ranker_0``) or part of the env:
    ``"oracle"`` serves the candidate with the highest true expected reward, so the ranker regret is
    zero and only the nominators learn; ``"random"`` serves a uniformly random candidate.

    ## Phases

    With ``ranker="agent"`` a round takes two ``step`` calls, announced by ``phase`` in every
    observation. Phase 0: the nominators act; the ranker's action, if given, is ignored. Phase 1:
    the ranker, now observing the candidates' full feature rows, picks one; the nominators'
    actions are ignored and they observe their phase-0 view again. Rewards and the round's info
    arrive at the end of phase 1. With a fixed ranker every round is one step and ``phase`` is
    always 0. Keeping every agent in ``agents`` throughout (rather than alternating who is present)
    keeps ``agents`` and the spaces fixed, as PettingZoo's API tests and RL libraries expect; the
    phase is in the observation because a parallel env has no other per-step channel a policy sees.
    Actions of agents that do not act in the current phase may be omitted or ``None``.

    ## Action Space

    ``nominator_n``: ``Discrete(|A_n|)``, an index into its pool (sorted item ids, ``pools[n]``).
    ``ranker_0``: ``Discrete(N)``, an index into the candidate set (which nominator's item is served).

    ## Observation Space

    A single-level ``Dict`` for every agent: ``"context"``, a float32 ``Box``, and ``"phase"``,
    ``Discrete(2)`` with the ranker agent and ``Discrete(1)`` without it.

    - ``nominator_n``: context ``(|A_n|, s)`` = ``X_t[pools[n]][:, feature_subsets[n]]``.
    - ``ranker_0``: context ``(N, d)``, the candidate set's rows ``X_t[C_t]`` in nominator order in
      phase 1, zeros in phase 0 (no candidates yet).

    ``state()`` returns the full context X_t (``state_space``, ``(|A|, d)``), e.g. for centralised critics.

    ## Rewards

    The served item's observed reward r (Gaussian noise around <theta*, x_{t,a}>, or a Bernoulli
    draw with ``reward_noise="bernoulli"``), given at the end of a round; phase-0 steps give 0.

    - ``reward_mode="shared"``: every agent gets r, the two-stage reward.
    - ``reward_mode="own"``: nominator n gets r only if its own nomination was served
      (a_t = a_{n,t}, footnote 4 definition (ii) of 'training-on-own'; the same as definition (i)
      when pools do not overlap), else 0. The ranker agent always gets r.

    ## Episode End

    Never terminates. Every agent is truncated after ``max_cycles`` rounds (a round is two steps
    with the ranker agent), and ``agents`` is then empty. An unseeded ``reset`` keeps the instance
    and continues the context stream, so learning can go on over episodes on one problem.

    ## Arguments

    - ``n_items``, ``dim``, ``n_nominators``, ``nominator_dim``, ``misspecification``, ``noise_std``,
      ``pools``, ``feature_subsets``, ``context_model``, ``reward_noise``: as for
      ``TwoStage/Nominators-v0`` (defaults 100, 20, 5, None, None, 0.1, None, None,
      ``"gaussian"``, ``"gaussian"``).
    - ``ranker`` (``"agent"``, ``"oracle"`` or ``"random"``; default ``"agent"``).
    - ``reward_mode`` (``"shared"`` or ``"own"``; default ``"shared"``).
    - ``max_cycles`` (int, 1000): rounds per episode, the paper's horizon T.
    - ``render_mode`` (``"ansi"`` or None).

    ## Info keys

    At the end of a round every agent's info holds the keys of ``TwoStage/Nominators-v0``:
    ``candidates`` (int64 (N,)), ``chosen_item`` (int64), ``expected_reward``,
    ``optimal_expected_reward``, ``regret`` (= ``nominator_regret`` + ``ranker_regret`` exactly,
    Eq. 1), ``nominator_regret``, ``ranker_regret`` (float64 expected regrets), ``best_candidate``
    and ``optimal_item`` (int64). Phase-0 steps and ``reset`` give empty dicts. Learners must not
    read the oracle keys (``twostage_gym.core.ORACLE_INFO_KEYS``).

    ## Bad actions

    Every action given (also one ignored in the current phase) must be an integer in its agent's
    space, and every agent acting in the phase must give one; otherwise ``step`` raises
    ``ValueError`` naming the agent and the rule, before anything changes. In the AEC form
    (``env()``) each action is checked at the step that receives it: a refused action leaves the
    same agent to act and nothing recorded.

    Invalid constructor arguments raise ``ValueError`` naming the argument (the checks of
    ``TwoStage/Nominators-v0``, including its memory limit, which here also counts every
    nominator's view and observation space); ``max_cycles`` must be a positive int, not a bool.

    ## Version History

    - v0: initial version.

    ## Example

    >>> from twostage_gym.multiagent import nominators_v0
    >>> env = nominators_v0.parallel_env(n_items=20, dim=4, n_nominators=2)
    >>> observations, infos = env.reset(seed=0)
    >>> env.agents
    ['nominator_0', 'nominator_1', 'ranker_0']
    >>> observations["nominator_0"]["context"].shape
    (10, 4)
    >>> actions = {agent: env.action_space(agent).sample() for agent in env.agents}
    >>> observations, rewards, terminations, truncations, infos = env.step(actions)  # nominations
    >>> int(observations["ranker_0"]["phase"]), observations["ranker_0"]["context"].shape
    (1, (2, 4))
    >>> observations, rewards, terminations, truncations, infos = env.step(actions)  # the ranker serves
    >>> info = infos["ranker_0"]
    >>> bool(info["regret"] == info["nominator_regret"] + info["ranker_regret"])
    True
    """

    metadata = {"name": "nominators_v0", "render_modes": ["ansi"], "is_parallelizable": True, "render_fps": 4}

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
        ranker: str = "agent",
        reward_mode: str = "shared",
        max_cycles: int = 1000,
        render_mode: str | None = None,
    ) -> None:
        choice("render_mode", render_mode, self.metadata["render_modes"], allow_none=True)
        choice("ranker", ranker, RANKERS)
        choice("reward_mode", reward_mode, REWARD_MODES)
        max_cycles = positive_int("max_cycles", max_cycles)
        self.config = NominatorsConfig(
            n_items, dim, n_nominators, nominator_dim, misspecification, noise_std,
            pools, feature_subsets, context_model, reward_noise,
        )  # fmt: skip
        # Beyond the single-agent env's arrays: every nominator's view of the context (N, P, s)
        # float32, its observation space's bounds, and the Python objects of each agent.
        view = self.config.n_nominators * int(self.config.pool_sizes.max()) * self.config.nominator_dim
        self.config.check_memory(
            extra={"nominator views": 4 * view, "per-agent spaces": 10 * view + 4096 * self.config.n_nominators}
        )
        self.n_items, self.dim, self.n_nominators = self.config.n_items, self.config.dim, self.config.n_nominators
        self.nominator_dim = self.config.nominator_dim
        self.pool_sizes = self.config.pool_sizes
        self.ranker, self.reward_mode, self.render_mode = ranker, reward_mode, render_mode
        # Public and mutable: pettingzoo's parallel_api_test sets it after construction.
        self.max_cycles = int(max_cycles)
        self.n_phases = 2 if ranker == "agent" else 1

        self.nominators = [f"nominator_{n}" for n in range(self.n_nominators)]
        self.possible_agents = self.nominators + ([RANKER_AGENT] if ranker == "agent" else [])
        self.agents: list[str] = []
        # One space object per agent, built once: observation_space(agent) must return the same object.
        self._observation_spaces: dict[str, spaces.Dict] = {}
        self._action_spaces: dict[str, spaces.Discrete] = {}
        for name, size in zip(self.nominators, self.pool_sizes.tolist(), strict=True):
            self._observation_spaces[name] = self._obs_space((size, self.nominator_dim))
            self._action_spaces[name] = spaces.Discrete(size)
        if ranker == "agent":
            self._observation_spaces[RANKER_AGENT] = self._obs_space((self.n_nominators, self.dim))
            self._action_spaces[RANKER_AGENT] = spaces.Discrete(self.n_nominators)
        self.state_space = spaces.Box(-np.inf, np.inf, (self.n_items, self.dim), np.float32)

        self.np_random: np.random.Generator | None = None
        self.instance: NominatorsInstance | None = None
        self._context: np.ndarray | None = None
        self._mean: np.ndarray | None = None
        self._views: np.ndarray | None = None
        self._candidates: np.ndarray | None = None
        self._phase = 0
        self._t = 0
        self._last: dict[str, Any] | None = None

    def _obs_space(self, shape: tuple[int, int]) -> spaces.Dict:
        context = spaces.Box(-np.inf, np.inf, shape, np.float32)
        return spaces.Dict({"context": context, "phase": spaces.Discrete(self.n_phases)})

    # -- public structure -------------------------------------------------------------------
    def observation_space(self, agent: str) -> spaces.Dict:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._action_spaces[agent]

    @property
    def pools(self) -> list[np.ndarray]:
        """The N pools (sorted item-id arrays) of the current instance."""
        return self._require_instance().pools

    @property
    def feature_subsets(self) -> np.ndarray:
        """``(N, s)`` feature indices each nominator sees, for the current instance."""
        return self._require_instance().feature_subsets

    @property
    def phase(self) -> int:
        """The phase of the round in progress: 0 (nominators act) or 1 (the ranker agent acts)."""
        return self._phase

    def state(self) -> np.ndarray:
        """The full context X_t ``(|A|, d)`` of the round in progress."""
        if self._context is None:
            raise RuntimeError("call reset() before state()")
        return self._context.copy()

    def expected_rewards(self) -> np.ndarray:
        """Oracle: f*(x_t, a) of every item in the round in progress (for oracle baselines and tests)."""
        if self._mean is None:
            raise RuntimeError("call reset() before expected_rewards()")
        return self._mean.copy()

    def _require_instance(self) -> NominatorsInstance:
        if self.instance is None:
            raise RuntimeError("call reset() before using the environment")
        return self.instance

    # -- pettingzoo API ---------------------------------------------------------------------
    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        if seed is not None or self.instance is None:
            # The same generator gymnasium's Env.reset(seed) builds, split the same way as the
            # single-agent env: one seed gives the same instance and contexts in both.
            self.np_random, _ = seeding.np_random(seed)
            instance_rng, self._context_rng, self._noise_rng = seed_streams(self.np_random)
            self.instance = self.config.draw_instance(instance_rng)
        self.agents = list(self.possible_agents)
        self._t, self._last = 0, None
        self._new_round()
        return self._observations(), {agent: {} for agent in self.agents}

    def step(self, actions: Mapping[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise RuntimeError("no agent is live (episode over, or reset() never called); call reset()")
        picks = self._check_actions(actions)
        inst = self.instance
        if self._phase == 0:
            nominations = np.array([picks[name] for name in self.nominators], dtype=np.int64)
            candidates = inst.pool_items[np.arange(self.n_nominators), nominations]
            if self.ranker == "agent":
                self._phase, self._candidates = 1, candidates
                zeros = dict.fromkeys(self.agents, 0.0)
                falses = dict.fromkeys(self.agents, False)
                return self._observations(), zeros, falses, dict(falses), {agent: {} for agent in self.agents}
            if self.ranker == "oracle":
                pick = int(self._mean[candidates].argmax())
            else:
                # The noise stream: like reward noise, an env draw made in response to actions.
                pick = int(self._noise_rng.integers(self.n_nominators))
        else:
            candidates, pick = self._candidates, picks[RANKER_AGENT]
        return self._end_round(candidates, pick)

    def _end_round(self, candidates: np.ndarray, pick: int) -> tuple[dict, dict, dict, dict, dict]:
        chosen = candidates[pick]
        info = stage_regret(self._mean, candidates, chosen)
        reward = float(self.instance.reward.sample(info["expected_reward"], self._noise_rng))
        info["candidates"] = candidates
        info["chosen_item"] = np.int64(chosen)
        if self.reward_mode == "shared":
            rewards = dict.fromkeys(self.agents, reward)
        else:
            served = (candidates == chosen).tolist()
            rewards = {name: reward if hit else 0.0 for name, hit in zip(self.nominators, served, strict=True)}
            if self.ranker == "agent":
                rewards[RANKER_AGENT] = reward
        self._t += 1
        self._last = info
        truncated = self._t >= self.max_cycles
        agents = self.agents
        # The next context is drawn even at the horizon, as the single-agent env does, so the
        # context stream is the same however rounds are split into episodes.
        self._new_round()
        observations = self._observations()
        infos = {agent: {**info, "candidates": candidates.copy()} for agent in agents}
        terminations = dict.fromkeys(agents, False)
        truncations = dict.fromkeys(agents, truncated)
        if truncated:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def _new_round(self) -> None:
        inst = self.instance
        self._context = self.config.contexts.sample(self._context_rng)
        self._mean = inst.reward.mean(self._context)
        # Every nominator's view in one gather, (N, P, s); agent n gets its first |A_n| rows.
        self._views = self._context[inst.pool_items[:, :, None], inst.feature_subsets[:, None, :]]
        self._phase, self._candidates = 0, None

    def _observations(self) -> dict[str, dict[str, Any]]:
        phase = np.int64(self._phase)
        obs = {
            name: {"context": self._views[n, :size], "phase": phase}
            for n, (name, size) in enumerate(zip(self.nominators, self.pool_sizes.tolist(), strict=True))
        }
        if self.ranker == "agent":
            if self._phase == 1:
                context = self._context[self._candidates]
            else:
                context = np.zeros((self.n_nominators, self.dim), dtype=np.float32)
            obs[RANKER_AGENT] = {"context": context, "phase": phase}
        return obs

    def check_agent_action(self, agent: str, action: Any) -> int | None:
        """Check one agent's action by the rules of :meth:`step`, changing nothing.

        The AEC form (:func:`env`) calls this at the step that receives each action, so a bad
        action is refused there rather than when the last agent's step submits the round.

        Returns:
            The action as an int, or None for an action omitted (None) by an agent that does not
            act in the current phase.

        Raises:
            ValueError: an unknown agent, an action that is not an integer in the agent's space,
                or None from an agent that acts in the current phase.
        """
        if agent not in self._action_spaces:
            raise ValueError(f"unknown agent {agent!r} in actions; agents are {self.agents}")
        if action is not None:
            return self._check_action(agent, action)
        if agent in self._acting_agents():
            raise ValueError(f"{agent}: missing action; it acts in phase {self._phase} of the round")
        return None

    def _acting_agents(self) -> list[str]:
        return self.nominators if self._phase == 0 else [RANKER_AGENT]

    def _check_actions(self, actions: Mapping[str, Any]) -> dict[str, int]:
        """Validate every given action (nothing is changed here) and return them as ints."""
        if not isinstance(actions, Mapping):
            raise ValueError(f"actions must be a dict from agent names to actions, got {type(actions).__name__}")
        picks: dict[str, int] = {}
        for agent, action in actions.items():
            if agent not in self._action_spaces:
                raise ValueError(f"unknown agent {agent!r} in actions; agents are {self.agents}")
            if action is not None:
                picks[agent] = self._check_action(agent, action)
        for agent in self._acting_agents():
            if agent not in picks:
                raise ValueError(f"{agent}: missing action; it acts in phase {self._phase} of the round")
        return picks

    def _check_action(self, agent: str, action: Any) -> int:
        value = action[()] if isinstance(action, np.ndarray) and action.shape == () else action
        # As gymnasium's Discrete: an int, or a numpy integer (scalar or 0-d array) that int64
        # holds (not uint64, not an object array that happens to hold an int).
        if (
            isinstance(value, (bool, np.bool_))
            or not isinstance(value, (int, np.integer))
            or (isinstance(action, (np.ndarray, np.generic)) and not np.can_cast(action.dtype, np.int64))
        ):
            raise ValueError(
                f"{agent}: an action must be an integer index (int or a numpy integer that int64 holds), "
                f"got {type(action).__name__} {action!r}"
            )
        n = self._action_spaces[agent].n
        if not 0 <= value < n:
            if agent == RANKER_AGENT:
                rule = f"ranker pick {value} is outside the candidate set (valid 0..{n - 1})"
            else:
                rule = f"nomination outside the pool: index {value}, its pool holds {n} items (valid 0..{n - 1})"
            raise ValueError(f"{agent}: {rule}")
        return int(value)

    def render(self) -> str | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' to the env")
            return None
        lines = [round_summary(self._t, self._last)]
        if self._phase == 1:
            lines.append(f"round {self._t + 1}, phase 1: candidates {self._candidates.tolist()} await the ranker")
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        """Nothing to release."""


class NominatorsAECEnv(OrderEnforcingWrapper):
    """The AEC form of :class:`NominatorsParallelEnv`: ``parallel_to_aec``, checking each action on arrival.

    ``parallel_to_aec`` records each agent's action and passes the cycle's actions to the
    parallel env at the last agent's step. Unchecked, a bad action of ``nominator_0`` would be
    recorded, the *last* agent's valid step would raise, and the env would stay stuck until
    ``reset``. Here the step that receives an action checks it first, with the parallel env's
    per-agent rule (:meth:`NominatorsParallelEnv.check_agent_action`); a refused action raises
    ``ValueError`` and changes nothing: the same agent is still to act and nothing is recorded.
    An agent that is done (truncated) must step with None, as in every AEC env; anything else
    raises ``ValueError`` too. Everything else is ``parallel_to_aec``'s (the structure
    ``OrderEnforcingWrapper(parallel_to_aec_wrapper(parallel_env))`` is the same).
    """

    def __init__(self, parallel: NominatorsParallelEnv) -> None:
        super().__init__(parallel_to_aec_wrapper(parallel))
        self._parallel = parallel

    def step(self, action: Any) -> None:
        if self._has_reset and self.agents:
            agent = self.agent_selection
            if self.terminations[agent] or self.truncations[agent]:
                if action is not None:
                    raise ValueError(f"{agent} is done (truncated): its step takes action None, got {action!r}")
            else:
                self._parallel.check_agent_action(agent, action)
        super().step(action)

    def __str__(self) -> str:
        # What parallel_to_aec's result prints: the env's name.
        return str(self.env)


raw_env = NominatorsParallelEnv


def parallel_env(**kwargs: Any) -> NominatorsParallelEnv:
    """The parallel form; see :class:`NominatorsParallelEnv` for the keyword arguments."""
    return NominatorsParallelEnv(**kwargs)


def env(**kwargs: Any) -> AECEnv:
    """The AEC form (agents act in turn, ``nominator_0`` first): :class:`NominatorsAECEnv`.

    Each action is checked at the step that receives it (see :class:`NominatorsAECEnv`).
    """
    return NominatorsAECEnv(parallel_env(**kwargs))
