"""Throughput cases of ``TwoStage/RecommenderSelection-v0`` (Xu et al. 2021) for ``twostage-bench perf``.

Issue 22, section 5, on MovieLens-100K: requests per second through ``gym.make`` (with its
wrappers), and the refit time of each candidate recommender on the initial training matrix. The
data are read from :data:`DATA_DIR` (the ``TWOSTAGE_ML100K`` environment variable, else
``../shared/data/ml-100k`` beside the project); without them both cases report ``skipped``.

Requests are timed two ways: with ``refit="never"`` (one masked argmax per arm, the observation
and the bookkeeping: the cost of a request) and over whole epochs with ``refit="epoch"`` (the
refits at each epoch's end amortised over its 943 requests). Every number is a median.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agents.bench.perf import register_case, time_call
from twostage_gym.core.recommenders import RECOMMENDERS, make_recommender

__all__ = ["DATA_DIR", "ENV_ID", "ENV_KWARGS", "refit_ms", "requests_per_s"]

ENV_ID = "TwoStage/RecommenderSelection-v0"
DATA_DIR = Path(os.environ.get("TWOSTAGE_ML100K", Path(__file__).resolve().parents[3] / "shared" / "data" / "ml-100k"))
"""Where MovieLens-100K is read from (never copied into the project)."""

ENV_KWARGS: dict[str, Any] = {}
"""Extra keyword arguments of the measured env (the defaults: 20 epochs, the four candidates); a test
of the cases on a tiny folder sets fewer epochs."""


def _missing() -> str | None:
    if not (DATA_DIR / "u.data").is_file():
        return f"MovieLens-100K not found at {DATA_DIR} (set TWOSTAGE_ML100K to its folder)"
    return None


def requests_per_s(refit: str, steps: int, warmup: int, repeats: int) -> float:
    """Median requests/s over ``repeats`` blocks of ``steps`` requests (arms in turn) on MovieLens-100K."""
    env = gym.make(ENV_ID, data_dir=str(DATA_DIR), refit=refit, max_episode_steps=None, **ENV_KWARGS)
    env.reset(seed=0)
    k = env.action_space.n
    t = 0

    def block(n: int) -> float:
        nonlocal t
        start = time.perf_counter()
        for _ in range(n):
            _, _, terminated, _, _ = env.step(t % k)
            t += 1
            if terminated:
                env.reset()
        return n / (time.perf_counter() - start)

    block(warmup)
    rates = [block(steps) for _ in range(repeats)]
    env.close()
    return statistics.median(rates)


def refit_ms(repeats: int) -> dict[str, float]:
    """Median ms of each candidate's ``fit`` on MovieLens-100K's initial training matrix (seed 0)."""
    env = gym.make(ENV_ID, data_dir=str(DATA_DIR), **ENV_KWARGS)
    env.reset(seed=0)
    matrix = np.array(env.unwrapped.split.train_matrix)
    env.close()
    out = {}
    for name in RECOMMENDERS:
        recommender = make_recommender(name)
        out[name] = 1e3 * time_call(lambda r=recommender: r.fit(matrix), 1, repeats, warmup=1)
    return out


@register_case("selection_env", "RecommenderSelection-v0 requests/s on MovieLens-100K (gym.make, arms in turn)")
def _selection_env(quick: bool) -> dict[str, Any]:
    reason = _missing()
    if reason:
        return {"skipped": reason, "rows": []}
    steps, warmup, repeats = (300, 50, 3) if quick else (2000, 200, 7)
    epoch = 943  # MovieLens-100K's users: one epoch, with its refits at the end
    never = requests_per_s("never", steps, warmup, repeats)
    epochs = requests_per_s("epoch", epoch, epoch, 1 if quick else 3)
    return {
        "data_dir": str(DATA_DIR),
        "requests_per_s": never,
        "requests_per_s_with_refits": epochs,
        "rows": [
            {"measure": "requests/s (refit='never')", "value": never, "unit": "req/s"},
            {"measure": "requests/s over whole epochs (refit='epoch')", "value": epochs, "unit": "req/s"},
        ],
    }


@register_case("selection_refit", "RecommenderSelection-v0: refit time of each candidate on MovieLens-100K")
def _selection_refit(quick: bool) -> dict[str, Any]:
    reason = _missing()
    if reason:
        return {"skipped": reason, "rows": []}
    ms = refit_ms(3 if quick else 7)
    rows = [{"measure": f"{name}: fit", "value": value, "unit": "ms"} for name, value in ms.items()]
    rows.append({"measure": "all candidates (one epoch's refit)", "value": sum(ms.values()), "unit": "ms"})
    return {"data_dir": str(DATA_DIR), "refit_ms": ms, "rows": rows}
