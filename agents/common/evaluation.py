"""``agents.evaluate``: the interaction loop and the metrics record shared by every family.

Per-round learners step the env itself. Batched learners (:class:`agents.common.batched.BatchedAgent`,
e.g. the early-stage-ranker policy gradients) step the env's native vector env, one batch of
users per ``step``; their record keeps :data:`RECORD_KEYS` (summed over every user served) and
adds :data:`BATCHED_RECORD_KEYS`.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np

from agents.common.base import Agent
from agents.common.batched import BatchedAgent
from twostage_gym.core import log_checkpoints, public_info

__all__ = ["BATCHED_RECORD_KEYS", "RECORD_KEYS", "evaluate"]

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

BATCHED_RECORD_KEYS = ("users_served", "overflow_step", "policy_value")
"""Extra keys of a batched learner's record: users served in all; the step at which training
stopped on a non-finite loss or gradient (``None`` if it did not); and the final value of the
learner's deterministic policy by ``env.unwrapped.policy_value`` (``None`` if the env or the
family has none). Its ``curve`` then also holds ``policy_value`` at each checkpoint."""


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

    A :class:`~agents.common.batched.BatchedAgent` is run by :func:`evaluate_batched` instead: each step
    is then one batch of users and one update.

    Returns:
        A dict with :data:`RECORD_KEYS`, JSON-serialisable.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if isinstance(agent, BatchedAgent):
        return evaluate_batched(agent, env, steps, seed, num_checkpoints, progress)
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
    return _record(totals, steps, start, curve)


def evaluate_batched(
    agent: BatchedAgent,
    env: gym.Env,
    steps: int,
    seed: int | None = None,
    num_checkpoints: int = 20,
    progress: bool = False,
) -> dict[str, Any]:
    """Run a batched learner for ``steps`` batches of ``agent.batch_size`` users.

    The batches come from the native vector env of ``env.spec`` (same id and kwargs,
    ``num_envs = agent.batch_size``, ``world_seed = seed`` unless the env fixes its own), so the
    world the agent learns in is the one ``env.reset(seed=seed)`` draws, and ``env`` scores the
    agent's deterministic policy (``env.unwrapped.policy_value(agent.greedy_policy())``) at each
    checkpoint. The run ends early when the agent stops (``agent.stopped``, e.g. on a gradient
    overflow); the curve then ends at the last checkpoint reached and ``policy_value`` is the
    value at the interruption, as in Kiyohara et al. (2026), Table 2.

    Returns:
        A dict with :data:`RECORD_KEYS` and :data:`BATCHED_RECORD_KEYS`, JSON-serialisable.
    """
    if env.spec is None:
        raise ValueError("evaluate needs an env made by gym.make (its spec builds the vector env)")
    if seed is None:
        # The vector env and ``env`` must share a world, so draw the seed both are given.
        seed = int(np.random.SeedSequence().generate_state(1)[0] >> 1)
    kwargs = dict(env.spec.kwargs)
    if kwargs.get("world_seed") is None:
        kwargs["world_seed"] = seed
    if env.spec.max_episode_steps is not None:
        kwargs["max_episode_steps"] = env.spec.max_episode_steps
    vec_env = gym.make_vec(env.spec.id, agent.batch_size, vectorization_mode="vector_entry_point", **kwargs)
    # Log-spaced, plus T/10: Kiyohara et al. report the policy value at 50K of 500K steps.
    checkpoints = np.union1d(log_checkpoints(int(steps), num_checkpoints), [max(1, int(steps) // 10)])
    totals = np.zeros(4)  # reward, regret, nominator regret, ranker regret (summed over users)
    curve: dict[str, list] = {
        "steps": [],
        "regret": [],
        "nominator_regret": [],
        "ranker_regret": [],
        "policy_value": [],
    }
    start = time.perf_counter()
    env.reset(seed=seed)
    scorer = getattr(env.unwrapped, "policy_value", None)

    def policy_value() -> float | None:
        policy = agent.greedy_policy()
        return None if policy is None or scorer is None else float(scorer(policy)["value"])

    obs, _ = vec_env.reset(seed=seed)
    agent.reset(seed)
    users = 0
    next_checkpoint = 0
    try:
        for t in range(1, int(steps) + 1):
            action = agent.act(obs)
            next_obs, reward, terminated, truncated, info = vec_env.step(action)
            agent.update(obs, action, reward, public_info(info))
            batch = np.shape(reward)[0]
            users += batch
            zeros = np.zeros(batch)
            totals += (
                np.sum(reward),
                np.sum(info["regret"]),
                np.sum(info.get("nominator_regret", zeros)),
                np.sum(info.get("ranker_regret", zeros)),
            )
            if np.any(terminated) or np.any(truncated):
                # The sub-envs step in lockstep: start the next episode of all (same world).
                next_obs, _ = vec_env.reset()
            obs = next_obs
            if agent.stopped:
                break
            if t == checkpoints[next_checkpoint]:
                curve["steps"].append(t)
                curve["regret"].append(float(totals[1]))
                curve["nominator_regret"].append(float(totals[2]))
                curve["ranker_regret"].append(float(totals[3]))
                curve["policy_value"].append(policy_value())
                next_checkpoint += 1
                if progress:
                    print(
                        f"[{agent.name}] step {t}/{steps}: cumulative regret {totals[1]:.3f}, "
                        f"policy value {curve['policy_value'][-1]}",
                        flush=True,
                    )
    finally:
        vec_env.close()
    final_value = curve["policy_value"][-1] if curve["steps"] and curve["steps"][-1] == t else policy_value()
    return {
        **_record(totals, steps, start, curve),
        "users_served": int(users),
        "overflow_step": agent.overflow_step,
        "policy_value": final_value,
    }


def _record(totals: np.ndarray, steps: int, start: float, curve: dict[str, list]) -> dict[str, Any]:
    """The keys of :data:`RECORD_KEYS` from the running totals (reward, regret, nominator, ranker regret)."""
    return {
        "cumulative_reward": float(totals[0]),
        "cumulative_regret": float(totals[1]),
        "nominator_regret": float(totals[2]),
        "ranker_regret": float(totals[3]),
        "steps": int(steps),
        "wall_time_s": time.perf_counter() - start,
        "curve": curve,
    }
