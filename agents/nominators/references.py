"""Reference agents of the nominators family: uniformly random choices, and the oracle that knows f*."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from agents.common.base import Agent, agent_rng
from agents.nominators.two_stage import nominators_env, pool_structure

__all__ = ["OracleAgent", "RandomAgent"]


class RandomAgent(Agent):
    """Uniformly random nominations within each pool and a uniformly random ranker pick."""

    name = "random"

    def __init__(self, env: gym.Env) -> None:
        self.env = nominators_env(env)
        self.nvec = np.append(self.env.pool_sizes, self.env.n_nominators)

    def reset(self, seed: int | None = None) -> None:
        self.rng = agent_rng(seed)

    def act(self, observation: np.ndarray) -> np.ndarray:
        return self.rng.integers(self.nvec)

    def action_probabilities(self, observation: np.ndarray) -> np.ndarray:
        """P(served item): sum over the pools n holding it of 1/N (the ranker's pick) x 1/|A_n|."""
        sizes = self.env.pool_sizes
        probs = np.zeros(self.env.n_items)
        np.add.at(probs, np.concatenate(self.env.pools), np.repeat(1.0 / (len(sizes) * sizes), sizes))
        return probs

    def update(self, observation: Any, action: Any, reward: float, info: Mapping[str, Any]) -> None:
        """Nothing to learn."""


class OracleAgent(Agent):
    """Knows f*: each nominator proposes its pool's best item and the ranker serves the best
    candidate, so regret is zero. It reads the env's true model (``expected_rewards``), never ``info``.
    """

    name = "oracle"

    def __init__(self, env: gym.Env) -> None:
        self.env = nominators_env(env)

    def reset(self, seed: int | None = None) -> None:
        self.pool_items, self.pool_mask = pool_structure(self.env)

    def act(self, observation: np.ndarray) -> np.ndarray:
        mean = self.env.expected_rewards(observation)
        nominations = np.where(self.pool_mask, mean[self.pool_items], -np.inf).argmax(axis=1)
        candidates = self.pool_items[np.arange(len(nominations)), nominations]
        return np.append(nominations, mean[candidates].argmax()).astype(np.int64)

    def update(self, observation: Any, action: Any, reward: float, info: Mapping[str, Any]) -> None:
        """Nothing to learn."""
