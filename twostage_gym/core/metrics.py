"""Regret and its stage decomposition (Hron et al. 2021, Eq. 1), and shared metric helpers.

R = R^N + R^R per round, with R^N = f*(a*) - max_{a in C_t} f*(a) the nominator regret and
R^R = max_{a in C_t} f*(a) - f*(a_t) the ranker regret. ``regret`` is defined as their sum, so
the identity holds exactly in floating point.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["ORACLE_INFO_KEYS", "log_checkpoints", "public_info", "round_summary", "stage_regret"]

ORACLE_INFO_KEYS = frozenset(
    {
        "expected_reward",
        "optimal_expected_reward",
        "regret",
        "nominator_regret",
        "ranker_regret",
        "topic_regret",
        "item_regret",
        "reachable_expected_reward",
        "best_item_reachable",
        "best_candidate",
        "optimal_item",
        "recall",
        "lsr_gap",
    }
)
"""Keys of ``info`` that reveal the true reward model; learners in ``agents`` never read them."""


def stage_regret(mean: np.ndarray, candidates: np.ndarray, chosen: np.ndarray | int) -> dict[str, np.ndarray]:
    """Expected regret of one round (or a batch of rounds), split by stage.

    Args:
        mean: expected reward of every item, shape (..., |A|).
        candidates: the candidate set's item ids, shape (..., N).
        chosen: the served item id, shape (...).

    Returns:
        float64 arrays (numpy scalars for a single round) keyed ``expected_reward``,
        ``optimal_expected_reward``, ``regret``, ``nominator_regret``, ``ranker_regret``, and
        int64 ``best_candidate`` and ``optimal_item``.
    """
    if mean.ndim == 1:
        # One round: plain indexing is several times faster than take_along_axis, and exact.
        optimal_item = mean.argmax()
        cand_mean = mean[candidates]
        best_pos = cand_mean.argmax()
        optimal, best, served = mean[optimal_item], cand_mean[best_pos], mean[chosen]
        best_candidate = candidates[best_pos]
    else:
        chosen = np.asarray(chosen)
        optimal_item = mean.argmax(axis=-1)
        optimal = _pick(mean, optimal_item)
        cand_mean = np.take_along_axis(mean, candidates, -1)
        best_pos = cand_mean.argmax(axis=-1)
        best = _pick(cand_mean, best_pos)
        served = _pick(mean, chosen)
        best_candidate = _pick(candidates, best_pos)
    nominator_regret = optimal - best
    ranker_regret = best - served
    return {
        "expected_reward": served,
        "optimal_expected_reward": optimal,
        "regret": nominator_regret + ranker_regret,
        "nominator_regret": nominator_regret,
        "ranker_regret": ranker_regret,
        "best_candidate": best_candidate,
        "optimal_item": optimal_item,
    }


def _pick(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """values[..., index] along the last axis."""
    return np.take_along_axis(values, index[..., None], -1)[..., 0]


def public_info(info: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``info`` without the oracle keys (and, for a vector env, their ``_key`` masks)."""
    return {k: v for k, v in info.items() if k.removeprefix("_") not in ORACLE_INFO_KEYS}


def log_checkpoints(steps: int, num: int = 20) -> np.ndarray:
    """Log-spaced step counts in [1, steps] (unique, increasing, ``steps`` included)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return np.unique(np.round(np.geomspace(1, steps, num)).astype(np.int64))


def round_summary(t: int, info: Mapping[str, Any] | None) -> str:
    """One line for ``render``: round ``t``'s candidate set, served item(s) and regret decomposition.

    The served part is ``chosen_item`` (one item) or ``ranking`` (the L items a late-stage ranker showed).
    """
    if info is None:
        return f"round {t}: no item served yet"
    if "chosen_item" in info:
        served = f"served item {int(info['chosen_item'])}"
    else:
        served = f"served items {np.asarray(info['ranking']).tolist()}"
    return (
        f"round {t}: candidates {np.asarray(info['candidates']).tolist()} -> {served}; "
        f"expected reward {float(info['expected_reward']):.3f} (optimal {float(info['optimal_expected_reward']):.3f}); "
        f"regret {float(info['regret']):.3f} = nominator {float(info['nominator_regret']):.3f} "
        f"+ ranker {float(info['ranker_regret']):.3f}"
    )
