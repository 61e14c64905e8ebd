"""Nominators with item pools and a full-feature ranker (Hron et al. 2021): linear two-stage learners.

The learners of ``TwoStage/Nominators-v0`` and its Proposition 2 variants. A two-stage system
``<ranker>+<nominator>`` pairs a ranker on all d features with N nominators, each on its own item
pool and feature subset; every stage is UCB, Greedy (UCB without the bonus) or a linear softmax
policy gradient (Sec. 3.1, App. B). ``nominator_training`` chooses 'training-on-all' or one of the
two 'training-on-own' rules (Eq. 4). ``ucb``, ``greedy`` and ``pg`` alone are single-stage systems,
for an env with ``n_nominators=1``; ``random`` and ``oracle`` are the references.

Modules:

* :mod:`agents.nominators.two_stage`: the two-stage learners (:class:`TwoStageAgent`) and their
  batched linear stages.
* :mod:`agents.nominators.references`: the random and oracle agents.
* :mod:`agents.nominators.independent`: independent learners for the PettingZoo variant
  (``twostage_gym.multiagent.nominators_v0``), one linear bandit per agent.
* :mod:`agents.nominators.moe`: learning the pools offline (Sec. 4, Eq. 8, App. B.3). A Gaussian
  Mixture-of-Experts of N two-tower nominators with a learned gating, or the same model with
  fixed random pools, trained on multi-label data (``twostage_gym.datasets.multilabel``);
  ``learn_pools`` distills hard pools from the gating for ``gym.make(..., pools=...)``. It is an
  offline model, not a registered learner, and the one module of the family that needs torch
  (imported only when used).
"""

from __future__ import annotations

from agents.common.registry import register, register_family
from agents.nominators.references import OracleAgent, RandomAgent
from agents.nominators.two_stage import TwoStageAgent
from twostage_gym.envs.nominators import NominatorsEnv

__all__ = ["FAMILY"]

FAMILY = "nominators"
"""The registry family of these learners (``agents.names(FAMILY)``)."""

_STAGE_NAMES = {"ucb": "UCB", "greedy": "Greedy", "pg": "policy gradient"}

register_family(FAMILY, NominatorsEnv, package=__name__)

# Sec. 3.1 and App. B: '<ranker>+<nominator>' two-stage systems ...
for _ranker, _nominator in (("ucb", "ucb"), ("ucb", "greedy"), ("greedy", "greedy"), ("ucb", "pg"), ("pg", "pg")):
    register(
        f"{_ranker}+{_nominator}",
        TwoStageAgent,
        family=FAMILY,
        description=f"{_STAGE_NAMES[_ranker]} ranker + {_STAGE_NAMES[_nominator]} nominators (Hron et al. 2021)",
        ranker=_ranker,
        nominator=_nominator,
    )
# ... and single-stage systems, run on an env with n_nominators=1.
for _kind in ("ucb", "greedy", "pg"):
    register(
        _kind,
        TwoStageAgent,
        family=FAMILY,
        description=f"single-stage {_STAGE_NAMES[_kind]} on the nominators' features (needs n_nominators=1)",
        ranker=None,
        nominator=_kind,
    )
register("random", RandomAgent, family=FAMILY, description="uniform nominations and ranker pick")
register("oracle", OracleAgent, family=FAMILY, description="knows f*; zero regret (a reference, not a learner)")
