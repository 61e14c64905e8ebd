"""Registration of every learner under its paper's name. Importing ``agents`` runs it."""

from __future__ import annotations

from agents.esr import DESCRIPTIONS, FAMILY, METHODS, make_esr_learner
from agents.nominators import OracleAgent, RandomAgent, TwoStageAgent
from agents.registry import register

_STAGE_NAMES = {"ucb": "UCB", "greedy": "Greedy", "pg": "policy gradient"}

# Hron et al. 2021, Sec. 3.1 and App. B: '<ranker>+<nominator>' two-stage systems ...
for _ranker, _nominator in (("ucb", "ucb"), ("ucb", "greedy"), ("greedy", "greedy"), ("ucb", "pg"), ("pg", "pg")):
    register(
        f"{_ranker}+{_nominator}",
        TwoStageAgent,
        family="nominators",
        description=f"{_STAGE_NAMES[_ranker]} ranker + {_STAGE_NAMES[_nominator]} nominators (Hron et al. 2021)",
        ranker=_ranker,
        nominator=_nominator,
    )
# ... and single-stage systems, run on an env with n_nominators=1.
for _kind in ("ucb", "greedy", "pg"):
    register(
        _kind,
        TwoStageAgent,
        family="nominators",
        description=f"single-stage {_STAGE_NAMES[_kind]} on the nominators' features (needs n_nominators=1)",
        ranker=None,
        nominator=_kind,
    )
register("random", RandomAgent, family="nominators", description="uniform nominations and ranker pick")
register("oracle", OracleAgent, family="nominators", description="knows f*; zero regret (a reference, not a learner)")

# Kiyohara et al. 2026: policy gradients for the early-stage ranker (torch, imported when built).
for _method in METHODS:
    register(_method, make_esr_learner, family=FAMILY, description=DESCRIPTIONS[_method], method=_method)
