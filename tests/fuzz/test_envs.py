"""Fuzzing every registered env id and its native vector env: constructor arguments and actions.

Properties, for every id of ``twostage_gym.ENV_IDS`` (a new env is covered by registering it):

* an argument of the wrong type (by the constructor's annotations) is refused at ``make`` with a
  ``ValueError`` that names it;
* an argument at the edges (negative, zero, too large for memory, infinite) is refused by name,
  or accepted, and then the env resets and steps;
* an action outside the action space is refused with ``ValueError``; an action that is refused
  leaves the env as it was: a twin env that never saw it continues identically;
* the same for the native vector env, with ``num_envs`` and ``max_episode_steps`` too.
"""

from __future__ import annotations

import gymnasium as gym
import pytest
from gymnasium.envs.registration import load_env_creator
from gymnasium.utils.env_checker import data_equivalence
from hypothesis import given
from hypothesis import strategies as st

import twostage_gym
from tests.fuzz.strategies import actions_near, contains, extreme_for, hints, invalid_for

pytestmark = pytest.mark.fuzz

ENV_IDS = list(twostage_gym.ENV_IDS)
VECTOR_IDS = [i for i in ENV_IDS if gym.spec(i).vector_entry_point is not None]
VECTOR_ARGS = {"num_envs": int, "max_episode_steps": int | None}


def env_hints(env_id: str) -> dict:
    return hints(load_env_creator(gym.spec(env_id).entry_point))


def make_with(env_id: str, name: str, value):
    """``gym.make(env_id, name=value)``; for ``render_mode``, which ``gym.make`` itself inspects
    (and trips over when it is no string), the env class of ``env_id`` with its registered kwargs."""
    spec = gym.spec(env_id)
    if name == "render_mode":
        return lambda: load_env_creator(spec.entry_point)(**{**spec.kwargs, name: value})
    return lambda: gym.make(env_id, **{name: value})


def assert_refused_by_name(make, name: str, value) -> None:
    with pytest.raises(ValueError) as caught:
        env = make()
        env.close()
    assert name in str(caught.value), f"{name}={value!r}: the error does not name {name!r}: {caught.value}"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_wrong_types_are_refused_by_name(env_id: str) -> None:
    args = env_hints(env_id)

    @given(st.data())
    def env_wrong_types(data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(args)), label="argument")
        value = data.draw(invalid_for(args[name], name), label="value")
        assert_refused_by_name(make_with(env_id, name, value), name, value)

    env_wrong_types()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_edge_values_are_refused_by_name_or_work(env_id: str) -> None:
    args = {name: hint for name, hint in env_hints(env_id).items() if not extreme_for(hint).is_empty}

    @given(st.data())
    def env_edge_values(data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(args)), label="argument")
        value = data.draw(extreme_for(args[name]), label="value")
        try:
            env = make_with(env_id, name, value)()
        except ValueError as err:
            assert name in str(err), f"{name}={value!r}: the error does not name {name!r}: {err}"
            return
        try:
            env.reset(seed=0)
            env.action_space.seed(0)
            env.step(env.action_space.sample())
        finally:
            env.close()

    env_edge_values()


@pytest.mark.parametrize("env_id", VECTOR_IDS)
def test_vector_env_arguments_are_refused_by_name(env_id: str) -> None:
    args = {**env_hints(env_id), **VECTOR_ARGS}

    @given(st.data())
    def vector_env_arguments(data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(args)), label="argument")
        bad = invalid_for(args[name], name)
        if name in VECTOR_ARGS:  # counts: also below 1
            bad = bad | st.sampled_from([0, -1, -5])
        value = data.draw(bad, label="value")
        kwargs = {"num_envs": 2, name: value}
        assert_refused_by_name(
            lambda: gym.make_vec(env_id, vectorization_mode="vector_entry_point", **kwargs), name, value
        )

    vector_env_arguments()


def _twin_check(env: gym.Env, twin: gym.Env, action) -> None:
    """Step ``env`` with ``action``; refused or not, it must stay in step with ``twin``."""
    space = env.action_space
    try:
        out = env.step(action)
    except ValueError:
        refused = True
    else:
        refused = False
        assert contains(space, action), f"an action outside {space} was accepted: {action!r}"
        assert data_equivalence(out, twin.step(action), exact=True), "the twin differs on the same action"
    if refused:
        twin_action = twin.action_space.sample()
        assert data_equivalence(env.step(twin_action), twin.step(twin_action), exact=True), (
            f"refusing {action!r} changed the env's state"
        )


def _fuzz_actions(make) -> None:
    """Reset ``make()`` and its twin alike, take a valid step, then check a drawn action."""
    env, twin = make(), make()

    @given(actions_near(env.action_space), st.integers(0, 3))
    def env_actions(action, seed: int) -> None:
        for e in (env, twin):
            e.reset(seed=seed)
            e.action_space.seed(seed)
        first = env.action_space.sample()  # mid-episode, not at the start
        twin.action_space.sample()
        env.step(first)
        twin.step(first)
        _twin_check(env, twin, action)

    try:
        env_actions()
    finally:
        env.close()
        twin.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_bad_actions_are_refused_and_change_nothing(env_id: str) -> None:
    _fuzz_actions(lambda: gym.make(env_id))


@pytest.mark.parametrize("env_id", VECTOR_IDS)
def test_bad_vector_actions_are_refused_and_change_nothing(env_id: str) -> None:
    _fuzz_actions(lambda: gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point"))
