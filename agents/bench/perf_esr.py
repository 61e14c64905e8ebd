"""Throughput cases of the early-stage-ranker family (Kiyohara et al. 2026) for ``twostage-bench perf``."""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np

import agents
from agents.bench.perf import register_case, time_call
from twostage_gym.core import public_info

__all__ = ["gradient_step_ms"]

ENV_ID = "TwoStage/EarlyStageRanker-v0"
PG_METHODS = ("v-pg", "v-pg-swr", "ca-pg", "ca-pg-swr")
TARGET_MS = 7.5
"""Per gradient step at batch 128, |A| = 1000, K = 10, L = 1, M = 1, env included."""


class _Training:
    """One learner training against its native vector env, timed step by step."""

    def __init__(self, method: str, **env_kwargs: Any) -> None:
        env = gym.make(ENV_ID, world_seed=0, **env_kwargs)
        self.agent = agents.make(method, env)
        self.vec_env = gym.make_vec(
            ENV_ID, self.agent.batch_size, vectorization_mode="vector_entry_point", world_seed=0, **env_kwargs
        )
        self.obs, _ = self.vec_env.reset(seed=0)
        self.agent.reset(0)
        self.times: list[float] = []

    def run(self, steps: int, record: bool = True) -> None:
        for _ in range(steps):
            if self.agent.stopped:
                return
            start = time.perf_counter()
            action = self.agent.act(self.obs)
            next_obs, reward, _, _, info = self.vec_env.step(action)
            self.agent.update(self.obs, action, reward, public_info(info))
            if record:
                self.times.append(time.perf_counter() - start)
            self.obs = next_obs

    def finish(self) -> float:
        """Close the env; the median ms per recorded step."""
        self.vec_env.close()
        return float(np.median(self.times) * 1e3) if self.times else float("nan")


def gradient_step_ms(
    method: str, steps: int, warmup: int, configs: list[dict[str, Any]], block: int = 10
) -> list[float]:
    """Median ms per gradient step (act, the native vector env's step, update) of each env configuration.

    The configurations train side by side, taking turns in blocks of ``block`` steps, so that a
    ratio between them is measured under the same machine conditions (a shared machine's speed
    drifts by tens of percent over seconds; blocks, rather than single steps, keep each run's
    own data in the caches as it would be in a run of its own).
    """
    runs = [_Training(method, **config) for config in configs]
    for run in runs:
        run.run(warmup, record=False)
    for start in range(0, steps, block):
        for run in runs:
            run.run(min(block, steps - start))
    return [run.finish() for run in runs]


@register_case(
    "esr_gradient_step",
    "ESR policy gradients: ms per gradient step, batch 128, |A| = 1000, L = 1, env included (M = 1 and 5 side by side)",
)
def _esr_gradient_step(quick: bool) -> dict[str, Any]:
    steps, warmup = (5, 2) if quick else (100, 10)
    rows, raw = [], {}
    for method in PG_METHODS:
        configs = [{"n_candidates": 10, "n_experts": experts} for experts in (1, 5)]
        for config, ms in zip(configs, gradient_step_ms(method, steps, warmup, configs), strict=True):
            raw[f"{method} K=10 M={config['n_experts']}"] = ms
            row = {"measure": f"{method}, K = 10, M = {config['n_experts']}", "value": ms, "unit": "ms/step"}
            if config["n_experts"] == 1:
                row.update(target=f"<= {TARGET_MS}", met=ms <= TARGET_MS)
            rows.append(row)
    for method in ("v-pg-swr", "ca-pg-swr"):
        (ms,) = gradient_step_ms(method, steps, warmup, [{"n_candidates": 200}])
        raw[f"{method} K=200 M=1"] = ms
        rows.append({"measure": f"{method}, K = 200, M = 1", "value": ms, "unit": "ms/step"})
    for method in PG_METHODS:
        ratio = raw[f"{method} K=10 M=5"] / raw[f"{method} K=10 M=1"]
        rows.append(
            {"measure": f"{method}: M = 5 / M = 1", "value": ratio, "unit": "x", "target": "< 2", "met": ratio < 2}
        )
    hours = raw["ca-pg K=10 M=1"] * 500_000 / 3.6e6
    rows.append({"measure": "one 500K-step ca-pg run (K = 10), extrapolated", "value": hours, "unit": "hours"})
    return {"ms_per_step": raw, "hours_500k_ca_pg": hours, "rows": rows}


@register_case("esr_env", "EarlyStageRanker-v0 native vector env, batch 128, logits mode (random logits)")
def _esr_env(quick: bool) -> dict[str, Any]:
    rows, raw = [], {}
    sizes = ((1000, 1000), (1_000_000, 128))  # (n_items, n_users): a small user base keeps the 10^6 reset short
    for n_items, n_users in sizes:
        vec_env = gym.make_vec(
            ENV_ID, 128, vectorization_mode="vector_entry_point", world_seed=0, n_items=n_items, n_users=n_users
        )
        vec_env.reset(seed=0)
        logits = np.random.default_rng(0).standard_normal((128, n_items), dtype=np.float32)
        number, repeats = (1, 2) if quick or n_items > 10_000 else (20, 5)
        seconds = time_call(lambda env=vec_env, action=logits: env.step(action), number, repeats)
        vec_env.close()
        raw[n_items] = seconds
        rows.append({"measure": f"|A| = {n_items:,}: one batch step", "value": seconds * 1e3, "unit": "ms"})
        rows.append({"measure": f"|A| = {n_items:,}: users served", "value": 128 / seconds, "unit": "users/s"})
    return {"seconds_per_batch": {str(k): v for k, v in raw.items()}, "rows": rows}
