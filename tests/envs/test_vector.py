"""The native vector envs' shared bookkeeping (``twostage_gym.core.vector``)."""

from __future__ import annotations

import numpy as np
import pytest

from twostage_gym.core.vector import advance_steps, check_vector_memory, scatter_info, seed_list, vector_arguments


def test_scatter_info_fills_inactive_rows_with_zeros_and_masks_them() -> None:
    rows = {"regret": np.array([0.5, 1.5]), "items": np.array([[1, 2], [3, 4]], dtype=np.int64)}
    info = scatter_info(rows, np.array([0, 2]), 3)
    assert list(info) == ["regret", "_regret", "items", "_items"]
    np.testing.assert_array_equal(info["regret"], [0.5, 0.0, 1.5])
    np.testing.assert_array_equal(info["items"], [[1, 2], [0, 0], [3, 4]])
    assert info["items"].dtype == np.int64
    for key in ("_regret", "_items"):
        np.testing.assert_array_equal(info[key], [True, False, True])
    assert info["_regret"] is not info["_items"]  # one mask each: a caller may edit one


def test_scatter_info_all_active_keeps_the_rows() -> None:
    value = np.arange(3.0)
    info = scatter_info({"reward": value}, np.arange(3), 3)
    assert info["reward"] is value
    assert info["_reward"].all()


def test_advance_steps_counts_resets_and_truncates() -> None:
    steps = np.array([0, 1, 2, 5])
    prev_done = np.array([False, False, False, True])
    terminated, truncated = advance_steps(steps, prev_done, 3)
    np.testing.assert_array_equal(steps, [1, 2, 3, 0])
    np.testing.assert_array_equal(truncated, [False, False, True, False])
    assert not terminated.any() and terminated.shape == (4,)
    _, never = advance_steps(steps, np.zeros(4, dtype=bool), None)
    np.testing.assert_array_equal(steps, [2, 3, 4, 1])
    assert not never.any()


def test_seed_list() -> None:
    assert seed_list(None, 2) == [None, None]
    assert seed_list(np.int64(7), 3) == [7, 8, 9]
    assert seed_list([1, None], 2) == [1, None]
    with pytest.raises(ValueError, match="seed must be an int or 2 seeds, got 3"):
        seed_list([1, 2, 3], 2)


def test_vector_arguments() -> None:
    kwargs = {"render_mode": None, "n_items": 5}
    assert vector_arguments("V", 2, None, kwargs) == (2, None)
    assert kwargs == {"n_items": 5}
    with pytest.raises(ValueError, match="num_envs"):
        vector_arguments("V", True, 10, {})
    with pytest.raises(ValueError, match="max_episode_steps"):
        vector_arguments("V", 1, 0, {})
    with pytest.raises(ValueError, match="V does not render"):
        vector_arguments("V", 1, 10, {"render_mode": "ansi"})


def test_check_vector_memory_names_num_envs_and_world_seed() -> None:
    sizes = {"n_items": 10}
    assert check_vector_memory(sizes, {"table": 100}, 4, None) == 100
    assert sizes == {"n_items": 10}  # the caller's sizes are not changed
    with pytest.raises(ValueError, match=r"n_items=10, num_envs=4: .*pass world_seed"):
        check_vector_memory(sizes, {"table": 2**62}, 4, None)
    with pytest.raises(ValueError, match=r"n_items=10: .*reduce these sizes$"):
        check_vector_memory(sizes, {"table": 2**62}, 1, None)
    with pytest.raises(ValueError, match=r"num_envs=4: .*reduce these sizes$"):
        check_vector_memory(sizes, {"table": 2**62}, 4, 0)
