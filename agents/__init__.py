"""Learners from the five papers, and the shared ``make`` / ``evaluate`` entry points.

>>> import gymnasium as gym, twostage_gym, agents
>>> env = gym.make("TwoStage/Nominators-v0")
>>> agent = agents.make("ucb+ucb", env)
>>> record = agents.evaluate(agent, env, steps=50, seed=0)
>>> sorted(record)[:3]
['cumulative_regret', 'cumulative_reward', 'curve']
"""

from agents import catalog as _catalog  # noqa: F401  (registers every learner)
from agents.base import Agent
from agents.evaluation import RECORD_KEYS, evaluate
from agents.registry import make, names, registry

__all__ = ["RECORD_KEYS", "Agent", "evaluate", "make", "names", "registry"]
