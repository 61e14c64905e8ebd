"""The agent registry, keyed by family and name: ``agents.make(name, env, **kwargs)`` and ``agents.names()``.

A *family* is one paper's learners for one kind of environment. Each family package registers
itself once (:func:`register_family`: its name, the env classes its learners play, its package)
and then its learners (:func:`register`). Names are unique within a family only, so that every
family can have its own ``random`` or ``linucb``: :func:`make` looks the name up in the family of
the env it is given, found from the env's class (``env.unwrapped``), never guessed from the name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

import twostage_gym
from agents.common.base import Agent

__all__ = [
    "AgentSpec",
    "FamilySpec",
    "families",
    "family_of",
    "make",
    "names",
    "register",
    "register_family",
    "registry",
]


@dataclass(frozen=True)
class FamilySpec:
    """A family of learners: the envs it plays and the package that documents it.

    Attributes:
        name: the family's name, e.g. ``"nominators"``.
        envs: the environment classes (subclasses included) whose learners these are.
        package: the family's package, e.g. ``"agents.nominators"``; its docstring describes the family.
    """

    name: str
    envs: tuple[type, ...]
    package: str


@dataclass(frozen=True)
class AgentSpec:
    """A registered learner: how to build it and what it is."""

    name: str
    factory: Callable[..., Agent]
    family: str
    description: str
    defaults: dict[str, Any]


families: dict[str, FamilySpec] = {}
"""Every registered family, by name, in registration order."""

registry: dict[tuple[str, str], AgentSpec] = {}
"""Every registered learner, keyed by ``(family, name)``, in registration order."""


def register_family(name: str, envs: type | tuple[type, ...], package: str) -> None:
    """Register the family ``name``, whose learners play the env classes ``envs``.

    Raises:
        ValueError: ``name`` is registered already, or one of ``envs`` belongs to another family.
    """
    envs = envs if isinstance(envs, tuple) else (envs,)
    if name in families:
        raise ValueError(f"agent family {name!r} is already registered")
    for other in families.values():
        shared = [c.__name__ for c in envs if issubclass(c, other.envs) or any(issubclass(o, c) for o in other.envs)]
        if shared:
            raise ValueError(f"family {name!r}: {', '.join(shared)} already belongs to the family {other.name!r}")
    families[name] = FamilySpec(name, envs, package)


def register(name: str, factory: Callable[..., Agent], family: str, description: str, **defaults: Any) -> None:
    """Register ``factory(env, **defaults, **kwargs)`` as ``name`` (lower case, the paper's name) of ``family``.

    Raises:
        ValueError: ``family`` is not registered, or it has a learner called ``name`` already.
    """
    if family not in families:
        raise ValueError(f"unknown agent family {family!r}; register it first (registered: {', '.join(families)})")
    if (family, name) in registry:
        raise ValueError(f"agent {name!r} is already registered in the family {family!r}")
    registry[(family, name)] = AgentSpec(name, factory, family, description, dict(defaults))


def names(family: str | None = None) -> list[str]:
    """The registered names of ``family``, or of every family (each name once), in registration order.

    Raises:
        ValueError: ``family`` is not a registered family.
    """
    if family is not None and family not in families:
        raise ValueError(f"unknown agent family {family!r}; families: {', '.join(families)}")
    return list(dict.fromkeys(n for f, n in registry if family is None or f == family))


def _env_ids(family: FamilySpec) -> list[str]:
    """The suite's env ids whose entry point is one of ``family``'s env classes."""
    return [env_id for env_id in twostage_gym.ENV_IDS if issubclass(_env_class(env_id), family.envs)]


def _family_text(family: FamilySpec) -> str:
    """``"name (env ids)"`` for error messages."""
    return f"{family.name} ({', '.join(_env_ids(family) or [c.__name__ for c in family.envs])})"


def _env_class(env: gym.Env | str) -> type:
    """The class of ``env`` under its wrappers, or the class ``gym.make(env)`` builds for an id (unbuilt)."""
    if not isinstance(env, str):
        return type(getattr(env, "unwrapped", env))
    if env not in gym.registry:
        raise ValueError(f"unknown env id {env!r}")
    entry_point = gym.spec(env).entry_point
    creator = load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point
    return creator if isinstance(creator, type) else type(creator)


def family_of(env: gym.Env | str) -> str:
    """The family whose learners play ``env``: an env (possibly wrapped) or a registered env id.

    Raises:
        ValueError: an unknown env id, or an env that no registered family plays (the message
            lists the families and their env ids).
    """
    cls = _env_class(env)
    for family in families.values():
        if issubclass(cls, family.envs):
            return family.name
    what = env if isinstance(env, str) else cls.__name__
    known = "; ".join(_family_text(f) for f in families.values())
    raise ValueError(f"no agent family plays {what}; the families and their envs: {known}")


def make(name: str, env: gym.Env, **kwargs: Any) -> Agent:
    """Build the learner ``name`` of ``env``'s family for ``env``.

    Keyword arguments tune the learner; those that the name fixes (its preset, e.g. ``method`` of
    ``ca-pg`` or ``ranker`` of ``ucb+ucb``) and those that the learner would not use are refused,
    so a kwarg can never change which learner ``name`` builds.

    Raises:
        ValueError: ``env`` is not a gymnasium env, an env that no family plays, a name its family
            does not have (the message lists the names it has), a kwarg the name fixes, or an
            invalid keyword argument.
    """
    if not isinstance(env, gym.Env):
        raise ValueError(f"env must be a gymnasium.Env (e.g. from gym.make), got {type(env).__name__}: {env!r:.80}")
    family = family_of(env)
    spec = registry.get((family, name))
    if spec is None:
        elsewhere = [_family_text(families[f]) for f, n in registry if n == name]
        hint = f"; {name!r} is a learner of the family {' and of '.join(elsewhere)}" if elsewhere else ""
        raise ValueError(
            f"unknown agent {name!r} for the {family} family of {_env_class(env).__name__}; "
            f"its agents: {', '.join(names(family))}{hint}"
        )
    fixed = [key for key in kwargs if key in spec.defaults]
    if fixed:
        preset = ", ".join(f"{key}={spec.defaults[key]!r}" for key in fixed)
        raise ValueError(f"agent {name!r} fixes {preset}; choose another registered name instead of {fixed[0]}=...")
    try:
        agent = spec.factory(env, **{**spec.defaults, **kwargs})
    except TypeError as err:
        raise ValueError(f"agent {name!r}: {err}") from None
    agent.name = name
    return agent
