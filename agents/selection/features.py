"""The learners' view of a request: the env, its arms, and the feature map phi of the linear reward model.

An observation of ``TwoStage/RecommenderSelection-v0`` is a ``(k, d)`` matrix whose row a is
[user features, the item recommender a proposes, one-hot a] (``env.unwrapped.feature_slices``
says which columns are which). A linear model of that row alone is additive: the user's term is
the same for every arm of a request, so it could never route two users to different
recommenders. The feature map therefore adds the user features' products with the arm
indicator (one user coefficient vector per recommender, as in disjoint LinUCB), unless
``interactions=False``; the ``-nocontext`` ablation drops the user features altogether.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from twostage_gym.core.checks import boolean

__all__ = ["FeatureMap", "request_shape"]


def request_shape(env: gym.Env) -> tuple[int, int]:
    """(k arms, d observation columns) of a selection env's ``Box(k, d)`` observation, or a ``ValueError``."""
    space = env.observation_space
    if not isinstance(space, spaces.Box) or len(space.shape) != 2:
        raise ValueError(f"env must have a Box(k, d) observation (one row per recommender), got {space}")
    if not isinstance(env.action_space, spaces.Discrete) or int(env.action_space.n) != space.shape[0]:
        raise ValueError(f"env must have a Discrete(k) action with k = {space.shape[0]} rows, got {env.action_space}")
    return int(space.shape[0]), int(space.shape[1])


def _slices(env: gym.Env, d: int) -> dict[str, slice]:
    slices: Any = getattr(env.unwrapped, "feature_slices", None)
    if not isinstance(slices, dict) or not {"user", "item", "arm"} <= set(slices):
        raise ValueError("env.unwrapped.feature_slices must map 'user', 'item' and 'arm' to column slices")
    for key in ("user", "item", "arm"):
        s = slices[key]
        if not isinstance(s, slice) or (key == "arm" and len(range(d)[s]) == 0):
            raise ValueError(f"feature_slices[{key!r}] must be a slice of the {d} observation columns, got {s!r}")
    return {key: slices[key] for key in ("user", "item", "arm")}


class FeatureMap:
    """phi: a request's observation ``(k, d)`` -> float64 features ``(k, dim)`` of the linear reward model.

    Args:
        env: a selection env (possibly wrapped).
        context: whether the user features enter (False: the ``-nocontext`` ablation).
        interactions: whether the user features also enter multiplied by the arm indicator
            (ignored without ``context``).

    Attributes:
        k: arms (recommenders) per request.
        dim: the feature dimension.
    """

    def __init__(self, env: gym.Env, context: bool = True, interactions: bool = True) -> None:
        self.k, d = request_shape(env)
        self.obs_dim = d
        self.context = boolean("context", context)
        self.interactions = boolean("interactions", interactions) and self.context
        s = _slices(env, d)
        self.user, self.item, self.arm = s["user"], s["item"], s["arm"]
        du, di, da = (len(range(d)[s[key]]) for key in ("user", "item", "arm"))
        self.dim = di + da + (du if self.context else 0) + (du * da if self.interactions else 0)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float64)
        if x.shape != (self.k, self.obs_dim) or not np.isfinite(x).all():
            raise ValueError(
                f"observation must be a finite ({self.k}, {self.obs_dim}) request (one row per recommender), "
                f"got shape {x.shape}"
            )
        parts = [x[:, self.item], x[:, self.arm]]
        if self.context:
            user = x[:, self.user]
            parts.insert(0, user)
            if self.interactions:
                # Row a: the user features in the block of a's arm indicator, zeros elsewhere.
                parts.append((x[:, self.arm][:, :, None] * user[:, None, :]).reshape(len(x), -1))
        return np.concatenate(parts, axis=1)
