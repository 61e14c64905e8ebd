"""EarlyStageRanker-v0 specifics (Kiyohara et al. 2026, Sec. 4.1): world, seeding, oracle values, scale."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence

from tests.envs.test_conformance import bad_actions_for
from twostage_gym.core import late_stage

ENV_ID = "TwoStage/EarlyStageRanker-v0"
SMALL = {"n_users": 40, "n_items": 60, "dim": 5}


def make(**kwargs) -> gym.Env:
    return gym.make(ENV_ID, **{**SMALL, **kwargs})


def _world_arrays(env: gym.Env) -> list[np.ndarray]:
    w = env.unwrapped.world
    return [w.user_features, w.item_features, w.item_noise_std, w.top_items, w.optimal_sets, w.optimal_values]


def test_world_seed_and_reset_seed_give_the_same_world():
    by_world_seed = make(world_seed=7)
    by_reset_seed = make()
    by_reset_seed.reset(seed=7)
    assert data_equivalence(_world_arrays(by_world_seed), _world_arrays(by_reset_seed), exact=True)
    # With world_seed the reset seed moves only the users; without, it redraws the world.
    by_world_seed.reset(seed=3)
    assert data_equivalence(_world_arrays(by_world_seed), _world_arrays(by_reset_seed), exact=True)
    other = make()
    other.reset(seed=8)
    assert not np.array_equal(other.unwrapped.item_features, by_reset_seed.unwrapped.item_features)


def test_unseeded_reset_keeps_the_world_and_continues_the_users():
    env = make()
    env.reset(seed=1)
    world = env.unwrapped.world
    users = [env.step(env.action_space.sample())[4]["user"] for _ in range(5)]
    env.reset()
    assert env.unwrapped.world is world
    ref = make()
    ref.reset(seed=1)
    ref_users = [ref.step(ref.action_space.sample())[4]["user"] for _ in range(7)]
    assert users == ref_users[:5]
    assert env.unwrapped.current_user == ref_users[6]  # the unseeded reset drew the next user of the stream


def _sampler(env: gym.Env, seed: int):
    """Random valid actions: logits from the space, or K distinct items (the MultiDiscrete space allows repeats)."""
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    if env.unwrapped.config.action_type == "candidates":
        return lambda: rng.choice(env.unwrapped.config.n_items, env.unwrapped.config.n_candidates, replace=False)
    return env.action_space.sample


@pytest.mark.parametrize("action_type", ["logits", "candidates"])
def test_users_do_not_depend_on_actions(action_type):
    a, b = make(action_type=action_type), make(action_type=action_type)
    obs_a, _ = a.reset(seed=4)
    obs_b, _ = b.reset(seed=4)
    act_a, act_b = _sampler(a, 1), _sampler(b, 2)
    for _ in range(30):
        np.testing.assert_array_equal(obs_a, obs_b)
        obs_a, _, _, _, info_a = a.step(act_a())
        obs_b, _, _, _, info_b = b.step(act_b())
        assert info_a["user"] == info_b["user"]
        assert not np.array_equal(info_a["candidates"], info_b["candidates"])


def test_observation_is_the_users_features():
    env = make()
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        user = env.unwrapped.current_user
        np.testing.assert_array_equal(obs, env.unwrapped.user_features[user])
        obs, _, _, _, info = env.step(env.action_space.sample())
        assert info["user"] == user
    assert env.observation_space.contains(obs)


@pytest.mark.parametrize(("lsr", "L", "weights"), [("optimal", 1, "sum"), ("optimal", 3, "dcg"), ("uniform", 2, "sum")])
def test_true_top_k_has_zero_regret_and_full_recall(lsr, L, weights):
    env = make(action_type="candidates", n_candidates=5, n_outputs=L, position_weights=weights, lsr=lsr)
    env.reset(seed=0)
    top = env.unwrapped.world.top_items
    rng = np.random.default_rng(0)
    for _ in range(20):
        action = rng.permutation(top[env.unwrapped.current_user])  # any order of the same set
        *_, info = env.step(action)
        assert info["regret"] == 0.0 and info["recall"] == 1.0
        assert info["nominator_regret"] == 0.0 and info["ranker_regret"] == 0.0
        if lsr == "optimal":
            assert info["lsr_gap"] == 0.0
            np.testing.assert_array_equal(info["ranking"], top[info["user"], :L])
        else:
            assert info["lsr_gap"] > 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"lsr": "noisy"},
        {"lsr": "noisy", "n_outputs": 3, "position_weights": "dcg"},
        {"lsr": "uniform", "n_outputs": 2},
        {"lsr": "anti-optimal", "n_outputs": 2},
        {"n_experts": 3, "esr_temperature": 0.5},
    ],
)
def test_info_keys_identity_and_signs(kwargs):
    env = make(n_candidates=6, **kwargs)
    env.reset(seed=0)
    c = env.unwrapped.config
    for _ in range(40):
        _, reward, _, _, info = env.step(env.action_space.sample())
        assert set(info) == {
            "candidates", "ranking", "position_rewards", "user", "expected_reward", "optimal_expected_reward",
            "regret", "nominator_regret", "ranker_regret", "recall", "lsr_gap",
        }  # fmt: skip
        assert info["candidates"].dtype == np.int64 and info["candidates"].shape == (6,)
        assert len(set(info["candidates"].tolist())) == 6
        assert info["ranking"].shape == (c.n_outputs,) and set(info["ranking"]) <= set(info["candidates"])
        assert info["position_rewards"].dtype == np.float64
        assert reward == pytest.approx(float(c.alpha @ info["position_rewards"]), rel=1e-12)
        assert info["regret"] == info["nominator_regret"] + info["ranker_regret"]
        assert info["ranker_regret"] == 0.0
        assert info["regret"] >= 0.0 and info["lsr_gap"] >= 0.0 and 0.0 <= info["recall"] <= 1.0
        assert all(isinstance(info[k], np.generic) for k in ("user", "expected_reward", "regret", "recall"))


def test_expected_reward_is_the_lsr_value_of_the_candidates():
    env = make(lsr="noisy", lsr_temperature=0.7, n_candidates=4)
    env.reset(seed=2)
    for _ in range(10):
        *_, info = env.step(env.action_space.sample())
        q = env.unwrapped.expected_rewards([info["user"]])[0, info["candidates"]]
        w = np.exp(q / 0.7)
        assert info["expected_reward"] == pytest.approx(float(w @ q / w.sum()), rel=1e-12)


def test_rewards_average_to_the_expected_reward():
    """Reward model: r_l ~ N(q(x, a_l), sigma_a^2), so the mean of reward - expected_reward is 0."""
    env = make(action_type="candidates", lsr="noisy", n_candidates=4, n_outputs=2)
    env.reset(seed=5)
    rng = np.random.default_rng(0)
    gaps = []
    for _ in range(3000):
        *_, info = env.step(rng.choice(60, 4, replace=False))
        gaps.append(float(env.unwrapped.alpha @ info["position_rewards"]) - info["expected_reward"])
    assert abs(np.mean(gaps)) < 4 * np.std(gaps) / np.sqrt(len(gaps))
    assert 1.0 < np.std(gaps) < 3.0  # two positions of noise sd in [0.5, 1.5] plus the LSR's randomness


def test_bad_candidate_sets_rejected_state_unchanged():
    env, ref = make(action_type="candidates"), make(action_type="candidates")
    env.reset(seed=2)
    ref.reset(seed=2)
    bad = bad_actions_for(env.action_space)
    bad["duplicate"] = (np.array([3, 1, 3, 4, 5, 6, 7, 8, 9, 10]), "duplicate")
    for action, pattern in bad.values():
        with pytest.raises(ValueError, match=pattern):
            env.step(action)
    good = np.arange(10)
    assert data_equivalence(env.step(good), ref.step(good), exact=True)


def test_bad_moe_logits_rejected():
    env = make(n_experts=2)
    env.reset(seed=0)
    assert env.action_space.shape == (2, 60)
    for action, pattern in bad_actions_for(env.action_space).values():
        with pytest.raises(ValueError, match=pattern):
            env.step(action)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(60, dtype=np.float32))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_candidates": 61}, "n_candidates"),
        ({"n_outputs": 11}, "n_outputs"),
        ({"n_experts": 11}, "n_experts"),
        ({"n_users": 0}, "n_users"),
        ({"n_items": 2.5}, "n_items"),
        ({"dim": True}, "dim"),
        ({"position_weights": "ndcg"}, "position_weights"),
        ({"lsr": "greedy"}, "lsr"),
        ({"lsr_temperature": 0.0}, "lsr_temperature"),
        ({"esr_temperature": float("nan")}, "esr_temperature"),
        ({"esr_temperature": 1e-9}, "esr_temperature"),
        ({"action_type": "scores"}, "action_type"),
        ({"action_type": "candidates", "n_experts": 2}, "n_experts"),
        ({"reward_scale": -1.0}, "reward_scale"),
        ({"world_seed": -1}, "world_seed"),
        ({"world_seed": 1.5}, "world_seed"),
        ({"render_mode": "human"}, "render_mode"),
    ],
)
@pytest.mark.filterwarnings("ignore::UserWarning")  # gymnasium warns about render_mode first
def test_invalid_arguments_raise_at_make(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(**kwargs)


def test_policy_value_exact_for_the_true_top_k():
    env = make(n_outputs=2, position_weights="dcg", world_seed=0)
    u = env.unwrapped
    result = u.policy_value(u.world.top_items)
    assert result["exact"] and result["stderr"] == 0.0
    assert result["value"] == float(u.optimal_expected_rewards.mean())
    # The greedy ESR on the oracle's q is the top-K: the same value.
    greedy = u.greedy_candidate_sets(u.expected_rewards(np.arange(40)))
    np.testing.assert_array_equal(np.sort(greedy, 1), np.sort(u.world.top_items, 1))
    assert u.policy_value(greedy)["value"] == result["value"]
    worse = u.policy_value(np.tile(np.arange(10), (40, 1)))
    assert worse["value"] < result["value"]


def test_policy_value_monte_carlo_with_a_standard_error(monkeypatch):
    env = make(lsr="noisy", n_candidates=6, n_outputs=3, world_seed=1)
    u = env.unwrapped
    sets = u.world.top_items
    exact = u.policy_value(sets)
    assert exact["exact"] and exact["stderr"] == 0.0
    monkeypatch.setattr(late_stage, "EXACT_STATE_LIMIT", 5)
    estimate = u.policy_value(sets, n_samples=2000, seed=3)
    assert estimate["stderr"] > 0
    assert abs(estimate["value"] - exact["value"]) < 4 * estimate["stderr"]
    # A config beyond the exact limit from the start reports it.
    mc_env = make(lsr="noisy", n_candidates=6, n_outputs=3, world_seed=1)
    assert not mc_env.unwrapped.policy_value(sets)["exact"]


def test_policy_value_rejects_bad_sets():
    u = make(world_seed=0).unwrapped
    sets = u.world.top_items.copy()
    with pytest.raises(ValueError, match="shape"):
        u.policy_value(sets[:5])
    sets[0, 1] = sets[0, 0]
    with pytest.raises(ValueError, match="duplicate"):
        u.policy_value(sets)
    with pytest.raises(ValueError, match="outside"):
        u.policy_value(np.full((40, 10), 60) + np.arange(10))


def test_noisy_lsr_best_set_beats_the_top_k():
    """Under the noisy LSR (L = 1) the best candidate set is usually not the top-K (Dinkelbach)."""
    env = make(lsr="noisy", world_seed=0)
    u = env.unwrapped
    top = u.policy_value(u.world.top_items)["value"]
    best = u.policy_value(u.optimal_candidate_sets)["value"]
    assert best > top
    assert best == pytest.approx(float(u.optimal_expected_rewards.mean()), rel=1e-12)


def test_reward_scale_matches_the_papers_values():
    """Default world: each user's best item averages about 9, the average item about 2.4."""
    env = gym.make(ENV_ID, world_seed=0)
    u = env.unwrapped
    q = u.expected_rewards(np.arange(1000))
    assert 8.5 < q.max(axis=1).mean() < 10.0
    assert 2.1 < q.mean() < 2.7
    assert q.min() > 1.0  # c = 1 keeps every reward positive (Theorem 3.3)
    noise = u.world.item_noise_std
    assert 0.5 <= noise.min() and noise.max() <= 1.5


@pytest.mark.parametrize("action_type", ["logits", "candidates"])
def test_a_million_items(action_type):
    env = gym.make(ENV_ID, n_users=8, n_items=10**6, action_type=action_type)
    obs, _ = env.reset(seed=0)
    u = env.unwrapped
    assert u.item_features.shape == (10**6, 10)
    if action_type == "logits":
        logits = (u.item_features @ obs).astype(np.float32)
        *_, info = env.step(logits)
        assert info["regret"] >= 0.0
    else:
        *_, info = env.step(u.world.top_items[u.current_user])
        assert info["regret"] == 0.0 and info["recall"] == 1.0


VECTOR_CONFIGS = [
    {"lsr": "noisy", "n_outputs": 2, "n_experts": 2},
    {"lsr": "uniform", "n_outputs": 3, "position_weights": "dcg", "world_seed": 4},
    {"lsr": "noisy", "n_outputs": 3, "n_candidates": 6},
    {"action_type": "candidates", "lsr": "anti-optimal", "n_outputs": 2},
    {"esr_temperature": 0.3, "world_seed": 2},
]


@pytest.mark.parametrize("kwargs", VECTOR_CONFIGS)
def test_native_vector_env_equals_sync_for_variants(kwargs):
    kwargs = {**SMALL, **kwargs}
    native = gym.make_vec(ENV_ID, 3, vectorization_mode="vector_entry_point", max_episode_steps=4, **kwargs)
    sync = gym.make_vec(ENV_ID, 3, vectorization_mode="sync", max_episode_steps=4, **kwargs)
    native.action_space.seed(0)
    rng = np.random.default_rng(0)
    assert data_equivalence(native.reset(seed=11), sync.reset(seed=11), exact=True)
    for _ in range(10):
        action = native.action_space.sample()
        if kwargs.get("action_type") == "candidates":
            action = np.stack([rng.choice(60, 10, replace=False) for _ in range(3)])
        assert data_equivalence(native.step(action), sync.step(action), exact=True)


def test_native_vector_env_monte_carlo_equals_sync(monkeypatch):
    monkeypatch.setattr(late_stage, "EXACT_STATE_LIMIT", 5)
    kwargs = {**SMALL, "lsr": "noisy", "n_candidates": 4, "n_outputs": 2, "world_seed": 0}
    native = gym.make_vec(ENV_ID, 2, vectorization_mode="vector_entry_point", max_episode_steps=3, **kwargs)
    sync = gym.make_vec(ENV_ID, 2, vectorization_mode="sync", max_episode_steps=3, **kwargs)
    native.action_space.seed(0)
    assert data_equivalence(native.reset(seed=1), sync.reset(seed=1), exact=True)
    for _ in range(5):
        action = native.action_space.sample()
        assert data_equivalence(native.step(action), sync.step(action), exact=True)


def test_vector_env_shares_one_world_for_learners():
    env = gym.make_vec(ENV_ID, 8, vectorization_mode="vector_entry_point", world_seed=5, **SMALL)
    single = gym.make(ENV_ID, world_seed=5, **SMALL)
    u = env.unwrapped
    np.testing.assert_array_equal(u.item_features, single.unwrapped.item_features)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, u.user_features[u.current_users])
    logits = np.random.default_rng(0).standard_normal((8, 60)).astype(np.float32)
    _, rewards, _, _, info = env.step(logits)
    assert rewards.shape == (8,) and info["candidates"].shape == (8, 10) and info["_regret"].all()
    assert u.policy_value(u.world.top_items)["value"] == single.unwrapped.policy_value(u.world.top_items)["value"]
    different = gym.make_vec(ENV_ID, 2, vectorization_mode="vector_entry_point", **SMALL)
    different.reset(seed=0)
    with pytest.raises(RuntimeError, match="world_seed"):
        _ = different.unwrapped.item_features
    clone = pickle.loads(pickle.dumps(env))
    assert data_equivalence(env.step(logits), clone.step(logits), exact=True)


@pytest.mark.parametrize("world_seed", [7, None])
def test_vector_env_state_resumes_exactly(world_seed) -> None:
    """get_state / set_state (checkpoints): a fresh vector env continues as the original does."""
    import json

    kwargs = {"n_users": 20, "n_items": 30, "n_candidates": 4, "lsr": "noisy", "world_seed": world_seed}

    def make():
        return gym.make_vec(ENV_ID, 3, vectorization_mode="vector_entry_point", max_episode_steps=4, **kwargs)

    env = make()
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    actions = [rng.standard_normal((3, 30)).astype(np.float32) for _ in range(10)]
    for a in actions[:5]:  # past a truncation (at 4) and its autoreset step
        last_obs = env.step(a)[0]
    state = env.get_state()
    assert json.loads(json.dumps(state)) == state  # plain Python values only
    later = [env.step(a) for a in actions[5:]]
    twin = make()
    twin.reset(seed=99)  # another world and streams: set_state replaces them
    np.testing.assert_array_equal(twin.set_state(state), last_obs)
    for a, expected in zip(actions[5:], later, strict=True):
        assert data_equivalence(twin.step(a), expected, exact=True)
    with pytest.raises(ValueError, match="3 sub-envs"):
        gym.make_vec(ENV_ID, 2, vectorization_mode="vector_entry_point", **kwargs).set_state(state)
