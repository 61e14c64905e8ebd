"""Conformance harness, parametrised over every registered id: a new env gets it by registering."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence

import twostage_gym

# Contexts are Gaussian, hence unbounded; the Box says so honestly and gymnasium warns about it.
# SB3 warns that a 2-D (items x features) observation is not an image nor a vector; its
# MlpPolicy flattens it, so PPO and A2C take it as is. A Dict observation's 2-D entry (the tree's
# candidate features) gets the same warning with the key's name, and MultiInputPolicy takes it.
# Scores-as-actions (ESR logits) are a Box whose scale means something (it sets how greedy the
# Plackett-Luce sampling is), so it is not normalised to [-1, 1]; both checkers recommend that.
EXPECTED_WARNINGS = (
    "A Box observation space minimum value is -infinity",
    "A Box observation space maximum value is infinity",
    "has an unconventional shape",
    "For Box action spaces, we recommend using a symmetric and normalized space",
    "We recommend you to use a symmetric and normalized Box action space",
)


def _unexpected(records) -> list[str]:
    return [str(w.message) for w in records if not any(e in str(w.message) for e in EXPECTED_WARNINGS)]


def rollout(env: gym.Env, seed: int, steps: int, action_seed: int = 0) -> list:
    """(obs, reward, terminated, truncated, info) for ``steps`` seeded random actions."""
    env.action_space.seed(action_seed)
    out = [env.reset(seed=seed)]
    for _ in range(steps):
        out.append(env.step(env.action_space.sample()))
    return out


def test_registered_with_horizon(env_id):
    spec = gym.spec(env_id)
    assert spec.max_episode_steps is not None and spec.max_episode_steps > 0
    assert gym.spec(f"twostage_gym:{env_id}".split(":")[1]) is spec
    env = gym.make(f"twostage_gym:{env_id}")
    assert env.spec.id == env_id


def test_gymnasium_check_env(env_id):
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        check_env(gym.make(env_id).unwrapped, skip_render_check=False)
    assert _unexpected(records) == []


def test_sb3_check_env(env_id):
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        sb3_checker.check_env(gym.make(env_id), warn=True)
    assert _unexpected(records) == []


def test_same_seed_same_rollout(env_id):
    a = rollout(gym.make(env_id), seed=3, steps=30)
    b = rollout(gym.make(env_id), seed=3, steps=30)
    assert data_equivalence(a, b, exact=True)
    c = rollout(gym.make(env_id), seed=4, steps=30)
    assert not data_equivalence(a, c)


def test_contexts_do_not_depend_on_actions(env_id):
    """Common random numbers: two agents on one seed face the same stream of users."""
    a = rollout(gym.make(env_id), seed=5, steps=20, action_seed=1)
    b = rollout(gym.make(env_id), seed=5, steps=20, action_seed=2)
    # An env whose observation also holds what the agent chose (e.g. the candidates of a second
    # phase) says which part is the user's context: ``context_observation(obs)``.
    context = getattr(gym.make(env_id).unwrapped, "context_observation", lambda obs: obs)
    for x, y in zip(a[1:], b[1:], strict=True):
        np.testing.assert_array_equal(context(x[0]), context(y[0]))


def test_pickle_roundtrip_continues_identically(env_id):
    env = gym.make(env_id)
    rollout(env, seed=1, steps=5)
    clone = pickle.loads(pickle.dumps(env))
    action = env.action_space.sample()
    assert data_equivalence(env.step(action), clone.step(action), exact=True)


def bad_actions_for(space: gym.Space) -> dict[str, tuple[np.ndarray, str]]:
    """Actions outside ``space``, each with the regex its ValueError must match."""
    if isinstance(space, gym.spaces.MultiDiscrete):
        nvec = space.nvec
        first = np.arange(len(nvec)) == 0
        last = np.arange(len(nvec)) == len(nvec) - 1
        return {
            "wrong shape": (np.zeros(len(nvec) + 1, dtype=np.int64), "shape"),
            "wrong dtype": (np.zeros(len(nvec), dtype=np.float32), "integers"),
            "above first bound": (np.where(first, nvec[0], 0), "outside"),
            "above last bound": (np.where(last, nvec[-1], 0), "outside"),
            "negative": (np.full(len(nvec), -1), "outside"),
        }
    if isinstance(space, gym.spaces.Discrete):
        n, start = int(space.n), int(space.start)
        return {
            "above bound": (np.int64(start + n), "outside"),
            "negative": (np.int64(start - 1), "outside"),
            "float": (np.float64(start), "integer"),
            "wrong shape": (np.full(1, start, dtype=np.int64), "integer"),
        }
    if isinstance(space, gym.spaces.Box):
        zeros = np.zeros(space.shape, dtype=space.dtype)
        first = np.zeros(space.shape, dtype=bool)
        first.flat[0] = True
        bad = {
            "NaN": (np.where(first, np.nan, zeros).astype(space.dtype), "finite"),
            "inf": (np.where(first, np.inf, zeros).astype(space.dtype), "finite"),
            "-inf": (np.where(first, -np.inf, zeros).astype(space.dtype), "finite"),
            "wrong shape": (np.zeros((*space.shape, 1), dtype=space.dtype), "shape"),
            "wrong dtype": (np.zeros(space.shape, dtype=np.float64), "dtype"),
        }
        if np.isfinite(space.high).all():
            above = np.nextafter(space.high, np.inf).astype(space.dtype)
            bad["above high"] = (np.where(first, above, zeros).astype(space.dtype), "outside")
        if np.isfinite(space.low).all():
            below = np.nextafter(space.low, -np.inf).astype(space.dtype)
            bad["below low"] = (np.where(first, below, zeros).astype(space.dtype), "outside")
        return bad
    pytest.fail(f"the harness has no bad actions for {type(space).__name__} yet; add them here")


def test_bad_actions_rejected_state_unchanged(env_id):
    env, ref = gym.make(env_id), gym.make(env_id)
    env.reset(seed=2)
    ref.reset(seed=2)
    for _, (action, pattern) in bad_actions_for(env.action_space).items():
        with pytest.raises(ValueError, match=pattern):
            env.step(action)
    good = env.action_space.sample()
    assert data_equivalence(env.step(good), ref.step(good), exact=True)


def test_render_ansi(env_id):
    env = gym.make(env_id, render_mode="ansi")
    env.reset(seed=0)
    assert "no item served" in env.render()
    env.step(env.action_space.sample())
    text = env.render()
    assert "served item" in text and "regret" in text


@pytest.mark.parametrize("num_envs", [1, 3])
def test_native_vector_env_equals_sync(env_id, num_envs):
    spec = gym.spec(env_id)
    if spec.vector_entry_point is None:
        pytest.skip("no native vector env")
    steps = 25
    native = gym.make_vec(env_id, num_envs, vectorization_mode="vector_entry_point", max_episode_steps=10)
    sync = gym.make_vec(env_id, num_envs, vectorization_mode="sync", max_episode_steps=10)
    native.action_space.seed(0)
    assert data_equivalence(native.reset(seed=11), sync.reset(seed=11), exact=True)
    for _ in range(steps):  # crosses two truncations and autoresets
        action = native.action_space.sample()
        assert data_equivalence(native.step(action), sync.step(action), exact=True)


def test_native_vector_env_rejects_bad_actions(env_id):
    if gym.spec(env_id).vector_entry_point is None:
        pytest.skip("no native vector env")
    env = gym.make_vec(env_id, 2, vectorization_mode="vector_entry_point")
    ref = gym.make_vec(env_id, 2, vectorization_mode="vector_entry_point")
    env.reset(seed=0)
    ref.reset(seed=0)
    space = env.single_action_space
    space.seed(0)
    good = space.sample()
    checked = 0
    for action, pattern in bad_actions_for(space).values():
        if action.shape != good.shape or action.dtype != good.dtype:
            continue  # a batch has one shape and dtype; those rules are checked on the whole batch below
        with pytest.raises(ValueError, match=f"sub-env 1: .*{pattern}"):
            env.step(np.stack([good, action]))
        checked += 1
    assert checked > 0
    with pytest.raises(ValueError, match="shape"):
        env.step(np.stack([good, good, good]))
    batch = np.stack([good, good])
    assert data_equivalence(env.step(batch), ref.step(batch), exact=True)


def test_info_identity_each_step(env_id):
    env = gym.make(env_id)
    env.reset(seed=0)
    for _ in range(50):
        *_, info = env.step(env.action_space.sample())
        assert info["regret"] == info["nominator_regret"] + info["ranker_regret"]
        assert info["regret"] >= 0 and info["nominator_regret"] >= 0 and info["ranker_regret"] >= 0
        np.testing.assert_allclose(
            info["expected_reward"], info["optimal_expected_reward"] - info["regret"], rtol=0, atol=1e-12
        )


def test_every_id_is_in_env_ids():
    ours = sorted(k for k in gym.registry if k.startswith("TwoStage/"))
    assert ours == sorted(twostage_gym.ENV_IDS)


@pytest.mark.parametrize("algo", ["PPO", "A2C"])
def test_sb3_algorithms_take_the_spaces_as_they_are(env_id, algo):
    sb3 = pytest.importorskip("stable_baselines3")
    env = gym.make(env_id, max_episode_steps=20)
    policy = "MultiInputPolicy" if isinstance(env.observation_space, gym.spaces.Dict) else "MlpPolicy"
    model = getattr(sb3, algo)(
        policy, env, n_steps=16, seed=0, device="cpu", **({"batch_size": 16} if algo == "PPO" else {})
    )
    model.learn(total_timesteps=32)
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action)
    env.step(action)
