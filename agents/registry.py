"""The agent registry: ``agents.make(name, env, **kwargs)`` and ``agents.names()``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from agents.base import Agent

__all__ = ["AgentSpec", "make", "names", "register", "registry"]


@dataclass(frozen=True)
class AgentSpec:
    """A registered learner: how to build it and what it is."""

    name: str
    factory: Callable[..., Agent]
    family: str
    description: str
    defaults: dict[str, Any]


registry: dict[str, AgentSpec] = {}


def register(name: str, factory: Callable[..., Agent], family: str, description: str, **defaults: Any) -> None:
    """Register ``factory(env, **defaults, **kwargs)`` under ``name`` (lower case, the paper's name)."""
    if name in registry:
        raise ValueError(f"agent {name!r} is already registered")
    registry[name] = AgentSpec(name, factory, family, description, dict(defaults))


def names(family: str | None = None) -> list[str]:
    """Registered agent names, optionally only those of one env family."""
    return [n for n, s in registry.items() if family is None or s.family == family]


def make(name: str, env: gym.Env, **kwargs: Any) -> Agent:
    """Build the learner ``name`` for ``env``.

    Raises:
        ValueError: an unknown name, an env of another family, or an invalid keyword argument.
    """
    if name not in registry:
        raise ValueError(f"unknown agent {name!r}; registered: {', '.join(registry)}")
    spec = registry[name]
    try:
        agent = spec.factory(env, **{**spec.defaults, **kwargs})
    except TypeError as err:
        raise ValueError(f"agent {name!r}: {err}") from None
    agent.name = name
    return agent
