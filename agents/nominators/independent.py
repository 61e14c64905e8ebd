"""Independent learners for the multi-agent nominators env: one linear bandit per PettingZoo agent.

Each agent of ``twostage_gym.multiagent.nominators_v0`` gets its own learner, which sees only that
agent's observation, action and reward, as if the rest of the system were part of its environment
(Hron et al. 2021, Sec. 3.2: nominators trained independently of each other and of the ranker).
The learners are the ones of :mod:`agents.nominators.two_stage` (UCB, Greedy, policy gradient), each a
:class:`~agents.nominators.two_stage.LinearStage` with one model, plus a uniformly random baseline.

With ``reward_mode="shared"`` a nominator regresses the two-stage reward on its own nomination's
features; with ``"own"`` it gets 0 whenever another item was served. ``nominator_updates="served"``
instead skips those rounds (weight 1{a_t = a_{n,t}}, footnote 4 (ii)), read from the public info
keys ``candidates`` and ``chosen_item``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from agents.common.base import Agent, agent_rng, check_nonnegative, check_positive
from agents.nominators.two_stage import DEFAULT_ALPHA, DEFAULT_LAM, DEFAULT_LR, STAGE_LEARNERS, LinearStage
from twostage_gym.core import public_info

__all__ = ["INDEPENDENT_LEARNERS", "NOMINATOR_UPDATES", "IndependentLearners", "LinearBandit", "evaluate_parallel"]

INDEPENDENT_LEARNERS = (*STAGE_LEARNERS, "random")
NOMINATOR_UPDATES = ("all", "served")
_AGENT_NAME = re.compile(r"(nominator|ranker)_(\d+)")


class LinearBandit:
    """One agent's learner over the rows of its observed context: UCB, Greedy, PG or random.

    A row is an arm (an item of the pool, or a candidate); the learner keeps one linear model of
    the reward on the row's features.

    Args:
        kind: ``"ucb"``, ``"greedy"``, ``"pg"`` or ``"random"``.
        dim: feature size p (the context's second axis).
        alpha: UCB bonus (only used by ``"ucb"``).
        lam: ridge regulariser before the x p scaling.
        lr: PG learning rate.
    """

    def __init__(self, kind: str, dim: int, alpha: float, lam: float, lr: float) -> None:
        self.kind = kind
        # Greedy is UCB with alpha = 0 (Sec. 3.1); LinearStage reads alpha only for ridge learners.
        stage_alpha = alpha if kind == "ucb" else 0.0
        self.stage = None if kind == "random" else LinearStage(kind, 1, dim, stage_alpha, lam, lr)

    def reset(self) -> None:
        """Forget everything learned."""
        if self.stage is not None:
            self.stage.reset()

    def act(self, context: np.ndarray, rng: np.random.Generator) -> int:
        """Pick a row of ``context`` (M, p)."""
        if self.stage is None:
            return int(rng.integers(context.shape[0]))
        index, _ = self.stage.choose(context[None], None, rng)
        return int(index[0])

    def learn(self, context: np.ndarray, action: int, reward: float, weight: float = 1.0) -> None:
        """Update on the chosen row of ``context`` with ``reward``, weighted by ``weight``."""
        if self.stage is None:
            return
        X = context[None]
        # PG needs the policy the action was drawn from; theta has not moved since act(), so
        # recomputing it here gives those exact probabilities.
        probs = self.stage.probs(X, None) if self.kind == "pg" else None
        self.stage.learn(X[:, action], reward, np.array([weight]), X, probs)


class IndependentLearners(Agent):
    """One :class:`LinearBandit` per agent of a ``nominators_v0`` PettingZoo env.

    ``act(observations)`` returns a full actions dict (agents that do not act in the current phase
    get 0, which the env ignores); ``update(observations, actions, rewards, infos)`` is called after
    every ``env.step`` with the observations that were acted on. A nominator's decision is kept from
    phase 0 until the round's reward arrives at its end. Learners read only the public info keys.

    Args:
        env: a ``nominators_v0`` env, parallel or AEC (its spaces are read at construction).
        nominator: every nominator's learner, one of :data:`INDEPENDENT_LEARNERS`.
        ranker: the ranker agent's learner (unused when the env's ranker is not an agent).
        alpha: UCB exploration bonus (default 1e-2, Table 1); only with a UCB learner.
        lam: ridge regulariser before the x p scaling (default 1e-2, Table 1).
        lr: PG learning rate (default 1, Table 1).
        nominator_updates: ``"all"`` (learn every round) or ``"served"`` (only from rounds whose
            served item is the nominator's own nomination).
    """

    name = "independent"

    def __init__(
        self,
        env: Any,
        nominator: str = "ucb",
        ranker: str = "ucb",
        alpha: float | None = None,
        lam: float = DEFAULT_LAM,
        lr: float = DEFAULT_LR,
        nominator_updates: str = "all",
    ) -> None:
        if nominator not in INDEPENDENT_LEARNERS:
            raise ValueError(f"nominator must be one of {INDEPENDENT_LEARNERS}, got {nominator!r}")
        if ranker not in INDEPENDENT_LEARNERS:
            raise ValueError(f"ranker must be one of {INDEPENDENT_LEARNERS}, got {ranker!r}")
        if alpha is not None and "ucb" not in (nominator, ranker):
            raise ValueError("alpha is the UCB bonus, but neither the nominator nor the ranker learner is UCB")
        if nominator_updates not in NOMINATOR_UPDATES:
            raise ValueError(f"nominator_updates must be one of {NOMINATOR_UPDATES}, got {nominator_updates!r}")
        self.alpha = DEFAULT_ALPHA if alpha is None else check_nonnegative("alpha", alpha)
        self.lam = check_positive("lam", lam)
        self.lr = check_positive("lr", lr)
        self.nominator, self.ranker, self.nominator_updates = nominator, ranker, nominator_updates

        agents = list(getattr(env, "possible_agents", []))
        if not agents:
            raise ValueError(f"env must be a PettingZoo nominators_v0 env, got {type(env).__name__}")
        self.learners: dict[str, LinearBandit] = {}
        self.acting_phase: dict[str, int] = {}
        self.candidate_index: dict[str, int] = {}
        for agent in agents:
            match = _AGENT_NAME.fullmatch(agent)
            obs_space = env.observation_space(agent)
            if (
                match is None
                or not isinstance(obs_space, spaces.Dict)
                or set(obs_space.spaces) != {"context", "phase"}
                or not isinstance(env.action_space(agent), spaces.Discrete)
            ):
                raise ValueError(f"env must be a PettingZoo nominators_v0 env; agent {agent!r} does not fit")
            role, index = match.group(1), int(match.group(2))
            self.n_phases = int(obs_space["phase"].n)
            kind = nominator if role == "nominator" else ranker
            self.learners[agent] = LinearBandit(kind, obs_space["context"].shape[1], self.alpha, self.lam, self.lr)
            # Nominators act in phase 0; the ranker agent in the last phase, when candidates exist.
            self.acting_phase[agent] = 0 if role == "nominator" else self.n_phases - 1
            if role == "nominator":
                self.candidate_index[agent] = index
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.rng = agent_rng(seed)
        for learner in self.learners.values():
            learner.reset()
        # A nominator's (context, action) from phase 0, kept until the round's reward arrives.
        self._pending: dict[str, tuple[np.ndarray, int]] = {}

    def act(self, observations: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
        actions = {}
        for agent, obs in observations.items():
            if int(obs["phase"]) == self.acting_phase[agent]:
                actions[agent] = self.learners[agent].act(obs["context"], self.rng)
            else:
                actions[agent] = 0
        return actions

    def update(
        self,
        observations: Mapping[str, Mapping[str, Any]],
        actions: Mapping[str, Any],
        rewards: Mapping[str, float],
        infos: Mapping[str, Mapping[str, Any]],
    ) -> None:
        if not observations:
            return
        phase = int(next(iter(observations.values()))["phase"])
        for agent, obs in observations.items():
            if phase == self.acting_phase[agent]:
                self._pending[agent] = (obs["context"], int(actions[agent]))
        if phase != self.n_phases - 1:
            return  # the round goes on: rewards come at its end
        for agent, (context, action) in self._pending.items():
            weight = 1.0
            if agent in self.candidate_index and self.nominator_updates == "served":
                info = infos[agent]
                weight = float(info["candidates"][self.candidate_index[agent]] == info["chosen_item"])
            self.learners[agent].learn(context, action, float(rewards[agent]), weight)
        self._pending = {}


def evaluate_parallel(learners: IndependentLearners, env: Any, rounds: int, seed: int | None = None) -> dict[str, Any]:
    """Run ``learners`` on a parallel ``nominators_v0`` env for ``rounds`` rounds; return regret totals.

    The env and the learners are reset with ``seed``; on truncation the env is reset without a
    seed (same instance) and learning goes on. Learners see the infos with the oracle keys removed.

    Returns:
        ``cumulative_regret``, ``nominator_regret``, ``ranker_regret``, ``cumulative_expected_reward``
        (floats), ``rounds`` and ``steps`` (env steps; two per round with the ranker agent).
    """
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 1:
        raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
    totals = np.zeros(4)  # regret, nominator regret, ranker regret, expected reward
    observations, _ = env.reset(seed=seed)
    learners.reset(seed)
    done_rounds = steps = 0
    while done_rounds < rounds:
        actions = learners.act(observations)
        next_observations, rewards, terminations, truncations, infos = env.step(actions)
        learners.update(observations, actions, rewards, {a: public_info(i) for a, i in infos.items()})
        steps += 1
        info = next(iter(infos.values()))
        if "regret" in info:  # the round ended
            done_rounds += 1
            totals += (info["regret"], info["nominator_regret"], info["ranker_regret"], info["expected_reward"])
        if any(terminations.values()) or any(truncations.values()):
            next_observations, _ = env.reset()
        observations = next_observations
    return {
        "cumulative_regret": float(totals[0]),
        "nominator_regret": float(totals[1]),
        "ranker_regret": float(totals[2]),
        "cumulative_expected_reward": float(totals[3]),
        "rounds": int(rounds),
        "steps": steps,
    }
