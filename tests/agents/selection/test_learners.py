"""The selection learners: they play a linear bandit, the contextual ones beat random there, seeds
reproduce, no learner reads info, and bad arguments are refused by name."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import agents
from agents.common.registry import registry
from agents.selection.staged import design_probabilities
from tests.agents.selection.linear_world import LinearSelectionEnv

NAMES = agents.names("selection")
CONTEXTUAL = ("linucb", "lin-ts", "d-optimal", "d-optimal-bayes", "d-optimal-ts", "uniform-explore")
SMALL = {"n_users": 40, "n_items": 120, "n_epochs": 3}


def build(name: str, env: gym.Env, **kwargs):
    """The registered learner ``name`` on ``env`` (also on the test world, which no family plays)."""
    spec = registry[("selection", name)]
    return spec.factory(env, **spec.defaults, **kwargs)


def regret(name: str, seed: int, steps: int = 1500) -> float:
    env = LinearSelectionEnv()
    return agents.evaluate(build(name, env), env, steps=steps, seed=seed)["cumulative_regret"]


def test_the_family_is_registered():
    assert set(NAMES) == {
        "random", "epsilon-greedy", "mab-ts", "linucb", "lin-ts", "d-optimal", "d-optimal-bayes",
        "d-optimal-ts", "d-optimal-nocontext", "uniform-explore",
    }  # fmt: skip
    env = gym.make("TwoStage/RecommenderSelection-v0", **SMALL)
    assert agents.family_of(env) == "selection"


@pytest.mark.parametrize("seed", [0, 1])
def test_contextual_learners_beat_random_on_a_linear_bandit(seed):
    # Measured (1,500 rounds, seeds 0-4): random 220-308; the contextual learners 33-124; the
    # context-free ones (no recommender is best on average here) 183-321.
    base = regret("random", seed)
    ours = {name: regret(name, seed) for name in (*CONTEXTUAL, "d-optimal-nocontext")}
    for name in CONTEXTUAL:
        assert ours[name] < 0.6 * base, (name, ours[name], base)
    assert ours["d-optimal-nocontext"] > 2 * ours["d-optimal"]  # the user context is what pays here


@pytest.mark.parametrize("name", NAMES)
def test_every_learner_plays_the_env_and_reproduces_its_seed(name):
    env = gym.make("TwoStage/RecommenderSelection-v0", **SMALL)
    steps = env.unwrapped.episode_steps
    first = agents.evaluate(agents.make(name, env), env, steps=steps, seed=3)
    again = agents.evaluate(agents.make(name, env), env, steps=steps, seed=3)
    assert first["cumulative_reward"] == again["cumulative_reward"]
    assert first["curve"]["regret"] == again["curve"]["regret"]
    assert 0 <= first["cumulative_regret"] <= steps


@pytest.mark.parametrize("name", NAMES)
def test_learners_read_no_info(name):
    # The same actions whether update gets the step's info or nothing at all.
    actions = []
    for strip in (False, True):
        env = LinearSelectionEnv()
        agent = build(name, env, **({"explore_rounds": 20, "exploit_rounds": 30} if "d-opt" in name else {}))
        obs, _ = env.reset(seed=5)
        agent.reset(5)
        played = []
        for _ in range(120):
            a = agent.act(obs)
            next_obs, reward, _, _, info = env.step(a)
            agent.update(obs, a, reward, {} if strip else info)
            obs = next_obs
            played.append(a)
        actions.append(played)
    assert actions[0] == actions[1]


def test_stages_explore_then_exploit():
    env = LinearSelectionEnv()
    agent = build("d-optimal", env, explore_rounds=3, exploit_rounds=2)
    obs, _ = env.reset(seed=0)
    agent.reset(0)
    phases = []
    for _ in range(10):
        phases.append(agent.exploring)
        a = agent.act(obs)
        obs2, r, *_ = env.step(a)
        agent.update(obs, a, r, {})
        obs = obs2
    assert phases == [True, True, True, False, False] * 2
    assert agent.stages == 2


def test_duplicated_recommenders_share_their_exploration():
    # Xu et al.'s Example 1: two recommenders with the same output together get the probability
    # one of them would get alone.
    rng = np.random.default_rng(0)
    Phi = rng.standard_normal((3, 8))
    prior_inv = np.eye(8) / 0.5
    alone = design_probabilities(Phi, prior_inv, eps=1e-8)
    twice = design_probabilities(np.vstack([Phi, Phi[2]]), prior_inv, eps=1e-8)
    np.testing.assert_allclose(twice[:2], alone[:2], atol=1e-4)
    assert twice[2] + twice[3] == pytest.approx(alone[2], abs=1e-4)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("d-optimal", {"lam": 1.0}, "lam"),
        ("d-optimal", {"v": 0.5}, "v:"),
        ("uniform-explore", {"eps": 0.1}, "eps"),
        ("d-optimal-bayes", {"lam": -1.0}, "lam"),
        ("d-optimal-ts", {"v": 0.0}, "v must be"),
        ("d-optimal", {"explore_rounds": 0}, "explore_rounds"),
        ("d-optimal", {"exploit_rounds": 1.5}, "exploit_rounds"),
        ("d-optimal", {"reg": 0.0}, "reg"),
        ("d-optimal", {"eps": 2.0}, "eps"),
        ("linucb", {"alpha": -1.0}, "alpha"),
        ("lin-ts", {"interactions": 1}, "interactions"),
        ("epsilon-greedy", {"epsilon": 1.5}, "epsilon"),
        ("mab-ts", {"prior_alpha": 0}, "prior_alpha"),
        ("d-optimal", {"design": "history"}, "fixes"),
        ("random", {"alpha": 1.0}, "alpha"),
    ],
)
def test_bad_arguments_are_refused_by_name(name, kwargs, match):
    env = gym.make("TwoStage/RecommenderSelection-v0", **SMALL)
    with pytest.raises(ValueError, match=match):
        agents.make(name, env, **kwargs)


def test_bad_actions_in_update_are_refused():
    env = LinearSelectionEnv()
    agent = build("linucb", env)
    obs, _ = env.reset(seed=0)
    agent.reset(0)
    with pytest.raises(ValueError, match="action must be"):
        agent.update(obs, 4, 1.0, {})
    with pytest.raises(ValueError, match="observation must be"):
        agent.act(obs[:2])
