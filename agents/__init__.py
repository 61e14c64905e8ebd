"""Learners from the five papers, one subpackage per paper family, and the shared ``make`` / ``evaluate``.

>>> import gymnasium as gym, twostage_gym, agents
>>> env = gym.make("TwoStage/Nominators-v0")
>>> agent = agents.make("ucb+ucb", env)
>>> record = agents.evaluate(agent, env, steps=50, seed=0)
>>> sorted(record)[:3]
['cumulative_regret', 'cumulative_reward', 'curve']
>>> agents.family_of(env), agents.names("nominators")[:2]
('nominators', ['ucb+ucb', 'ucb+greedy'])

Each family package (:mod:`agents.nominators`, :mod:`agents.early_stage`, :mod:`agents.topic_item`)
registers its learners when imported, and this package imports every family; what families share
is in :mod:`agents.common`. Importing ``agents`` does not import torch.
"""

# isort: off
# Each family registers its learners when imported, in the order of the papers (that of ``names()``).
from agents import nominators, early_stage, topic_item, tree, selection  # noqa: F401

# isort: on
from agents.common.base import Agent
from agents.common.evaluation import RECORD_KEYS, evaluate
from agents.common.registry import families, family_of, make, names, registry

__all__ = ["RECORD_KEYS", "Agent", "evaluate", "families", "family_of", "make", "names", "registry"]
