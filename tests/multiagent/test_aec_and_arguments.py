"""``nominators_v0``: bad actions in the AEC form (issue 19, item 7) and constructor arguments (item 4)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pettingzoo")

from gymnasium.utils.env_checker import data_equivalence
from pettingzoo.test import api_test

from twostage_gym.core import checks
from twostage_gym.multiagent import nominators_v0

SMALL = {"n_items": 20, "dim": 4, "n_nominators": 3}  # pools of 7, 7 and 6 items
ADVISORY = [
    "ignore:Observation is not a NumPy array:UserWarning",
    "ignore:Observation space for each agent probably should be:UserWarning",
    "ignore:Agents have different observation space sizes:UserWarning",
]


def aec(**kwargs):
    env = nominators_v0.env(**{**SMALL, **kwargs})
    env.reset(seed=4)
    return env


def snapshot(env) -> tuple:
    """Everything an AEC user can see: who acts, every agent's observation and its last() tuple."""
    agents = list(env.agents)
    return (
        env.agent_selection,
        agents,
        {a: env.observe(a) for a in agents},
        {a: (env.rewards[a], env._cumulative_rewards[a], env.terminations[a], env.truncations[a]) for a in agents},
        {a: env.infos[a] for a in agents},
        env.unwrapped.phase,
        env.unwrapped.state(),
    )


def play(env, actions: list) -> list:
    """Step ``env`` with ``actions`` in turn, recording what every step leaves visible."""
    out = []
    for action in actions:
        env.step(action)
        out.append(snapshot(env))
    return out


# Two rounds with the ranker agent: nominators then ranker, phase 0 then phase 1 (4 steps per phase).
VALID_CYCLES = [3, 1, 5, 0, None, None, None, 2] * 2

BAD_PHASE0 = [
    (-1, "nominator_0: nomination outside the pool: index -1"),
    (7, "nominator_0: nomination outside the pool: index 7"),
    (np.int64(99), "nominator_0: nomination outside the pool"),
    (1.0, "nominator_0: an action must be an integer"),
    (True, "nominator_0: an action must be an integer"),
    ("1", "nominator_0: an action must be an integer"),
    (np.array([1]), "nominator_0: an action must be an integer"),
    (None, "nominator_0: missing action; it acts in phase 0"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_PHASE0)
def test_aec_refuses_a_bad_action_at_the_step_that_receives_it(bad, message):
    env, twin = aec(), aec()
    before = snapshot(env)
    with pytest.raises(ValueError, match=message):
        env.step(bad)
    # Nothing changed: nominator_0 is still to act, with the same observations, rewards and infos.
    assert env.agent_selection == "nominator_0"
    assert data_equivalence(snapshot(env), before, exact=True)
    # ... and the env goes on exactly as a twin that never saw the bad action.
    assert data_equivalence(play(env, VALID_CYCLES), play(twin, VALID_CYCLES), exact=True)


def test_aec_bad_actions_later_in_the_cycle_and_in_phase_one():
    env, twin = aec(), aec()
    for e in (env, twin):
        e.step(3)
        e.step(1)
    cases = [
        ("nominator_2", 6, "nominator_2: nomination outside the pool: index 6"),  # its pool holds 6 items
        ("nominator_2", None, "nominator_2: missing action"),
    ]
    for agent, bad, message in cases:
        assert env.agent_selection == agent
        with pytest.raises(ValueError, match=message):
            env.step(bad)
    env.step(5)
    twin.step(5)
    # The ranker's phase-0 action is ignored but still checked (as in the parallel env); None is fine.
    assert env.agent_selection == "ranker_0"
    with pytest.raises(ValueError, match="ranker_0: ranker pick 3 is outside the candidate set"):
        env.step(3)
    assert data_equivalence(snapshot(env), snapshot(twin), exact=True)
    env.step(None)
    twin.step(0)
    assert env.unwrapped.phase == twin.unwrapped.phase == 1
    # Phase 1: nominators may pass None (ignored) but not an invalid index; the ranker must act.
    with pytest.raises(ValueError, match="nominator_0: nomination outside the pool"):
        env.step(-1)
    play(env, [None, 0, None])
    play(twin, [2, 0, 6 - 1])
    assert env.agent_selection == "ranker_0"
    for bad, message in ((None, "ranker_0: missing action"), (-1, "ranker_0: ranker pick -1"), (3, "pick 3")):
        with pytest.raises(ValueError, match=message):
            env.step(bad)
    assert data_equivalence(play(env, [np.int32(2), *VALID_CYCLES]), play(twin, [2, *VALID_CYCLES]), exact=True)


@pytest.mark.parametrize("ranker", ["oracle", "random"])
def test_aec_with_a_fixed_ranker_refuses_bad_actions_too(ranker):
    env, twin = aec(ranker=ranker), aec(ranker=ranker)
    env.step(0)
    twin.step(0)
    with pytest.raises(ValueError, match="nominator_1: nomination outside the pool"):
        env.step(-1)
    with pytest.raises(ValueError, match="nominator_1: an action must be an integer"):
        env.step([1])
    actions = [1, 2, 0, 4, 4, 6, 1, 1]
    assert data_equivalence(play(env, actions), play(twin, actions), exact=True)


def test_aec_done_agents_must_step_with_none():
    env = aec(ranker="oracle", max_cycles=1)
    env.step(0)
    env.step(0)
    env.step(0)  # the only round: every agent is now truncated
    assert env.truncations[env.agent_selection]
    with pytest.raises(ValueError, match=r"nominator_0 is done \(truncated\): its step takes action None, got 0"):
        env.step(0)
    while env.agents:
        env.step(None)


@pytest.mark.filterwarnings(*ADVISORY)
def test_aec_form_still_passes_the_api_test_and_keeps_its_structure():
    env = nominators_v0.env(**SMALL, max_cycles=10)
    api_test(env, num_cycles=30)
    assert isinstance(env.unwrapped, nominators_v0.raw_env)
    assert str(env) == "nominators_v0"


def test_parallel_env_check_agent_action_changes_nothing():
    env = nominators_v0.parallel_env(**SMALL)
    env.reset(seed=0)
    state = env.state()
    assert env.check_agent_action("nominator_0", np.int8(6)) == 6
    assert env.check_agent_action("ranker_0", None) is None  # not acting in phase 0
    with pytest.raises(ValueError, match="unknown agent 'ranker_9'"):
        env.check_agent_action("ranker_9", 0)
    with pytest.raises(ValueError, match="nominator_1: missing action"):
        env.check_agent_action("nominator_1", None)
    assert np.array_equal(state, env.state()) and env.phase == 0


# -- constructor arguments ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_cycles": "10"}, "max_cycles"),
        ({"max_cycles": None}, "max_cycles"),
        ({"max_cycles": -3}, "max_cycles"),
        ({"max_cycles": np.bool_(True)}, "max_cycles"),
        ({"ranker": ["agent"]}, "ranker"),
        ({"ranker": np.array(["agent", "oracle"])}, "ranker"),
        ({"reward_mode": None}, "reward_mode"),
        ({"render_mode": ["ansi"]}, "render_mode"),
        ({"noise_std": "0.1"}, "noise_std"),
        ({"noise_std": True}, "noise_std"),
        ({"misspecification": "2"}, "misspecification"),
        ({"nominator_dim": True}, "nominator_dim"),
        ({"pools": 5}, "pools"),
        ({"feature_subsets": "0123"}, "feature_subsets"),
        ({"reward_noise": "bernoulli"}, "reward_noise"),
        ({"n_items": 10**12}, "n_items=1000000000000"),
        ({"n_items": True}, "n_items"),
    ],
)
def test_constructor_arguments_refused_by_name(kwargs, name):
    with pytest.raises(ValueError, match=name):
        nominators_v0.parallel_env(**{**SMALL, **kwargs})
    with pytest.raises(ValueError, match=name):
        nominators_v0.env(**{**SMALL, **kwargs})


def test_memory_estimate_counts_the_nominators_views(monkeypatch):
    # Each nominator's view (N, P, s) and its observation space come on top of the single-agent env's arrays.
    kwargs = {"n_items": 2000, "dim": 50, "n_nominators": 2}
    nominators_v0.parallel_env(**kwargs)
    single = nominators_v0.parallel_env(**kwargs).config.check_memory()
    monkeypatch.setattr(checks, "MEMORY_LIMIT_BYTES", single + 1000)
    with pytest.raises(ValueError, match=r"n_items=2000, dim=50, n_nominators=2: .*(nominator views|per-agent)"):
        nominators_v0.parallel_env(**kwargs)


def test_valid_numpy_arguments_give_the_same_rollout():
    a = nominators_v0.parallel_env(
        n_items=np.int64(20), dim=np.int32(4), n_nominators=3, noise_std=np.float32(0.5), max_cycles=np.int64(3)
    )
    b = nominators_v0.parallel_env(n_items=20, dim=4, n_nominators=3, noise_std=float(np.float32(0.5)), max_cycles=3)
    out = []
    for env in (a, b):
        rng = np.random.default_rng(0)
        rec = [env.reset(seed=2)]
        while env.agents:
            rec.append(env.step({x: int(rng.integers(env.action_space(x).n)) for x in env.agents}))
        out.append(rec)
    assert data_equivalence(out[0], out[1], exact=True)
    assert len(out[0]) == 7  # 3 rounds of two phases
