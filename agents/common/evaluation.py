"""``agents.evaluate``: the interaction loop and the metrics record shared by every family.

Per-round learners step the env itself. Batched learners (:class:`agents.common.batched.BatchedAgent`,
e.g. the early-stage-ranker policy gradients) step the env's native vector env, one batch of
users per ``step``; their record keeps :data:`RECORD_KEYS` (summed over every user served) and
adds :data:`BATCHED_RECORD_KEYS`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agents.common.base import Agent
from agents.common.batched import BatchedAgent
from agents.common.run_state import read_run_state, write_run_state
from twostage_gym.core import log_checkpoints, public_info
from twostage_gym.core.checks import integer

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
    state_file: str | os.PathLike[str] | None = None,
    save_every: int | None = None,
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
        state_file: for a batched learner, a file where the run saves its state (the learner's,
            the vector env's, the totals so far) every ``save_every`` steps. A run that finds the
            file resumes from it and ends with the record an uninterrupted run gives, wall time
            aside (the learner must support ``state_dict``; torch writes the file). The file is
            left in place; delete it once the record is kept.
        save_every: steps between two saves of the state (with ``state_file``).

    A :class:`~agents.common.batched.BatchedAgent` is run by :func:`evaluate_batched` instead: each step
    is then one batch of users and one update.

    Returns:
        A dict with :data:`RECORD_KEYS`, JSON-serialisable.

    Raises:
        ValueError: invalid ``steps``, ``state_file`` / ``save_every`` (not given together, or for
            a per-round learner), or a state file of another run.
    """
    integer("steps", steps, low=1)
    if (state_file is None) != (save_every is None):
        raise ValueError("state_file and save_every go together: give both, or neither")
    if save_every is not None:
        integer("save_every", save_every, low=1)
    if isinstance(agent, BatchedAgent):
        return evaluate_batched(agent, env, steps, seed, num_checkpoints, progress, state_file, save_every)
    if state_file is not None:
        raise ValueError(
            f"state_file: only batched learners save their state; {agent.name!r} runs round by round (rerun it)"
        )
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
    state_file: str | os.PathLike[str] | None = None,
    save_every: int | None = None,
) -> dict[str, Any]:
    """Run a batched learner for ``steps`` batches of ``agent.batch_size`` users.

    The batches come from the native vector env of ``env.spec`` (same id and kwargs,
    ``num_envs = agent.batch_size``, ``world_seed = seed`` unless the env fixes its own), so the
    world the agent learns in is the one ``env.reset(seed=seed)`` draws, and ``env`` scores the
    agent's deterministic policy (``env.unwrapped.policy_value(agent.greedy_policy())``) at each
    checkpoint. The run ends early when the agent stops (``agent.stopped``, e.g. on a gradient
    overflow); the curve then ends at the last checkpoint reached and ``policy_value`` is the
    value at the interruption, as in Kiyohara et al. (2026), Table 2.

    With ``state_file`` the run saves its state every ``save_every`` steps and, if the file
    exists, resumes from it (see :func:`evaluate`).

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
    first = 1
    # What makes a run this run: a state file of another one is refused, not continued.
    run = {
        "env_id": env.spec.id,
        "env_kwargs": repr(sorted(kwargs.items())),
        "agent": agent.name,
        "seed": int(seed),
        "steps": int(steps),
        "batch_size": int(agent.batch_size),
        "num_checkpoints": int(num_checkpoints),
    }
    if state_file is not None:
        if type(agent).state_dict is BatchedAgent.state_dict:
            raise ValueError(f"state_file: {type(agent).__name__} cannot save its state (it has no state_dict)")
        if not hasattr(vec_env, "get_state"):
            raise ValueError(f"state_file: the vector env of {env.spec.id} cannot save its state")
        if Path(state_file).exists():
            state = read_run_state(state_file, run)
            agent.load_state_dict(state["agent"])
            obs = vec_env.set_state(state["env"])
            totals = np.array(state["totals"], dtype=np.float64)
            curve, users, next_checkpoint = state["curve"], state["users"], state["next_checkpoint"]
            first = state["t"] + 1
            start -= state["elapsed_s"]
            if progress:
                print(f"[{agent.name}] resuming at step {first}/{steps} from {state_file}", flush=True)
    try:
        for t in range(first, int(steps) + 1):
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
            if state_file is not None and t % save_every == 0 and t < steps:
                state = {
                    "run": run,
                    "t": t,
                    "totals": totals.tolist(),
                    "curve": curve,
                    "users": users,
                    "next_checkpoint": next_checkpoint,
                    "elapsed_s": time.perf_counter() - start,
                    "agent": agent.state_dict(),
                    "env": vec_env.get_state(),
                }
                write_run_state(state_file, state)
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
