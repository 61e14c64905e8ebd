"""The learner interface every agent in the suite follows, and the checks of learners' arguments.

Arguments are checked as the environments check theirs (:mod:`twostage_gym.core.checks`): a
``ValueError`` naming the argument; no bool or string where a number belongs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np

from twostage_gym.core.checks import number

__all__ = ["Agent", "agent_rng", "check_nonnegative", "check_positive"]

_AGENT_STREAM = 0x5EED_A6E7


def agent_rng(seed: int | None) -> np.random.Generator:
    """A learner's generator for ``seed``, on a stream apart from the env's ``reset(seed=seed)``."""
    return np.random.default_rng(None if seed is None else [_AGENT_STREAM, int(seed)])


def check_positive(name: str, value: float) -> float:
    """Return ``value`` as float, or raise ``ValueError`` naming ``name`` unless it is finite and > 0."""
    return number(name, value, 0.0, np.inf, low_open=True)


def check_nonnegative(name: str, value: float) -> float:
    """Return ``value`` as float, or raise ``ValueError`` naming ``name`` unless it is finite and >= 0."""
    return number(name, value, 0.0)


class Agent(ABC):
    """A learner: ``reset(seed)``, then alternate ``act(observation)`` and ``update(...)``.

    ``update`` receives the ``info`` of the step with the oracle keys removed
    (``twostage_gym.core.ORACLE_INFO_KEYS``); learners never read the true reward model.

    Attributes:
        name: the registry name, e.g. ``"ucb+ucb"``.
    """

    name: str = "agent"

    @abstractmethod
    def reset(self, seed: int | None = None) -> None:
        """Forget everything learned and reseed. Call after the env's ``reset``."""

    @abstractmethod
    def act(self, observation: Any) -> Any:
        """Return an action for ``observation``."""

    @abstractmethod
    def update(self, observation: Any, action: Any, reward: float, info: Mapping[str, Any]) -> None:
        """Learn from one round: the observation acted on, the action, its reward and public info."""

    def action_probabilities(self, observation: Any) -> np.ndarray | None:
        """Optional: the exact probability that this round's action serves each item, or ``None``.

        For a stochastic learner, the logging propensities of ``twostage-bench log``: the
        marginal distribution of the item the env serves for ``observation`` under the policy
        that the next :meth:`act` on the same observation draws from (the family says which
        items, e.g. the catalog of the Nominators env). A deterministic learner may give a
        one-hot vector. Calling it must not change what :meth:`act` does next. The default, ``None``,
        means the learner does not give them.
        """
        return None
