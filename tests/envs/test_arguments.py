"""Constructor arguments of every env family and their native vector envs (issue 19, items 4 and 5).

Invalid arguments raise ``ValueError`` naming the argument at ``gym.make`` (or ``make_vec``);
valid ones, including numpy scalars, still work and give the same numbers as before.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence

from twostage_gym.core import checks
from twostage_gym.envs.early_stage_ranker import EarlyStageRankerVectorEnv
from twostage_gym.envs.esr_world import EarlyStageRankerConfig
from twostage_gym.envs.nominators import NominatorsConfig, NominatorsEnv, NominatorsVectorEnv

NOM = "TwoStage/Nominators-v0"
ESR = "TwoStage/EarlyStageRanker-v0"
ESR_SMALL = {"n_users": 30, "n_items": 50, "dim": 4}
ESR_DEFAULTS = dict(
    n_users=1000, n_items=1000, dim=10, n_candidates=10, n_outputs=1, position_weights="sum", lsr="optimal",
    lsr_temperature=1.0, esr_temperature=1.0, n_experts=1, action_type="logits", reward_scale=3.0, world_seed=None,
)  # fmt: skip


# -- item 4: numbers given as strings, bools, None or lists -----------------------------------------
NOMINATORS_BAD = [
    ({"noise_std": "0.1"}, "noise_std"),
    ({"noise_std": [0.1]}, "noise_std"),
    ({"noise_std": None}, "noise_std"),
    ({"noise_std": True}, "noise_std"),
    ({"noise_std": float("inf")}, "noise_std"),
    ({"misspecification": "2"}, "misspecification"),
    ({"misspecification": True}, "misspecification"),
    ({"misspecification": [2]}, "misspecification"),
    ({"misspecification": 25}, "misspecification"),  # floor(20 / 25) = 0 features
    ({"nominator_dim": True}, "nominator_dim"),
    ({"nominator_dim": 2.0}, "nominator_dim"),
    ({"nominator_dim": "3"}, "nominator_dim"),
    ({"n_items": True}, "n_items"),
    ({"n_items": "100"}, "n_items"),
    ({"n_items": None}, "n_items"),
    ({"dim": 20.0}, "dim"),
    ({"n_nominators": np.bool_(True)}, "n_nominators"),
    ({"n_nominators": [5]}, "n_nominators"),
    ({"pools": 5}, "pools"),
    ({"pools": "abcde"}, "pools"),
    ({"n_items": 4, "n_nominators": 2, "pools": [5, 6]}, r"pools\[0\]"),
    ({"n_items": 4, "n_nominators": 2, "pools": [[0, 1], "23"]}, r"pools\[1\]"),
    ({"n_items": 4, "n_nominators": 2, "pools": [[0, 1], [[2, 3], [1]]]}, r"pools\[1\]"),
    ({"n_items": 4, "n_nominators": 2, "pools": [[0, 1], [True, False]]}, r"pools\[1\]"),
    ({"n_items": 4, "n_nominators": 2, "pools": {0: [0, 1], 1: [2, 3]}}, "pools"),
    ({"feature_subsets": 3}, "feature_subsets"),
    ({"feature_subsets": [0, 1, 2, 3, 4]}, r"feature_subsets\[0\]"),
    ({"feature_subsets": [[0, 1]] * 4 + [[0, [1]]]}, "feature_subsets"),
    ({"feature_subsets": [[0, 1]] * 4 + [[1, 1]]}, "twice"),
    ({"feature_subsets": [[0.0, 1.0]] * 5}, "feature_subsets"),
    ({"context_model": ["gaussian"]}, "context_model"),
    ({"context_model": np.array(["gaussian", "prop2"])}, "context_model"),
    ({"reward_noise": None}, "reward_noise"),
    ({"render_mode": "human"}, "render_mode"),
]

ESR_BAD = [
    ({"reward_scale": True}, "reward_scale"),
    ({"reward_scale": "3"}, "reward_scale"),
    ({"reward_scale": None}, "reward_scale"),
    ({"reward_scale": [3.0]}, "reward_scale"),
    ({"reward_scale": 0}, "reward_scale"),
    ({"lsr_temperature": True}, "lsr_temperature"),
    ({"lsr_temperature": "1"}, "lsr_temperature"),
    ({"lsr_temperature": float("nan")}, "lsr_temperature"),
    ({"esr_temperature": "2"}, "esr_temperature"),
    ({"esr_temperature": True}, "esr_temperature"),
    ({"esr_temperature": 2e6}, "esr_temperature"),
    ({"n_users": True}, "n_users"),
    ({"n_items": "50"}, "n_items"),
    ({"n_candidates": 3.0}, "n_candidates"),
    ({"n_outputs": None}, "n_outputs"),
    ({"n_experts": np.bool_(True)}, "n_experts"),
    ({"world_seed": True}, "world_seed"),
    ({"world_seed": "7"}, "world_seed"),
    ({"lsr": ["noisy"]}, "lsr"),
    ({"position_weights": np.array(["sum", "dcg"])}, "position_weights"),
    ({"action_type": None}, "action_type"),
]


@pytest.mark.parametrize(("kwargs", "name"), NOMINATORS_BAD)
@pytest.mark.filterwarnings("ignore::UserWarning")  # gymnasium warns about an unknown render_mode first
def test_nominators_refuses_bad_arguments_by_name(kwargs, name):
    with pytest.raises(ValueError, match=name):
        gym.make(NOM, **kwargs)


@pytest.mark.parametrize(("kwargs", "name"), ESR_BAD)
def test_early_stage_ranker_refuses_bad_arguments_by_name(kwargs, name):
    with pytest.raises(ValueError, match=name):
        gym.make(ESR, **{**ESR_SMALL, **kwargs})


def test_render_mode_must_be_a_string_or_none():
    # (gym.make itself fails on a non-string render_mode before the env is built, so the class is called.)
    from twostage_gym.envs.early_stage_ranker import EarlyStageRankerEnv

    for cls in (NominatorsEnv, EarlyStageRankerEnv):
        with pytest.raises(ValueError, match="render_mode"):
            cls(render_mode=["ansi"])


def test_bernoulli_rewards_need_the_prop2_contexts():
    with pytest.raises(ValueError, match=r"reward_noise='bernoulli' needs context_model='prop2'.*\[0, 1\]"):
        gym.make(NOM, reward_noise="bernoulli")
    with pytest.raises(ValueError, match="reward_noise"):
        gym.make(NOM, n_items=4, dim=4, n_nominators=2, reward_noise="bernoulli", context_model="gaussian")
    # Valid with the Proposition 2 contexts, as the Prop2 ids use it.
    env = gym.make(NOM, n_items=4, dim=4, n_nominators=2, reward_noise="bernoulli", context_model="prop2")
    env.reset(seed=0)
    _, reward, *_ = env.step(env.action_space.sample())
    assert reward in (0.0, 1.0)
    for env_id in ("TwoStage/Nominators-Prop2A-v0", "TwoStage/Nominators-Prop2B-v0"):
        assert gym.make(env_id).unwrapped.config.reward_noise == "bernoulli"


# -- valid arguments: numpy scalars and ints where floats are documented work, with the same numbers -
def _rollout(env: gym.Env, steps: int = 5) -> list:
    env.action_space.seed(0)
    out = [env.reset(seed=3)]
    out += [env.step(env.action_space.sample()) for _ in range(steps)]
    return out


@pytest.mark.parametrize(
    ("given", "plain"),
    [
        ({"noise_std": np.float32(0.5)}, {"noise_std": float(np.float32(0.5))}),
        ({"noise_std": 0}, {"noise_std": 0.0}),
        ({"misspecification": 2}, {"misspecification": 2.0}),
        ({"misspecification": np.float64(2.5)}, {"misspecification": 2.5}),
        ({"nominator_dim": np.int64(4)}, {"nominator_dim": 4}),
        ({"n_items": np.int32(30), "dim": np.uint8(6), "n_nominators": np.int64(3)},
         {"n_items": 30, "dim": 6, "n_nominators": 3}),
        ({"n_items": 6, "n_nominators": 2, "pools": np.array([[0, 1, 2], [3, 4, 5]])},
         {"n_items": 6, "n_nominators": 2, "pools": [[0, 1, 2], [3, 4, 5]]}),
        ({"feature_subsets": np.array([[0, 1]] * 5)}, {"feature_subsets": ((0, 1),) * 5}),
    ],
)  # fmt: skip
def test_nominators_valid_numpy_and_int_arguments_give_the_same_rollout(given, plain):
    assert data_equivalence(_rollout(gym.make(NOM, **given)), _rollout(gym.make(NOM, **plain)), exact=True)


@pytest.mark.parametrize(
    ("given", "plain"),
    [
        ({"reward_scale": 3}, {"reward_scale": 3.0}),
        ({"reward_scale": np.float32(2.5)}, {"reward_scale": 2.5}),
        ({"lsr": "noisy", "lsr_temperature": np.float64(0.5)}, {"lsr": "noisy", "lsr_temperature": 0.5}),
        ({"lsr": "noisy", "lsr_temperature": 2}, {"lsr": "noisy", "lsr_temperature": 2.0}),
        ({"esr_temperature": np.float32(0.25)}, {"esr_temperature": 0.25}),
        ({"world_seed": np.int64(4), "n_candidates": np.int32(5)}, {"world_seed": 4, "n_candidates": 5}),
    ],
)
def test_early_stage_ranker_valid_numpy_and_int_arguments_give_the_same_rollout(given, plain):
    a = _rollout(gym.make(ESR, **{**ESR_SMALL, **given}))
    b = _rollout(gym.make(ESR, **{**ESR_SMALL, **plain}))
    assert data_equivalence(a, b, exact=True)


@pytest.mark.parametrize("tau", [1e-6, 1e6])
def test_esr_temperature_bounds_are_valid_as_documented(tau):
    """The docstring's range [1e-6, 1e6] is closed; logits / tau stay finite in float32 at both ends."""
    env = gym.make(ESR, **ESR_SMALL, esr_temperature=tau)
    env.reset(seed=0)
    *_, info = env.step(np.full(50, 1e6, dtype=np.float32))
    assert np.isfinite(info["expected_reward"])


def test_recall_counts_the_true_top_k_in_the_candidate_set():
    """The recall (computed by sorting the union of two K-sets) against a set intersection."""
    env = gym.make(ESR, **ESR_SMALL, n_candidates=8, action_type="candidates")
    env.reset(seed=1)
    u = env.unwrapped
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(40):
        top = u.world.top_items[u.current_user]
        pool = np.union1d(top, rng.choice(50, 8, replace=False))
        cands = rng.choice(pool, 8, replace=False)
        *_, info = env.step(cands)
        hits = len(set(cands.tolist()) & set(top.tolist()))
        assert info["recall"] == hits / 8
        seen.add(hits)
    assert len(seen) > 3


# -- item 4: sizes too large for memory are refused at make with the estimate ---------------------
@pytest.mark.parametrize(
    ("env_id", "kwargs", "names"),
    [
        (NOM, {"n_items": 10**12}, "n_items=1000000000000, dim=20"),
        (NOM, {"n_items": 10**9, "dim": 10**3}, "n_items=1000000000, dim=1000"),
        (NOM, {"dim": 10**12}, "dim=1000000000000"),
        (ESR, {"n_items": 10**12}, "n_items=1000000000000"),
        (ESR, {"n_users": 10**13}, "n_users=10000000000000"),
        (ESR, {"n_users": 10**9, "n_items": 10**8, "n_candidates": 10**5}, "n_candidates=100000"),
        (ESR, {"n_items": 10**9, "n_experts": 10}, "n_experts=10"),
        (ESR, {"n_items": 10**8, "n_candidates": 10**8, "n_outputs": 2, "lsr": "noisy"}, "n_outputs=2"),
    ],
)
def test_sizes_beyond_the_memory_limit_are_refused_at_make(env_id, kwargs, names):
    with pytest.raises(ValueError, match=rf"{names}.*would allocate about [\d.]+ [KMGTP]iB .* limit of 64.0 GiB"):
        gym.make(env_id, **kwargs)


def test_huge_explicit_pools_padding_is_refused(monkeypatch):
    """pool_items is padded to N x the largest pool: one large pool among many small ones counts."""
    pools = [list(range(1000))] + [[i] for i in range(1, 200)]
    config = NominatorsConfig(1000, 2, 200, None, None, 0.1, pools, None, "gaussian", "gaussian")
    padded = config.memory_parts()["pools"]
    assert padded >= 8 * 200 * 1000
    monkeypatch.setattr(checks, "MEMORY_LIMIT_BYTES", padded)  # enough for the default split, not the padding
    with pytest.raises(ValueError, match=r"n_items=1000, dim=2, n_nominators=200: .*pools"):
        gym.make(NOM, n_items=1000, dim=2, n_nominators=200, pools=pools)


def test_the_memory_limit_is_a_module_constant_read_at_make(monkeypatch):
    gym.make(NOM)
    monkeypatch.setattr(checks, "MEMORY_LIMIT_BYTES", 1000)
    with pytest.raises(ValueError, match="n_items=100, dim=20, n_nominators=5"):
        gym.make(NOM)
    with pytest.raises(ValueError, match="n_users=1000, n_items=1000"):
        gym.make(ESR)


def test_the_documented_large_configurations_are_within_the_limit():
    """Without allocating them: the configs (which allocate nothing of size n_users or n_items) and estimates."""
    # EarlyStageRanker-v0 at |A| = 10^6 (the docstring's example; test_a_million_items steps it), and
    # the training path: 128 sub-envs sharing one world, and 128 worlds without world_seed.
    big = EarlyStageRankerConfig(**{**ESR_DEFAULTS, "n_items": 10**6, "world_seed": 0})
    assert big.check_memory() < 2**30
    assert big.check_memory(num_envs=128) < 4 * 2**30
    per_world = EarlyStageRankerConfig(**{**ESR_DEFAULTS, "n_items": 10**6})
    assert per_world.check_memory(num_envs=128) < checks.MEMORY_LIMIT_BYTES
    # The noisy LSR at the paper's largest K and L (Table 3: K = 20, L = 5), and beyond the exact limit.
    assert EarlyStageRankerConfig(**{**ESR_DEFAULTS, "n_candidates": 20, "n_outputs": 5, "lsr": "noisy"}).mc_exact
    mc = EarlyStageRankerConfig(**{**ESR_DEFAULTS, "n_items": 10**5, "n_candidates": 10**5, "n_outputs": 10**5})
    assert mc.check_memory() < checks.MEMORY_LIMIT_BYTES
    # Nominators at |A| = 10^4, d = 80 (the scale the context sampler is tuned for) and 10^6 items.
    for n_items, dim in ((10**4, 80), (10**6, 20)):
        config = NominatorsConfig(n_items, dim, 5, None, None, 0.1, None, None, "gaussian", "gaussian")
        assert config.check_memory() < 2**30
        assert config.check_memory(num_envs=8, batched_spaces=True) < 8 * 2**30


def test_memory_estimate_counts_every_world_of_a_vector_env():
    c = EarlyStageRankerConfig(**ESR_DEFAULTS)
    shared = EarlyStageRankerConfig(**{**ESR_DEFAULTS, "world_seed": 1})
    one, many = c.memory_parts(1), c.memory_parts(16)
    key = "item tables (features, projections, noise levels)"
    assert many[key] == 16 * one[key] and shared.memory_parts(16)[key] == one[key]


def test_vector_env_memory_is_checked_with_num_envs(monkeypatch):
    single = NominatorsConfig(100, 20, 5, None, None, 0.1, None, None, "gaussian", "gaussian").check_memory()
    esr = EarlyStageRankerConfig(**ESR_DEFAULTS).check_memory()
    monkeypatch.setattr(checks, "MEMORY_LIMIT_BYTES", 2 * single)
    gym.make(NOM)
    gym.make_vec(NOM, 1, vectorization_mode="vector_entry_point")
    with pytest.raises(ValueError, match="num_envs=64"):
        gym.make_vec(NOM, 64, vectorization_mode="vector_entry_point")
    monkeypatch.setattr(checks, "MEMORY_LIMIT_BYTES", 2 * esr)
    gym.make_vec(ESR, 64, vectorization_mode="vector_entry_point", world_seed=0)  # one shared world
    with pytest.raises(ValueError, match=r"num_envs=64.*pass world_seed"):
        gym.make_vec(ESR, 64, vectorization_mode="vector_entry_point")


def test_a_large_noisy_configuration_is_made_without_hanging():
    """K = L = 10^5 with the noisy LSR: deciding exact vs Monte-Carlo no longer sums 10^5 huge binomials."""
    env = gym.make(ESR, n_users=2, n_items=10**5, n_candidates=10**5, n_outputs=10**5, lsr="noisy")
    assert not env.unwrapped.config.mc_exact


# -- item 5: the native vector envs' own arguments ------------------------------------------------
VECTOR_BAD = [
    ({"max_episode_steps": 0}, "max_episode_steps"),
    ({"max_episode_steps": -5}, "max_episode_steps"),
    ({"max_episode_steps": -1}, "max_episode_steps"),
    ({"max_episode_steps": 2.5}, "max_episode_steps"),
    ({"max_episode_steps": 2.0}, "max_episode_steps"),
    ({"max_episode_steps": float("nan")}, "max_episode_steps"),
    ({"max_episode_steps": True}, "max_episode_steps"),
    ({"max_episode_steps": "10"}, "max_episode_steps"),
    ({"num_envs": True}, "num_envs"),
    ({"num_envs": np.bool_(True)}, "num_envs"),
    ({"num_envs": 0}, "num_envs"),
    ({"num_envs": 2.0}, "num_envs"),
    ({"num_envs": "2"}, "num_envs"),
]


@pytest.mark.parametrize("cls", [NominatorsVectorEnv, EarlyStageRankerVectorEnv])
@pytest.mark.parametrize(("kwargs", "name"), VECTOR_BAD)
def test_vector_envs_refuse_bad_num_envs_and_max_episode_steps(cls, kwargs, name):
    with pytest.raises(ValueError, match=f"^{name} must be"):
        cls(**kwargs)


@pytest.mark.parametrize("env_id", [NOM, ESR])
@pytest.mark.parametrize("steps", [0, -5, 2.5, float("nan")])
def test_make_vec_refuses_bad_max_episode_steps(env_id, steps):
    with pytest.raises(ValueError, match="max_episode_steps"):
        gym.make_vec(env_id, 2, vectorization_mode="vector_entry_point", max_episode_steps=steps)


@pytest.mark.parametrize(
    ("cls", "kwargs"), [(NominatorsVectorEnv, {"n_items": 10, "dim": 3}), (EarlyStageRankerVectorEnv, ESR_SMALL)]
)
def test_vector_env_max_episode_steps_none_never_truncates_and_ints_truncate(cls, kwargs):
    env = cls(num_envs=2, max_episode_steps=None, **kwargs)
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(12):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not truncated.any() and not terminated.any()
    env = cls(num_envs=np.int64(2), max_episode_steps=np.int32(3), **kwargs)
    env.reset(seed=0)
    env.action_space.seed(0)
    flags = [env.step(env.action_space.sample())[3].tolist() for _ in range(8)]
    # Truncated at steps 3 and 7 (step 4 is the next-step autoreset).
    assert flags == [[False, False], [False, False], [True, True], [False, False]] * 2


def test_vector_envs_still_pass_other_arguments_on_to_the_single_env_checks():
    with pytest.raises(ValueError, match="noise_std"):
        NominatorsVectorEnv(num_envs=2, noise_std="0.1")
    with pytest.raises(ValueError, match="reward_scale"):
        EarlyStageRankerVectorEnv(num_envs=2, reward_scale=True)
    with pytest.raises(ValueError, match="does not render"):
        NominatorsVectorEnv(num_envs=2, render_mode="ansi")
    assert isinstance(NominatorsVectorEnv(num_envs=2).single_env, NominatorsEnv)
