"""Reproductions reported as policy-value tables: Kiyohara et al. (2026), Tables 2 and 3.

Each table is a grid of (method, column) cells; a column is an env configuration. Every cell runs
its learner for T gradient steps over the seeds (through ``agents.evaluate``, so the records are
ordinary bench records, resumable in an ``--out`` directory), and reports the exact policy value
of the deterministic ESR at T/10 and at T: the paper's 50K and 500K for T = 500K. A run stopped by
a gradient overflow reports the value at the interruption point, as the paper does. Our numbers
are printed beside the paper's, and Table 2 also writes the learning curves of Figure 3.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.bench.claims import collect_records, register_claim, verdict, verdict_text
from agents.bench.config import RunConfig, format_seeds
from agents.bench.paper_tables import KIYOHARA2026_TABLE2, KIYOHARA2026_TABLE3
from agents.bench.run import Job

__all__ = ["PolicyValueTable", "value_at"]

ENV_ID = "TwoStage/EarlyStageRanker-v0"
METHODS = ("v-pg", "v-pg-swr", "ca-pg", "ca-pg-swr")
SOURCE = "Kiyohara et al., Credit-assigned Policy Gradient for Early Stage Retrieval in Two-stage Ranking, ICML 2026"


def value_at(record: dict[str, Any], step: int) -> float:
    """The policy value at gradient step ``step``, or at the interruption point if training stopped earlier."""
    steps, values = record["curve"]["steps"], record["curve"]["policy_value"]
    reached = [v for s, v in zip(steps, values, strict=True) if s <= step]
    if record.get("overflow_step") is not None and record["overflow_step"] <= step:
        return float(record["policy_value"])
    if not reached:
        raise ValueError(f"the record has no policy value at or before step {step}")
    return float(reached[-1])


@dataclass(frozen=True)
class PolicyValueTable:
    """A table of policy values: methods x columns, ours beside the paper's.

    Attributes:
        name: the ``reproduce`` argument.
        title: one line.
        source: paper and table.
        columns: column label -> env kwargs of ``TwoStage/EarlyStageRanker-v0``.
        paper: method -> column -> the paper's value at 500K, or (at 50K, at 500K).
        steps: default T (gradient steps); values are read at T/10 and T.
        seeds: default seeds.
        agent_kwargs: column -> method -> extra agent kwargs (e.g. the adaptive learning rate).
        plot_columns: columns whose learning curves are drawn (Figure 3), if any.
        checks: the paper's qualitative findings, each a description and a test on the cells
            (keyed ``(method, column)``); the table is reproduced when every check holds.
        note: printed under the table.
    """

    name: str
    title: str
    source: str
    columns: dict[str, dict[str, Any]]
    paper: dict[str, dict[str, Any]]
    steps: int
    seeds: tuple[int, ...]
    agent_kwargs: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    plot_columns: tuple[str, ...] = ()
    checks: tuple[tuple[str, Callable[[dict[tuple[str, str], dict[str, Any]]], bool]], ...] = ()
    note: str = ""

    def configs(self, steps: int) -> dict[tuple[str, str], RunConfig]:
        """The run configuration of every (method, column) cell."""
        return {
            (method, column): RunConfig(
                ENV_ID, method, steps, env_kwargs, self.agent_kwargs.get(column, {}).get(method, {})
            )
            for method in METHODS
            for column, env_kwargs in self.columns.items()
        }

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
        """Run every cell (resuming from ``out``) and collect the values at T/10 and T.

        With ``save_every`` each run saves its state into ``out`` every ``save_every`` gradient
        steps, and a rerun resumes a killed run from there (``reproduce --checkpoint-every``).

        With ``run_missing=False`` nothing runs: the table is made of the records ``out`` already
        holds (a report on a run in progress). A cell is then averaged over the seeds it has
        (``n_seeds``), a cell with none is pending (its values None), and so is every check that
        reads a pending cell.
        """
        steps = self.steps if steps is None else steps
        seeds = list(self.seeds) if seeds is None else seeds
        configs = self.configs(steps)
        records = collect_records(
            self.name, list(configs.values()), seeds, workers, out, progress, run_missing, save_every
        )
        early = max(1, steps // 10)
        cells = []
        for (method, column), config in configs.items():
            keys = [Job(config, seed).key for seed in seeds]
            runs = [records[key] for key in keys if key in records]
            cells.append(
                {
                    "method": method,
                    "column": column,
                    "env_kwargs": config.env_kwargs,
                    "agent_kwargs": config.agent_kwargs,
                    "early_step": early,
                    "n_seeds": len(runs),
                    "value_early": _mean_se([value_at(r, early) for r in runs]),
                    "value_final": _mean_se([value_at(r, steps) for r in runs]),
                    "overflows": sum(r.get("overflow_step") is not None for r in runs),
                    "paper": self.paper.get(method, {}).get(column),
                    "curves": [(r["curve"]["steps"], r["curve"]["policy_value"]) for r in runs],
                }
            )
        by_cell = {(c["method"], c["column"]): c for c in cells}
        verdicts = [{"check": text, "holds": _judge(test, by_cell)} for text, test in self.checks]
        result = {"claim": self.name, "title": self.title, "source": self.source, "steps": steps, "seeds": seeds}
        result.update(cells=cells, checks=verdicts, reproduced=verdict(v["holds"] for v in verdicts))
        if out is not None and self.plot_columns:
            result["figure"] = self.plot(result, Path(out))
        return result

    def render(self, result: dict[str, Any]) -> str:
        """The table as text: per cell, ours at T/10 -> T (mean ± s.e.), then the paper's."""
        steps, early = result["steps"], max(1, result["steps"] // 10)
        lines = [
            f"{result['claim']}: {result['title']}",
            f"  {result['source']}",
            f"  ours: policy value at {early} -> {steps} gradient steps, mean ± s.e. (none for one seed) over seeds "
            f"{format_seeds(result['seeds'])}; paper: at 50K -> 500K",
            "",
        ]
        columns = list(self.columns)
        width = 34
        lines.append(f"  {'method':<10} " + " ".join(f"{c:<{width}}" for c in columns))
        by_cell = {(c["method"], c["column"]): c for c in result["cells"]}
        for method in METHODS:
            ours = []
            paper = []
            for column in columns:
                cell = by_cell[(method, column)]
                paper.append(_paper_text(cell["paper"]))
                if not cell["n_seeds"]:
                    ours.append("pending")
                    continue
                (e, e_se), (f, f_se) = cell["value_early"], cell["value_final"]
                flag = f" [{cell['overflows']} overflow]" if cell["overflows"] else ""
                if cell["n_seeds"] < len(result["seeds"]):
                    flag += f" ({cell['n_seeds']}/{len(result['seeds'])} seeds)"
                ours.append(f"{_with_se(e, e_se)} -> {_with_se(f, f_se)}{flag}")
            lines.append(f"  {method:<10} " + " ".join(f"{s:<{width}}" for s in ours))
            lines.append(f"  {'  paper':<10} " + " ".join(f"{s:<{width}}" for s in paper))
        if result["checks"]:
            lines.append("")
            lines += [f"  {verdict_text(v['holds']):<7} {v['check']}" for v in result["checks"]]
            lines.append(f"  reproduced: {verdict_text(result['reproduced'])}")
        if result.get("figure"):
            lines += ["", f"  learning curves: {result['figure']}"]
        if self.note:
            lines += [""] + [f"  {line}" for line in self.note.splitlines()]
        return "\n".join(lines)

    def plot(self, result: dict[str, Any], out: Path) -> str | None:
        """Figure 3: per plotted column, every seed's policy-value curve per method. Returns the PNG path."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return None
        columns = [c for c in self.plot_columns if c in self.columns]
        fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 3.4), squeeze=False, sharey=True)
        colours = dict(zip(METHODS, ("tab:red", "tab:orange", "tab:blue", "tab:green"), strict=True))
        for ax, column in zip(axes[0], columns, strict=True):
            for cell in result["cells"]:
                if cell["column"] != column:
                    continue
                for i, (steps, values) in enumerate(cell["curves"]):
                    label = cell["method"] if i == 0 else None
                    ax.plot(steps, values, color=colours[cell["method"]], alpha=0.6, lw=1, label=label)
            if not ax.lines:
                ax.text(0.5, 0.5, "pending", transform=ax.transAxes, ha="center", va="center", color="grey")
            ax.set_xscale("log")
            ax.set_title(f"{column}")
            ax.set_xlabel("gradient steps")
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel("policy value (deterministic ESR)")
        # Each method's label sits on its first curve, in whichever column has one (a table in progress).
        handles: dict[str, Any] = {}
        for ax in axes[0]:
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                handles.setdefault(label, handle)
        if handles:
            axes[0][0].legend(list(handles.values()), list(handles), fontsize=8)
        fig.suptitle(f"{self.name}: learning curves, one line per seed", fontsize=10)
        fig.tight_layout()
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{self.name}-curves.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return str(path)


def _paper_text(value: tuple[float | None, float] | None) -> str:
    if value is None:
        return "-"
    early, final = value
    return ("" if early is None else f"{early:.2f} -> ") + f"{final:.2f}"


class _Pending(Exception):
    """A check read a cell that has no run yet."""


def _judge(test: Callable[[dict[tuple[str, str], dict[str, Any]]], bool], cells: dict) -> bool | None:
    try:
        return bool(test(cells))
    except _Pending:
        return None


def _value(cells: dict, method: str, column: str, which: str) -> float:
    value = cells[(method, column)][which]
    if value is None:
        raise _Pending
    return value[0]


def _early(cells: dict, method: str, column: str) -> float:
    return _value(cells, method, column, "value_early")


def _final(cells: dict, method: str, column: str) -> float:
    return _value(cells, method, column, "value_final")


def _mean_se(values: list[float]) -> tuple[float, float | None] | None:
    """Mean and standard error; None for no values (a pending cell); the s.e. is None for one value."""
    if not values:
        return None
    arr = np.asarray(values, dtype=float)
    se = float(arr.std(ddof=1) / np.sqrt(arr.size)) if arr.size > 1 else None
    return float(arr.mean()), se


def _with_se(mean: float, se: float | None) -> str:
    """``mean±se``, or the mean alone when one seed gives no standard error."""
    return f"{mean:.2f}" if se is None else f"{mean:.2f}±{se:.2f}"


# App. E: under the noisy, uniform and anti-optimal LSRs the CA-PGs use the adaptive learning rate
# of Eq. 9 (their LSR-propensity-discounted reward is smaller); the V-PGs keep theirs.
_ADAPTIVE = {method: {"adaptive_lr": "probe"} for method in ("ca-pg", "ca-pg-swr")}

register_claim(
    PolicyValueTable(
        name="kiyohara2026-table2",
        title="PG methods with a single logit model: candidate-set size K and LSR alignment (L = 1)",
        source=f"{SOURCE}, Table 2 and Figure 3",
        columns={
            "K=5": {"n_candidates": 5},
            "K=10": {},  # the env's default K = 10: the same runs as Table 3's L=1,M=1 column
            "K=20": {"n_candidates": 20},
            "noisy": {"lsr": "noisy"},
            "uniform": {"lsr": "uniform"},
            "anti-optimal": {"lsr": "anti-optimal"},
        },
        paper=KIYOHARA2026_TABLE2,
        steps=500_000,
        seeds=tuple(range(10)),
        agent_kwargs={column: _ADAPTIVE for column in ("noisy", "uniform", "anti-optimal")},
        plot_columns=("K=5", "K=10", "K=20"),
        checks=(
            (
                "at K = 20, CA-PG is ahead of V-PG-SwR early in training (T/10)",
                lambda c: _early(c, "ca-pg", "K=20") > _early(c, "v-pg-swr", "K=20"),
            ),
            (
                "the CA-PGs fail under the anti-optimal LSR: below their value under the uniform LSR",
                lambda c: all(_final(c, m, "anti-optimal") < _final(c, m, "uniform") for m in ("ca-pg", "ca-pg-swr")),
            ),
        ),
        note=(
            "The paper's 'opt.' column is its K = 10 column (optimal LSR). CA-PGs should lead early (T/10),\n"
            "V-PG-SwR at the end; CA-PGs fail only under the anti-optimal LSR (Theorem 3.3)."
        ),
    )
)
register_claim(
    PolicyValueTable(
        name="kiyohara2026-table3",
        title="PG methods with MoE candidate retrievers: outputs L x experts M (K = 10, optimal LSR)",
        source=f"{SOURCE}, Table 3",
        columns={
            "L=1,M=1": {},
            "L=1,M=5": {"n_experts": 5},
            "L=5,M=1": {"n_outputs": 5},
            "L=5,M=5": {"n_outputs": 5, "n_experts": 5},
        },
        paper={m: {c: (None, v) for c, v in row.items()} for m, row in KIYOHARA2026_TABLE3.items()},
        steps=500_000,
        seeds=tuple(range(10)),
        checks=(
            (
                "with L = 1, CA-PG gains from M = 5 experts",
                lambda c: _final(c, "ca-pg", "L=1,M=5") > _final(c, "ca-pg", "L=1,M=1"),
            ),
        ),
        note="The paper reports the value at 500K only (the '->' right-hand side). CA-PGs should gain most from M = 5.",
    )
)
