"""Learners that step a native vector env one batch of users at a time.

A :class:`BatchedAgent` acts on a batch of observations and makes one update (for the policy
gradients, one gradient step) per batch. ``agents.evaluate`` recognises it and runs the env's
native vector env (``gym.make_vec(..., vectorization_mode="vector_entry_point")``) with
``num_envs = agent.batch_size``, so that ``steps`` counts updates. The family's learners only need
to subclass it; nothing here depends on torch.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np

from agents.common.base import Agent

__all__ = ["BatchedAgent"]


class BatchedAgent(Agent):
    """An :class:`Agent` whose ``act`` / ``update`` take a batch of rounds.

    Attributes:
        batch_size: users per batch, the number of sub-envs ``evaluate`` runs.
        stopped: True once the learner has stopped training (e.g. a non-finite gradient);
            ``evaluate`` then ends the run.
        overflow_step: the 1-based update at which training stopped on a non-finite loss or
            gradient, or ``None``.
    """

    batch_size: int = 1
    stopped: bool = False
    overflow_step: int | None = None

    @abstractmethod
    def act(self, observation: np.ndarray) -> np.ndarray:
        """Actions for a batch of observations ``(B, ...)``."""

    @abstractmethod
    def update(self, observation: np.ndarray, action: np.ndarray, reward: np.ndarray, info: Any) -> None:
        """Learn from one batch: observations, actions, rewards ``(B,)`` and the public vector info."""

    def greedy_policy(self) -> np.ndarray | None:
        """The deterministic policy ``env.unwrapped.policy_value`` scores, or ``None`` if the family has none."""
        return None
