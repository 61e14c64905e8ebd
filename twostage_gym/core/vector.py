"""Bookkeeping shared by the native vector envs (next-step autoreset, self-truncation).

Every native vector env in the suite follows Gymnasium's ``AutoresetMode.NEXT_STEP``: a sub-env whose
episode ended on the last step ignores its action on this step and starts its next episode instead. The
helpers here hold the parts of that protocol that do not depend on the family, so that the vector envs
count steps, truncate and report per-row info the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from twostage_gym.core.checks import check_memory, optional_positive_int, positive_int


def vector_arguments(
    name: str, num_envs: Any, max_episode_steps: Any, kwargs: dict[str, Any]
) -> tuple[int, int | None]:
    """Check a vector env's own arguments and refuse ``render_mode`` (popped from ``kwargs``).

    Args:
        name: the vector env's class name, for the message.
        num_envs: the number of sub-envs (a positive int, not a bool).
        max_episode_steps: a positive int, or None: the vector env truncates itself (no
            ``TimeLimit`` wrapper), and None means never.
        kwargs: the remaining keyword arguments, for the family's config.

    Returns:
        ``(num_envs, max_episode_steps)`` checked.

    Raises:
        ValueError: naming ``num_envs``, ``max_episode_steps`` or ``render_mode``.
    """
    num_envs = positive_int("num_envs", num_envs)
    max_episode_steps = optional_positive_int("max_episode_steps", max_episode_steps)
    if kwargs.pop("render_mode", None) is not None:
        raise ValueError(f"{name} does not render; use gym.make for render_mode")
    return num_envs, max_episode_steps


def seed_list(seed: int | Sequence[int | None] | None, num_envs: int) -> list[int | None]:
    """The seed of each sub-env: ``seed + i`` for an int (as ``SyncVectorEnv`` does), one each for a list.

    Raises:
        ValueError: a list of another length than ``num_envs``.
    """
    if seed is None or isinstance(seed, (int, np.integer)):
        return [None if seed is None else int(seed) + i for i in range(num_envs)]
    seeds = list(seed)
    if len(seeds) != num_envs:
        raise ValueError(f"seed must be an int or {num_envs} seeds, got {len(seeds)}")
    return seeds


def scatter_info(rows: Mapping[str, np.ndarray], active: np.ndarray, num_envs: int) -> dict[str, np.ndarray]:
    """The vector info of the active sub-envs' rows: full-width arrays and their ``_key`` masks.

    Rows of sub-envs that did not play (they autoreset this step) are zero, and masked out, as
    ``SyncVectorEnv`` reports them.

    Args:
        rows: each key's values for the active sub-envs, ``(len(active), ...)``, in key order.
        active: int ``(len(active),)`` the sub-envs that played, ascending.
        num_envs: the number of sub-envs.
    """
    mask = np.zeros(num_envs, dtype=bool)
    mask[active] = True
    info: dict[str, np.ndarray] = {}
    for key, value in rows.items():
        if active.size == num_envs:
            full = value
        else:
            full = np.zeros((num_envs, *value.shape[1:]), dtype=value.dtype)
            full[active] = value
        info[key], info[f"_{key}"] = full, mask.copy()
    return info


def advance_steps(
    steps: np.ndarray, prev_done: np.ndarray, max_episode_steps: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Count this step's steps and truncate (``steps`` is updated in place).

    Sub-envs that played count one more step; those that autoreset this step (``prev_done``) start
    again from zero. The envs never terminate; truncation comes from ``max_episode_steps``.

    Returns:
        ``(terminated, truncated)`` bool ``(num_envs,)``; ``truncated`` is the next step's ``prev_done``.
    """
    steps[~prev_done] += 1
    steps[prev_done] = 0
    if max_episode_steps is None:
        truncated = np.zeros(steps.shape[0], dtype=bool)
    else:
        truncated = steps >= max_episode_steps
    return np.zeros(steps.shape[0], dtype=bool), truncated


def check_vector_memory(sizes: Mapping[str, Any], parts: Mapping[str, int], num_envs: int, world_seed: Any) -> int:
    """:func:`~twostage_gym.core.checks.check_memory` for a world config used by ``num_envs`` sub-envs.

    Sub-envs without a shared ``world_seed`` draw a world each, so the advice names that way out.

    Args:
        sizes: the family's size arguments, by name (``num_envs`` is added when above 1).
        parts: the estimated bytes of the largest arrays, for all the sub-envs.
        num_envs: the number of sub-envs.
        world_seed: the config's ``world_seed`` (None: each sub-env draws its own world).

    Returns:
        The estimated total in bytes.

    Raises:
        ValueError: naming the size arguments and giving the estimate.
    """
    sizes = dict(sizes)
    advice = "reduce these sizes"
    if num_envs > 1:
        sizes["num_envs"] = num_envs
        if world_seed is None:
            advice += ", or pass world_seed so that the sub-envs share one world"
    return check_memory(sizes, parts, advice)
