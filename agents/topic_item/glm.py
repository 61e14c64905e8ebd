"""GLM-UCB on the fixed features (Eq. 2; Table 4's "GLM" row), the non-neural baseline.

Each stage keeps a :class:`~agents.topic_item.heads.PerUserGLM` on the arms' fixed features
augmented with a bias 1 (Table 3's note): the env's ``item_features`` for items (the paper uses
GloVe vectors of the titles), ``topic_features`` for topics. Per round and stage, for n arms of
dimension d: O(n d^2) for the widths, O(m d^2) for the Sherman-Morrison (Woodbury) update of M_u^{-1}.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from agents.topic_item.base import ArmTables, Stage, TopicItemAgent
from agents.topic_item.heads import PerUserGLM
from twostage_gym.core.checks import check_memory, number

__all__ = ["DEFAULT_BETA", "DEFAULT_LR", "MAX_BETA", "MAX_LR", "GLMStage", "GLMUCBAgent"]

DEFAULT_BETA = 0.1  # Sec. 4: "we set the UCB parameter beta = 0.1"
DEFAULT_LR = 1e-2  # Sec. 4: GLMs trained by gradient descent, learning rate 0.01
MAX_BETA = 1e3
MAX_LR = 10.0


class GLMStage(Stage):
    """One stage of GLM-UCB: a per-user GLM on the fixed features of the stage's arms, plus a bias."""

    def __init__(self, features: np.ndarray, n_users: int, beta: float, lr: float) -> None:
        self.contexts = np.concatenate([features, np.ones((len(features), 1))], axis=1)
        self.beta = beta
        self.head = PerUserGLM(n_users, self.contexts.shape[1], lr)

    def scores(self, user: int, z: np.ndarray, arms: np.ndarray) -> np.ndarray:
        mean, width = self.head.mean_width(user, self.contexts[arms])
        return mean + self.beta * width

    def learn(self, user: int, z: np.ndarray, arms: np.ndarray, clicks: np.ndarray) -> None:
        self.head.learn(user, self.contexts[arms], clicks)


class GLMUCBAgent(TopicItemAgent):
    """``glm-ucb`` / ``2-glm-ucb``: GLM-UCB (Eq. 2) with theta_u per user on the fixed item (and topic) features.

    Args:
        env: a ``TwoStage/TopicItem`` env; ``hierarchy=False`` for ``glm-ucb``, True for ``2-glm-ucb``.
        two_stage: set by the registered name.
        beta: the UCB weight (0.1, Sec. 4), in [0, 1000].
        lr: the learning rate of the per-round gradient step on theta_u (1e-2, Sec. 4), in (0, 10].
    """

    def __init__(
        self, env: gym.Env, two_stage: bool = False, beta: float = DEFAULT_BETA, lr: float = DEFAULT_LR
    ) -> None:
        super().__init__(env, "glm-ucb", two_stage)
        self.beta = number("beta", beta, 0.0, MAX_BETA)
        self.lr = number("lr", lr, 0.0, MAX_LR, low_open=True)
        c = self.config
        d = c.item_dim + 1
        n_designs = c.n_users * (2 if two_stage else 1)
        check_memory(
            {"n_users": c.n_users, "item_dim": c.item_dim},
            {"per-user designs and coefficients": 8 * n_designs * (d * d + d)},
            owner="learner",
        )

    def make_stage(self, stage: str, tables: ArmTables, rng: np.random.Generator) -> Stage:
        return GLMStage(tables.features(stage), self.config.n_users, self.beta, self.lr)
