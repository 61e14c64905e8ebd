"""Paper claims that ``twostage-bench reproduce`` checks: our numbers beside the paper's prediction.

A :class:`Claim` is a grid of cells, each a run configuration with the paper's expected behaviour
of its regret. A finite run cannot show a limit, so each expectation is judged on the median over
seeds of regret / T with a stated threshold. Add a claim with :func:`register_claim`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.bench.config import RunConfig, format_seeds, validate_configs
from agents.bench.records import read_records, record_key
from agents.bench.run import Job, execute, run_into

__all__ = [
    "CLAIMS",
    "Cell",
    "Claim",
    "Expectation",
    "collect_records",
    "register_claim",
    "render_claim",
    "run_claim",
    "verdict",
    "verdict_text",
]

SUBLINEAR_BELOW = 0.05
"""Median regret / T under which a run counts as 'sublinear' (regret/T -> 0) at the claim's horizon."""


@dataclass(frozen=True)
class Expectation:
    """What the paper predicts for one cell, and how a median regret / T is judged against it."""

    paper: str
    observed: Callable[[float], str]
    expected: str


def _growth(rate: float) -> str:
    return "sublinear" if rate < SUBLINEAR_BELOW else "linear"


SUBLINEAR = Expectation("sublinear (regret/T -> 0)", _growth, "sublinear")
LINEAR = Expectation("linear (regret/T stays > 0)", _growth, "linear")
STUCK = Expectation("stuck (regret/T > 0.1)", lambda rate: "stuck" if rate > 0.1 else "not stuck", "stuck")


@dataclass(frozen=True)
class Cell:
    """One configuration of a claim: ``row`` and ``column`` label it in the printed grid."""

    row: str
    column: str
    config: RunConfig
    expectation: Expectation


@dataclass(frozen=True)
class Claim:
    """A paper's effect, as cells run with the same seeds and horizon.

    Attributes:
        name: the ``reproduce`` argument.
        title: one line.
        source: paper and section.
        cells: the configurations and their expectations (each cell's ``steps`` is the default T).
        seeds: default seeds.
        note: what the claim means, printed under the grid.
    """

    name: str
    title: str
    source: str
    cells: tuple[Cell, ...]
    seeds: tuple[int, ...]
    note: str = ""

    @property
    def steps(self) -> int:
        """The default horizon T (that of the first cell)."""
        return self.cells[0].config.steps

    def run(
        self,
        steps: int | None = None,
        seeds: list[int] | None = None,
        workers: int = 1,
        out: str | Path | None = None,
        progress: bool = True,
        run_missing: bool = True,
        save_every: int | None = None,
    ) -> dict[str, Any]:
        """Run the claim; see :func:`run_claim`."""
        return run_claim(self, steps, seeds, workers, out, progress, run_missing, save_every)

    def render(self, result: dict[str, Any]) -> str:
        """The result as text; see :func:`render_claim`."""
        return render_claim(result, self.note)


CLAIMS: dict[str, Any] = {}
"""Registered claims by name: objects with ``name``, ``title``, ``source``, ``run(steps, seeds, workers,
out, progress, run_missing, save_every) -> result`` (a JSON-serialisable dict whose ``reproduced`` is a
:func:`verdict`) and ``render(result)``."""


def register_claim(claim: Any) -> None:
    """Register ``claim`` under its name."""
    if claim.name in CLAIMS:
        raise ValueError(f"claim {claim.name!r} is already registered")
    CLAIMS[claim.name] = claim


def _with_steps(config: RunConfig, steps: int) -> RunConfig:
    return RunConfig(config.env_id, config.agent, steps, config.env_kwargs, config.agent_kwargs)


def verdict(holds: Iterable[bool | None]) -> bool | None:
    """A claim's ``reproduced`` from its cells' or checks' verdicts (None: not run yet).

    False as soon as one verdict is False; otherwise None while any is pending; else True.
    """
    holds = list(holds)
    if any(h is False for h in holds):
        return False
    return None if any(h is None for h in holds) else True


def verdict_text(holds: bool | None) -> str:
    """``yes``, ``no`` or ``pending``."""
    return "pending" if holds is None else "yes" if holds else "no"


def collect_records(
    name: str,
    configs: list[RunConfig],
    seeds: list[int],
    workers: int,
    out: str | Path | None,
    progress: bool,
    run_missing: bool = True,
    save_every: int | None = None,
) -> dict[tuple[str, str, int, str], dict[str, Any]]:
    """Run every (config, seed) job (resuming from ``out`` if given) and return the records by key.

    Args:
        run_missing: False runs nothing and returns the records ``out`` already holds (a report on a
            run in progress); the jobs not run yet have no key in the result.
        save_every: batched learners' jobs save their state every ``save_every`` steps into ``out``
            (see :func:`agents.bench.run.run_into`); needs ``out``.

    Raises:
        RuntimeError: if any job failed (the others' records are kept in ``out``).
        ValueError: ``run_missing`` is False and there is no ``out`` to read.
    """
    configs = list(dict.fromkeys(configs))
    jobs = [Job(config, seed) for config in configs for seed in seeds]
    if out is None and not run_missing:
        raise ValueError("a report of records already run (run_missing=False) needs a results directory: out")
    if out is None and save_every is not None:
        raise ValueError("saving the jobs' state (save_every) needs a results directory: out")
    records: dict[tuple[str, str, int, str], dict[str, Any]] = {}
    errors: list[str] = []
    if out is None:
        validate_configs(configs)
        failed = execute(jobs, workers, lambda r: records.__setitem__(record_key(r), r), progress, name)
        errors = [f"{job.config.label()} on {job.config.env_id} seed {job.seed}: {error}" for job, error in failed]
    else:
        if run_missing:
            summary = run_into(out, jobs, workers, progress, save_every)
            errors = [f"{f['agent']} on {f['env_id']} seed {f['seed']}: {f['error']}" for f in summary["failed"]]
        wanted = {job.key for job in jobs}
        records = {record_key(r): r for r in read_records(out, warn=False) if record_key(r) in wanted}
    if errors:
        raise RuntimeError(f"{len(errors)} job(s) failed, e.g. {errors[0]}")
    return records


def run_claim(
    claim: Claim,
    steps: int | None = None,
    seeds: list[int] | None = None,
    workers: int = 1,
    out: str | Path | None = None,
    progress: bool = True,
    run_missing: bool = True,
    save_every: int | None = None,
) -> dict[str, Any]:
    """Run every cell of ``claim`` and judge it against the paper.

    Args:
        claim: a registered claim.
        steps: horizon T (default: the claim's).
        seeds: seeds (default: the claim's).
        workers: processes.
        out: a results directory to append records to (and resume from); None keeps them in memory.
        progress: show a progress bar on stderr.
        run_missing: False runs nothing and judges the records ``out`` already holds: a cell is
            judged on the seeds it has, and a cell with none is pending.
        save_every: batched learners' jobs save their state every ``save_every`` steps into ``out``.

    Returns:
        JSON-serialisable: ``claim``, ``title``, ``source``, ``steps``, ``seeds``, ``reproduced``
        (a :func:`verdict`) and ``cells``, each with ``row``, ``column``, ``agent``,
        ``agent_kwargs``, ``env_id``, ``regret_per_step`` (per seed run), ``median_regret_per_step``,
        ``paper``, ``observed`` and ``agrees`` (the last three None for a pending cell).
    """
    steps = claim.steps if steps is None else steps
    seeds = list(claim.seeds) if seeds is None else seeds
    configs = [_with_steps(cell.config, steps) for cell in claim.cells]
    records = collect_records(claim.name, configs, seeds, workers, out, progress, run_missing, save_every)
    cells = []
    for cell, config in zip(claim.cells, configs, strict=True):
        keys = [Job(config, seed).key for seed in seeds]
        rates = [records[key]["cumulative_regret"] / steps for key in keys if key in records]
        median = float(np.median(rates)) if rates else None
        observed = None if median is None else cell.expectation.observed(median)
        cells.append(
            {
                "row": cell.row,
                "column": cell.column,
                "env_id": config.env_id,
                "agent": config.agent,
                "agent_kwargs": config.agent_kwargs,
                "regret_per_step": rates,
                "median_regret_per_step": median,
                "paper": cell.expectation.paper,
                "observed": observed,
                "agrees": None if observed is None else observed == cell.expectation.expected,
            }
        )
    return {
        "claim": claim.name,
        "title": claim.title,
        "source": claim.source,
        "steps": steps,
        "seeds": seeds,
        "reproduced": verdict(cell["agrees"] for cell in cells),
        "cells": cells,
    }


def render_claim(result: dict[str, Any], note: str = "") -> str:
    """The result of :func:`run_claim` as a text grid: ours beside the paper's."""
    lines = [
        f"{result['claim']}: {result['title']}",
        f"  {result['source']}; T = {result['steps']}, seeds {format_seeds(result['seeds'])}",
        "",
        f"  {'env':<32} {'setting':<10} {'median regret/T':>15}  {'range over seeds':<17}  "
        f"{'expected (paper)':<28} {'ours':<10} agrees",
    ]
    for cell in result["cells"]:
        rates = cell["regret_per_step"]
        if rates:
            median = f"{cell['median_regret_per_step']:.3f}"
            spread = f"{min(rates):.3f} .. {max(rates):.3f}"
            if len(rates) < len(result["seeds"]):
                spread += f" ({len(rates)}/{len(result['seeds'])} seeds)"
        else:
            median, spread = "pending", ""
        agrees = "" if cell["agrees"] is None else "yes" if cell["agrees"] else "NO"
        lines.append(
            f"  {cell['row']:<32} {cell['column']:<10} {median:>15}  {spread:<17}  "
            f"{cell['paper']:<28} {cell['observed'] or '':<10} {agrees}"
        )
    agree = sum(bool(cell["agrees"]) for cell in result["cells"])
    lines += [
        "",
        f"  reproduced: {verdict_text(result['reproduced'])} ({agree}/{len(result['cells'])} cells agree)",
    ]
    if note:
        lines += [f"  {line}" for line in note.splitlines()]
    return "\n".join(lines)


def _prop2_cells(alpha: float, expect: dict[tuple[str, str], Expectation]) -> tuple[Cell, ...]:
    return tuple(
        Cell(
            env_id,
            mode,
            RunConfig(env_id, "ucb+ucb", 5000, {}, {"alpha": alpha, "nominator_training": mode}),
            expect[(env_id, mode)],
        )
        for env_id in ("TwoStage/Nominators-Prop2A-v0", "TwoStage/Nominators-Prop2B-v0")
        for mode in ("own", "all")
    )


_A, _B = "TwoStage/Nominators-Prop2A-v0", "TwoStage/Nominators-Prop2B-v0"
_SOURCE = "Hron et al., On component interactions in two-stage recommender systems, NeurIPS 2021, Prop. 2"

register_claim(
    Claim(
        name="hron2021-prop2",
        title="which nominator training wins depends on the pools (ucb+ucb, alpha = 2)",
        source=_SOURCE,
        cells=_prop2_cells(
            2.0, {(_A, "own"): SUBLINEAR, (_A, "all"): LINEAR, (_B, "own"): LINEAR, (_B, "all"): SUBLINEAR}
        ),
        seeds=tuple(range(10)),
        note=(
            f"'sublinear' here means median regret/T < {SUBLINEAR_BELOW} at this T. Prop2A: training-on-own "
            "reaches sublinear regret, training-on-all does not; Prop2B: the reverse."
        ),
    )
)
register_claim(
    Claim(
        name="hron2021-deadlock",
        title="with too little exploration both trainings get stuck (ucb+ucb, alpha = 0.01)",
        source=_SOURCE + " setting (its bandit limits assume the optimal items get played)",
        cells=_prop2_cells(0.01, dict.fromkeys(((_A, "own"), (_A, "all"), (_B, "own"), (_B, "all")), STUCK)),
        seeds=tuple(range(10)),
        note="With alpha = 0.01 neither training mode explores enough to find the optimal items: regret/T > 0.1.",
    )
)
