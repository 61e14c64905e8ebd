"""``TwoStage/RecommenderSelection-v0``: the Sec. 5 protocol's bookkeeping, the data, bad input, the segments."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence

import twostage_gym  # noqa: F401  (registers the ids)
from tests.envs.test_datasets import ML100K, needs_ml100k, write_ml1m, write_ml100k
from twostage_gym.core.recommenders import fit_tables
from twostage_gym.envs.recommender_selection_world import RatingData, standardise

ENV_ID = "TwoStage/RecommenderSelection-v0"
SMALL = {"n_users": 60, "n_items": 120, "ratings_per_user": 20, "n_epochs": 5}


def make(**kwargs):
    return gym.make(ENV_ID, **{**SMALL, **kwargs})


def play_episode(env, policy, seed: int = 0):
    """Run one whole episode; returns the list of (observation before, action, reward, terminated, info)."""
    obs, _ = env.reset(seed=seed)
    steps, terminated = [], False
    while not terminated:
        action = policy(obs, len(steps))
        next_obs, reward, terminated, truncated, info = env.step(action)
        assert not truncated
        steps.append((obs, action, reward, terminated, info))
        obs = next_obs
    return steps


def random_policy(seed: int = 0):
    rng = np.random.default_rng(seed)
    return lambda obs, t: int(rng.integers(obs.shape[0]))


# -- the protocol ---------------------------------------------------------------------------


def test_protocol_bookkeeping_over_an_episode():
    env = make()
    u = env.unwrapped
    steps = play_episode(env, random_policy())
    split, run = u.split, u.run_state
    n_users, k = u.n_users, len(u.recommenders)
    assert len(steps) == u.episode_steps == n_users * 5 and u.steps_per_epoch == n_users
    users = np.array([int(s[4]["user"]) for s in steps])
    items = np.array([int(s[4]["item"]) for s in steps])
    # Each epoch visits every user exactly once.
    for epoch in range(5):
        block = slice(epoch * n_users, (epoch + 1) * n_users)
        assert sorted(users[block]) == list(range(n_users))
        assert {int(s[4]["epoch"]) for s in steps[block]} == {epoch}
    # No item is recommended twice to a user, and none the user rated in the training data.
    pairs = users * u.n_items + items
    assert np.unique(pairs).size == pairs.size
    assert not split.known[users, items].any()
    # No arm ever proposes an item the user rated in training, was served before, or rejected.
    served: set[tuple[int, int]] = set()
    for _, _, _, _, info in steps:
        user = int(info["user"])
        for item in info["proposals"]:
            assert (user, int(item)) not in served and not split.known[user, item]
        served.add((user, int(info["item"])))
    # Rewards, recall and traffic.
    rewards = np.array([s[2] for s in steps])
    recall = np.array([float(s[4]["recall"]) for s in steps])
    assert np.all(np.diff(recall) >= 0) and recall[-1] <= 1.0
    assert recall[-1] == pytest.approx(rewards.sum() / split.n_test_positives, abs=0)
    assert split.n_test_positives == int(split.test_positive.sum()) > 0
    actions = np.array([s[1] for s in steps])
    np.testing.assert_allclose(steps[-1][4]["traffic_share"], np.bincount(actions, minlength=k) / len(steps))
    # Served items are in the history (rated in the test log) or on the reject list, never both.
    rated = np.array([bool(s[4]["rated"]) for s in steps])
    assert np.array_equal(rated, split.in_test[users, items])
    assert np.array_equal(run.rejected[users, items], ~rated)
    assert not run.in_test[users, items].any()  # moved out of the test log
    # Collected positives joined the training matrix; nothing else did.
    positive_pairs = rewards == 1.0
    assert np.all(run.train_matrix[users[positive_pairs], items[positive_pairs]] == 1.0)
    assert run.train_matrix.sum() == split.train_matrix.sum() + rewards.sum()
    # The episode is over.
    assert steps[-1][3] and not any(s[3] for s in steps[:-1])
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step(0)


def test_reward_and_oracle_keys_per_step():
    env = make()
    env.reset(seed=1)
    split = env.unwrapped.split
    rng = np.random.default_rng(1)
    for _ in range(300):
        run = env.unwrapped.run_state
        user, proposals = run.user, run.proposals.copy()
        expected_positive = split.test_positive[user, proposals] & run.in_test[user, proposals]
        arm = int(rng.integers(4))
        _, reward, _, _, info = env.step(arm)
        np.testing.assert_array_equal(info["proposals"], proposals)
        np.testing.assert_array_equal(info["positive"], expected_positive)
        assert reward == float(expected_positive[arm]) == info["reward"] == info["expected_reward"]
        assert info["optimal_expected_reward"] == float(expected_positive.any())
        assert info["regret"] == info["optimal_expected_reward"] - info["expected_reward"]
        assert info["regret"] == info["nominator_regret"] + info["ranker_regret"] and info["nominator_regret"] == 0
        assert int(info["item"]) == int(proposals[arm]) and int(info["arm"]) == arm


def test_proposals_are_each_candidates_best_unblocked_item():
    env = make()
    env.reset(seed=2)
    for t in range(80):
        run = env.unwrapped.run_state
        masked = np.where(run.blocked[run.user], -np.inf, run.tables[:, run.user, :])
        np.testing.assert_array_equal(run.proposals, masked.argmax(axis=1))
        assert not run.blocked[run.user, run.proposals].any()
        env.step(t % 4)


def test_an_oracle_selector_has_no_regret_and_the_best_recall():
    def oracle(obs, t):
        return int(np.argmax(env.unwrapped.run_state.split.test_positive[run().user, run().proposals]))

    env = make()

    def run():
        return env.unwrapped.run_state

    oracle_steps = play_episode(env, oracle, seed=3)
    assert sum(float(s[4]["regret"]) for s in oracle_steps) == 0.0
    for arm in range(4):
        fixed = play_episode(make(), lambda obs, t, a=arm: a, seed=3)
        assert float(fixed[-1][4]["recall"]) <= float(oracle_steps[-1][4]["recall"])


def test_observation_layout():
    env = make()
    obs, _ = env.reset(seed=4)
    u = env.unwrapped
    sl = u.feature_slices
    assert obs.shape == (4, 8 + 12 + 4) and obs.dtype == np.float32
    assert (sl["user"], sl["item"], sl["arm"]) == (slice(0, 8), slice(8, 20), slice(20, 24))
    split, run = u.split, u.run_state
    np.testing.assert_array_equal(obs[:, sl["user"]], np.tile(standardise(split.data.user_features)[run.user], (4, 1)))
    np.testing.assert_array_equal(obs[:, sl["item"]], standardise(split.data.item_features)[run.proposals])
    np.testing.assert_array_equal(obs[:, sl["arm"]], np.eye(4, dtype=np.float32))
    np.testing.assert_allclose(split.user_features.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_array_equal(u.context_observation(obs), obs[:, sl["user"]])
    # The first n_segments user columns are a noisy view of the segment: informative, not exact.
    segments = split.data.segments
    agree = np.mean(split.data.user_features[:, :4].argmax(axis=1) == segments)
    assert 0.4 < agree < 0.8  # 0.50-0.57 over seeds 0-4 (chance: 0.25)


def test_subset_of_recommenders_in_order():
    env = make(recommenders=["mf", "popularity"])
    obs, _ = env.reset(seed=0)
    assert env.action_space == gym.spaces.Discrete(2) and obs.shape == (2, 8 + 12 + 2)
    run = env.unwrapped.run_state
    counts = run.split.train_matrix.sum(axis=0)
    unblocked = np.where(run.blocked[run.user], -1, counts)
    assert counts[run.proposals[1]] == unblocked.max()  # arm 1 is popularity


def test_refit_each_epoch_or_never():
    for refit in ("epoch", "never"):
        env = make(refit=refit)
        env.reset(seed=5)
        initial = env.unwrapped.run_state.tables.copy()
        for t in range(env.unwrapped.steps_per_epoch):
            env.step(t % 4)
        run = env.unwrapped.run_state
        if refit == "never":
            np.testing.assert_array_equal(run.tables, initial)
        else:
            assert run.train_matrix.sum() > run.split.train_matrix.sum()  # positives were collected
            np.testing.assert_array_equal(run.tables, fit_tables(run.split.new_recommenders(), run.train_matrix))
            assert not np.array_equal(run.tables, initial)


def test_request_order_depends_only_on_the_seed():
    def users(seed, policy):
        return [int(s[4]["user"]) for s in play_episode(make(n_epochs=2), policy, seed=seed)]

    a = users(7, random_policy(1))
    assert a == users(7, random_policy(2)) == users(7, lambda obs, t: 0)
    assert a != users(8, random_policy(1))


def test_unseeded_reset_keeps_the_split_and_continues_the_order():
    env = make()
    env.reset(seed=9)
    split, first = env.unwrapped.split, env.unwrapped.run_state.order.copy()
    env.step(0)
    env.reset()
    assert env.unwrapped.split is split
    run = env.unwrapped.run_state
    assert run.t == 0 and run.successes == 0 and not run.rejected.any()
    assert not np.array_equal(run.order, first)


def test_render_ansi():
    env = make(render_mode="ansi")
    env.reset(seed=0)
    assert "no item served yet" in env.render()
    env.step(3)
    text = env.render()
    assert "arm 3 (mf) served item" in text and "recall" in text


# -- the segments of the synthetic world ----------------------------------------------------


def _segment_recall(segment_effect: float, seeds=range(3)) -> np.ndarray:
    """Per seed: each segment's users' recall (successes over the test positives) when one arm serves everyone.

    The claims' reduced world (150 users, 300 items, 12 epochs); shape (seeds, segments, arms).
    """
    out = []
    for seed in seeds:
        env = gym.make(ENV_ID, segment_effect=segment_effect, n_users=150, n_items=300, n_epochs=12)
        env.reset(seed=seed)
        base = env.unwrapped
        segments = base.split.data.segments
        successes = np.zeros((4, 4))
        for arm in range(4):
            env.reset(seed=seed)
            terminated = False
            while not terminated:
                *_, reward, terminated, _, info = env.step(arm)
                successes[segments[int(info["user"])], arm] += reward
        out.append(successes / base.split.n_test_positives)
    return np.asarray(out)


def _per_segment_gain(recall: np.ndarray) -> np.ndarray:
    """Per seed: each segment served its best arm (in hindsight) over the best single arm, in recall."""
    return recall.max(axis=2).sum(axis=1) - recall.sum(axis=1).max(axis=1)


@pytest.mark.repro
def test_context_pays_and_the_knob_turns_it_off():
    """Sec. 1's motivation, built into the synthetic world, and the knob that turns it off.

    Measured (seeds 0-9, the reduced world, each arm served to everyone all episode): serving each
    segment its best arm beats the best single arm (user-CF) by 0.022 +- 0.007 in final recall
    (0.013-0.032) with segment_effect=1, and by 0.002 +- 0.002 (0.000-0.007) with segment_effect=0.
    The best arm per segment: user-CF for the mainstream segment (9 of 10 seeds), item-CF for the
    item-cluster one (9 of 10), MF for the community one (8 of 10); none stands out for the
    latent-factor one.
    """
    on = _segment_recall(1.0)
    gain_on = _per_segment_gain(on)
    assert gain_on.min() > 0.01  # seeds 0-2: 0.016, 0.032, 0.027
    best = on.mean(axis=0).argmax(axis=1)
    assert best[1] == 1 and best[2] == 3  # item-CF for the item-cluster segment, MF for the community one
    assert on.mean(axis=0)[0].argmax() == 2  # user-CF for the mainstream one
    off = _segment_recall(0.0)
    gain_off = _per_segment_gain(off)
    assert gain_off.max() < 0.008  # seeds 0-2: 0.004, 0.003, 0.000
    assert gain_on.mean() > gain_off.mean() + 0.01


# -- data -----------------------------------------------------------------------------------


def write_users(folder: Path, n_users: int = 40, layout: str = "ml-100k") -> None:
    occupations = ["artist", "doctor", "student"]
    if layout == "ml-100k":
        lines = [f"{u}|{20 + u}|{'MF'[u % 2]}|{occupations[u % 3]}|0000{u}" for u in range(1, n_users + 1)]
        (folder / "u.user").write_text("\n".join(lines) + "\n")
    else:
        lines = [f"{u}::{'MF'[u % 2]}::{18 + u % 3}::{u % 3}::0000{u}" for u in range(1, n_users + 1)]
        (folder / "users.dat").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("layout", ["ml-100k", "ml-1m"])
def test_tiny_movielens_folder(tmp_path, layout):
    table = (write_ml100k if layout == "ml-100k" else write_ml1m)(tmp_path)
    write_users(tmp_path, layout=layout)
    env = gym.make(ENV_ID, data_dir=str(tmp_path), n_epochs=3)
    u = env.unwrapped
    n_ratings = len(table)
    assert u.n_users == 40 and u.n_items == 30 and u.steps_per_epoch == 40
    obs, _ = env.reset(seed=0)
    d_u = 2 + 3  # age, gender, three occupations
    d_i = 19 if layout == "ml-100k" else 5  # the genres of the file
    assert obs.shape == (4, d_u + d_i + 4)
    data = u.split.data
    assert data.n_ratings == n_ratings
    np.testing.assert_array_equal(data.user_features[:, 1], np.arange(1, 41) % 2 == 0)  # user 2 is M
    steps = play_episode(env, random_policy(), seed=0)
    assert len(steps) == 120 and 0 < float(steps[-1][4]["recall"]) <= 1
    positives_in_test = int((data.ratings >= 3).sum()) - int(u.split.train_matrix.sum())
    assert u.split.n_test_positives == positives_in_test


@needs_ml100k
def test_movielens_100k_one_epoch():
    env = gym.make(ENV_ID, data_dir=str(ML100K), n_epochs=1)
    u = env.unwrapped
    assert (u.n_users, u.n_items, u.steps_per_epoch) == (943, 1682, 943)
    assert u.feature_slices == {"user": slice(0, 23), "item": slice(23, 42), "arm": slice(42, 46)}
    steps = play_episode(env, random_policy(), seed=0)
    split = u.split
    assert split.data.n_ratings == 100_000 and int(split.known.sum()) == 10_000
    assert split.n_test_positives == int((split.data.ratings >= 3).sum()) - int(split.train_matrix.sum())
    recall = float(steps[-1][4]["recall"])
    assert 0 < recall <= 1
    assert recall == sum(s[2] for s in steps) / split.n_test_positives


def test_custom_data():
    rng = np.random.default_rng(0)
    n_users, n_items = 15, 40
    pairs = np.array([(u, i) for u in range(n_users) for i in rng.choice(n_items, 10, replace=False)])
    data = RatingData(
        users=pairs[:, 0],
        items=pairs[:, 1],
        ratings=rng.integers(1, 6, len(pairs)).astype(float),
        user_features=rng.standard_normal((n_users, 3)),
        item_features=rng.random((n_items, 2)),
    )
    env = gym.make(ENV_ID, data=data, n_epochs=4, recommenders=("popularity", "mf"))
    steps = play_episode(env, random_policy(), seed=0)
    assert len(steps) == 60 and steps[0][0].shape == (2, 3 + 2 + 2)


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "pattern"),
    [
        (4, "outside Discrete\\(4\\)"),
        (-1, "outside"),
        (1.0, "integer"),
        (True, "integer"),
        (np.array([1]), "integer"),
        (np.array(1.0), "integer"),
        (np.uint64(1), "int64"),
        ("1", "integer"),
        (None, "integer"),
    ],
)
def test_bad_actions_leave_the_state_unchanged(action, pattern):
    env, twin = make(), make()
    env.reset(seed=0)
    twin.reset(seed=0)
    env.step(1)
    twin.step(1)
    with pytest.raises(ValueError, match=pattern):
        env.step(action)
    for a in (2, np.int32(3), np.array(0)):
        assert data_equivalence(env.step(a), twin.step(a), exact=True)


def _custom(**change):
    rng = np.random.default_rng(0)
    fields = {
        "users": np.repeat(np.arange(4), 5),
        "items": np.tile(np.arange(5), 4),
        "ratings": rng.integers(1, 6, 20).astype(float),
        "user_features": rng.standard_normal((4, 2)),
        "item_features": rng.random((8, 3)),
    }
    return {**fields, **change}


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"user_features": np.array([[0.0, np.nan]] * 4)}, "data.user_features must be finite"),
        ({"item_features": np.full((8, 3), np.inf)}, "data.item_features must be finite"),
        ({"ratings": np.full(20, np.nan)}, "data.ratings must be finite"),
        ({"users": np.repeat(np.arange(4), 5) + 1}, "data.users must be ids"),
        ({"items": np.zeros(20, dtype=np.int64)}, "rated twice"),
        ({"items": np.tile(np.arange(5), 4).astype(float)}, "data.items must be a 1-D array of integer"),
        ({"ratings": np.ones(19)}, "one entry per rating"),
        ({"user_features": np.zeros(4)}, "data.user_features must be a 2-D"),
    ],
)
def test_bad_custom_data(change, pattern):
    with pytest.raises(ValueError, match=pattern):
        RatingData(**_custom(**change))


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"recommenders": ("mf",)}, "recommenders: selection needs k >= 2"),
        ({"recommenders": ("mf", "svd")}, "recommenders: unknown recommender 'svd'"),
        ({"recommenders": ("mf", "mf")}, "recommenders must be distinct"),
        ({"recommenders": "mf"}, "recommenders must be a sequence"),
        ({"refit": "step"}, "refit must be one of"),
        ({"train_fraction": 1.0}, "train_fraction"),
        ({"train_fraction": 1e-9}, "train_fraction .* leaves 0"),
        ({"positive_threshold": 6}, "positive_threshold"),
        ({"n_epochs": 200}, "n_epochs \\(200\\) must be at most n_items"),
        ({"n_segments": 100}, "n_segments"),
        ({"ratings_per_user": 120}, "ratings_per_user"),
        ({"segment_effect": 1.5}, "segment_effect"),
        ({"mf_rank": 500}, "mf_rank"),
        ({"n_users": 10**7, "n_items": 10**6}, "n_users=10000000, n_items=1000000, n_segments=4: the environment"),
        ({"data": "ratings.csv"}, "data must be a RatingData"),
    ],
)
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        make(**kwargs)


def test_bad_data_dir(tmp_path):
    with pytest.raises(ValueError, match=r"data_dir=.* is not an existing folder"):
        gym.make(ENV_ID, data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match=r"data_dir=.* holds no MovieLens ratings"):
        gym.make(ENV_ID, data_dir=str(tmp_path))
    write_ml100k(tmp_path)  # ratings and movies, but no u.user
    with pytest.raises(ValueError, match=r"data_dir=.* holds no u.user"):
        gym.make(ENV_ID, data_dir=str(tmp_path))
    write_users(tmp_path)
    with pytest.raises(ValueError, match="n_users applies to the synthetic world only"):
        gym.make(ENV_ID, data_dir=str(tmp_path), n_users=10)
    with pytest.raises(ValueError, match="data and data_dir"):
        gym.make(ENV_ID, data_dir=str(tmp_path), data=RatingData(**_custom()))


# -- perf cases (structure only, never timings) ---------------------------------------------


def test_perf_cases_on_a_tiny_folder_and_without_data(tmp_path, monkeypatch):
    from agents.bench import perf_selection_env
    from agents.bench.perf import run_perf

    cases = ["selection_env", "selection_refit"]
    monkeypatch.setattr(perf_selection_env, "DATA_DIR", tmp_path / "absent")
    report = run_perf(quick=True, cases=cases)
    for name in cases:
        assert report["cases"][name]["rows"] == [] and "not found" in report["cases"][name]["skipped"]
    write_ml100k(tmp_path)
    write_users(tmp_path)
    monkeypatch.setattr(perf_selection_env, "DATA_DIR", tmp_path)
    monkeypatch.setattr(perf_selection_env, "ENV_KWARGS", {"n_epochs": 3})
    report = run_perf(quick=True, cases=cases)
    assert report["cases"]["selection_env"]["requests_per_s"] > 0
    refit = report["cases"]["selection_refit"]["refit_ms"]
    assert set(refit) == {"popularity", "item-cf", "user-cf", "mf"} and min(refit.values()) > 0
    assert all(row["value"] > 0 for name in cases for row in report["cases"][name]["rows"])


def test_the_default_env_needs_only_numpy_and_gymnasium():
    import subprocess
    import sys

    code = (
        "import sys, gymnasium as gym, twostage_gym\n"
        f"env = gym.make({ENV_ID!r}, n_users=50, n_items=100)\n"
        "env.reset(seed=0); env.step(0)\n"
        "print(sorted(m for m in ('scipy', 'sklearn', 'torch') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
