"""The tree family's agents on ``TwoStage/TreeRetrieval-v0``: both modes, the brute-force reference, rankers."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import agents
import twostage_gym  # noqa: F401
from agents.tree import fit_ranker
from twostage_gym.core import public_info

ENV_ID = "TwoStage/TreeRetrieval-v0"
SMALL = {"n_items": 256, "beam": 10, "world_seed": 0}
FAST = {"n_train": 3000, "epochs": 2}


def play(agent, env: gym.Env, queries: int, seed: int = 0) -> list[dict]:
    """Run ``queries`` whole queries; the info of every query's last step."""
    obs, _ = env.reset(seed=seed)
    done = []
    while len(done) < queries:
        action = agent.act(obs)
        obs, reward, _, _, info = env.step(action)
        agent.update(obs, action, reward, public_info(info))
        if info["query_complete"]:
            done.append(info)
    return done


def test_the_family_is_registered() -> None:
    assert agents.names("tree") == ["tree-linear", "tree-mlp", "brute-force"]
    assert agents.family_of(ENV_ID) == "tree"


@pytest.mark.parametrize("name", ["tree-linear", "brute-force"])
def test_levelwise_and_scores_modes_retrieve_the_same(name: str) -> None:
    """One trained model gives the same beams in both modes: the env's beam search is the model's."""
    found = {}
    for mode in ("levelwise", "scores"):
        env = gym.make(ENV_ID, mode=mode, **SMALL)
        agent = agents.make(name, env, **FAST)
        env.reset(seed=0)
        agent.reset(1)
        found[mode] = np.stack([info["retrieved"] for info in play(agent, env, 40)])
    np.testing.assert_array_equal(found["levelwise"], found["scores"])


def test_tree_linear_act_is_the_model_and_retrieves_like_it() -> None:
    env = gym.make(ENV_ID, mode="scores", **SMALL)
    agent = agents.make("tree-linear", env, **FAST)
    obs, _ = env.reset(seed=0)
    agent.reset(0)
    action = agent.act(obs)
    assert action.dtype == np.float32 and env.action_space.contains(action)
    np.testing.assert_allclose(action, agent.model.node_scores(obs["context"][None])[0].astype(np.float32))
    _, _, _, _, info = env.step(action)
    expected = agent.model.retrieve(obs["context"][None].astype(np.float64), 10).items[0]
    np.testing.assert_array_equal(np.sort(info["retrieved"]), np.sort(expected))


def test_brute_force_retrieves_the_exact_top_k() -> None:
    env = gym.make(ENV_ID, mode="levelwise", **SMALL)
    agent = agents.make("brute-force", env, **FAST)
    env.reset(seed=0)
    agent.reset(0)
    obs, _ = env.reset(seed=3)
    checked = 0
    while checked < 30:
        context = obs["context"]  # the query's context, the same at every level of its descent
        action = agent.act(obs)
        obs, _, _, _, info = env.step(action)
        if info["query_complete"]:
            exact = agent.model.retrieve(context[None].astype(np.float64), 10)[0]
            assert set(info["retrieved"].tolist()) == set(exact.tolist())
            checked += 1


def test_trained_agents_beat_an_untrained_one() -> None:
    env = gym.make(ENV_ID, mode="scores", **SMALL)
    recalls = {}
    for label, kwargs in {"trained": FAST, "untrained": {"n_train": 1, "epochs": 1, "lr": 1e-9}}.items():
        agent = agents.make("tree-linear", env, **kwargs)
        env.reset(seed=0)
        agent.reset(0)
        recalls[label] = np.mean([info["retrieval_hit"] for info in play(agent, env, 300)])
    # Measured (world seeds 0-2): 0.45-0.53 trained (targets are drawn, tau = 0.03); 0.04-0.06 untrained.
    assert recalls["trained"] > 0.3 > 0.1 > recalls["untrained"]


def test_a_trained_ranker_is_the_env_ranker() -> None:
    env = gym.make(ENV_ID, mode="scores", **SMALL)
    env.reset(seed=0)
    contexts, targets = env.unwrapped.sample_dataset(3000, 5)
    ranker = fit_ranker(contexts, targets, 256, epochs=2)
    served_env = gym.make(ENV_ID, mode="scores", ranker=ranker, **SMALL)
    agent = agents.make("tree-linear", served_env, **FAST)
    served_env.reset(seed=0)
    agent.reset(0)
    for info in play(agent, served_env, 50):
        assert info["served"] in info["retrieved"]
        assert info["ranker_hit"] == (info["served"] == info["target"])
        assert not info["ranker_hit"] or info["retrieval_hit"]


@pytest.mark.parametrize(
    ("name", "kwargs", "arg"),
    [
        ("brute-force", {"loss": "beam"}, "loss"),
        ("brute-force", {"train_beam": 5}, "train_beam"),
        ("tree-linear", {"hidden": (8,)}, "hidden"),
        ("tree-linear", {"num_threads": 2}, "num_threads"),
        ("tree-linear", {"train_beam": 257}, "train_beam"),
        ("tree-linear", {"n_train": 0}, "n_train"),
        ("tree-linear", {"loss": "hinge"}, "loss"),
        ("tree-mlp", {"device": 3}, "device"),
        ("tree-linear", {"scorer": "mlp"}, "scorer"),
    ],
)
def test_arguments_are_refused_by_name(name: str, kwargs: dict, arg: str) -> None:
    env = gym.make(ENV_ID, **SMALL)
    with pytest.raises(ValueError, match=arg):
        agents.make(name, env, **kwargs)


@pytest.mark.parametrize("name", ["tree-linear", "tree-mlp"])
def test_save_and_load(name: str, tmp_path) -> None:
    if name == "tree-mlp":
        pytest.importorskip("torch")
    env = gym.make(ENV_ID, mode="scores", **SMALL)
    obs, _ = env.reset(seed=0)
    trained = agents.make(name, env, **FAST)
    trained.reset(0)
    trained.save(tmp_path / "model")
    fresh = agents.make(name, env, n_train=10, epochs=1)
    fresh.reset(7)
    assert not np.array_equal(fresh.act(obs), trained.act(obs))
    fresh.load(tmp_path / "model")
    np.testing.assert_array_equal(fresh.act(obs), trained.act(obs))
    other = agents.make(name, gym.make(ENV_ID, mode="scores", n_items=300, beam=10, world_seed=0), n_train=10)
    other.env.reset(seed=0)
    other.reset(0)
    other_obs, _ = other.env.reset(seed=0)
    before = other.act(other_obs)
    with pytest.raises(ValueError, match="state"):
        other.load(tmp_path / "model")
    np.testing.assert_array_equal(other.act(other_obs), before)  # a refused state changes nothing
