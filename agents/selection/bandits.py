"""The baselines of Xu et al. (2021, Sec. 5.1): random, context-free bandits, and per-round linear bandits.

* ``random``: a uniformly random recommender each request.
* ``epsilon-greedy`` and ``mab-ts`` (Beta-Bernoulli Thompson sampling) keep one mean reward per
  recommender and ignore the context (the paper's "MAB without context").
* ``linucb`` and ``lin-ts`` fit one ridge regression on the features phi of
  :class:`~agents.selection.features.FeatureMap` after every round (the paper's Linear+UCB and
  Linear+Thompson): O(dim^2) Sherman-Morrison updates (:class:`agents.common.linalg.RidgeRegression`).

Every learner reads only the observation and the reward; never the oracle ``info`` keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from agents.common.base import Agent, agent_rng
from agents.common.linalg import RidgeRegression
from agents.selection.features import FeatureMap, request_shape
from twostage_gym.core.checks import boolean, number

__all__ = [
    "EpsilonGreedyAgent",
    "LinTSAgent",
    "LinUCBAgent",
    "MABThompsonAgent",
    "RandomSelectionAgent",
    "SelectionAgent",
    "argmax_probabilities",
    "argmax_random_ties",
    "check_action",
    "sample_scores",
]


def check_action(action: Any, k: int) -> int:
    a = int(np.asarray(action).reshape(()))
    if not 0 <= a < k:
        raise ValueError(f"action must be a recommender index in [0, {k}), got {action!r}")
    return a


def argmax_random_ties(scores: np.ndarray, rng: np.random.Generator) -> int:
    """The index of the largest score; ties broken uniformly at random (an untried arm is not always arm 0)."""
    best = np.flatnonzero(scores >= scores.max())
    return int(best[0] if best.size == 1 else rng.choice(best))


def argmax_probabilities(scores: np.ndarray) -> np.ndarray:
    """The distribution of :func:`argmax_random_ties`: uniform over the arms with the largest score."""
    best = scores >= scores.max()
    return best / np.count_nonzero(best)


def sample_scores(
    mean: np.ndarray, Phi: np.ndarray, cov: np.ndarray, scale: float, rng: np.random.Generator
) -> np.ndarray:
    """One Thompson draw of the k scores <theta~, phi_a>, theta~ ~ N(mean, scale^2 cov).

    Only the k scores are drawn, from their joint normal N(Phi mean, scale^2 Phi cov Phi^T): the
    same law as drawing theta~ and scoring, at O(k dim^2) instead of a dim x dim factorisation.
    """
    centre = Phi @ mean
    S = Phi @ cov @ Phi.T * scale**2
    w, V = np.linalg.eigh((S + S.T) / 2)
    return centre + V @ (np.sqrt(np.maximum(w, 0.0)) * rng.standard_normal(len(centre)))


class SelectionAgent(Agent):
    """A recommender-selection learner: ``act`` returns the index of the recommender to serve.

    Args:
        env: a ``TwoStage/RecommenderSelection`` env (or one with its observation contract).
    """

    def __init__(self, env: gym.Env) -> None:
        self.k, self.obs_dim = request_shape(env)
        self.rng = agent_rng(None)

    def reset(self, seed: int | None = None) -> None:
        self.rng = agent_rng(seed)


class RandomSelectionAgent(SelectionAgent):
    """``random``: a uniformly random recommender."""

    def act(self, observation: Any) -> int:
        return int(self.rng.integers(self.k))

    def action_probabilities(self, observation: Any) -> np.ndarray:
        """Uniform over the k recommenders."""
        return np.full(self.k, 1.0 / self.k)

    def update(self, observation: Any, action: Any, reward: float, info: Mapping[str, Any]) -> None:
        check_action(action, self.k)


class _CountingAgent(SelectionAgent):
    """Per-recommender counts: plays N(a) and successes Q(a) (the context-free bandits)."""

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.plays = np.zeros(self.k)
        self.successes = np.zeros(self.k)

    def update(self, observation: Any, action: Any, reward: float, info: Mapping[str, Any]) -> None:
        a = check_action(action, self.k)
        self.plays[a] += 1.0
        self.successes[a] += float(reward)


class EpsilonGreedyAgent(_CountingAgent):
    """``epsilon-greedy``: uniform with probability epsilon, else the best mean reward so far.

    Args:
        env: a selection env.
        epsilon: exploration probability, in [0, 1] (0.1).
    """

    def __init__(self, env: gym.Env, epsilon: float = 0.1) -> None:
        super().__init__(env)
        self.epsilon = number("epsilon", epsilon, 0.0, 1.0)

    def act(self, observation: Any) -> int:
        if self.rng.random() < self.epsilon:
            return int(self.rng.integers(self.k))
        # An unplayed recommender counts as best (mean +inf), so each is tried once.
        means = np.divide(self.successes, self.plays, out=np.full(self.k, np.inf), where=self.plays > 0)
        return argmax_random_ties(means, self.rng)

    def action_probabilities(self, observation: Any) -> np.ndarray:
        """epsilon / k on every arm, plus 1 - epsilon shared by the arms tied for the best mean."""
        means = np.divide(self.successes, self.plays, out=np.full(self.k, np.inf), where=self.plays > 0)
        return self.epsilon / self.k + (1.0 - self.epsilon) * argmax_probabilities(means)


class MABThompsonAgent(_CountingAgent):
    """``mab-ts``: Beta-Bernoulli Thompson sampling per recommender, no context.

    Args:
        env: a selection env.
        prior_alpha, prior_beta: the Beta prior's parameters, in (0, 1000] (1, 1: uniform).
    """

    def __init__(self, env: gym.Env, prior_alpha: float = 1.0, prior_beta: float = 1.0) -> None:
        super().__init__(env)
        self.prior_alpha = number("prior_alpha", prior_alpha, 0.0, 1e3, low_open=True)
        self.prior_beta = number("prior_beta", prior_beta, 0.0, 1e3, low_open=True)

    def act(self, observation: Any) -> int:
        a = self.prior_alpha + self.successes
        b = self.prior_beta + self.plays - self.successes
        return argmax_random_ties(self.rng.beta(a, b), self.rng)

    def action_probabilities(self, observation: Any) -> None:
        """None: the probability that a Beta draw is the largest has no closed form."""
        return None


class _LinearAgent(SelectionAgent):
    """A ridge regression on phi, refitted every round (Sherman-Morrison)."""

    def __init__(self, env: gym.Env, reg: float, context: bool, interactions: bool) -> None:
        super().__init__(env)
        self.features = FeatureMap(env, boolean("context", context), boolean("interactions", interactions))
        self.reg = number("reg", reg, 0.0, 1e6, low_open=True)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        # RidgeRegression scales its lambda by the dimension; reg is the precision of the prior itself.
        self.model = RidgeRegression(1, self.features.dim, self.reg / self.features.dim)

    def update(self, observation: Any, action: Any, reward: float, info: Mapping[str, Any]) -> None:
        a = check_action(action, self.k)
        self.model.update(self.features(observation)[a][None], float(reward))


class LinUCBAgent(_LinearAgent):
    """``linucb``: the arm with the largest <theta^, phi_a> + alpha ||phi_a||_{Sigma} (Li et al., 2010).

    Args:
        env: a selection env.
        alpha: the width's weight, in [0, 100] (1).
        reg: the ridge (prior precision), in (0, 10^6] (1).
        context: whether the user features enter the model.
        interactions: whether they also enter multiplied by the arm indicator.
    """

    def __init__(
        self, env: gym.Env, alpha: float = 1.0, reg: float = 1.0, context: bool = True, interactions: bool = True
    ) -> None:
        super().__init__(env, reg, context, interactions)
        self.alpha = number("alpha", alpha, 0.0, 100.0)

    def act(self, observation: Any) -> int:
        Phi = self.features(observation)[None]
        return argmax_random_ties(self.model.ucb(Phi, self.alpha)[0], self.rng)

    def action_probabilities(self, observation: Any) -> np.ndarray:
        """One-hot on the largest UCB (uniform over the arms tied for it, as :meth:`act` breaks ties)."""
        Phi = self.features(observation)[None]
        return argmax_probabilities(self.model.ucb(Phi, self.alpha)[0])


class LinTSAgent(_LinearAgent):
    """``lin-ts``: linear Thompson sampling, theta~ ~ N(theta^, v^2 Sigma) each round (Agrawal and Goyal, 2013).

    Args:
        env: a selection env.
        v: the posterior's scale, in (0, 100] (0.5).
        reg: the ridge (prior precision), in (0, 10^6] (1).
        context: whether the user features enter the model.
        interactions: whether they also enter multiplied by the arm indicator.
    """

    def __init__(
        self, env: gym.Env, v: float = 0.5, reg: float = 1.0, context: bool = True, interactions: bool = True
    ) -> None:
        super().__init__(env, reg, context, interactions)
        self.v = number("v", v, 0.0, 100.0, low_open=True)

    def act(self, observation: Any) -> int:
        Phi = self.features(observation)
        scores = sample_scores(self.model.theta[0], Phi, self.model.cov[0], self.v, self.rng)
        return argmax_random_ties(scores, self.rng)

    def action_probabilities(self, observation: Any) -> None:
        """None: the probability that an arm's Thompson score is the largest has no closed form."""
        return None
