"""Fuzzing every PettingZoo module of ``twostage_gym.multiagent``: arguments, parallel and AEC actions.

A module with ``raw_env``, ``parallel_env`` and ``env`` is covered by being in the package:
arguments of the wrong type are refused by name; a bad action for one agent is refused with
``ValueError``, in the parallel form and in the AEC form at the step that receives it, and leaves
the env as a twin that never saw it.
"""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.strategies import actions_near, contains, hints, invalid_for

pytest.importorskip("pettingzoo")
import twostage_gym.multiagent as multiagent

pytestmark = pytest.mark.fuzz

MODULES = [
    importlib.import_module(f"{multiagent.__name__}.{m.name}")
    for m in pkgutil.iter_modules(multiagent.__path__)
    if not m.name.startswith("_")
]
MODULES = [m for m in MODULES if hasattr(m, "raw_env")]
IDS = [m.__name__.rpartition(".")[2] for m in MODULES]


def test_every_module_is_fuzzed() -> None:
    assert "nominators_v0" in IDS


@pytest.mark.parametrize("module", MODULES, ids=IDS)
def test_wrong_types_are_refused_by_name(module) -> None:
    args = hints(module.raw_env)

    @given(st.data())
    def multiagent_wrong_types(data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(args)), label="argument")
        value = data.draw(invalid_for(args[name], name), label="value")
        with pytest.raises(ValueError) as caught:
            module.parallel_env(**{name: value})
        assert name in str(caught.value), f"{name}={value!r}: the error does not name {name!r}: {caught.value}"

    multiagent_wrong_types()


def _valid_actions(env, rng: np.random.Generator) -> dict:
    return {agent: int(rng.integers(env.action_space(agent).n)) for agent in env.agents}


@pytest.mark.parametrize("module", MODULES, ids=IDS)
def test_bad_parallel_actions_are_refused_and_change_nothing(module) -> None:
    env, twin = module.parallel_env(), module.parallel_env()
    agent_names = list(env.possible_agents)

    @given(st.sampled_from(agent_names), st.data(), st.integers(0, 3))
    def parallel_actions(agent: str, data: st.DataObject, seed: int) -> None:
        env.reset(seed=seed)
        twin.reset(seed=seed)
        rng = np.random.default_rng(seed)
        actions = _valid_actions(env, rng)
        bad = data.draw(actions_near(env.action_space(agent)), label="action")
        try:
            out = env.step({**actions, agent: bad})
        except ValueError:
            follow = _valid_actions(twin, rng)
            same = data_equivalence(env.step(follow), twin.step(follow), exact=True)
            assert same, f"refusing {bad!r} changed the env"
        else:
            assert bad is None or contains(env.action_space(agent), bad), f"{agent}: {bad!r} was accepted"
            assert data_equivalence(out, twin.step({**actions, agent: bad}), exact=True)

    parallel_actions()


@pytest.mark.parametrize("module", MODULES, ids=IDS)
def test_bad_aec_actions_are_refused_where_given(module) -> None:
    """The AEC form refuses a bad action at the step that receives it; the env is as before."""

    @given(st.data(), st.integers(0, 3), st.integers(0, 3))
    def aec_actions(data: st.DataObject, seed: int, turns: int) -> None:
        env, twin = module.env(), module.env()
        env.reset(seed=seed)
        twin.reset(seed=seed)
        rng = np.random.default_rng(seed)
        for _ in range(turns):  # a few valid turns first: any agent may be the one to act
            action = int(rng.integers(env.action_space(env.agent_selection).n))
            env.step(action)
            twin.step(action)
        agent = env.agent_selection
        bad = data.draw(actions_near(env.action_space(agent)), label="action")
        if bad is None or contains(env.action_space(agent), bad):
            return  # a valid action (None is PettingZoo's no-op for done agents): nothing to refuse
        with pytest.raises(ValueError):
            env.step(bad)
        assert env.agent_selection == twin.agent_selection == agent
        for _ in range(2 * len(env.possible_agents)):  # the game goes on as the twin's does
            if not env.agents:
                break
            action = int(rng.integers(env.action_space(env.agent_selection).n))
            env.step(action)
            twin.step(action)
            assert env.agent_selection == twin.agent_selection
            assert data_equivalence(env.last(), twin.last(), exact=True)

    aec_actions()
