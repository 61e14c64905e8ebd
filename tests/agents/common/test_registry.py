"""The family-keyed agent registry, and the package layout it rests on."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import agents
import twostage_gym
from agents.common import registry as reg
from agents.common.base import Agent
from agents.nominators.references import RandomAgent

AGENTS_DIR = Path(agents.__file__).resolve().parent


class ToyEnv(gym.Env):
    """A one-armed stand-in for a family still to come."""

    observation_space = gym.spaces.Box(0.0, 1.0, (1,), dtype=np.float32)
    action_space = gym.spaces.Discrete(1)


class ToyRandom(Agent):
    def __init__(self, env: gym.Env, scale: float = 1.0) -> None:
        self.scale = scale

    def reset(self, seed=None):
        pass

    def act(self, observation):
        return 0

    def update(self, observation, action, reward, info):
        pass


@pytest.fixture
def toy_family(monkeypatch: pytest.MonkeyPatch) -> str:
    """A family ``toy`` with its own ``random``, registered on copies of the registry."""
    monkeypatch.setattr(reg, "families", dict(reg.families))
    monkeypatch.setattr(reg, "registry", dict(reg.registry))
    reg.register_family("toy", ToyEnv, package=__name__)
    reg.register("random", ToyRandom, family="toy", description="toy random")
    return "toy"


def test_every_family_and_name() -> None:
    assert list(agents.families) == ["nominators", "early-stage-ranker", "topic-item", "tree", "selection"]
    assert list(agents.registry) == [(s.family, s.name) for s in agents.registry.values()]
    nominators, early = agents.names("nominators"), agents.names("early-stage-ranker")
    topic_item = agents.names("topic-item")
    # Each name once: the topic-item family's 'random' is listed with the nominators' already.
    later = agents.names("tree") + agents.names("selection")
    assert agents.names() == list(dict.fromkeys(nominators + early + topic_item + later))
    assert "random" in nominators and "ca-pg" in early and "2-s-n-gblm-ucb" in topic_item
    assert agents.families["early-stage-ranker"].package == "agents.early_stage"
    assert agents.families["topic-item"].package == "agents.topic_item"


def test_every_registered_env_id_has_a_family() -> None:
    expected = {
        "TwoStage/Nominators-v0": "nominators",
        "TwoStage/Nominators-Prop2A-v0": "nominators",
        "TwoStage/Nominators-Prop2B-v0": "nominators",
        "TwoStage/EarlyStageRanker-v0": "early-stage-ranker",
        "TwoStage/TopicItem-v0": "topic-item",
    }
    assert {env_id: agents.family_of(env_id) for env_id in expected} == expected
    for env_id in set(twostage_gym.ENV_IDS) - set(expected):  # a newer env: its family, or none yet
        try:
            assert agents.family_of(env_id) in agents.families
        except ValueError as err:
            assert f"no agent family plays {env_id}" in str(err)
    # The same from a (wrapped) env instance.
    env = gym.make("TwoStage/Nominators-Prop2A-v0")
    assert agents.family_of(env) == agents.family_of(env.unwrapped) == "nominators"


def test_make_resolves_the_name_in_the_env_family(toy_family: str) -> None:
    assert reg.names(toy_family) == ["random"]
    assert reg.names().count("random") == 1  # every name once
    toy = reg.make("random", ToyEnv(), scale=2.0)
    assert isinstance(toy, ToyRandom) and toy.scale == 2.0 and toy.name == "random"
    nominator = reg.make("random", gym.make("TwoStage/Nominators-v0"))
    assert isinstance(nominator, RandomAgent)
    with pytest.raises(ValueError, match=r"unknown agent 'ucb\+ucb' for the toy family of ToyEnv; its agents: random"):
        reg.make("ucb+ucb", ToyEnv())
    with pytest.raises(ValueError, match=r"'ucb\+ucb' is a learner of the family nominators \(TwoStage/Nominators-v0"):
        reg.make("ucb+ucb", ToyEnv())
    with pytest.raises(ValueError, match=r"agent 'random': .*unexpected keyword argument 'alpha'"):
        reg.make("random", ToyEnv(), alpha=1.0)


def test_unknown_names_list_what_the_family_has() -> None:
    env = gym.make("TwoStage/EarlyStageRanker-v0")
    with pytest.raises(ValueError, match=r"its agents: v-pg, v-pg-swr, ca-pg, ca-pg-swr, top1-pg$"):
        agents.make("nope", env)
    with pytest.raises(ValueError, match=r"no agent family plays CartPoleEnv; .*early-stage-ranker"):
        agents.make("random", gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="unknown env id 'TwoStage/Nope-v0'"):
        agents.family_of("TwoStage/Nope-v0")
    with pytest.raises(ValueError, match="unknown agent family 'toy'; families: nominators, early-stage-ranker"):
        agents.names("toy")


@pytest.mark.parametrize("env", [None, "TwoStage/Nominators-v0", 3])
def test_make_needs_a_gymnasium_env(env) -> None:
    with pytest.raises(ValueError, match=f"env must be a gymnasium.Env .*got {type(env).__name__}"):
        agents.make("ucb+ucb", env)


def test_registration_rules(toy_family: str) -> None:
    families, registry = dict(reg.families), dict(reg.registry)
    with pytest.raises(ValueError, match="'random' is already registered in the family 'toy'"):
        reg.register("random", ToyRandom, family="toy", description="again")
    with pytest.raises(ValueError, match="unknown agent family 'no-such-family'"):
        reg.register("beam", ToyRandom, family="no-such-family", description="no family")
    with pytest.raises(ValueError, match="family 'toy' is already registered"):
        reg.register_family("toy", ToyEnv, package=__name__)

    class SubToyEnv(ToyEnv):
        pass

    with pytest.raises(ValueError, match="SubToyEnv already belongs to the family 'toy'"):
        reg.register_family("sub-toy", SubToyEnv, package=__name__)
    assert reg.families == families and reg.registry == registry  # refused registrations change nothing


def _imported_packages(path: Path) -> set[str]:
    """The ``agents.X`` packages that the module at ``path`` imports (at any depth of its code)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
            if node.module == "agents":  # ``from agents import nominators``
                modules += [f"agents.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        else:
            continue
        found |= {m.split(".")[1] for m in modules if m.startswith("agents.")}
    return found


def test_no_family_imports_another_family() -> None:
    """A family imports ``agents.common`` (and ``twostage_gym``), never another family; ``common``
    imports no family."""
    families = {agents.families[f].package.split(".")[1] for f in agents.families}
    assert families == {"nominators", "early_stage", "topic_item", "tree", "selection"}
    for package in [*families, "common"]:
        for path in (AGENTS_DIR / package).rglob("*.py"):
            others = (_imported_packages(path) & families) - {package}
            assert not others, f"{path.relative_to(AGENTS_DIR)} imports the family {others}"


def test_import_agents_and_every_family_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import agents, agents.early_stage, agents.nominators, agents.topic_item, agents.common.evaluation\n"
        "assert agents.names('early-stage-ranker')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
