"""Nominators-v0 specifics: Appendix B allocation, the reward model, argument checks, Proposition 2."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from twostage_gym.core import random_feature_subsets, random_pools, validate_pools
from twostage_gym.core.prop2 import (
    PROP2_BANDIT_MEANS,
    PROP2_BANDIT_X,
    bandit_limits,
    nominator_limit,
    supervised_eq5,
    supervised_eq6,
)


@pytest.mark.parametrize(("n_items", "n_nominators"), [(100, 5), (103, 5), (10, 3), (7, 7), (5, 1)])
def test_random_pools_follow_appendix_b(n_items, n_nominators):
    pools = random_pools(n_items, n_nominators, np.random.default_rng(0))
    size, extra = divmod(n_items, n_nominators)
    assert [len(p) for p in pools] == [size + (n < extra) for n in range(n_nominators)]
    items = np.concatenate(pools)
    assert sorted(items.tolist()) == list(range(n_items))  # disjoint and covering


def test_random_pools_are_a_random_split():
    a = random_pools(100, 5, np.random.default_rng(0))
    b = random_pools(100, 5, np.random.default_rng(1))
    assert not all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], np.arange(20))


@pytest.mark.parametrize(("dim", "n_nominators", "s"), [(20, 5, 4), (20, 5, 2), (20, 5, 10), (20, 5, 20), (7, 3, 5)])
def test_random_feature_subsets_follow_appendix_b(dim, n_nominators, s):
    subsets = random_feature_subsets(dim, n_nominators, s, np.random.default_rng(0))
    assert subsets.shape == (n_nominators, s)
    for row in subsets:
        assert len(set(row.tolist())) == s and row.min() >= 0 and row.max() < dim
    base = min(s, dim // n_nominators)
    if base == s:  # no top-up: the subsets are blocks of one permutation, hence disjoint
        assert len(set(subsets.ravel().tolist())) == n_nominators * s
    else:  # each subset holds its own block of `base` features, disjoint from the other blocks
        union = set().union(*map(set, subsets.tolist()))
        assert len(union) >= n_nominators * base


@pytest.mark.parametrize(
    ("pools", "match"),
    [
        ([[0, 1], [2]], "cover every item"),
        ([[0, 1, 2, 3], []], "non-empty"),
        ([[0, 1, 2], [3, 4]], "outside"),
        ([[0, 0, 1], [2, 3]], "twice"),
        ([[0, 1, 2, 3]], "n_nominators=2"),
        ([[0.0, 1.0], [2.0, 3.0]], "integer"),
    ],
)
def test_validate_pools_rejects(pools, match):
    with pytest.raises(ValueError, match=match):
        validate_pools(pools, n_items=4, n_nominators=2)


def test_overlapping_explicit_pools_are_allowed():
    env = gym.make("TwoStage/Nominators-v0", n_items=4, dim=2, n_nominators=2, pools=[[0, 1, 2], [2, 3]])
    env.reset(seed=0)
    assert [p.tolist() for p in env.unwrapped.pools] == [[0, 1, 2], [2, 3]]
    assert env.action_space.nvec.tolist() == [3, 2, 2]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_items": 3, "n_nominators": 5}, "n_nominators"),
        ({"nominator_dim": 21}, "nominator_dim"),
        ({"nominator_dim": 0}, "nominator_dim"),
        ({"noise_std": -0.1}, "noise_std"),
        ({"noise_std": float("nan")}, "noise_std"),
        ({"misspecification": 0.5}, "misspecification"),
        ({"misspecification": 2, "nominator_dim": 5}, "at most one"),
        ({"n_items": 4, "n_nominators": 2, "pools": [[0, 1], [2]]}, "cover every item"),
        ({"n_items": 0}, "n_items"),
        ({"dim": 2.5}, "dim"),
        ({"context_model": "prop2"}, "n_items=4"),
        ({"context_model": "uniform"}, "context_model"),
        ({"reward_noise": "poisson"}, "reward_noise"),
        ({"feature_subsets": [[0, 1]] * 4}, "n_nominators=5"),
        ({"feature_subsets": [[0, 1]] * 4 + [[0]]}, "one size"),
        ({"feature_subsets": [[0, 25]] * 5}, "outside"),
        ({"render_mode": "human"}, "render_mode"),
    ],
)
def test_invalid_arguments_raise_at_make(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make("TwoStage/Nominators-v0", **kwargs)


def test_misspecification_sets_nominator_dim():
    assert gym.make("TwoStage/Nominators-v0", dim=20, misspecification=3).unwrapped.nominator_dim == 6
    assert gym.make("TwoStage/Nominators-v0", dim=20).unwrapped.nominator_dim == 20
    env = gym.make("TwoStage/Nominators-v0", dim=20, nominator_dim=4)
    env.reset(seed=0)
    assert env.unwrapped.feature_subsets.shape == (5, 4)


def test_linear_reward_model():
    env = gym.make("TwoStage/Nominators-v0", noise_std=0.0)
    obs, _ = env.reset(seed=0)
    theta = env.unwrapped.instance.reward.theta
    assert np.linalg.norm(theta) == pytest.approx(1.0, abs=1e-12)
    action = env.action_space.sample()
    chosen_row = obs[env.unwrapped.pools[int(action[-1])][action[int(action[-1])]]]
    _, reward, _, _, info = env.step(action)
    assert reward == info["expected_reward"]  # no noise: the observed reward is f*
    assert info["expected_reward"] == pytest.approx(float(chosen_row.astype(np.float64) @ theta), abs=1e-5)
    assert info["optimal_expected_reward"] == pytest.approx(float((obs @ theta).max()), abs=1e-5)


def test_noise_std_is_the_reward_spread():
    env = gym.make("TwoStage/Nominators-v0", noise_std=0.5, max_episode_steps=None)
    env.reset(seed=0)
    residuals = []
    for _ in range(4000):
        _, reward, _, _, info = env.step(env.action_space.sample())
        residuals.append(reward - info["expected_reward"])
    assert np.std(residuals) == pytest.approx(0.5, rel=0.05)
    assert abs(np.mean(residuals)) < 0.05


def test_contexts_are_standard_normal():
    env = gym.make("TwoStage/Nominators-v0")
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (100, 20)
    assert abs(obs.mean()) < 0.05 and obs.std() == pytest.approx(1.0, rel=0.05)


def test_unseeded_reset_keeps_instance_seeded_reset_redraws():
    env = gym.make("TwoStage/Nominators-v0")
    env.reset(seed=0)
    pools0 = [p.copy() for p in env.unwrapped.pools]
    theta0 = env.unwrapped.instance.reward.theta.copy()
    env.reset()
    assert all(np.array_equal(a, b) for a, b in zip(pools0, env.unwrapped.pools, strict=True))
    np.testing.assert_array_equal(theta0, env.unwrapped.instance.reward.theta)
    env.reset(seed=1)
    assert not np.array_equal(theta0, env.unwrapped.instance.reward.theta)


def test_structure_before_reset_is_an_error():
    with pytest.raises(RuntimeError, match="reset"):
        _ = gym.make("TwoStage/Nominators-v0").unwrapped.pools


def test_single_stage_has_no_ranker_regret():
    env = gym.make("TwoStage/Nominators-v0", n_nominators=1, misspecification=2)
    env.reset(seed=0)
    assert env.unwrapped.pools[0].tolist() == list(range(100))
    assert env.action_space.nvec.tolist() == [100, 1]
    for _ in range(20):
        *_, info = env.step(env.action_space.sample())
        assert info["ranker_regret"] == 0.0 and info["regret"] == info["nominator_regret"]


def test_candidates_and_chosen_item_match_the_action():
    env = gym.make("TwoStage/Nominators-v0", n_items=10, n_nominators=3)
    env.reset(seed=0)
    pools = env.unwrapped.pools
    action = np.array([1, 0, 2, 2])
    *_, info = env.step(action)
    assert info["candidates"].tolist() == [pools[0][1], pools[1][0], pools[2][2]]
    assert info["chosen_item"] == pools[2][2]


# -- Proposition 2 ---------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["TwoStage/Nominators-Prop2A-v0", "TwoStage/Nominators-Prop2B-v0"])
def test_prop2_contexts_and_rewards(env_id):
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    theta = env.unwrapped.instance.reward.theta
    np.testing.assert_allclose(PROP2_BANDIT_X @ theta, PROP2_BANDIT_MEANS, atol=1e-12)
    assert env.unwrapped.feature_subsets.tolist() == [[2, 3]] * 3
    seen = set()
    for _ in range(200):
        j = int(np.flatnonzero(np.abs(obs).sum(axis=1))[0])
        seen.add(j)
        np.testing.assert_array_equal(obs[j], PROP2_BANDIT_X[j])
        assert np.count_nonzero(np.abs(obs).sum(axis=1)) == 1
        obs, reward, _, _, _ = env.step(env.action_space.sample())
        assert reward in (0.0, 1.0)
    assert seen == {0, 1, 2, 3}


def test_prop2_bernoulli_rewards_have_the_stated_means():
    env = gym.make("TwoStage/Nominators-Prop2A-v0", max_episode_steps=None)
    obs, _ = env.reset(seed=0)
    rewards = {j: [] for j in range(4)}
    oracle_action = {0: [0, 0, 0, 0], 1: [0, 0, 0, 2], 2: [0, 1, 0, 1], 3: [0, 2, 0, 1]}
    for _ in range(8000):
        j = int(np.flatnonzero(np.abs(obs).sum(axis=1))[0])
        obs, reward, _, _, info = env.step(np.array(oracle_action[j]))
        assert info["regret"] == 0.0
        rewards[j].append(reward)
    for j in range(4):
        assert np.mean(rewards[j]) == pytest.approx(PROP2_BANDIT_MEANS[j], abs=0.04)


def test_prop2_supervised_constructions_match_least_squares():
    for construction in (supervised_eq5(), supervised_eq6()):
        n = len(construction.mean_rewards)
        own = np.isin(np.arange(n), construction.pool).astype(float)
        np.testing.assert_allclose(
            nominator_limit(construction.X, construction.mean_rewards, np.ones(n)), construction.limit_all
        )
        np.testing.assert_allclose(
            nominator_limit(construction.X, construction.mean_rewards, own), construction.limit_own
        )


def test_prop2_supervised_picks_as_the_paper_says():
    eq5, eq6 = supervised_eq5(), supervised_eq6()
    # Eq. 5: 'own' identifies the optimal a3; 'all' proposes a2.
    assert eq5.optimal_item == 2 and eq5.pick(eq5.limit_own) == 2 and eq5.pick(eq5.limit_all) == 1
    # Eq. 6: 'all' identifies the optimal a2; 'own' proposes a3.
    assert eq6.optimal_item == 1 and eq6.pick(eq6.limit_all) == 1 and eq6.pick(eq6.limit_own) == 2


def test_prop2_bandit_limits_are_the_papers():
    limits = bandit_limits()
    assert limits["own"][1] == pytest.approx(1 / 16)
    assert limits["all"][1] == pytest.approx(-5 / 24)
