"""Saving and resuming a batched run (``agents.evaluate(..., state_file=, save_every=)``)."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import agents

pytest.importorskip("torch")

# Truncation every 25 steps and the LSR-propensity probe: the state must carry both across a kill.
ENV_KWARGS = {"n_users": 30, "n_items": 60, "n_candidates": 5, "max_episode_steps": 25}
AGENT_KWARGS = {"batch_size": 16, "adaptive_lr": "probe", "probe_pairs": 20}


def make(method: str = "ca-pg", **env_kwargs):
    env = gym.make("TwoStage/EarlyStageRanker-v0", **{**ENV_KWARGS, **env_kwargs})
    return env, agents.make(method, env, **AGENT_KWARGS)


def without_time(record: dict) -> str:
    return json.dumps({k: v for k, v in record.items() if k != "wall_time_s"}, sort_keys=True)


class Killed(Exception):
    """Stands in for a kill: raised from inside the run."""


def killed_run(path: Path, at_update: int, method: str = "ca-pg", save_every: int = 20) -> None:
    """Run 60 steps saving every ``save_every``, and die during update ``at_update``."""
    env, agent = make(method)
    update, count = agent.update, [0]

    def dying_update(*args):
        count[0] += 1
        if count[0] == at_update:
            raise Killed
        return update(*args)

    agent.update = dying_update
    with pytest.raises(Killed):
        agents.evaluate(agent, env, 60, seed=3, state_file=path, save_every=save_every)


@pytest.mark.parametrize(("method", "at_update"), [("ca-pg", 47), ("v-pg", 21), ("ca-pg", 60)])
def test_a_killed_run_resumes_to_the_same_record(tmp_path: Path, method: str, at_update: int) -> None:
    env, agent = make(method)
    uninterrupted = agents.evaluate(agent, env, 60, seed=3)
    path = tmp_path / "state.pt"
    killed_run(path, at_update, method)
    assert path.exists()  # saved at step 20 (and 40), before the kill
    env, agent = make(method)
    resumed = agents.evaluate(agent, env, 60, seed=3, state_file=path, save_every=20)
    assert without_time(resumed) == without_time(uninterrupted)
    assert resumed["policy_value"] == uninterrupted["policy_value"]


def test_the_resumed_run_starts_where_the_state_was_saved(tmp_path: Path, capsys) -> None:
    path = tmp_path / "state.pt"
    killed_run(path, 47)
    env, agent = make()
    update, calls = agent.update, []
    agent.update = lambda *args: calls.append(1) or update(*args)
    agents.evaluate(agent, env, 60, seed=3, state_file=path, save_every=20, progress=True)
    assert "resuming at step 41/60" in capsys.readouterr().out
    assert len(calls) == 20 and agent.steps == 60  # 20 steps here, 40 restored


def test_the_state_of_another_run_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    killed_run(path, 30)
    env, agent = make()
    with pytest.raises(ValueError, match="the state of another run"):
        agents.evaluate(agent, env, 60, seed=4, state_file=path, save_every=20)
    path.write_bytes(b"not a state")
    with pytest.raises(ValueError, match="is not a readable run state"):
        agents.evaluate(agent, env, 60, seed=3, state_file=path, save_every=20)


def test_state_arguments_are_checked(tmp_path: Path) -> None:
    env, agent = make()
    with pytest.raises(ValueError, match="state_file and save_every go together"):
        agents.evaluate(agent, env, 10, seed=0, state_file=tmp_path / "s.pt")
    with pytest.raises(ValueError, match="save_every"):
        agents.evaluate(agent, env, 10, seed=0, state_file=tmp_path / "s.pt", save_every=0)
    nominators = gym.make("TwoStage/Nominators-v0")
    with pytest.raises(ValueError, match="only batched learners save their state"):
        agents.evaluate(agents.make("ucb+ucb", nominators), nominators, 10, seed=0, state_file="x", save_every=5)


def test_a_batched_learner_without_state_support_is_refused_up_front(tmp_path: Path) -> None:
    from agents.common.batched import BatchedAgent

    class Stateless(BatchedAgent):
        batch_size = 4

        def reset(self, seed=None):
            pass

        def act(self, observation):
            return np.zeros((observation.shape[0], ENV_KWARGS["n_items"]), dtype=np.float32)

        def update(self, observation, action, reward, info):
            pass

    env = gym.make("TwoStage/EarlyStageRanker-v0", **ENV_KWARGS)
    with pytest.raises(ValueError, match="Stateless cannot save its state"):
        agents.evaluate(Stateless(), env, 10, seed=0, state_file=tmp_path / "s.pt", save_every=5)
    assert not (tmp_path / "s.pt").exists()
