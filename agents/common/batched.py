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

    def state_dict(self) -> dict[str, Any]:
        """What the learner has learned and where its training stands, for a checkpoint.

        Tensors and plain Python values only, so that ``torch.load(..., weights_only=True)`` reads
        them back. ``evaluate``'s ``state_file`` needs it; a learner without it cannot checkpoint.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot save its state")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from what :meth:`state_dict` returned (after ``reset``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot load a state")

    def greedy_policy(self) -> np.ndarray | None:
        """The deterministic policy ``env.unwrapped.policy_value`` scores, or ``None`` if the family has none."""
        return None
