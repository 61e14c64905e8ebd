"""Named benchmark suites: fixed sets of configurations and seeds, run by ``twostage-bench run --suite NAME``.

A suite is what the README's main job runs and what a leaderboard compares. Add one with
:func:`register_suite`; ``twostage-bench list suites`` shows them.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.bench.config import RunConfig
from agents.bench.run import Job

__all__ = ["SUITES", "Suite", "register_suite"]


@dataclass(frozen=True)
class Suite:
    """A named list of (configs, seeds) groups.

    Attributes:
        name: the ``--suite`` name.
        description: one line for ``list suites``.
        groups: (configurations, seeds) pairs; each config runs with each seed of its group.
    """

    name: str
    description: str
    groups: tuple[tuple[tuple[RunConfig, ...], tuple[int, ...]], ...]

    def jobs(self, seeds: list[int] | None = None, steps: int | None = None) -> list[Job]:
        """The suite's jobs, optionally with every group's seeds or horizon replaced (for a reduced run)."""
        jobs = []
        for configs, group_seeds in self.groups:
            for config in configs:
                if steps is not None:
                    config = RunConfig(config.env_id, config.agent, steps, config.env_kwargs, config.agent_kwargs)
                jobs.extend(Job(config, s) for s in (group_seeds if seeds is None else seeds))
        return jobs


SUITES: dict[str, Suite] = {}
"""Registered suites by name."""


def register_suite(suite: Suite) -> None:
    """Register ``suite`` under its name."""
    if suite.name in SUITES:
        raise ValueError(f"suite {suite.name!r} is already registered")
    SUITES[suite.name] = suite


def _default_suite() -> Suite:
    seeds = tuple(range(10))
    nominators = "TwoStage/Nominators-v0"
    learners = ("ucb+ucb", "ucb+greedy", "greedy+greedy", "ucb+pg", "pg+pg", "random", "oracle")
    # Hron et al. 2021, Fig. 3: two-stage learners against single-stage UCB at the same s = d/rho ...
    fig3 = tuple(
        config
        for rho in (2, 4)
        for config in (
            *(RunConfig(nominators, agent, 1000, {"misspecification": rho}) for agent in learners),
            RunConfig(nominators, "ucb", 1000, {"n_nominators": 1, "misspecification": rho}),
        )
    )
    # ... Fig. 4: the nominators' share of the regret as N grows ...
    fig4 = tuple(
        RunConfig(nominators, "ucb+ucb", 1000, {"n_nominators": n, "misspecification": 4}) for n in (2, 10, 20)
    )
    # ... and Proposition 2: which nominator training wins depends on the pools.
    prop2 = tuple(
        RunConfig(env_id, "ucb+ucb", 5000, {}, {"alpha": 2, "nominator_training": mode})
        for env_id in ("TwoStage/Nominators-Prop2A-v0", "TwoStage/Nominators-Prop2B-v0")
        for mode in ("own", "all")
    )
    # Kiyohara et al. 2026 (Table 2, K = 20): the four ESR policy gradients, online regret and the
    # exact value of the learned deterministic ESR after 500 gradient steps of 128 users.
    esr = tuple(
        RunConfig("TwoStage/EarlyStageRanker-v0", method, 500, {"n_candidates": 20})
        for method in ("v-pg", "v-pg-swr", "ca-pg", "ca-pg-swr")
    )
    return Suite(
        name="default",
        description=(
            "Nominators-v0 at rho = d/s in {2, 4}: 5 two-stage learners, random, oracle and single-stage ucb; "
            "ucb+ucb at N in {2, 5, 10, 20}; T=1000. Prop2A/B: ucb+ucb alpha=2, training-on-own vs -all, "
            "T=5000. Seeds 0-9. EarlyStageRanker-v0 (K=20): the four ESR policy gradients, 500 steps, seeds 0-4"
        ),
        groups=((fig3 + fig4, seeds), (prop2, seeds), (esr, tuple(range(5)))),
    )


register_suite(_default_suite())
