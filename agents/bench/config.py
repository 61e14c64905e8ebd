"""What one bench job is: a :class:`RunConfig` and a seed, with the parsing and validation of both."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import gymnasium as gym

import agents
import twostage_gym

__all__ = [
    "MAX_SEEDS",
    "BenchError",
    "RunConfig",
    "canonical_json",
    "check_names",
    "default_steps",
    "format_seeds",
    "parse_kwargs",
    "parse_seeds",
    "validate_configs",
]


class BenchError(Exception):
    """A user-facing error of the bench: bad input or an impossible configuration.

    The command line prints the message and exits non-zero, without a traceback.
    """


def canonical_json(value: Any) -> str:
    """The canonical JSON text of ``value``: sorted keys, no whitespace, so equal configs hash equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _plain(kwargs: dict[str, Any], what: str) -> dict[str, Any]:
    """``kwargs`` round-tripped through JSON (tuples become lists), or a :class:`BenchError`."""
    try:
        return json.loads(canonical_json(kwargs))
    except (TypeError, ValueError) as err:
        raise BenchError(f"{what} must be JSON-serialisable: {err}") from None


@dataclass(frozen=True)
class RunConfig:
    """One (env, agent, horizon) configuration; with a seed it is one job and one record.

    Attributes:
        env_id: a registered id, e.g. ``"TwoStage/Nominators-v0"``.
        agent: a registered agent name, e.g. ``"ucb+ucb"``.
        steps: the horizon T passed to ``agents.evaluate``.
        env_kwargs: keyword arguments of ``gym.make``.
        agent_kwargs: keyword arguments of ``agents.make``.
    """

    env_id: str
    agent: str
    steps: int
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    agent_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "env_kwargs", _plain(self.env_kwargs, "env kwargs"))
        object.__setattr__(self, "agent_kwargs", _plain(self.agent_kwargs, "agent kwargs"))

    def as_dict(self) -> dict[str, Any]:
        """The fields that define the configuration (and its hash)."""
        return {
            "env_id": self.env_id,
            "env_kwargs": self.env_kwargs,
            "agent": self.agent,
            "agent_kwargs": self.agent_kwargs,
            "steps": self.steps,
        }

    def __hash__(self) -> int:
        return hash(self.config_hash)

    @cached_property
    def config_hash(self) -> str:
        """sha256 of the canonical JSON of :meth:`as_dict`. The seed is not part of it, so the
        records of one configuration group together across seeds."""
        return hashlib.sha256(canonical_json(self.as_dict()).encode()).hexdigest()

    @property
    def env_key(self) -> str:
        """The env configuration (id, kwargs, horizon) as canonical JSON; a leaderboard table each."""
        return canonical_json({"env_id": self.env_id, "env_kwargs": self.env_kwargs, "steps": self.steps})

    def label(self) -> str:
        """Short human label: the agent name, with its kwargs if any."""
        return self.agent if not self.agent_kwargs else f"{self.agent} {canonical_json(self.agent_kwargs)}"

    def make(self) -> tuple[gym.Env, agents.Agent]:
        """Build the env and the agent (unseeded)."""
        env = gym.make(self.env_id, **self.env_kwargs)
        return env, agents.make(self.agent, env, **self.agent_kwargs)


def default_steps(env_id: str) -> int:
    """The horizon registered for ``env_id`` (its ``max_episode_steps``), else 1000."""
    spec = gym.spec(env_id)
    return int(spec.max_episode_steps or 1000)


MAX_SEEDS = 1_000_000
"""The most seeds one ``--seeds`` may list: more is a typo (``0-1000000000``), not a study."""


def parse_seeds(text: str) -> list[int]:
    """Parse a seed list: ``"0-9"``, ``"0,3,5"``, ``"7"``, or a mix such as ``"0-4,8"``.

    Linear in the number of seeds (a set finds repeats), so ``"0-39999"`` is immediate.

    Raises:
        BenchError: malformed text, a negative seed, an empty or reversed range, a repeated seed,
            or more than :data:`MAX_SEEDS` seeds.
    """
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            first = int(lo)
            last = int(hi) if sep else first
        except ValueError:
            raise BenchError(f"bad seeds {text!r}: expected e.g. '0-9', '0,3,5' or '7'") from None
        if first < 0 or last < first:
            raise BenchError(f"bad seeds {text!r}: {part!r} is not a range of non-negative integers low-high")
        # Checked before expanding, so a typo like '0-10000000000' is an error, not a MemoryError.
        if len(seeds) + (last - first + 1) > MAX_SEEDS:
            raise BenchError(f"bad seeds {text!r}: more than {MAX_SEEDS} seeds")
        seeds.extend(range(first, last + 1))
    seen: set[int] = set()
    repeated: set[int] = set()
    for seed in seeds:
        if seed in seen:
            repeated.add(seed)
        seen.add(seed)
    if repeated:
        raise BenchError(f"bad seeds {text!r}: seed {min(repeated)} appears more than once")
    return seeds


def format_seeds(seeds: list[int]) -> str:
    """The inverse of :func:`parse_seeds`: ``[0, 1, 2, 5]`` -> ``"0-2,5"``."""
    runs: list[list[int]] = []
    for seed in seeds:
        if runs and seed == runs[-1][1] + 1:
            runs[-1][1] = seed
        else:
            runs.append([seed, seed])
    return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in runs)


def parse_kwargs(text: str | None, option: str) -> dict[str, Any]:
    """Parse a JSON object given on the command line (``None`` gives ``{}``).

    Raises:
        BenchError: invalid JSON, or JSON that is not an object.
    """
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise BenchError(f"{option}: invalid JSON {text!r} ({err.msg} at column {err.colno})") from None
    if not isinstance(value, dict):
        raise BenchError(f"{option}: expected a JSON object such as '{{\"alpha\": 2}}', got {text!r}")
    return value


def check_names(pairs: Iterable[tuple[str, str]]) -> None:
    """Check that every ``(env id, agent name)`` pair names a registered env and a learner of its family.

    Raises:
        BenchError: the first unknown env id or agent name, with the list of valid ones.
    """
    pairs = list(pairs)
    for env_id, _ in pairs:
        if env_id not in twostage_gym.ENV_IDS:
            raise BenchError(f"unknown env {env_id!r}; valid ids: {', '.join(twostage_gym.ENV_IDS)}")
    for env_id, name in pairs:
        try:
            family = agents.family_of(env_id)
        except ValueError as err:
            raise BenchError(str(err)) from None
        if name not in agents.names(family):
            raise BenchError(
                f"unknown agent {name!r} for {env_id} (family {family}); "
                f"valid agents: {', '.join(agents.names(family))}"
            )


def validate_configs(configs: list[RunConfig]) -> None:
    """Build each (env, agent) pair once, so that a bad configuration fails before any work starts.

    Raises:
        BenchError: an unknown env id or agent name (listing the valid ones), or an env or agent
            that rejects its kwargs or the pairing (e.g. a single-stage agent on N > 1 nominators)
            or cannot be built in memory.
    """
    check_names((c.env_id, c.agent) for c in configs)
    for config in configs:
        if isinstance(config.steps, bool) or not isinstance(config.steps, int) or config.steps < 1:
            raise BenchError(f"steps must be a positive integer, got {config.steps!r}")
    checked: set[tuple[str, str]] = set()
    for config in configs:
        key = (config.env_key, config.label())
        if key in checked:
            continue
        checked.add(key)
        # MemoryError too: kwargs such as n_items=10**12 ask for arrays no machine has, which is
        # a user error like any other (the env should refuse them with a ValueError first).
        try:
            env = gym.make(config.env_id, **config.env_kwargs)
        except (TypeError, ValueError, MemoryError) as err:
            raise BenchError(f"{config.env_id} with env kwargs {canonical_json(config.env_kwargs)}: {err}") from None
        try:
            agent = agents.make(config.agent, env, **config.agent_kwargs)
            env.reset(seed=0)
            agent.reset(0)
        except (TypeError, ValueError, MemoryError) as err:
            raise BenchError(
                f"agent {config.label()} cannot run on {config.env_id} {canonical_json(config.env_kwargs)}: {err}"
            ) from None
        finally:
            env.close()
