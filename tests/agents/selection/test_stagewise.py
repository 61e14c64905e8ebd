"""The stage-wise learners against Xu et al.'s Algs. 3 and 4: exploitation serves the model refitted
when the stage's exploration ends (not the per-round model), Thompson exploitation draws around that
refit, and the no-context ablation is blind to the user features."""

from __future__ import annotations

import numpy as np

from agents.common.registry import registry
from tests.agents.selection.linear_world import LinearSelectionEnv


def build(name: str, env, **kwargs):
    spec = registry[("selection", name)]
    return spec.factory(env, **spec.defaults, **kwargs)


def play(agent, env, rounds: int, obs=None, seed: int = 0):
    """``rounds`` rounds of ``agent`` on ``env`` (from a reset unless ``obs`` continues an episode)."""
    if obs is None:
        obs, _ = env.reset(seed=seed)
        agent.reset(seed)
    for _ in range(rounds):
        a = agent.act(obs)
        next_obs, r, *_ = env.step(a)
        agent.update(obs, a, r, {})
        obs = next_obs
    return obs


def test_exploitation_serves_the_refit_of_the_stage():
    env = LinearSelectionEnv()
    agent = build("d-optimal", env, explore_rounds=20, exploit_rounds=30)
    obs = play(agent, env, 20)  # the first stage's exploration ends: the back-end refit
    refit = agent.model.theta[0].copy()
    np.testing.assert_array_equal(agent.theta, refit)
    obs = play(agent, env, 10, obs)
    # The model takes every observation, but the exploitation rounds keep the stage's refit.
    assert not agent.exploring and not np.allclose(agent.model.theta[0], refit)
    np.testing.assert_array_equal(agent.theta, refit)
    scores = agent.features(obs) @ refit
    if np.sum(scores >= scores.max()) == 1:  # no tie: the action is the refit's argmax
        assert agent.act(obs) == int(np.argmax(scores))
    play(agent, env, 40, obs)  # rounds 50-69 explore in stage 2; its refit comes at round 70
    assert agent.stages == 1 and not agent.exploring
    np.testing.assert_array_equal(agent.theta, agent.model.theta[0])
    assert not np.allclose(agent.theta, refit)


def test_thompson_exploitation_draws_around_the_refit():
    env = LinearSelectionEnv()
    agent = build("d-optimal-ts", env, explore_rounds=30, exploit_rounds=1000, v=1e-6)
    obs = play(agent, env, 30)
    scores = agent.features(obs) @ agent.theta
    if np.sum(scores >= scores.max() - 1e-3) == 1:  # a vanishing posterior scale: the refit's argmax
        assert all(agent.act(obs) == int(np.argmax(scores)) for _ in range(5))
    wide = build("d-optimal-ts", env, explore_rounds=30, exploit_rounds=1000, v=50.0)
    obs = play(wide, env, 30)
    assert len({wide.act(obs) for _ in range(40)}) > 1  # a wide posterior explores


def test_nocontext_ignores_the_user_features():
    env = LinearSelectionEnv()
    agent = build("d-optimal-nocontext", env)
    contextual = build("d-optimal", env)
    obs, _ = env.reset(seed=3)
    other = obs.copy()
    other[:, env.feature_slices["user"]] = -obs[:, env.feature_slices["user"]] + 1.0
    np.testing.assert_array_equal(agent.features(obs), agent.features(other))
    assert not np.array_equal(contextual.features(obs), contextual.features(other))
    assert agent.features.dim == env.n_item + env.k
    # The same draws and rewards give the same actions whatever the users are.
    a = build("d-optimal-nocontext", env, explore_rounds=5, exploit_rounds=5)
    b = build("d-optimal-nocontext", env, explore_rounds=5, exploit_rounds=5)
    a.reset(1)
    b.reset(1)
    rng = np.random.default_rng(0)
    for _ in range(30):
        o, _, *_ = env.step(0)
        flipped = o.copy()
        flipped[:, env.feature_slices["user"]] = rng.standard_normal((env.k, env.n_user))
        act_a, act_b = a.act(o), b.act(flipped)
        assert act_a == act_b
        r = float(rng.random() < 0.5)
        a.update(o, act_a, r, {})
        b.update(flipped, act_b, r, {})
