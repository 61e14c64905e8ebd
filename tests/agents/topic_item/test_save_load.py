"""save / load of the neural topic-item learners: a learner saved after 50 rounds and loaded into a fresh
one continues with the same actions; another learner's file, or one of other sizes, is refused."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import agents
import twostage_gym  # noqa: F401
from agents.topic_item import NEURAL_POLICIES
from twostage_gym.core import public_info

torch = pytest.importorskip("torch")

SMALL = {"n_users": 5, "n_items": 300, "n_topics": 10, "budget_per_slot": 40}
NAMES = [*NEURAL_POLICIES, *(f"2-{p}" for p in NEURAL_POLICIES)]
SEED = 7


def make_env(name: str) -> gym.Env:
    return gym.make("TwoStage/TopicItem-v0", hierarchy=name.startswith("2-"), **SMALL)


def make_agent(name: str, env: gym.Env, **extra) -> agents.Agent:
    # Retraining every 10 rounds, so that the 20 rounds after loading retrain twice (optimiser and generators).
    kwargs = {"train_steps": 5, "pretrain_clicks": 300, "item_retrain_every": 10, **extra}
    if name.startswith("2-"):
        kwargs["topic_retrain_every"] = 10
    return agents.make(name, env, **kwargs)


def play(agent, env: gym.Env, obs, rounds: int, steps_per_round: int, twin=None) -> tuple[list[np.ndarray], object]:
    """``rounds`` rounds of ``agent`` on ``env``: its actions and the last observation.

    ``twin`` (an env on the same seed) takes the same actions and must show the same observations.
    """
    actions = []
    for _ in range(rounds * steps_per_round):
        action = agent.act(obs)
        actions.append(action)
        next_obs, reward, terminated, truncated, info = env.step(action)
        if twin is not None:
            np.testing.assert_array_equal(twin.step(action)[0], next_obs)
        agent.update(obs, action, reward, public_info(info))
        assert not (terminated or truncated)
        obs = next_obs
    return actions, obs


@pytest.mark.parametrize("name", NAMES)
def test_saved_learner_continues_identically(name: str, tmp_path: Path):
    steps_per_round = 2 if name.startswith("2-") else 1
    env, twin = make_env(name), make_env(name)
    obs, _ = env.reset(seed=SEED)
    twin.reset(seed=SEED)
    agent = make_agent(name, env)
    agent.reset(SEED)
    _, obs = play(agent, env, obs, 50, steps_per_round, twin=twin)
    path = tmp_path / "learner.pt"
    agent.save(path)

    fresh = make_agent(name, twin)
    fresh.reset(SEED + 1)  # a fresh learner, trained on other logged clicks: the file must override it all
    fresh.load(path)
    assert fresh.rounds == agent.rounds == 50
    # The twin env took the same 50 rounds of actions, so it shows the same observation as env.
    expected, _ = play(agent, env, obs, 20, steps_per_round)
    got, _ = play(fresh, twin, obs, 20, steps_per_round)
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_state_dict_is_tensors_and_plain_values(tmp_path: Path):
    env = make_env("2-s-n-gblm-ucb")
    env.reset(seed=SEED)
    agent = make_agent("2-s-n-gblm-ucb", env)
    agent.reset(SEED)

    def check(value) -> None:
        if isinstance(value, dict):
            for item in value.values():
                check(item)
        elif isinstance(value, list | tuple):
            for item in value:
                check(item)
        else:
            assert value is None or isinstance(value, torch.Tensor | int | float | str | bool), type(value)

    check(agent.state_dict())
    agent.save(tmp_path / "a.pt")
    torch.load(tmp_path / "a.pt", weights_only=True)


@pytest.mark.parametrize(
    ("saved", "loaded", "match"),
    [
        ("s-n-galm-ucb", "n-greedy", "'s-n-galm-ucb' learner, not 'n-greedy'"),
        ("s-n-gblm-ucb", "n-glm-ucb", "'s-n-gblm-ucb' learner, not 'n-glm-ucb'"),
        ("2-n-dropout-ucb", "2-s-n-galm-ucb", "'2-n-dropout-ucb' learner, not '2-s-n-galm-ucb'"),
    ],
)
def test_another_learners_file_is_refused(saved: str, loaded: str, match: str, tmp_path: Path):
    env = make_env(saved)
    env.reset(seed=SEED)
    agent = make_agent(saved, env)
    agent.reset(SEED)
    path = tmp_path / "other.pt"
    agent.save(path)
    other = make_agent(loaded, env)
    other.reset(SEED)
    with pytest.raises(ValueError, match=match):
        other.load(path)
    with pytest.raises(ValueError, match="learner, not"):
        other.load_state_dict(agent.state_dict())


def test_other_sizes_are_refused(tmp_path: Path):
    env = make_env("s-n-galm-ucb")
    env.reset(seed=SEED)
    agent = make_agent("s-n-galm-ucb", env)
    agent.reset(SEED)
    path = tmp_path / "a.pt"
    agent.save(path)
    wider = make_agent("s-n-galm-ucb", env, embedding_dim=8)
    wider.reset(SEED)
    with pytest.raises(ValueError, match="embedding_dim=16; this learner has embedding_dim=8"):
        wider.load(path)
    bigger = gym.make("TwoStage/TopicItem-v0", hierarchy=False, **{**SMALL, "n_items": 400})
    bigger.reset(seed=SEED)
    elsewhere = make_agent("s-n-galm-ucb", bigger)
    elsewhere.reset(SEED)
    with pytest.raises(ValueError, match="n_items=300"):
        elsewhere.load(path)
