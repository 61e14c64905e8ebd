"""Learners of the nominator family: behaviour, arguments, and that they never read oracle info."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import agents
from agents.nominators.two_stage import TwoStageAgent
from twostage_gym.core import ORACLE_INFO_KEYS, public_info

SINGLE_STAGE = {"ucb", "greedy", "pg"}


def env_for(name: str, **kwargs) -> gym.Env:
    if name in SINGLE_STAGE:
        kwargs.setdefault("n_nominators", 1)
    return gym.make("TwoStage/Nominators-v0", n_items=30, dim=6, misspecification=2, **kwargs)


@pytest.mark.parametrize("name", agents.names("nominators"))
def test_agent_ignores_oracle_info_keys(name):
    """Actions are identical whether update() sees public info or info with garbage oracle keys."""
    runs = []
    for poison in (False, True):
        env = env_for(name)
        agent = agents.make(name, env)
        obs, _ = env.reset(seed=0)
        agent.reset(0)
        actions = []
        for _ in range(60):
            action = agent.act(obs)
            next_obs, reward, _, _, info = env.step(action)
            seen = public_info(info)
            if poison:
                seen.update({k: np.float64(np.nan) for k in ORACLE_INFO_KEYS})
            agent.update(obs, action, reward, seen)
            actions.append(np.asarray(action).copy())
            obs = next_obs
        runs.append(np.array(actions))
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.parametrize("name", agents.names("nominators"))
def test_evaluate_record_schema_and_determinism(name):
    env = env_for(name)
    a = agents.evaluate(agents.make(name, env), env, steps=120, seed=3)
    b = agents.evaluate(agents.make(name, env), env, steps=120, seed=3)
    assert set(agents.RECORD_KEYS) <= set(a)
    for key in ("cumulative_reward", "cumulative_regret", "nominator_regret", "ranker_regret"):
        assert a[key] == b[key]
    assert a["cumulative_regret"] == pytest.approx(a["nominator_regret"] + a["ranker_regret"])
    assert a["curve"]["steps"][-1] == 120 and a["curve"]["regret"][-1] == a["cumulative_regret"]
    assert np.all(np.diff(a["curve"]["regret"]) >= 0)


def test_oracle_has_zero_regret():
    for env_id in ("TwoStage/Nominators-v0", "TwoStage/Nominators-Prop2A-v0", "TwoStage/Nominators-Prop2B-v0"):
        env = gym.make(env_id)
        record = agents.evaluate(agents.make("oracle", env), env, steps=500, seed=0)
        assert record["cumulative_regret"] == 0.0


def test_learners_beat_random():
    env = gym.make("TwoStage/Nominators-v0")
    regret = {
        name: np.mean([agents.evaluate(agents.make(name, env), env, 500, s)["cumulative_regret"] for s in range(3)])
        for name in ("ucb+ucb", "greedy+greedy", "random")
    }
    assert regret["ucb+ucb"] < 0.2 * regret["random"]
    assert regret["greedy+greedy"] < 0.2 * regret["random"]


def test_evaluate_continues_across_truncation():
    env = gym.make("TwoStage/Nominators-v0", max_episode_steps=100)
    record = agents.evaluate(agents.make("ucb+ucb", env), env, steps=350, seed=0)
    assert record["steps"] == 350 and record["curve"]["steps"][-1] == 350


def test_nominators_use_only_their_features_and_pools():
    """Changing features a nominator cannot see, or items outside its pool, leaves its nomination alone."""
    env = env_for("ucb+ucb", n_nominators=3)
    agent = agents.make("ucb+ucb", env)
    agents.evaluate(agent, env, steps=200, seed=0)  # learn something first
    obs, _ = env.reset()
    base = agent.act(obs)
    feats, pools = env.unwrapped.feature_subsets, env.unwrapped.pools
    for n in range(3):
        changed = obs.copy()
        hidden = np.setdiff1d(np.arange(obs.shape[1]), feats[n])
        changed[:, hidden] += 100.0 * np.random.default_rng(n).standard_normal((obs.shape[0], hidden.size))
        others = np.setdiff1d(np.arange(obs.shape[0]), pools[n])
        changed[others] = -changed[others]
        agent._cache = None
        assert agent.act(changed)[n] == base[n]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("all", [1.0, 1.0, 1.0]), ("own", [1.0, 0.0, 1.0]), ("own-selected", [1.0, 0.0, 0.0])],
)
def test_nominator_training_weights(mode, expected):
    """Item 0 is in pools 0 and 2, but only nominator 0 nominated it: Eq. 4 weights per mode."""
    env = gym.make("TwoStage/Nominators-v0", n_items=4, dim=2, n_nominators=3, pools=[[0, 1], [2, 3], [0, 3]])
    agent = agents.make("ucb+ucb", env, nominator_training=mode)
    obs, _ = env.reset(seed=0)
    agent.reset(0)
    action = np.array([0, 0, 1, 0])  # nominations: item 0, item 2, item 3; serve nominator 0's item 0
    before = agent._nominator_stage.ridge.b.copy()
    agent.update(obs, action, 1.0, {})
    changed = (np.abs(agent._nominator_stage.ridge.b - before).sum(axis=1) > 0).astype(float)
    assert changed.tolist() == expected


def test_pg_nominations_follow_the_softmax():
    env = gym.make("TwoStage/Nominators-v0", n_items=3, dim=2, n_nominators=1)
    agent = agents.make("pg", env)
    obs, _ = env.reset(seed=0)
    agent.reset(0)
    agent._nominator_stage.theta[:] = [[1.0, -0.5]]
    X = obs[agent.pool_items[0]][:, agent.features[0]]
    logits = X @ np.array([1.0, -0.5])
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    counts = np.zeros(3)
    for _ in range(6000):
        agent._cache = None
        counts[agent.act(obs)[0]] += 1
    chi2 = (((counts - 6000 * probs) ** 2) / (6000 * probs)).sum()
    assert chi2 < 13.8  # chi-square, 2 degrees of freedom, p = 0.001


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("ucb+ucb", {"alpha": -1.0}, "alpha"),
        ("ucb+ucb", {"lam": 0.0}, "lam"),
        ("ucb+pg", {"lr": float("inf")}, "lr"),
        ("ucb+ucb", {"nominator_training": "mine"}, "nominator_training"),
        ("greedy+greedy", {"alpha": 0.1}, "no stage"),
        ("ucb+greedy", {"nominator_alpha": 0.1}, "nominator_alpha"),
        ("ucb+ucb", {"beta": 1}, "beta"),
        ("ucb", {}, "n_nominators=1"),
        ("ucb-ucb", {}, "unknown agent"),
        # A kwarg the system would not use is refused, and one the name fixes too.
        ("ucb+ucb", {"lr": 0.5}, "lr is the policy-gradient learning rate; ucb\\+ucb has no PG stage"),
        ("pg+pg", {"lam": 0.5}, "lam is the ridge regulariser of UCB and Greedy stages; pg\\+pg has none"),
        ("ucb+ucb", {"ranker": "pg", "nominator": "greedy"}, "agent 'ucb\\+ucb' fixes ranker='ucb', nominator='ucb'"),
        ("random", {"alpha": 1.0}, "agent 'random': .*'alpha'"),
    ],
)
def test_invalid_agent_arguments(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        agents.make(name, gym.make("TwoStage/Nominators-v0"), **kwargs)


def test_agents_need_a_nominators_env():
    with pytest.raises(ValueError, match="Nominators"):
        agents.make("ucb+ucb", gym.make("CartPole-v1"))


def test_stage_alphas():
    env = gym.make("TwoStage/Nominators-v0")
    agent = agents.make("ucb+ucb", env, alpha=2.0, nominator_alpha=0.5)
    assert (agent.ranker_alpha, agent.nominator_alpha) == (2.0, 0.5)
    agent = agents.make("ucb+greedy", env)
    assert agent.ranker_alpha == 1e-2 and agent.lam == 1e-2
    assert isinstance(agent, TwoStageAgent)


def test_registry_names_follow_the_paper():
    expected = {"ucb+ucb", "ucb+greedy", "greedy+greedy", "ucb+pg", "pg+pg", "ucb", "greedy", "pg", "random", "oracle"}
    assert expected <= set(agents.names())
