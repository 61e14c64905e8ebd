"""A tiny linear bandit with the selection env's observation contract, for testing the learners alone.

Row a of an observation is [user features, the item arm a proposes, one-hot a]; the click
probability is 0.5 + 0.3 <user, w_a> + 0.1 <item, v>, so the best recommender depends on the user
(no recommender is best on average) and a learner must use the context to beat random.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class LinearSelectionEnv(gym.Env):
    """k recommenders, users on the unit sphere in ``n_user`` dims, items in ``n_item`` dims."""

    def __init__(self, k: int = 4, n_user: int = 3, n_item: int = 2) -> None:
        self.k, self.n_user, self.n_item = k, n_user, n_item
        d = n_user + n_item + k
        self.observation_space = spaces.Box(-np.inf, np.inf, (k, d), np.float32)
        self.action_space = spaces.Discrete(k)
        self.feature_slices = {
            "user": slice(0, n_user),
            "item": slice(n_user, n_user + n_item),
            "arm": slice(n_user + n_item, d),
        }

    def _draw(self) -> np.ndarray:
        user = self.np_random.standard_normal(self.n_user)
        user /= np.linalg.norm(user)
        items = self.np_random.uniform(-1, 1, (self.k, self.n_item)) / np.sqrt(self.n_item)
        self._p = 0.5 + 0.3 * (self.w @ user) + 0.1 * (items @ self.v)
        obs = np.concatenate([np.broadcast_to(user, (self.k, self.n_user)), items, np.eye(self.k)], axis=1)
        return obs.astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        w = self.np_random.standard_normal((self.k, self.n_user))
        self.w = w / np.linalg.norm(w, axis=1, keepdims=True)
        v = self.np_random.standard_normal(self.n_item)
        self.v = v / np.linalg.norm(v)
        return self._draw(), {}

    def step(self, action: int):
        p = self._p
        reward = float(self.np_random.random() < p[action])
        info = {
            "expected_reward": float(p[action]),
            "optimal_expected_reward": float(p.max()),
            "regret": float(p.max() - p[action]),
        }
        return self._draw(), reward, False, False, info
