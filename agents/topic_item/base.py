"""The round loop every topic-item learner shares, the static arm tables, and the random stage.

A learner of ``TwoStage/TopicItem-v0`` is one or two *stages*: a topic stage (two-stage learners
only) and an item stage. :class:`TopicItemAgent` reads the phase from the observation, asks the
stage of that phase for one score per live row, and at the item phase's ``update`` gives each
stage the round's feedback: the served items (``info["items"]``) and their clicks
(``info["clicks"]``); the topic stage gets each slot's click for every topic of that slot's group
(``info["topic_groups"]``, see :meth:`TopicItemAgent.topic_feedback`). Only public
``info`` keys, the observation and the env's static attributes (``item_features``,
``topic_features``, ``item_topics``, ``topic_sizes``) are read; never the click model.

Scores go to the env as float32 *ranks* (the highest score gets the largest rank): only the order
of the scores matters to the env (sorting topics, the best item of a group, the top m), and ranks
are exact in float32 and always inside the action space, whatever the scale of a UCB score.
Ties go to the lower row, as the env breaks them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from agents.common.base import Agent, agent_rng
from twostage_gym.envs.topic_item import TopicItemEnv
from twostage_gym.envs.topic_item_world import PHASE_ITEM, PHASE_TOPIC

__all__ = [
    "ArmTables",
    "RandomStage",
    "Stage",
    "TopicItemAgent",
    "policy_name",
    "rank_action",
    "topic_item_env",
]


def topic_item_env(env: gym.Env) -> TopicItemEnv:
    """The :class:`TopicItemEnv` under ``env``'s wrappers, or a ``ValueError``."""
    base = env.unwrapped
    if not isinstance(base, TopicItemEnv):
        raise ValueError(f"env must be a TwoStage/TopicItem environment, got {type(base).__name__}")
    return base


def policy_name(policy: str, two_stage: bool) -> str:
    """The registry name: ``policy`` or ``2-policy``."""
    return f"2-{policy}" if two_stage else policy


def check_pairing(env: TopicItemEnv, policy: str, two_stage: bool) -> None:
    """Refuse a one-stage learner on the two-stage env and the reverse, saying which ``hierarchy`` it needs."""
    if two_stage != env.config.hierarchy:
        name = policy_name(policy, two_stage)
        if two_stage:
            raise ValueError(
                f"{name!r} is a two-stage (topic -> item) learner: it needs hierarchy=True (the default "
                f"TwoStage/TopicItem-v0); the env has hierarchy=False (use {policy!r} there)"
            )
        raise ValueError(
            f"{name!r} is a one-stage learner: it needs hierarchy=False "
            f'(gym.make("TwoStage/TopicItem-v0", hierarchy=False)); the env has hierarchy=True (use "2-{policy}" there)'
        )


def rank_action(scores: np.ndarray, n_rows: int) -> np.ndarray:
    """float32 ``(n_rows,)`` ranks of ``scores`` (the first ``len(scores)`` rows; padding rows rank lowest).

    The highest score gets rank ``n_rows``; equal scores rank the earlier row higher (the env's tie
    rule); a NaN score (a diverged model) ranks as the lowest live score would not: below every number.
    """
    full = np.full(n_rows, -np.inf)
    full[: scores.size] = np.where(np.isnan(scores), -np.inf, scores)
    order = np.argsort(-full, kind="stable")
    ranks = np.empty(n_rows, dtype=np.float32)
    ranks[order] = np.arange(n_rows, 0, -1, dtype=np.float32)
    return ranks


class ArmTables:
    """The static, observable arm data of a world, read once at ``reset``.

    Attributes:
        item_features: float64 ``(n_items, item_dim)`` x_i (the env's ``item_features``).
        topic_features: float64 ``(n_topics, item_dim)``.
        item_topics: int64 ``(n_items,)``.
        item_log_size, topic_log_size: float64 the standardised log size of each arm's topic
            (the observation's ``log_size`` column, centred and scaled over the topics).
    """

    def __init__(self, env: TopicItemEnv) -> None:
        try:
            self.item_features = np.asarray(env.item_features, dtype=np.float64)
        except RuntimeError:
            raise ValueError("reset the env before the agent: the catalog is drawn by env.reset(seed=...)") from None
        self.topic_features = np.asarray(env.topic_features, dtype=np.float64)
        self.item_topics = np.asarray(env.item_topics, dtype=np.int64)
        log_size = np.log(np.asarray(env.topic_sizes, dtype=np.float64))
        spread = log_size.std()
        z = (log_size - log_size.mean()) / spread if spread > 0 else np.zeros_like(log_size)
        self.topic_log_size = z
        self.item_log_size = z[self.item_topics]

    def features(self, stage: str) -> np.ndarray:
        """The fixed features of the arms of ``stage`` (``"topic"`` or ``"item"``)."""
        return self.topic_features if stage == "topic" else self.item_features

    def inputs(self, stage: str) -> np.ndarray:
        """The encoders' inputs of the arms of ``stage``: features and the standardised log topic size."""
        size = self.topic_log_size if stage == "topic" else self.item_log_size
        return np.concatenate([self.features(stage), size[:, None]], axis=1)


class Stage(ABC):
    """One stage's policy: a score for each arm offered, and learning from the served arms' clicks."""

    @abstractmethod
    def scores(self, user: int, z: np.ndarray, arms: np.ndarray) -> np.ndarray:
        """float64 scores of ``arms`` (ids) for ``user`` with features ``z``."""

    def learn(self, user: int, z: np.ndarray, arms: np.ndarray, clicks: np.ndarray) -> None:  # noqa: B027
        """Learn from one round: the arms served (one per slot) and their clicks (by default, nothing)."""

    def end_round(self, rounds: int) -> None:  # noqa: B027
        """Called after each round's feedback, with the number of rounds played so far (by default, a no-op)."""


class RandomStage(Stage):
    """Uniformly random scores: uniformly random topics, or uniformly random items among the candidates."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def scores(self, user: int, z: np.ndarray, arms: np.ndarray) -> np.ndarray:
        return self.rng.random(arms.size)


class TopicItemAgent(Agent):
    """A topic-item learner: an optional topic stage and an item stage (Alg. 1 of the topic-item paper).

    A two-stage round is **two env steps** (the topic phase, then the item phase), so
    ``agents.evaluate(agent, env, steps=2 * rounds)`` plays ``rounds`` rounds; a one-stage round
    (``hierarchy=False``) is one step.

    Subclasses build their stages in :meth:`make_stage`, at :meth:`reset`, when the env's world
    (its static features) is known.

    Args:
        env: a ``TwoStage/TopicItem`` env (possibly wrapped): ``hierarchy=True`` for a two-stage
            learner, ``hierarchy=False`` for a one-stage one.
        policy: the policy's name without the ``2-`` prefix.
        two_stage: whether topics are chosen by a policy of the same kind (Sec. 4.1's ``2-`` learners).
    """

    def __init__(self, env: gym.Env, policy: str, two_stage: bool) -> None:
        self.env = topic_item_env(env)
        check_pairing(self.env, policy, two_stage)
        self.config = self.env.config
        self.policy, self.two_stage = policy, two_stage
        self.name = policy_name(policy, two_stage)
        self.item_stage: Stage | None = None
        self.topic_stage: Stage | None = None

    @abstractmethod
    def make_stage(self, stage: str, tables: ArmTables, rng: np.random.Generator) -> Stage:
        """The policy of ``stage`` (``"topic"`` or ``"item"``)."""

    def reset(self, seed: int | None = None) -> None:
        """Forget everything and reseed; reads the env's static features, so reset the env first."""
        self.rng = agent_rng(seed)
        self.tables = ArmTables(self.env)
        # Each stage draws from its own child generator, so adding a topic stage leaves the item
        # stage's draws as they were.
        item_rng, topic_rng = self.rng.spawn(2)
        self.topic_stage = self.make_stage("topic", self.tables, topic_rng) if self.two_stage else None
        self.item_stage = self.make_stage("item", self.tables, item_rng)
        self.rounds = 0

    def _require(self) -> Stage:
        if self.item_stage is None:
            raise RuntimeError("call reset() before act() or update()")
        return self.item_stage

    def act(self, observation: Any) -> np.ndarray:
        """float32 scores (ranks) of the observation's rows: the topics at the topic phase, the candidates after."""
        item_stage = self._require()
        view = self.env.split_observation(observation)
        user, z = int(view["user"]), np.asarray(view["user_features"], dtype=np.float64)
        if int(view["phase"]) == PHASE_TOPIC:
            if self.topic_stage is None:  # cannot happen on a one-stage env; guards a misuse
                raise ValueError("a topic-phase observation reached a one-stage learner")
            scores = self.topic_stage.scores(user, z, np.arange(self.config.n_topics))
        else:
            live = view["mask"] > 0  # candidates fill the first rows, group by group
            scores = item_stage.scores(user, z, view["id"][live].astype(np.int64))
        return rank_action(scores, self.config.n_rows)

    def update(self, observation: Any, action: Any, reward: float, info: Mapping[str, Any]) -> None:
        """At the item phase: each stage learns from the served items' (or their topics') clicks."""
        item_stage = self._require()
        if int(info["phase"]) != PHASE_ITEM:
            return  # the topic phase has no feedback; its groups are judged by the item phase's clicks
        view = self.env.split_observation(observation)
        user, z = int(info["user"]), np.asarray(view["user_features"], dtype=np.float64)
        items = np.asarray(info["items"], dtype=np.int64)
        clicks = np.asarray(info["clicks"], dtype=np.float64)
        item_stage.learn(user, z, items, clicks)
        if self.topic_stage is not None:
            topics, topic_clicks = self.topic_feedback(np.asarray(info["topic_groups"], dtype=np.int64), clicks)
            self.topic_stage.learn(user, z, topics, topic_clicks)
        self.rounds += 1
        item_stage.end_round(self.rounds)
        if self.topic_stage is not None:
            self.topic_stage.end_round(self.rounds)

    # -- persistence (the learners with a state_dict share the header and its checks) -------------
    def state_header(self) -> dict[str, Any]:
        """What a saved state must match to load into this learner: its name and the sizes of its state.

        Subclasses add their own shape-defining arguments to ``"sizes"``.
        """
        c = self.config
        sizes = {"n_users": c.n_users, "n_items": c.n_items, "n_topics": c.n_topics}
        sizes.update(item_dim=c.item_dim, user_dim=c.user_dim)
        return {"name": self.name, "sizes": sizes}

    def check_state(self, state: Any) -> None:
        """Refuse a state of another learner, or of this learner at other sizes (``ValueError`` saying which)."""
        if not isinstance(state, Mapping) or "name" not in state or "sizes" not in state:
            raise ValueError("not a topic-item learner's state (no name and sizes)")
        if state["name"] != self.name:
            raise ValueError(f"the state is of a {state['name']!r} learner, not {self.name!r}")
        mine = self.state_header()["sizes"]
        for key, value in mine.items():
            saved = state["sizes"].get(key)
            if saved != value:
                raise ValueError(f"the state was saved with {key}={saved!r}; this learner has {key}={value!r}")

    @staticmethod
    def topic_feedback(groups: np.ndarray, clicks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The topic stage's samples of a round: every topic of group j, with slot j's click.

        The topic stage's arm for slot j is the topic group S^j (Alg. 1, line 8), so each of its
        topics is credited with the click of the item served from it. Crediting only the served
        item's own topic leaves a small leading topic without feedback (its group's candidates
        mostly come from the topics it absorbed), so its optimistic initial score never falls:
        measured on the default env, 2-glm-ucb's top five topics then held 7% of the users'
        positives after 300 rounds, against 17% with group credit (and 10% for random topics).

        Args:
            groups: int64 ``(n_topics,)`` each topic's group (``info["topic_groups"]``), -1 if none.
            clicks: the m slots' clicks.
        """
        topics = np.flatnonzero(groups >= 0)
        return topics, clicks[groups[topics]]


class RandomAgent(TopicItemAgent):
    """``random`` / ``2-random``: uniformly random items among the candidates (after uniformly random topics).

    Args:
        env: a ``TwoStage/TopicItem`` env; ``hierarchy=False`` for ``random``, True for ``2-random``.
        two_stage: set by the registered name.
    """

    def __init__(self, env: gym.Env, two_stage: bool = False) -> None:
        super().__init__(env, "random", two_stage)

    def make_stage(self, stage: str, tables: ArmTables, rng: np.random.Generator) -> Stage:
        return RandomStage(rng)
