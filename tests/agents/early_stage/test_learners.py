"""The early-stage-ranker learners: runs through agents.evaluate, determinism, overflow, arguments, persistence."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import agents
from agents.early_stage import FAMILY, METHODS
from twostage_gym.core import ORACLE_INFO_KEYS, public_info

torch = pytest.importorskip("torch")

SMALL = {"n_users": 50, "n_items": 100, "n_candidates": 5}


def small_env(**kwargs) -> gym.Env:
    return gym.make("TwoStage/EarlyStageRanker-v0", **{**SMALL, **kwargs})


def vector_env(seed: int, batch: int = 16, **kwargs):
    vec = gym.make_vec(
        "TwoStage/EarlyStageRanker-v0",
        batch,
        vectorization_mode="vector_entry_point",
        world_seed=seed,
        **{**SMALL, **kwargs},
    )
    obs, _ = vec.reset(seed=seed)
    return vec, obs


def test_registered_names():
    assert agents.names(FAMILY) == list(METHODS)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("n_experts", [1, 2])
def test_evaluate_record_schema_and_determinism(name, n_experts):
    if name == "top1-pg" and n_experts > 1:
        pytest.skip("top1-pg has one logit model")
    # Two experts also run at another ESR temperature, which the scores must share with the env.
    env = small_env(n_experts=n_experts, n_outputs=2, position_weights="dcg", esr_temperature=0.5 * n_experts)
    runs = [agents.evaluate(agents.make(name, env, batch_size=32), env, steps=40, seed=3) for _ in range(2)]
    a, b = runs
    assert set(agents.RECORD_KEYS) <= set(a)
    assert set(agents.common.evaluation.BATCHED_RECORD_KEYS) <= set(a)
    a.pop("wall_time_s"), b.pop("wall_time_s")
    assert a == b  # same seed, same record
    assert a["steps"] == 40 and a["users_served"] == 40 * 32 and a["overflow_step"] is None
    assert a["cumulative_regret"] == pytest.approx(a["nominator_regret"] + a["ranker_regret"])
    assert a["curve"]["steps"][-1] == 40 and a["curve"]["regret"][-1] == a["cumulative_regret"]
    assert len(a["curve"]["policy_value"]) == len(a["curve"]["steps"])
    assert a["policy_value"] == a["curve"]["policy_value"][-1]
    best = float(env.unwrapped.optimal_expected_rewards.mean())
    assert 0 < a["policy_value"] <= best + 1e-9


def test_batch_world_is_the_env_world():
    """The vector env evaluate builds draws the same world as env.reset(seed=seed)."""
    env = small_env()
    agent = agents.make("ca-pg", env, batch_size=8)
    record = agents.evaluate(agent, env, steps=3, seed=11)
    vec, _ = vector_env(11)
    np.testing.assert_array_equal(vec.unwrapped.user_features, env.unwrapped.user_features)
    value = env.unwrapped.policy_value(agent.greedy_candidate_sets())["value"]
    assert record["policy_value"] == value


@pytest.mark.parametrize(("name", "kwargs"), [("v-pg", {}), ("ca-pg-swr", {}), ("ca-pg", {"adaptive_lr": "probe"})])
def test_catalog_pass_ahead_gives_the_same_steps(name, kwargs, monkeypatch):
    """act starts the catalog pass on the worker thread for large batches; small ones compute it in
    update. Both give the same actions, step after step (with the probe, also when rows of
    repeated users leave the gradient)."""
    runs = []
    for ahead in (True, False):
        monkeypatch.setattr("agents.early_stage.learner._OVERLAP_MIN", 0 if ahead else 2**62)
        env = small_env(n_experts=2)
        agent = agents.make(name, env, batch_size=16, **kwargs)
        agent.reset(0)
        vec, obs = vector_env(0, n_experts=2)
        actions = []
        for _ in range(10):
            action = agent.act(obs)
            assert (agent._graph[2] is not None) == ahead  # the pass is under way on the worker
            next_obs, reward, _, _, info = vec.step(action)
            agent.update(obs, action, reward, public_info(info))
            actions.append(action.copy())
            obs = next_obs
        runs.append(np.array(actions))
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_learner_trains_in_a_forked_child(monkeypatch):
    """A child forked after the parent trained (as bench workers are) has no catalog worker thread
    of its own until it makes one: its updates must not wait on the parent's."""
    import multiprocessing

    monkeypatch.setattr("agents.early_stage.learner._OVERLAP_MIN", 0)
    env = small_env()
    agent = agents.make("v-pg-swr", env, batch_size=16)
    agent.reset(0)
    vec, obs = vector_env(0)
    action = agent.act(obs)  # starts the parent's worker thread
    _, reward, _, _, info = vec.step(action)
    agent.update(obs, action, reward, public_info(info))

    def child() -> None:
        child_env = small_env()
        agents.evaluate(agents.make("v-pg-swr", child_env, batch_size=16), child_env, steps=2, seed=0)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(timeout=60)
    if process.is_alive():
        process.kill()
        pytest.fail("the forked child's update hung")
    assert process.exitcode == 0


@pytest.mark.parametrize("name", METHODS)
def test_learner_ignores_oracle_info_keys(name):
    """Actions are identical whether update() sees public info or info with garbage oracle keys."""
    runs = []
    for poison in (False, True):
        env = small_env()
        env.reset(seed=0)
        agent = agents.make(name, env, batch_size=16)
        agent.reset(0)
        vec, obs = vector_env(0)
        actions = []
        for _ in range(15):
            action = agent.act(obs)
            next_obs, reward, _, _, info = vec.step(action)
            seen = public_info(info)
            assert not ORACLE_INFO_KEYS & set(seen)
            if poison:
                seen.update({k: np.full(16, np.nan) for k in ORACLE_INFO_KEYS})
            agent.update(obs, action, reward, seen)
            actions.append(action.copy())
            obs = next_obs
        runs.append(np.array(actions))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_learning_improves_policy_value():
    env = small_env(n_candidates=5)
    record = agents.evaluate(agents.make("ca-pg-swr", env, batch_size=64), env, steps=150, seed=0)
    values = record["curve"]["policy_value"]
    assert values[-1] > values[0] + 0.3


def test_overflow_stops_training_and_is_recorded():
    env = small_env(n_candidates=5)
    agent = agents.make("v-pg", env, batch_size=32, lr=1e12, optimizer="sgd")
    record = agents.evaluate(agent, env, steps=60, seed=0)
    assert record["overflow_step"] is not None and record["overflow_step"] <= 60
    assert agent.stopped and agent.steps == record["overflow_step"] - 1
    assert record["users_served"] == 32 * record["overflow_step"]  # the run ended at the overflow
    assert all(s < record["overflow_step"] for s in record["curve"]["steps"])
    assert np.isfinite(record["policy_value"])
    # A stopped learner no longer changes.
    before = [p.detach().clone() for p in agent.model.parameters()]
    vec, obs = vector_env(0, batch=32)
    action = agent.act(obs)
    _, reward, _, _, info = vec.step(action)
    agent.update(obs, action, reward, public_info(info))
    for p, q in zip(agent.model.parameters(), before, strict=True):
        assert torch.equal(p, q)


def test_non_finite_gradient_is_caught_before_the_step():
    env = small_env()
    env.reset(seed=0)
    agent = agents.make("ca-pg-swr", env, batch_size=16)
    agent.reset(0)
    vec, obs = vector_env(0)
    action = agent.act(obs)
    _, reward, _, _, info = vec.step(action)
    info = public_info(info)
    info["position_rewards"] = np.where(np.arange(16)[:, None] == 3, np.inf, info["position_rewards"])
    before = [p.detach().clone() for p in agent.model.parameters()]
    agent.update(obs, action, reward, info)
    assert agent.stopped and agent.overflow_step == 1
    for p, q in zip(agent.model.parameters(), before, strict=True):
        assert torch.equal(p, q)


def test_actions_have_the_env_shapes_and_work_with_the_single_env():
    for n_experts in (1, 3):
        env = small_env(n_experts=n_experts)
        obs, _ = env.reset(seed=0)
        agent = agents.make("ca-pg", env)
        agent.reset(0)
        action = agent.act(obs)
        assert action.dtype == np.float32 and action.shape == env.action_space.shape
        obs2, reward, _, _, info = env.step(action)
        agent.update(obs, action, reward, public_info(info))  # one round, unbatched info
        assert agent.steps == 1
        batch = agent.act(np.stack([obs, obs2]))
        assert batch.shape == (2, *env.action_space.shape)
        sets = agent.greedy_candidate_sets()
        assert sets.shape == (SMALL["n_users"], SMALL["n_candidates"])
        np.testing.assert_array_equal(sets, env.unwrapped.greedy_candidate_sets(agent.act(env.unwrapped.user_features)))


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"lr": 0.0}, "lr"),
        ({"lr": "fast"}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"embedding_dim": 2.5}, "embedding_dim"),
        ({"init_std": -1.0}, "init_std"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"adaptive_lr": 1.5}, "adaptive_lr"),
        ({"adaptive_lr": "guess"}, "adaptive_lr"),
        ({"adaptive_lr": "probe", "probe_pairs": 0}, "probe_pairs"),
        ({"probe_pairs": 100}, "probe_pairs applies to adaptive_lr='probe' only"),  # it would be unused
        ({"grpo": "yes"}, "grpo"),
        ({"grpo": True, "grpo_constant": -1.0}, "grpo_constant"),
        ({"grpo_constant": 2.0}, "grpo_constant applies to grpo=True only"),
        ({"method": "v-pg"}, "agent 'ca-pg' fixes method='ca-pg'"),  # a kwarg never changes the learner
        ({"device": "no-such-device"}, "device"),
        ({"device": "cuda:99"}, "device"),
        ({"num_threads": 0}, "num_threads"),
        ({"not_an_argument": 1}, "not_an_argument"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, word):
    with pytest.raises(ValueError, match=word):
        agents.make("ca-pg", small_env(), **kwargs)


def test_env_requirements():
    with pytest.raises(ValueError, match="n_experts"):
        agents.make("top1-pg", small_env(n_experts=2))
    with pytest.raises(ValueError, match="action_type"):
        agents.make("ca-pg", small_env(action_type="candidates"))
    with pytest.raises(ValueError, match="EarlyStageRanker"):
        agents.make("ca-pg", gym.make("TwoStage/Nominators-v0"))


def test_save_and_load_round_trip(tmp_path):
    env = small_env(n_experts=2)
    agent = agents.make("ca-pg", env, batch_size=16)
    agents.evaluate(agent, env, steps=10, seed=0)
    path = tmp_path / "ca-pg.pt"
    agent.save(path)
    clone = agents.make("ca-pg", env, batch_size=16)
    clone.reset(123)
    clone.load(path)
    assert clone.steps == agent.steps == 10
    for p, q in zip(clone.model.parameters(), agent.model.parameters(), strict=True):
        assert torch.equal(p, q)
    np.testing.assert_array_equal(clone.greedy_candidate_sets(), agent.greedy_candidate_sets())
    # The optimiser state travels too: the next step is the same.
    vec, obs = vector_env(5, n_experts=2)
    action = agent.act(obs)
    _, reward, _, _, info = vec.step(action)
    for learner in (agent, clone):
        learner.act(obs)
        learner.update(obs, action, reward, public_info(info))
    for p, q in zip(clone.model.parameters(), agent.model.parameters(), strict=True):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="ca-pg"):
        agents.make("v-pg", env).load(path)


def test_given_propensity_scales_the_learning_rate():
    env = small_env()
    agent = agents.make("ca-pg", env, adaptive_lr=0.25)
    agent.reset(0)
    assert agent.lr_effective == pytest.approx(4 * agent.lr)


@pytest.mark.parametrize(("lsr", "expected"), [("optimal", 1.0), ("anti-optimal", 1.0), ("uniform", 0.2)])
def test_probe_estimates_the_lsr_propensity(lsr, expected):
    """Copies of a user get the same candidate set; the LSR agrees with itself with probability E[pi_LSR(a)]."""
    env = small_env(n_users=20, lsr=lsr, n_candidates=5)
    agent = agents.make("ca-pg", env, batch_size=64, adaptive_lr="probe", probe_pairs=3000)
    record = agents.evaluate(agent, env, steps=40, seed=0)
    assert record["overflow_step"] is None
    assert agent.lsr_propensity == pytest.approx(expected, abs=0.04)
    assert agent.lr_effective == pytest.approx(agent.lr / agent.lsr_propensity)


def test_grpo_normalisation_runs_and_learns():
    env = small_env()
    record = agents.evaluate(agents.make("ca-pg-swr", env, batch_size=64, grpo=True), env, steps=150, seed=0)
    values = record["curve"]["policy_value"]
    assert record["overflow_step"] is None and values[-1] > values[0] + 0.3


def test_import_agents_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import gymnasium as gym, agents\n"
        "env = gym.make('TwoStage/EarlyStageRanker-v0', n_users=5, n_items=10, n_candidates=2)\n"
        "assert 'ca-pg' in agents.names()\n"
        "try:\n"
        "    agents.make('ca-pg', env)\n"
        "except ImportError as err:\n"
        "    assert 'twostage-gym[torch]' in str(err), err\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_factory_signature_matches_the_learner():
    """agents.make documents the arguments through the torch-free factory; they must be the class's."""
    import inspect

    from agents.early_stage import make_learner
    from agents.early_stage.learner import ESRPolicyGradient

    factory = inspect.signature(make_learner).parameters
    learner = inspect.signature(ESRPolicyGradient).parameters
    assert [(p.name, p.default) for p in factory.values()] == [(p.name, p.default) for p in learner.values()]


def test_autoreset_step_of_the_vector_env_is_no_gradient_step():
    """With next-step autoreset, the step after a truncation plays nothing: no update, no crash."""
    env = small_env()
    env.reset(seed=0)
    agent = agents.make("ca-pg", env, batch_size=8)
    agent.reset(0)
    vec = gym.make_vec(
        "TwoStage/EarlyStageRanker-v0",
        8,
        vectorization_mode="vector_entry_point",
        world_seed=0,
        max_episode_steps=3,
        **SMALL,
    )
    obs, _ = vec.reset(seed=0)
    for _ in range(8):
        action = agent.act(obs)
        next_obs, reward, _, _, info = vec.step(action)
        agent.update(obs, action, reward, public_info(info))
        obs = next_obs
    assert agent.steps == 6  # steps 4 and 8 were autoreset steps
    assert not agent.stopped


def test_logits_beyond_the_action_bound_are_shifted_not_clipped():
    env = small_env()
    env.reset(seed=0)
    agent = agents.make("ca-pg", env, batch_size=16)
    agent.reset(0)
    with torch.no_grad():
        agent.model.item_embedding.mul_(1e7)
    vec, obs = vector_env(0)
    raw = agent._logits(torch.as_tensor(obs)).detach().numpy()
    assert np.abs(raw).max() > 1e6
    action = agent.act(obs)
    assert np.abs(action).max() <= 1e6 and action.max(axis=-1).max() == 0.0
    # Each row's order among the items above the floor is unchanged.
    top = raw.argsort(axis=-1)[:, -5:]
    np.testing.assert_array_equal(np.take_along_axis(action, top, -1).argsort(-1), np.arange(5)[None].repeat(16, 0))
    vec.step(action)  # the env accepts it
    assert not agent.stopped
