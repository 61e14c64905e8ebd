"""Reward models. The linear model of Hron et al. (2021): r_{t,a} = <theta*, x_{t,a}> + eps."""

from __future__ import annotations

import numpy as np

from twostage_gym.core.checks import choice, number

__all__ = ["NOISE_MODELS", "LinearReward", "unit_sphere"]

NOISE_MODELS = ("gaussian", "bernoulli")


def unit_sphere(dim: int, rng: np.random.Generator) -> np.ndarray:
    """Draw a vector uniformly from the unit sphere in R^dim."""
    v = rng.standard_normal(dim)
    return v / np.linalg.norm(v)


class LinearReward:
    """Mean reward f*(x, a) = <theta*, x_a>, observed with Gaussian or Bernoulli noise.

    Args:
        theta: the true parameter theta* (d,).
        noise: ``"gaussian"`` (r = f* + noise_std * N(0, 1)) or ``"bernoulli"``
            (r ~ Bernoulli(f*), which needs f* in [0, 1]).
        noise_std: standard deviation of the Gaussian noise.
    """

    def __init__(self, theta: np.ndarray, noise: str = "gaussian", noise_std: float = 0.1) -> None:
        choice("reward_noise", noise, NOISE_MODELS)
        noise_std = number("noise_std", noise_std, low=0.0)
        self.theta = np.asarray(theta, dtype=np.float64)
        # float32 copy: means are computed with the float32 context in one sgemv.
        self._theta32 = self.theta.astype(np.float32)
        self.noise = noise
        self.noise_std = noise_std

    def mean(self, context: np.ndarray) -> np.ndarray:
        """Expected reward of every item under ``context`` (..., |A|, d), as float64 (..., |A|)."""
        return (context @ self._theta32).astype(np.float64)

    def sample(self, mean: float, rng: np.random.Generator) -> float:
        """Draw one observed reward with expectation ``mean``."""
        if self.noise == "gaussian":
            return mean + self.noise_std * rng.standard_normal()
        return float(rng.random() < mean)
