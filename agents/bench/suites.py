"""Named benchmark suites: sets of studies, run by ``twostage-bench run --suite NAME``.

A suite is what the README's main job runs and what a leaderboard compares. The ``default`` suite
is the study files shipped in ``agents/bench/studies/`` (one per paper effect, see
:mod:`agents.bench.studies`), so its leaderboard has one table per paper effect. Add a suite with
:func:`register_suite`; ``twostage-bench list suites`` shows them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agents.bench.run import Job, distinct
from agents.bench.studies import Study, shipped_studies

__all__ = ["SUITES", "Suite", "register_suite"]


@dataclass(frozen=True)
class Suite:
    """A named set of studies.

    Attributes:
        name: the ``--suite`` name.
        description: one line for ``list suites``.
        studies: the studies it runs (their leaderboard tables).
    """

    name: str
    description: str
    studies: tuple[Study, ...]

    def jobs(self, seeds: Iterable[int] | None = None, steps: int | None = None) -> list[Job]:
        """The studies' jobs (each record key once), optionally with every study's seeds or
        horizon replaced (for a reduced run)."""
        seeds = None if seeds is None else list(seeds)
        return distinct(job for study in self.studies for job in study.jobs(seeds, steps))


SUITES: dict[str, Suite] = {}
"""Registered suites by name."""


def register_suite(suite: Suite) -> None:
    """Register ``suite`` under its name."""
    if suite.name in SUITES:
        raise ValueError(f"suite {suite.name!r} is already registered")
    SUITES[suite.name] = suite


def _default_suite() -> Suite:
    studies = tuple(shipped_studies().values())
    return Suite(
        name="default",
        description="the shipped studies, one per paper effect: " + ", ".join(study.name for study in studies),
        studies=studies,
    )


register_suite(_default_suite())
