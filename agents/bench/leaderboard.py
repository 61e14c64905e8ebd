"""Leaderboards from records: a Markdown table per env configuration, and mean regret curves.

For each env configuration (env id, env kwargs, horizon T) and each agent configuration (config
hash) over its seeds: the mean cumulative regret with a 95% confidence interval (Student t with
n - 1 degrees of freedom, or the normal 1.96 when scipy is missing), the nominator and ranker
shares of regret (mean stage regret / mean regret) and the mean wall time. Rows sort by mean regret.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.bench.config import BenchError, canonical_json
from agents.bench.records import prepare_dir

__all__ = ["confidence_halfwidth", "plot_curves", "render_markdown", "summarise", "write_leaderboard"]


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


def render_markdown(tables: list[dict[str, Any]], plots: dict[str, str] | None = None, source: str = "") -> str:
    """The leaderboard as Markdown: a heading and a table per env configuration, with its plot if given.

    Args:
        tables: from :func:`summarise`.
        plots: env key -> PNG file name (relative to the Markdown file).
        source: where the records came from, for the header.
    """
    plots = plots or {}
    versions = sorted({v for table in tables for row in table["rows"] for v in row["versions"]})
    methods = sorted({row["ci_method"] for table in tables for row in table["rows"]})
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
    for table in tables:
        valued = any(row["policy_value"] is not None for row in table["rows"])
        lines += [
            "",
            f"## {_table_title(table)}",
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


def write_leaderboard(
    records: list[dict[str, Any]], out_file: str | Path, source: str = "", plots: bool = True
) -> dict[str, Any]:
    """Summarise ``records``, write the Markdown table to ``out_file`` and the plots beside it.

    Returns:
        A JSON-serialisable summary: ``markdown_file``, ``plots`` (file paths), ``plot_note``,
        ``tables`` (from :func:`summarise`) and ``markdown`` (the text).

    Raises:
        agents.bench.config.BenchError: ``out_file`` is a directory, or its directory cannot be
            created or written.
    """
    out = Path(out_file)
    if out.is_dir():
        raise BenchError(f"cannot write the leaderboard to {out}: it is a directory (name a file, e.g. {out / 'x.md'})")
    prepare_dir(out.parent, "leaderboard directory")  # before the work, and a clear message
    tables = summarise(records)
    try:
        files, note = plot_curves(tables, out.parent, out.stem) if plots else ({}, "plots not requested")
        markdown = render_markdown(tables, files, source)
        out.write_text(markdown, encoding="utf-8")
    except OSError as err:  # e.g. the disk filled up, or a plot's name is taken by a directory
        raise BenchError(f"cannot write the leaderboard {out}: {err.strerror or err}") from None
    return {
        "markdown_file": str(out),
        "plots": [str(out.parent / name) for name in files.values()],
        "plot_note": note,
        "tables": tables,
        "markdown": markdown,
    }
