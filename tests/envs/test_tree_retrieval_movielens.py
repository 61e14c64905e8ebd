"""TwoStage/TreeRetrieval-v0 on MovieLens: App. D.2's next-item slices, and the env on them."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence

import twostage_gym  # noqa: F401  (registers the ids)
from twostage_gym.core.error_decomposition import two_stage_errors
from twostage_gym.datasets.movielens import GENRES_100K, load_movielens
from twostage_gym.datasets.sequences import (
    MAX_CONTEXT,
    TIME_WINDOWS,
    holdout_slices,
    pool_windows,
    split_users,
    train_slices,
    user_sequences,
)

ENV_ID = "TwoStage/TreeRetrieval-v0"
ML100K = Path(__file__).resolve().parents[3] / "shared" / "data" / "ml-100k"
needs_ml100k = pytest.mark.skipif(not (ML100K / "u.data").is_file(), reason=f"MovieLens-100K not found at {ML100K}")


def write_sequences(folder: Path, n_users: int = 30, n_items: int = 60, per_user: int = 24) -> None:
    """A small MovieLens-100K-format folder: every user rates ``per_user`` items, one a second."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(1, n_users + 1):
        for k, i in enumerate(rng.choice(n_items, per_user, replace=False) + 1):
            rows.append(f"{u}\t{i}\t{int(rng.integers(1, 6))}\t{880000000 + 100 * u + k}\n")
    rows += [f"1\t{i}\t5\t870000000\n" for i in range(1, n_items + 1)]  # every item rated (user 1, at time 0)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("".join(rows))
    flags = "|".join(["0"] * (len(GENRES_100K) - 1) + ["1"])
    (folder / "u.item").write_text(
        "".join(f"{i}|Movie {i} (1990)|01-Jan-1990||http://x|{flags}\n" for i in range(1, 61))
    )


def test_slices_follow_app_d2(tmp_path):
    write_sequences(tmp_path / "ml")
    data = load_movielens(tmp_path / "ml")
    ptr, items = user_sequences(data)
    u = 3
    seq = items[ptr[u] : ptr[u + 1]]
    rated = data.items[data.users == u]
    order = np.lexsort((rated, data.timestamps[data.users == u]))
    np.testing.assert_array_equal(seq, rated[order])  # time order
    tr = train_slices(ptr, items, np.array([u]))
    assert len(tr) == seq.size - 1  # a slice at every position t >= 1
    t = 5
    row = tr.history[t - 1]
    assert tr.targets[t - 1] == seq[t] and tr.history.shape[1] == MAX_CONTEXT
    np.testing.assert_array_equal(row[:t], seq[:t][::-1])  # most recent first
    assert (row[t:] == -1).all()
    ho = holdout_slices(ptr, items, np.array([u]))
    np.testing.assert_array_equal(ho.targets, seq[seq.size // 2 :])  # the second half is the ground truth
    np.testing.assert_array_equal(ho.history[0, : seq.size // 2], seq[: seq.size // 2][::-1])
    split = split_users(100, seed=0)
    assert [split[k].size for k in ("train", "validation", "test")] == [80, 10, 10]
    assert np.unique(np.concatenate(list(split.values()))).size == 100


def test_pool_windows_averages_each_time_window():
    reps = np.random.default_rng(0).standard_normal((30, 3))
    history = np.full((1, MAX_CONTEXT), -1)
    history[0, :8] = np.arange(8)  # windows [1, 1, 1, 2, 2, 2, ...]: items 0 | 1 | 2 | 3, 4 | 5, 6 | 7 | -
    pooled = pool_windows(reps, history).reshape(len(TIME_WINDOWS), 3)
    np.testing.assert_allclose(pooled[0], reps[0], rtol=1e-6)
    np.testing.assert_allclose(pooled[3], reps[3:5].mean(0), rtol=1e-6)
    np.testing.assert_allclose(pooled[5], reps[7], rtol=1e-6)  # a partly filled window: the mean of what is there
    assert (pooled[6:] == 0).all()


@pytest.mark.parametrize("mode", ["levelwise", "scores"])
def test_env_on_small_movielens(tmp_path, mode):
    write_sequences(tmp_path / "ml")
    env = gym.make(ENV_ID, data_dir=str(tmp_path / "ml"), dim=4, beam=5, mode=mode)
    obs, _ = env.reset(seed=0)
    world = env.unwrapped.world
    assert obs["context"].shape == (40,) and world.context_dim == 40  # ten windows x d
    assert world.item_embeddings.shape == (60, 4)
    np.testing.assert_allclose(np.linalg.norm(world.item_embeddings, axis=1), 1.0)
    test_users = set(world.users["test"].tolist())
    assert test_users.isdisjoint(world.users["train"].tolist())
    env.action_space.seed(0)
    completed = 0
    while completed < 20:
        *_, info = env.step(env.action_space.sample())
        if info["query_complete"]:
            completed += 1
            # Real data: the logged target is the one relevant item.
            assert info["expected_reward"] == float(info["ranker_hit"]) and info["optimal_expected_reward"] == 1.0
            assert info["regret"] == info["nominator_regret"] + info["ranker_regret"]
            assert info["nominator_regret"] == 1.0 - info["retrieval_hit"]
    x, y = env.unwrapped.sample_dataset(50, seed=0)
    assert x.shape == (50, 40) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.isin(y, world.train_slices.targets).all()


def test_vector_env_on_small_movielens_equals_sync(tmp_path):
    write_sequences(tmp_path / "ml")
    kwargs = {"data_dir": str(tmp_path / "ml"), "dim": 4, "beam": 5, "ranker_noise": 0.5}
    native = gym.make_vec(ENV_ID, 2, vectorization_mode="vector_entry_point", max_episode_steps=8, **kwargs)
    sync = gym.make_vec(ENV_ID, 2, vectorization_mode="sync", max_episode_steps=8, **kwargs)
    native.action_space.seed(0)
    assert data_equivalence(native.reset(seed=1), sync.reset(seed=1), exact=True)
    for _ in range(12):
        action = native.action_space.sample()
        assert data_equivalence(native.step(action), sync.step(action), exact=True)


def test_movielens_arguments(tmp_path):
    write_sequences(tmp_path / "ml")
    for kwargs, name in (({"n_items": 50}, "n_items"), ({"tau": 0.1}, "tau"), ({"beam": 60}, "beam")):
        with pytest.raises(ValueError, match=name):
            gym.make(ENV_ID, data_dir=str(tmp_path / "ml"), **kwargs)
    write_sequences(tmp_path / "few", n_users=5)
    with pytest.raises(ValueError, match="data_dir"):
        gym.make(ENV_ID, data_dir=str(tmp_path / "few"))


@needs_ml100k
def test_real_movielens_100k_two_tower_beats_random():
    """App. D's setting on MovieLens-100K: a last-item two-tower scorer against random scores, same queries.

    Measured over 500 queries (worlds 0 and 1): recall@20 0.154 and 0.126 for the two-tower scorer,
    0.006 for random scores (K / N = 0.012).
    """
    kwargs = {"data_dir": str(ML100K), "mode": "scores", "world_seed": 0, "ranker_noise": 0.3}
    envs = {"two-tower": gym.make(ENV_ID, **kwargs), "random": gym.make(ENV_ID, **kwargs)}
    obs = {name: env.reset(seed=0)[0] for name, env in envs.items()}
    world = envs["two-tower"].unwrapped.world
    assert world.item_embeddings.shape == (1682, 16) and world.tree.n_levels == 6
    # 943 users, all with >= 20 ratings, split 755 / 94 / 94; a training slice per rating but the first.
    assert [world.users[k].size for k in ("train", "validation", "test")] == [755, 94, 94]
    ptr, _ = user_sequences(load_movielens(ML100K))
    assert len(world.train_slices) == int(np.diff(ptr)[world.users["train"]].sum()) - 755
    rng = np.random.default_rng(0)
    flags: dict[str, list] = {name: [] for name in envs}
    for _ in range(300):
        # The first time window is the most recent item's representation: score nodes by it.
        scores = {
            "two-tower": world.node_features @ obs["two-tower"]["context"][:16],
            "random": rng.standard_normal(world.tree.n_nodes),
        }
        for name, env in envs.items():
            obs[name], _, _, _, info = env.step(scores[name].astype(np.float32))
            flags[name].append((info["retrieval_hit"], info["ranker_hit"]))
    np.testing.assert_array_equal(obs["two-tower"]["context"], obs["random"]["context"])  # the same queries
    retrieval, ranker = np.array(flags["two-tower"]).T
    assert two_stage_errors(retrieval, ranker).identity_holds()
    assert retrieval.mean() > 0.07 and np.array(flags["random"])[:, 0].mean() < 0.04
