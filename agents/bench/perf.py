"""Throughput cases for ``twostage-bench perf``: measured and reported, never asserted.

Each case returns ``rows`` for the printed table (``measure``, ``value``, ``unit``, and optionally
``target`` and ``met``) and its raw numbers. Timings use ``time.perf_counter``, a warm-up, and the
median over repeats. Add a case with :func:`register_case`.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

import agents
import twostage_gym
from twostage_gym.core import public_info

__all__ = ["PERF_CASES", "PerfCase", "register_case", "render_perf", "run_perf", "time_call"]


@dataclass(frozen=True)
class PerfCase:
    """A throughput measurement.

    Attributes:
        name: key in the JSON report.
        description: one line for the printed report.
        measure: ``measure(quick)`` returns a dict with ``rows`` and raw numbers.
    """

    name: str
    description: str
    measure: Callable[[bool], dict[str, Any]]


PERF_CASES: dict[str, PerfCase] = {}
"""Registered cases, run in registration order."""


def register_case(name: str, description: str) -> Callable[[Callable[[bool], dict[str, Any]]], Any]:
    """Decorator registering ``measure(quick) -> dict`` as the perf case ``name``."""

    def decorate(measure: Callable[[bool], dict[str, Any]]) -> Callable[[bool], dict[str, Any]]:
        if name in PERF_CASES:
            raise ValueError(f"perf case {name!r} is already registered")
        PERF_CASES[name] = PerfCase(name, description, measure)
        return measure

    return decorate


def time_call(fn: Callable[[], Any], number: int, repeats: int, warmup: int = 1) -> float:
    """Median over ``repeats`` of the mean time (s) of one ``fn()`` call over ``number`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


def _env_stepper(env: gym.Env) -> Callable[[], None]:
    env.reset(seed=0)
    action = env.action_space.sample()

    def step() -> None:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()

    return step


@register_case("env_step", "TwoStage/Nominators-v0 step through gym.make (with its wrappers) vs numpy's context draw")
def _env_step(quick: bool) -> dict[str, Any]:
    settings = {
        "defaults": ({}, 2.5, (100, 20) if quick else (500, 7)),
        "n_items=10000,dim=80": ({"n_items": 10000, "dim": 80}, 1.5, (5, 3) if quick else (30, 7)),
    }
    result: dict[str, Any] = {"rows": []}
    for label, (kwargs, target, (number, repeats)) in settings.items():
        env = gym.make("TwoStage/Nominators-v0", **kwargs)
        base = env.unwrapped
        shape = (base.n_items, base.dim)
        step_s = time_call(_env_stepper(env), number, repeats, warmup=max(1, number // 5))
        env.close()
        rng = np.random.default_rng()
        draw_s = time_call(
            lambda rng=rng, shape=shape: rng.standard_normal(shape), number, repeats, warmup=max(1, number // 5)
        )
        ratio = step_s / draw_s
        result[label] = {
            "env_kwargs": kwargs,
            "step_us": step_s * 1e6,
            "steps_per_s": 1.0 / step_s,
            "draw_us": draw_s * 1e6,
            "draw_shape": list(shape),
            "ratio": ratio,
            "target_ratio": target,
            "met": ratio <= target,
        }
        result["rows"] += [
            {"measure": f"{label}: env steps/s", "value": 1.0 / step_s, "unit": "steps/s"},
            {"measure": f"{label}: standard_normal{shape} draw", "value": draw_s * 1e6, "unit": "us"},
            {
                "measure": f"{label}: step / draw",
                "value": ratio,
                "unit": "x",
                "target": f"<= {target}",
                "met": ratio <= target,
            },
        ]
    return result


@register_case("vector_env", "64 sub-envs: native vector env (vector_entry_point) vs gymnasium's sync vector env")
def _vector_env(quick: bool) -> dict[str, Any]:
    num_envs = 64
    number, repeats = (5, 3) if quick else (40, 7)
    result: dict[str, Any] = {"num_envs": num_envs, "rows": []}
    for mode in ("vector_entry_point", "sync"):
        envs = gym.make_vec("TwoStage/Nominators-v0", num_envs, vectorization_mode=mode)
        envs.reset(seed=0)
        actions = envs.action_space.sample()
        step_s = time_call(lambda envs=envs, actions=actions: envs.step(actions), number, repeats, warmup=2)
        envs.close()
        result[mode] = {"sub_env_steps_per_s": num_envs / step_s, "vector_step_us": step_s * 1e6}
        result["rows"].append({"measure": f"{mode}: sub-env steps/s", "value": num_envs / step_s, "unit": "steps/s"})
    speedup = result["vector_entry_point"]["sub_env_steps_per_s"] / result["sync"]["sub_env_steps_per_s"]
    result["speedup"] = speedup
    result["rows"].append({"measure": "native / sync", "value": speedup, "unit": "x"})
    return result


@register_case("agent_cost", "ucb+ucb cost per round (act + update) at n_items=1000, dim=40")
def _agent_cost(quick: bool) -> dict[str, Any]:
    env = gym.make("TwoStage/Nominators-v0", n_items=1000, dim=40)
    agent = agents.make("ucb+ucb", env)
    obs, _ = env.reset(seed=0)
    agent.reset(0)
    rounds, repeats, warmup = (10, 3, 5) if quick else (100, 7, 20)

    def block(n: int) -> float:
        # Only act and update are timed; the env's step between them is not.
        nonlocal obs
        spent = 0.0
        for _ in range(n):
            start = time.perf_counter()
            action = agent.act(obs)
            spent += time.perf_counter() - start
            next_obs, reward, terminated, truncated, info = env.step(action)
            start = time.perf_counter()
            agent.update(obs, action, reward, public_info(info))
            spent += time.perf_counter() - start
            obs = env.reset()[0] if terminated or truncated else next_obs
        return spent / n

    block(warmup)
    per_round = statistics.median(block(rounds) for _ in range(repeats))
    env.close()
    return {
        "agent": "ucb+ucb",
        "env_kwargs": {"n_items": 1000, "dim": 40},
        "ms_per_round": per_round * 1e3,
        "rows": [{"measure": "ucb+ucb act + update", "value": per_round * 1e3, "unit": "ms/round"}],
    }


def run_perf(quick: bool = False, cases: list[str] | None = None) -> dict[str, Any]:
    """Run the perf cases (all by default) and return the JSON report.

    Args:
        quick: few repeats, for a smoke run (numbers are noisy).
        cases: names of the cases to run.

    Returns:
        ``{"version", "quick", "machine", "cases": {name: result}}``.
    """
    names = list(PERF_CASES) if cases is None else cases
    return {
        "version": twostage_gym.__version__,
        "quick": quick,
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "gymnasium": gym.__version__,
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
        },
        "cases": {name: PERF_CASES[name].measure(quick) for name in names},
    }


def render_perf(report: dict[str, Any]) -> str:
    """The report as an aligned text table."""
    lines = [f"twostage-bench perf (twostage-gym {report['version']}{', quick' if report['quick'] else ''})"]
    for name, result in report["cases"].items():
        lines += ["", f"{name}: {PERF_CASES[name].description}"]
        for row in result["rows"]:
            value = f"{row['value']:,.3f}" if row["value"] < 100 else f"{row['value']:,.0f}"
            target = ""
            if "target" in row:
                target = f"  target {row['target']}: {'met' if row['met'] else 'MISSED'}"
            lines.append(f"  {row['measure']:<52} {value:>14} {row['unit']:<8}{target}")
    return "\n".join(lines)
