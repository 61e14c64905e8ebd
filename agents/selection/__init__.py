"""Recommender selection by D-optimal online experiment design (Xu et al., KDD 2021).

The learners of ``TwoStage/RecommenderSelection-v0``: each request, k candidate recommenders
propose an item and the learner chooses whose proposal the user sees. The features of a request's
arm are phi_a = [user, item, one-hot a] plus, by default, the user features times the arm indicator
(:mod:`agents.selection.features`), and the reward model is linear in phi.

| name | policy |
|---|---|
| ``random`` | a uniformly random recommender |
| ``epsilon-greedy`` | context-free: uniform with probability epsilon (0.1), else the best mean |
| ``mab-ts`` | context-free Beta-Bernoulli Thompson sampling |
| ``linucb`` | Linear+UCB: ridge on phi refitted every round, UCB width alpha (1) |
| ``lin-ts`` | Linear+Thompson: ridge posterior refitted every round, scale v (0.5) |
| ``d-optimal`` | Alg. 3: explore from the D-optimal design given the stage's information, then exploit the refit |
| ``d-optimal-bayes`` | the Bayesian design of Eq. 6: the exploration history as the prior, weight lam |
| ``d-optimal-ts`` | the Bayesian design, and Thompson sampling at the exploitation rounds (Alg. 4) |
| ``d-optimal-nocontext`` | ablation: ``d-optimal`` without the user features |
| ``uniform-explore`` | ablation: the same stages with uniform exploration |

The stage-wise learners take ``explore_rounds`` (50) and ``exploit_rounds`` (200) per stage (the
restart criterion), ``reg`` (1), and ``eps`` (0.01), the design solver's tolerance. The solver,
:func:`agents.selection.design.d_optimal_design`, is a Frank-Wolfe method with away steps (or
pairwise steps with a prior) that stops on the Kiefer-Wolfowitz certificate.

Modules:

* :mod:`agents.selection.design`: the D-optimal design solver and its certificate.
* :mod:`agents.selection.features`: the feature map phi and the env's contract.
* :mod:`agents.selection.bandits`: the baselines.
* :mod:`agents.selection.staged`: the stage-wise learners.
"""

from __future__ import annotations

from agents.common.registry import register, register_family
from agents.selection.bandits import (
    EpsilonGreedyAgent,
    LinTSAgent,
    LinUCBAgent,
    MABThompsonAgent,
    RandomSelectionAgent,
)
from agents.selection.staged import StagewiseAgent
from twostage_gym.envs.recommender_selection import RecommenderSelectionEnv

__all__ = ["FAMILY"]

FAMILY = "selection"
"""The registry family of these learners (``agents.names(FAMILY)``)."""

register_family(FAMILY, (RecommenderSelectionEnv,), __name__)
register("random", RandomSelectionAgent, FAMILY, "a uniformly random recommender")
register("epsilon-greedy", EpsilonGreedyAgent, FAMILY, "context-free epsilon-greedy on each recommender's mean")
register("mab-ts", MABThompsonAgent, FAMILY, "context-free Beta-Bernoulli Thompson sampling")
register("linucb", LinUCBAgent, FAMILY, "Linear+UCB: ridge regression on phi, refitted every round")
register("lin-ts", LinTSAgent, FAMILY, "Linear+Thompson: linear Thompson sampling, refitted every round")
register(
    "d-optimal",
    StagewiseAgent,
    FAMILY,
    "Alg. 3: stage-wise, exploring from the D-optimal design given the stage's information",
    design="stage",
    exploit="greedy",
    context=True,
)
register(
    "d-optimal-bayes",
    StagewiseAgent,
    FAMILY,
    "stage-wise, exploring from the Bayesian D-optimal design with the history prior (Eq. 6)",
    design="history",
    exploit="greedy",
    context=True,
)
register(
    "d-optimal-ts",
    StagewiseAgent,
    FAMILY,
    "the Bayesian design, with Thompson sampling at the exploitation rounds (Alg. 4)",
    design="history",
    exploit="thompson",
    context=True,
)
register(
    "d-optimal-nocontext",
    StagewiseAgent,
    FAMILY,
    "ablation: d-optimal without the user features",
    design="stage",
    exploit="greedy",
    context=False,
)
register(
    "uniform-explore",
    StagewiseAgent,
    FAMILY,
    "ablation: the stage-wise learner with uniform exploration",
    design="uniform",
    exploit="greedy",
    context=True,
)
