"""``agents.evaluate``: the interaction loop and the metrics record shared by every family."""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np

from agents.base import Agent
from twostage_gym.core import log_checkpoints, public_info

__all__ = ["RECORD_KEYS", "evaluate"]

RECORD_KEYS = (
    "cumulative_reward",
    "cumulative_regret",
    "nominator_regret",
    "ranker_regret",
    "steps",
    "wall_time_s",
    "curve",
)
"""Keys every ``evaluate`` record has. ``curve`` maps ``steps`` to the cumulative
``regret``, ``nominator_regret`` and ``ranker_regret`` at log-spaced checkpoints."""


def evaluate(
    agent: Agent,
    env: gym.Env,
    steps: int,
    seed: int | None = None,
    num_checkpoints: int = 20,
    progress: bool = False,
) -> dict[str, Any]:
    """Run ``agent`` on ``env`` for ``steps`` rounds and return one metrics record.

    The env is reset with ``seed`` and the agent after it with the same seed; on truncation the
    env is reset without a seed (same instance) and learning continues. The agent's ``update``
    sees the step's info without the oracle keys.

    Args:
        agent: a learner from ``agents.make``.
        env: the environment the agent was made for.
        steps: number of rounds T (>= 1).
        seed: seeds the env's instance and context stream and the agent.
        num_checkpoints: how many log-spaced points the regret curve holds.
        progress: print a line at each checkpoint.

    Returns:
        A dict with :data:`RECORD_KEYS`, JSON-serialisable.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    checkpoints = log_checkpoints(int(steps), num_checkpoints)
    totals = np.zeros(4)  # reward, regret, nominator regret, ranker regret
    curve: dict[str, list] = {"steps": [], "regret": [], "nominator_regret": [], "ranker_regret": []}
    start = time.perf_counter()
    obs, _ = env.reset(seed=seed)
    agent.reset(seed)
    next_checkpoint = 0
    for t in range(1, int(steps) + 1):
        action = agent.act(obs)
        next_obs, reward, terminated, truncated, info = env.step(action)
        agent.update(obs, action, reward, public_info(info))
        totals += (reward, info["regret"], info.get("nominator_regret", 0.0), info.get("ranker_regret", 0.0))
        if terminated or truncated:
            next_obs, _ = env.reset()
        obs = next_obs
        if t == checkpoints[next_checkpoint]:
            curve["steps"].append(t)
            curve["regret"].append(float(totals[1]))
            curve["nominator_regret"].append(float(totals[2]))
            curve["ranker_regret"].append(float(totals[3]))
            next_checkpoint += 1
            if progress:
                print(f"[{agent.name}] step {t}/{steps}: cumulative regret {totals[1]:.3f}", flush=True)
    return {
        "cumulative_reward": float(totals[0]),
        "cumulative_regret": float(totals[1]),
        "nominator_regret": float(totals[2]),
        "ranker_regret": float(totals[3]),
        "steps": int(steps),
        "wall_time_s": time.perf_counter() - start,
        "curve": curve,
    }
