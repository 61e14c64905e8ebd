"""Fuzzing every registered learner's keyword arguments (``agents.make``).

For every ``(family, name)`` of ``agents.registry`` (a new learner is covered by registering it):
an argument of the wrong type is refused with a ``ValueError`` naming it; an argument at the
edges is refused by name or the learner resets; an unknown argument and an argument the name
fixes (its preset) are refused by name.
"""

from __future__ import annotations

import gymnasium as gym
import pytest
from hypothesis import given
from hypothesis import strategies as st

import agents
from tests.fuzz.strategies import extreme_for, family_env_ids, hints, invalid_for

pytestmark = pytest.mark.fuzz

ENV_VARIANTS = {
    "nominators": [{}, {"n_nominators": 1}],
    "early-stage-ranker": [{}, {"n_experts": 1}],
    "topic-item": [{}, {"hierarchy": False}],  # two-stage learners, then the one-stage ones
}
"""Env kwargs to try, in order, until a learner builds with its defaults (e.g. the single-stage
``ucb`` needs one nominator). A family whose learners all build on its registered ids needs none."""

SIZES = {
    "nominators": {},
    "early-stage-ranker": {"n_users": 20, "n_items": 50, "n_candidates": 5},
    "topic-item": {"n_users": 10, "n_items": 300, "n_topics": 10, "budget_per_slot": 20},
}
"""Small envs: the fuzz checks arguments, not scale."""


def env_for(family: str, name: str) -> gym.Env:
    """An env of ``family`` on which ``name`` builds with its defaults."""
    ids = family_env_ids(family)
    errors = []
    for env_id in ids:
        for variant in ENV_VARIANTS.get(family, [{}]):
            env = gym.make(env_id, **{**SIZES.get(family, {}), **variant})
            try:
                agents.make(name, env)
            except ValueError as err:
                errors.append(f"{env_id} {variant}: {err}")
                continue
            return env
    raise AssertionError(f"{name!r} builds on no env of {family!r}; add a variant to ENV_VARIANTS: {errors}")


LEARNERS = list(agents.registry)


def _tunable(family: str, name: str) -> dict:
    spec = agents.registry[(family, name)]
    return {arg: hint for arg, hint in hints(spec.factory).items() if arg not in spec.defaults}


@pytest.mark.parametrize(("family", "name"), LEARNERS)
def test_wrong_types_are_refused_by_name(family: str, name: str) -> None:
    args = _tunable(family, name)
    if not args:
        pytest.skip(f"{name!r} takes no arguments besides the env")
    env = env_for(family, name)

    @given(st.data())
    def agent_wrong_types(data: st.DataObject) -> None:
        arg = data.draw(st.sampled_from(sorted(args)), label="argument")
        value = data.draw(invalid_for(args[arg], arg), label="value")
        with pytest.raises(ValueError) as caught:
            agents.make(name, env, **{arg: value}).reset(0)
        assert arg in str(caught.value), f"{arg}={value!r}: the error does not name {arg!r}: {caught.value}"

    agent_wrong_types()


@pytest.mark.parametrize(("family", "name"), LEARNERS)
def test_edge_values_are_refused_by_name_or_work(family: str, name: str) -> None:
    args = {arg: hint for arg, hint in _tunable(family, name).items() if not extreme_for(hint).is_empty}
    if not args:
        pytest.skip(f"{name!r} has no numeric arguments")
    env = env_for(family, name)

    @given(st.data())
    def agent_edge_values(data: st.DataObject) -> None:
        arg = data.draw(st.sampled_from(sorted(args)), label="argument")
        value = data.draw(extreme_for(args[arg]), label="value")
        try:
            agent = agents.make(name, env, **{arg: value})
        except ValueError as err:
            assert arg in str(err), f"{arg}={value!r}: the error does not name {arg!r}: {err}"
            return
        env.reset(seed=0)
        agent.reset(0)

    agent_edge_values()


@pytest.mark.parametrize(("family", "name"), LEARNERS)
def test_unknown_and_preset_arguments_are_refused_by_name(family: str, name: str) -> None:
    spec = agents.registry[(family, name)]
    env = env_for(family, name)
    known = set(hints(spec.factory))

    @given(st.from_regex(r"[a-z][a-z_]{0,12}", fullmatch=True).filter(lambda a: a not in known))
    def agent_unknown_kwargs(arg: str) -> None:
        with pytest.raises(ValueError, match=arg):
            agents.make(name, env, **{arg: 1})

    agent_unknown_kwargs()
    for arg, value in spec.defaults.items():
        with pytest.raises(ValueError, match=f"fixes .*{arg}="):
            agents.make(name, env, **{arg: value})
