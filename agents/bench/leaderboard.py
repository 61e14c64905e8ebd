"""Leaderboards from records: one table per study, per-env tables for the rest, and regret plots.

**Study tables** (:func:`study_tables`, the leaderboard's main view and what reports consume): one
table per :class:`agents.bench.studies.Study` (and horizon T) that has records. Rows are the
study's agents (with their kwargs), columns the values of its swept parameter, and each cell the
mean of the study's metric over seeds with a 95% confidence interval. A study with a claim says,
per column and overall, whether the predicted ordering holds. Each table is a plain,
JSON-serialisable dict::

    {
        "study": "hron2021-fig3", "title": str, "source": str, "steps": 1000,
        "metric": "cumulative_regret", "better": "lower",        # or "higher"
        "column_key": "misspecification",                        # None: a single column ""
        "columns": ["2", "4"],                                   # column labels, in the study's order
        "rows": [{"label": "ucb+ucb", "agent": "ucb+ucb", "agent_kwargs": {}, "steps_per_round": 1,
                  "cells": [cell or None, ...]}, ...],           # one cell per column; None: no records
        "claim": None or {"text": str, "holds": True | False | None,   # None: pending (cells missing)
                          "columns": [{"column": "2", "holds": ..., "pairs": [
                              {"better": row label, "worse": row label, "holds": ..., "separated": ...}]}]},
    }

where a cell is ``{"mean", "ci95" (half-width, None under two seeds), "ci_method", "n_seeds",
"seeds", "values" (per seed, in seed order), "config_hash", "env_id", "env_kwargs", "curve"
({"steps", "mean"}: the mean over seeds of the metric's curve, or of regret where the metric has
none, at rounds)}``. ``steps`` counts rounds: a row with ``steps_per_round`` k (e.g. a two-stage
topic -> item learner, whose round is a topic step and an item step) has records of k T env steps
in the table of T. A pair ``holds`` when the first row's mean is better than the second's;
``separated`` says whether their 95% intervals are also disjoint.

**Per-env tables** (:func:`summarise`): the records that no study covers, one table per env
configuration (env id, env kwargs, horizon T), a row per agent configuration (config hash) over its
seeds: the mean cumulative regret with a 95% confidence interval, the nominator and ranker shares
of regret (mean stage regret / mean regret) and the mean wall time. Rows sort by mean regret.

Intervals use Student t with n - 1 degrees of freedom, or the normal 1.96 when scipy is missing.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.bench.claims import verdict, verdict_text
from agents.bench.config import BenchError, canonical_json
from agents.bench.records import prepare_dir
from agents.bench.studies import METRICS, Study, shipped_studies

__all__ = [
    "confidence_halfwidth",
    "covered",
    "plot_curves",
    "plot_study",
    "render_markdown",
    "render_study",
    "study_tables",
    "summarise",
    "write_leaderboard",
]


def _t_quantile(n: int) -> tuple[float, str]:
    """The two-sided 95% quantile for a mean of ``n`` samples, and the method's name."""
    try:
        from scipy.stats import t
    except ImportError:
        return 1.96, "normal"
    return float(t.ppf(0.975, n - 1)), "student-t"


def confidence_halfwidth(values: Sequence[float]) -> tuple[float | None, str]:
    """Half-width of the 95% CI of the mean of ``values`` (None for fewer than two), and the method."""
    n = len(values)
    quantile, method = _t_quantile(max(n, 2))
    if n < 2:
        return None, method
    return quantile * float(np.std(values, ddof=1)) / math.sqrt(n), method


def _share(part: float, total: float) -> float | None:
    return part / total if total > 0 else None


def _row(records: list[dict[str, Any]]) -> dict[str, Any]:
    first = records[0]
    regret = [r["cumulative_regret"] for r in records]
    mean_regret = float(np.mean(regret))
    ci, method = confidence_halfwidth(regret)
    curves = [r["curve"] for r in records if r["curve"]["steps"] == records[0]["curve"]["steps"]]
    return {
        "agent": first["agent"],
        "agent_kwargs": first["agent_kwargs"],
        "config_hash": first["config_hash"],
        "n_seeds": len(records),
        "seeds": sorted(r["seed"] for r in records),
        "mean_regret": mean_regret,
        "ci95": ci,
        "ci_method": method,
        "mean_regret_per_step": mean_regret / first["steps"],
        "nominator_share": _share(float(np.mean([r["nominator_regret"] for r in records])), mean_regret),
        "ranker_share": _share(float(np.mean([r["ranker_regret"] for r in records])), mean_regret),
        "mean_wall_time_s": float(np.mean([r["wall_time_s"] for r in records])),
        # Families that score a learned policy exactly (e.g. the early-stage ranker) record its value.
        "policy_value": _mean_or_none([r.get("policy_value") for r in records]),
        "versions": sorted({r["version"] for r in records}),
        "curve": {
            "steps": curves[0]["steps"],
            "mean_regret": np.mean([c["regret"] for c in curves], axis=0).tolist(),
        },
    }


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group records into tables (one per env configuration) of rows (one per agent configuration).

    Returns:
        JSON-serialisable tables with ``env_id``, ``env_kwargs``, ``steps`` and ``rows`` sorted by
        ``mean_regret``; each row has ``agent``, ``agent_kwargs``, ``config_hash``, ``n_seeds``,
        ``seeds``, ``mean_regret``, ``ci95`` (half-width), ``ci_method``, ``mean_regret_per_step``,
        ``nominator_share``, ``ranker_share``, ``mean_wall_time_s``, ``versions`` and ``curve``.
    """
    tables: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for record in records:
        env_key = canonical_json(
            {"env_id": record["env_id"], "env_kwargs": record["env_kwargs"], "steps": record["steps"]}
        )
        tables.setdefault(env_key, {}).setdefault(record["config_hash"], []).append(record)
    result = []
    for env_key, groups in sorted(tables.items()):
        head = next(iter(groups.values()))[0]
        rows = sorted(
            (_row(group) for group in groups.values()),
            key=lambda row: (row["mean_regret"], row["agent"], canonical_json(row["agent_kwargs"])),
        )
        result.append(
            {
                "env_id": head["env_id"],
                "env_kwargs": head["env_kwargs"],
                "steps": head["steps"],
                "env_key": env_key,
                "rows": rows,
            }
        )
    return result


# -- study tables ---------------------------------------------------------------------------
_CURVE_KEYS = {
    "cumulative_regret": "regret",
    "nominator_regret": "nominator_regret",
    "ranker_regret": "ranker_regret",
    "policy_value": "policy_value",
}
"""The key of a record's curve that follows each metric; the others plot the regret curve."""


def _match_key(env_id: str, env_kwargs: dict[str, Any], agent: str, agent_kwargs: dict[str, Any]) -> str:
    # The horizon is left out: a reduced run (--steps) of a study is still that study, in a table
    # of its own T.
    return canonical_json([env_id, env_kwargs, agent, agent_kwargs])


def _record_match_key(record: dict[str, Any]) -> str:
    return _match_key(record["env_id"], record["env_kwargs"], record["agent"], record["agent_kwargs"])


def _metric_value(record: dict[str, Any], metric: str) -> float | None:
    """The value of ``metric`` in ``record``; None where it is undefined (no policy value, zero regret)."""
    if metric == "nominator_share":
        total = record["cumulative_regret"]
        return record["nominator_regret"] / total if total > 0 else None
    value = record.get(metric)
    return None if value is None else float(value)


def _metric_curve(record: dict[str, Any], metric: str) -> list[float] | None:
    curve = record["curve"]
    if metric == "nominator_share":
        return [n / r if r > 0 else math.nan for n, r in zip(curve["nominator_regret"], curve["regret"], strict=True)]
    values = curve.get(_CURVE_KEYS.get(metric, "regret"), curve["regret"])
    return None if any(v is None for v in values) else [float(v) for v in values]


def _mean_curve(curves: list[list[float]]) -> list[float | None]:
    """The pointwise mean of ``curves``, over the seeds where a point is defined (NaN: undefined,
    e.g. a share of zero regret); None where none is, so that the result stays valid JSON."""
    values = np.asarray(curves, dtype=float)
    defined = ~np.isnan(values)
    counts = defined.sum(axis=0)
    sums = np.where(defined, values, 0.0).sum(axis=0)
    return [float(total / n) if n else None for total, n in zip(sums, counts, strict=True)]


def _cell(records: list[dict[str, Any]], metric: str, steps_per_round: int = 1) -> dict[str, Any] | None:
    records = sorted(records, key=lambda r: r["seed"])
    defined = [(r, v) for r in records if (v := _metric_value(r, metric)) is not None]
    if not defined:
        return None
    values = [v for _, v in defined]
    ci, method = confidence_halfwidth(values)
    first = records[0]
    steps = first["curve"]["steps"]
    same = [c for r, _ in defined if r["curve"]["steps"] == steps and (c := _metric_curve(r, metric)) is not None]
    return {
        "mean": float(np.mean(values)),
        "ci95": ci,
        "ci_method": method,
        "n_seeds": len(values),
        "seeds": [r["seed"] for r, _ in defined],
        "values": values,
        "config_hash": first["config_hash"],
        "env_id": first["env_id"],
        "env_kwargs": first["env_kwargs"],
        # Rounds, rounded up (a checkpoint can fall between a round's steps), so rows share an axis.
        "curve": {"steps": [-(-t // steps_per_round) for t in steps], "mean": _mean_curve(same)} if same else None,
    }


def _better(a: dict[str, Any], b: dict[str, Any], direction: str) -> bool:
    return a["mean"] < b["mean"] if direction == "lower" else a["mean"] > b["mean"]


def _separated(a: dict[str, Any], b: dict[str, Any]) -> bool | None:
    if a["ci95"] is None or b["ci95"] is None:
        return None
    return abs(a["mean"] - b["mean"]) > a["ci95"] + b["ci95"]


def _judge(study: Study, columns: list[str], rows: list[dict[str, Any]], direction: str) -> dict[str, Any] | None:
    if study.claim is None:
        return None
    by_label = {row["label"]: row for row in rows}
    judged = []
    for index, column in enumerate(columns):
        pairs = []
        for better, worse in study.claim.pairs(column):
            a, b = by_label[better]["cells"][index], by_label[worse]["cells"][index]
            done = a is not None and b is not None
            pairs.append(
                {
                    "better": better,
                    "worse": worse,
                    "holds": _better(a, b, direction) if done else None,
                    "separated": _separated(a, b) if done else None,
                }
            )
        judged.append({"column": column, "holds": verdict(p["holds"] for p in pairs), "pairs": pairs})
    return {"text": study.claim.text, "holds": verdict(c["holds"] for c in judged), "columns": judged}


def _one_study(study: Study, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cells = study.cells()
    where = {_match_key(c.config.env_id, c.config.env_kwargs, c.config.agent, c.config.agent_kwargs): c for c in cells}
    by_steps: dict[int, dict[tuple[str, str], list[dict[str, Any]]]] = {}
    for record in records:
        cell = where.get(_record_match_key(record))
        # A record of another horizon than whole rounds is not a run of this study.
        if cell is not None and record["steps"] % cell.steps_per_round == 0:
            rounds = record["steps"] // cell.steps_per_round
            by_steps.setdefault(rounds, {}).setdefault((cell.row, cell.column), []).append(record)
    columns = list(dict.fromkeys(cell.column for cell in cells))
    row_of = {cell.row: cell for cell in cells}
    direction = METRICS[study.metric]
    tables = []
    for steps, groups in sorted(by_steps.items()):
        rows = [
            {
                "label": label,
                "agent": row_of[label].config.agent,
                "agent_kwargs": row_of[label].config.agent_kwargs,
                "steps_per_round": row_of[label].steps_per_round,
                "cells": [
                    _cell(groups[(label, column)], study.metric, row_of[label].steps_per_round)
                    if (label, column) in groups
                    else None
                    for column in columns
                ],
            }
            for label in study.rows()
        ]
        tables.append(
            {
                "study": study.name,
                "title": study.title,
                "source": study.source,
                "steps": steps,
                "metric": study.metric,
                "better": direction,
                "column_key": study.columns,
                "columns": columns,
                "rows": rows,
                "claim": _judge(study, columns, rows, direction),
            }
        )
    return tables


def _as_studies(study: Study | Sequence[Study] | None) -> list[Study]:
    if study is None:
        return list(shipped_studies().values())
    return [study] if isinstance(study, Study) else list(study)


def study_tables(records: list[dict[str, Any]], study: Study | Sequence[Study] | None = None) -> list[dict[str, Any]]:
    """The study tables of ``records`` as plain data (the layout is in the module docstring).

    A record belongs to a study when its env id, env kwargs, agent and agent kwargs are one of the
    study's cells, whatever its seed; its horizon picks the table (a reduced ``--steps`` run of a
    study gets a table of its own T). Studies without records give no table.

    Args:
        records: records as read by :func:`agents.bench.records.read_records`.
        study: a study, a sequence of them, or None for the shipped studies of the default suite.

    Returns:
        One JSON-serialisable dict per (study, T) with records, in the order of the studies.
    """
    return [table for one in _as_studies(study) for table in _one_study(one, records)]


def covered(records: list[dict[str, Any]], studies: Sequence[Study]) -> list[bool]:
    """For each record, whether one of ``studies`` has it in a cell."""
    keys = {_match_key(c.env_id, c.env_kwargs, c.agent, c.agent_kwargs) for s in studies for c in s.configs()}
    return [_record_match_key(record) in keys for record in records]


def _mean_or_none(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else float(np.mean(values))


def _fmt_share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _agent_label(row: dict[str, Any]) -> str:
    kwargs = f" `{canonical_json(row['agent_kwargs'])}`" if row["agent_kwargs"] else ""
    return f"`{row['agent']}`{kwargs}"


def _table_title(table: dict[str, Any]) -> str:
    kwargs = f" `{canonical_json(table['env_kwargs'])}`" if table["env_kwargs"] else ""
    return f"`{table['env_id']}`{kwargs}, T = {table['steps']}"


_METRIC_NAMES = {
    "cumulative_regret": "mean cumulative regret",
    "nominator_regret": "mean nominator regret R^N",
    "ranker_regret": "mean ranker regret R^R",
    "nominator_share": "mean nominator share of the regret R^N / R (per seed; seeds without regret left out)",
    "cumulative_reward": "mean cumulative reward",
    "policy_value": "mean final policy value (exact value of the learned deterministic policy)",
}


def _number(value: float, metric: str) -> str:
    if metric == "nominator_share":
        return f"{value:.1%}"
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.3f}"


def _column_head(table: dict[str, Any], column: str) -> str:
    key = table["column_key"]
    return "value" if key is None else f"`{column}`" if key == "env" else f"{key} = {column}"


def render_study(table: dict[str, Any], plot: str | None = None) -> list[str]:
    """A study table (from :func:`study_tables`) as Markdown lines: heading, grid, claim, plot."""
    metric = table["metric"]
    counts = {cell["n_seeds"] for row in table["rows"] for cell in row["cells"] if cell is not None}
    uniform = len(counts) == 1
    over = f"over {min(counts)} seeds" if uniform else "over the seeds in brackets"
    lines = [
        "",
        f"## {table['study']}: {table['title']} (T = {table['steps']})",
        "",
        (f"{table['source']}. " if table["source"] else "")
        + f"Cells: {_METRIC_NAMES[metric]} {over} ± 95% CI; {table['better']} is better.",
        "",
        "| agent | " + " | ".join(_column_head(table, c) for c in table["columns"]) + " |",
        "|---|" + "---:|" * len(table["columns"]),
    ]
    for row in table["rows"]:
        texts = []
        for cell in row["cells"]:
            if cell is None:
                texts.append("-")
                continue
            ci = "n/a" if cell["ci95"] is None else _number(cell["ci95"], metric)
            seeds = "" if uniform else f" ({cell['n_seeds']})"
            texts.append(f"{_number(cell['mean'], metric)} ± {ci}{seeds}")
        lines.append(f"| `{row['label']}` | " + " | ".join(texts) + " |")
    claim = table["claim"]
    if claim is not None:
        per_column = "; ".join(
            f"{_column_head(table, c['column'])}: {verdict_text(c['holds'])}" for c in claim["columns"]
        )
        holds = verdict_text(claim["holds"])
        lines += ["", f"**Claim:** {claim['text']}. Holds in every column: **{holds}** ({per_column})."]
        notes = [
            f"`{p['better']}` {'beats' if p['holds'] else 'does not beat'} `{p['worse']}` "
            f"at {_column_head(table, c['column'])}"
            + ("" if not p["holds"] or p["separated"] else " (within the 95% CIs)")
            for c in claim["columns"]
            for p in c["pairs"]
            if p["holds"] is not None and (not p["holds"] or not p["separated"])
        ]
        if notes:
            lines += ["", "Not clear-cut: " + "; ".join(notes) + "."]
    if plot:
        lines += ["", f"![{table['study']}]({plot})"]
    return lines


def render_markdown(
    tables: list[dict[str, Any]],
    plots: dict[str, str] | None = None,
    source: str = "",
    studies: list[dict[str, Any]] | None = None,
    study_plots: list[str | None] | None = None,
    versions: list[str] | None = None,
) -> str:
    """The leaderboard as Markdown: the study tables, then a table per env configuration of the rest.

    Args:
        tables: per-env tables from :func:`summarise`.
        plots: env key -> PNG file name (relative to the Markdown file).
        source: where the records came from, for the header.
        studies: study tables from :func:`study_tables`, shown first.
        study_plots: a PNG file name (or None) per study table.
        versions: the package versions of the records (default: those of ``tables``).
    """
    plots = plots or {}
    studies = studies or []
    study_plots = study_plots or [None] * len(studies)
    if versions is None:
        versions = sorted({v for table in tables for row in table["rows"] for v in row["versions"]})
    methods = sorted({row["ci_method"] for table in tables for row in table["rows"]}) or sorted(
        {c["ci_method"] for t in studies for row in t["rows"] for c in row["cells"] if c is not None}
    )
    lines = [
        "# twostage-bench leaderboard",
        "",
        f"Records: `{source}`; package version(s): {', '.join(versions)}. "
        f"Regret is the cumulative expected regret over T rounds, mean over seeds with a 95% confidence "
        f"interval ({' / '.join(methods)}). The nominator and ranker shares are the stage regrets' "
        f"fractions of the mean regret. For batched learners (the early-stage ranker) T counts gradient "
        f"steps, regret sums over every user served, and the final policy value is the exact value of the "
        f"learned deterministic policy.",
    ]
    for table, plot in zip(studies, study_plots, strict=True):
        lines += render_study(table, plot)
    if studies and tables:
        lines += ["", "## Records outside the studies", "", "One table per env configuration."]
    level = "###" if studies else "##"
    for table in tables:
        valued = any(row["policy_value"] is not None for row in table["rows"])
        lines += [
            "",
            f"{level} {_table_title(table)}",
            "",
            "| # | agent | seeds | regret (mean ± 95% CI) | regret / T | nominator share | ranker share "
            + ("| final policy value " if valued else "")
            + "| wall time (s) |",
            "|---:|---|---:|---:|---:|---:|---:|" + ("---:|" if valued else "") + "---:|",
        ]
        for rank, row in enumerate(table["rows"], 1):
            ci = "n/a" if row["ci95"] is None else f"{row['ci95']:.2f}"
            value = "-" if row["policy_value"] is None else f"{row['policy_value']:.3f}"
            lines.append(
                f"| {rank} | {_agent_label(row)} | {row['n_seeds']} | {row['mean_regret']:.2f} ± {ci} "
                f"| {row['mean_regret_per_step']:.4f} | {_fmt_share(row['nominator_share'])} "
                f"| {_fmt_share(row['ranker_share'])} | "
                + (f"{value} | " if valued else "")
                + f"{row['mean_wall_time_s']:.3f} |"
            )
        if table["env_key"] in plots:
            lines += ["", f"![mean regret curves]({plots[table['env_key']]})"]
    return "\n".join(lines) + "\n"


def _slug(table: dict[str, Any]) -> str:
    name = re.sub(r"[^A-Za-z0-9]+", "-", table["env_id"]).strip("-")
    return f"{name}-{hashlib.sha256(table['env_key'].encode()).hexdigest()[:8]}"


def plot_curves(tables: list[dict[str, Any]], out_dir: Path, stem: str) -> tuple[dict[str, str], str | None]:
    """Write one PNG of mean cumulative regret curves per table.

    Returns:
        (env key -> file name, None), or ({}, a note) when matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}, "matplotlib is not installed (pip install 'twostage-gym[bench]'); no plots written"
    files = {}
    for table in tables:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for row in table["rows"]:
            label = row["agent"] if not row["agent_kwargs"] else f"{row['agent']} {canonical_json(row['agent_kwargs'])}"
            ax.plot(row["curve"]["steps"], row["curve"]["mean_regret"], marker=".", label=label)
        ax.set_xlabel("round t")
        ax.set_ylabel(f"mean cumulative regret ({table['rows'][0]['n_seeds']} seeds)")
        kwargs = f" {canonical_json(table['env_kwargs'])}" if table["env_kwargs"] else ""
        ax.set_title(f"{table['env_id']}{kwargs}", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        name = f"{stem}-{_slug(table)}.png"
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        files[table["env_key"]] = name
    return files, None


def plot_study(table: dict[str, Any], out_dir: Path, stem: str) -> str | None:
    """Write a PNG of a study table's mean curves (one panel per column, a line per row).

    Returns:
        The file name, or None when matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    n = len(table["columns"])
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n + 1.0, 3.8), squeeze=False, sharey=True)
    for ax, index, column in zip(axes[0], range(n), table["columns"], strict=True):
        for row in table["rows"]:
            cell = row["cells"][index]
            if cell is not None and cell["curve"] is not None:
                mean = [math.nan if v is None else v for v in cell["curve"]["mean"]]
                ax.plot(cell["curve"]["steps"], mean, marker=".", label=row["label"])
        ax.set_title(_column_head(table, column).replace("`", ""), fontsize=9)
        ax.set_xlabel("round t" if any(row["steps_per_round"] > 1 for row in table["rows"]) else "step t")
        ax.grid(True, alpha=0.3)
    # A metric without a curve of its own (e.g. cumulative reward) is drawn with the regret curve.
    drawn = table["metric"] if table["metric"] in (*_CURVE_KEYS, "nominator_share") else "cumulative_regret"
    axes[0][0].set_ylabel(drawn.replace("_", " "))
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"{table['study']} (T = {table['steps']})", fontsize=10)
    fig.tight_layout()
    name = f"{stem}-{table['study']}-T{table['steps']}.png"
    fig.savefig(out_dir / name, dpi=110)
    plt.close(fig)
    return name


def write_leaderboard(
    records: list[dict[str, Any]],
    out_file: str | Path,
    source: str = "",
    plots: bool = True,
    studies: Study | Sequence[Study] | None = None,
) -> dict[str, Any]:
    """Write the leaderboard of ``records`` to ``out_file`` (Markdown) and its plots beside it.

    The records in a cell of one of ``studies`` make that study's table (:func:`study_tables`);
    the others make one table per env configuration (:func:`summarise`).

    Args:
        records: the records.
        out_file: the Markdown file.
        source: where the records came from, for the header.
        plots: draw the curves (needs matplotlib).
        studies: a study, several, or None for the shipped studies (the default suite).

    Returns:
        A JSON-serialisable summary: ``markdown_file``, ``plots`` (file paths), ``plot_note``,
        ``studies`` (from :func:`study_tables`), ``tables`` (from :func:`summarise`, the records
        outside the studies) and ``markdown`` (the text).

    Raises:
        agents.bench.config.BenchError: ``out_file`` is a directory, or its directory cannot be
            created or written.
    """
    out = Path(out_file)
    if out.is_dir():
        raise BenchError(f"cannot write the leaderboard to {out}: it is a directory (name a file, e.g. {out / 'x.md'})")
    prepare_dir(out.parent, "leaderboard directory")  # before the work, and a clear message
    chosen = _as_studies(studies)
    in_study = covered(records, chosen)
    studied = study_tables(records, chosen)
    tables = summarise([r for r, inside in zip(records, in_study, strict=True) if not inside])
    versions = sorted({r["version"] for r in records})
    try:
        files, note = plot_curves(tables, out.parent, out.stem) if plots else ({}, "plots not requested")
        study_files = [plot_study(t, out.parent, out.stem) if plots and note is None else None for t in studied]
        markdown = render_markdown(tables, files, source, studied, study_files, versions)
        out.write_text(markdown, encoding="utf-8")
    except OSError as err:  # e.g. the disk filled up, or a plot's name is taken by a directory
        raise BenchError(f"cannot write the leaderboard {out}: {err.strerror or err}") from None
    return {
        "markdown_file": str(out),
        "plots": [str(out.parent / name) for name in [*files.values(), *filter(None, study_files)]],
        "plot_note": note,
        "studies": studied,
        "tables": tables,
        "markdown": markdown,
    }
