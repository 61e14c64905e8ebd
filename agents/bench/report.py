"""``twostage-bench report DIR``: one self-contained static HTML page of a results directory.

The page needs no network and no other file: the CSS is inline and the figures are PNGs embedded
as base64 ``data:`` URIs. It holds, from the records of DIR (every ``*.jsonl``):

* the study tables (:func:`agents.bench.leaderboard.study_tables`: a paper's grid, with the
  verdict of its predicted ordering) and one leaderboard table per env configuration
  (:func:`agents.bench.leaderboard.summarise`: mean regret with its 95% CI, stage shares);
* per env configuration, the mean cumulative regret curves with 95% CI bands over seeds, a bar
  chart of the mean regret split into its stages (nominator / early stage and ranker), and for
  batched learners the exact value of the learned policy against gradient steps (with CI bands);
* the reproduction verdicts: every registered claim (``twostage-bench reproduce``) whose cells
  have records in DIR, judged on those records, as ``reproduce --out DIR --report`` judges them.

A small script sets ``data-images-loaded`` ("loaded/total") and ``data-report-ready`` on
``<body>`` once the page has loaded, so that a headless browser can check that every figure
decoded. matplotlib is imported only to draw; without it the page says so and holds the tables.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.bench.claims import CLAIMS, Claim, verdict_text
from agents.bench.config import BenchError, canonical_json
from agents.bench.leaderboard import confidence_halfwidth, study_tables, summarise
from agents.bench.policy_value_tables import PolicyValueTable
from agents.bench.records import prepare_dir, read_records

__all__ = [
    "REPORT_FILE",
    "cmd_report",
    "configure_report",
    "curve_bands",
    "judge_claims",
    "render_html",
    "report_data",
    "write_report",
]

REPORT_FILE = "report.html"
"""The page ``report DIR`` writes by default, inside DIR."""

_PROG = "twostage-bench"
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; } h3 { margin-top: 1.5em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.yes { color: #176f2c; font-weight: bold; } .no { color: #b3261e; font-weight: bold; }
.pending { color: #8a6d00; font-weight: bold; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; } img { max-width: 100%; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.note { color: #555; font-size: 0.9em; }
"""
# Sets the attributes a headless browser reads once the page (and every image) has loaded.
_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (img) { return img.complete && img.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images-loaded", loaded + "/" + images.length);
  document.body.setAttribute("data-tables", String(document.querySelectorAll("table").length));
  document.body.setAttribute("data-report-ready", loaded === images.length ? "ok" : "broken-images");
});
"""


# -- data ----------------------------------------------------------------------------------
def _env_key(record: dict[str, Any]) -> str:
    return canonical_json({"env_id": record["env_id"], "env_kwargs": record["env_kwargs"], "steps": record["steps"]})


def _band(curves: list[list[float]]) -> dict[str, list[float | None]]:
    """Mean and 95% CI half-width (None under two seeds) at each checkpoint of equal-length curves."""
    values = np.asarray(curves, dtype=np.float64)
    # One interval per checkpoint (about 20), with the leaderboard's t or normal quantile.
    halves = [confidence_halfwidth(values[:, j].tolist())[0] for j in range(values.shape[1])]
    return {"mean": values.mean(axis=0).tolist(), "ci95": halves}


def curve_bands(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per env configuration and agent configuration, the mean curves with 95% CI bands.

    Returns:
        env key -> config hash -> ``{"label", "n_seeds", "steps", "regret": {"mean", "ci95"},
        "nominator_regret", "ranker_regret": mean final stage regrets, "policy_value": {"mean",
        "ci95"} or None}``. Seeds whose curve has other checkpoints than the first
        seed's are left out of the bands (a resumed record of another length).
    """
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for record in records:
        groups.setdefault(_env_key(record), {}).setdefault(record["config_hash"], []).append(record)
    bands: dict[str, dict[str, dict[str, Any]]] = {}
    for env_key, configs in groups.items():
        for config_hash, group in configs.items():
            steps = group[0]["curve"]["steps"]
            same = [r for r in group if r["curve"]["steps"] == steps]
            first = group[0]
            label = first["agent"] + (f" {canonical_json(first['agent_kwargs'])}" if first["agent_kwargs"] else "")
            values = [r["curve"].get("policy_value") for r in same]
            valued = all(v is not None and None not in v for v in values)
            bands.setdefault(env_key, {})[config_hash] = {
                "label": label,
                "n_seeds": len(same),
                "steps": steps,
                "regret": _band([r["curve"]["regret"] for r in same]),
                "nominator_regret": float(np.mean([r["nominator_regret"] for r in group])),
                "ranker_regret": float(np.mean([r["ranker_regret"] for r in group])),
                "policy_value": _band(values) if valued and values else None,
            }
    return bands


def _claim_cells(claim: Any) -> list[Any] | None:
    """The run configurations of a claim whose grid is known without computing anything, else None.

    That of a :class:`~agents.bench.claims.Claim` and of a policy-value table; other claims may
    compute their grid (e.g. learned pools take most of a minute), so they are judged on request.
    """
    if isinstance(claim, Claim):
        return [cell.config for cell in claim.cells]
    if isinstance(claim, PolicyValueTable):
        return list(claim.configs(claim.steps).values())
    return None


def _match(env_id: str, env_kwargs: dict, agent: str, agent_kwargs: dict) -> str:
    return canonical_json([env_id, env_kwargs, agent, agent_kwargs])


def judge_claims(
    source: Path, records: list[dict[str, Any]], names: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Judge the registered claims on the records of ``source``, a directory or a file (nothing is run).

    By default, the claims whose grid is known up front (``cells`` or ``configs``) and has
    records in ``source``; the horizon is the one most of those records have and the seeds are
    theirs. ``names`` judges those claims instead (others at their default horizon and seeds).

    Returns:
        ``{"claim", "title", "source", "reproduced" (verdict text), "text" (the claim's own
        rendering), "result" (its JSON result), "figures" (data URIs of the PNGs it drew)}`` per claim.
    """
    keys: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        key = _match(record["env_id"], record["env_kwargs"], record["agent"], record["agent_kwargs"])
        keys.setdefault(key, []).append(record)
    judged = []
    for name, claim in CLAIMS.items():
        if names is not None and name not in names:
            continue
        configs = _claim_cells(claim)
        steps = seeds = None
        if configs is not None:
            mine = [r for c in configs for r in keys.get(_match(c.env_id, c.env_kwargs, c.agent, c.agent_kwargs), [])]
            if mine:
                horizons = [r["steps"] for r in mine]
                steps = max(set(horizons), key=lambda t: (horizons.count(t), t))
                seeds = sorted({r["seed"] for r in mine if r["steps"] == steps})
            elif names is None:
                continue
        elif names is None:
            continue
        result, figures = _judge_read_only(claim, steps, seeds, source)
        judged.append(
            {
                "claim": name,
                "title": claim.title,
                "source": claim.source,
                "reproduced": verdict_text(result["reproduced"]),
                "text": claim.render(result),
                "result": result,
                "figures": figures,
            }
        )
    return judged


def _judge_read_only(
    claim: Any, steps: int | None, seeds: list[int] | None, source: Path
) -> tuple[dict[str, Any], list[str]]:
    """``claim.run`` on the records of ``source`` without writing there, and its figures as data URIs.

    Some claims draw a figure into their results directory when judged (e.g. Table 2's learning
    curves). A report only reads DIR, so the claim is judged in a scratch directory that links to
    DIR's entries, and the figures it draws there are embedded in the page.
    """
    with tempfile.TemporaryDirectory(prefix="twostage-report-") as scratch:
        view = Path(scratch)
        for entry in source.iterdir() if source.is_dir() else [source]:  # a .jsonl file: that file only
            (view / entry.name).symlink_to(entry.resolve())
        result = claim.run(steps, seeds, 1, view, False, False, None)
        figures = []
        for entry in sorted(view.iterdir()):
            if entry.is_file() and not entry.is_symlink() and entry.suffix == ".png":
                figures.append("data:image/png;base64," + base64.b64encode(entry.read_bytes()).decode("ascii"))
    if isinstance(result.get("figure"), str):
        result["figure"] = Path(result["figure"]).name  # the scratch path is gone; the page embeds it
    return result, figures


def report_data(source: str | Path, claims: Sequence[str] | None = None) -> dict[str, Any]:
    """Everything the page shows, as plain JSON-serialisable data.

    Raises:
        agents.bench.config.BenchError: no such directory or file, or no records in it.
    """
    path = Path(source)
    if not path.exists():
        raise BenchError(f"no such results directory or file: {path}")
    records = read_records(path)
    if not records:
        raise BenchError(f"no records in {path} (expected JSON lines written by '{_PROG} run')")
    if claims is not None:
        unknown = [name for name in claims if name not in CLAIMS]
        if unknown:
            raise BenchError(f"unknown claim {unknown[0]!r}; registered: {', '.join(CLAIMS)}")
    return {
        "source": str(path),
        "n_records": len(records),
        "versions": sorted({r["version"] for r in records}),
        "studies": study_tables(records),
        "tables": summarise(records),
        "bands": curve_bands(records),
        "claims": judge_claims(path, records, claims),
    }


# -- figures -------------------------------------------------------------------------------
def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _band_plot(plt: Any, bands: dict[str, dict[str, Any]], key: str, ylabel: str, title: str) -> str:
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for band in bands.values():
        series = band[key]
        if series is None:
            continue
        steps = np.asarray(band["steps"], dtype=float)
        mean = np.asarray(series["mean"], dtype=float)
        (line,) = ax.plot(steps, mean, marker=".", label=f"{band['label']} ({band['n_seeds']} seeds)")
        if all(h is not None for h in series["ci95"]):  # no band under two seeds
            half = np.asarray(series["ci95"], dtype=float)
            ax.fill_between(steps, mean - half, mean + half, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("step t")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    uri = _png(fig)
    plt.close(fig)
    return uri


def _stage_plot(plt: Any, bands: dict[str, dict[str, Any]], title: str) -> str:
    labels = [band["label"] for band in bands.values()]
    nominator = np.array([band["nominator_regret"] for band in bands.values()])
    ranker = np.array([band["ranker_regret"] for band in bands.values()])
    fig, ax = plt.subplots(figsize=(6.4, max(2.4, 1.2 + 0.45 * len(labels))))
    y = np.arange(len(labels))
    ax.barh(y, nominator, label="nominator / early stage")
    # Stage regrets can be negative (e.g. the noisy LSR's approximate optimum): stack from 0 then.
    ax.barh(y, ranker, left=np.where(np.sign(ranker) == np.sign(nominator), nominator, 0.0), label="ranker")
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("mean cumulative regret, by stage")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    uri = _png(fig)
    plt.close(fig)
    return uri


def _figures(data: dict[str, Any]) -> tuple[dict[str, list[tuple[str, str]]], str | None]:
    """env key -> [(caption, data URI)], or ({}, a note) without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return {}, "matplotlib is not installed (pip install 'twostage-gym[bench]'): the page has no figures"
    figures: dict[str, list[tuple[str, str]]] = {}
    for table in data["tables"]:
        key = table["env_key"]
        bands = data["bands"][key]
        title = _title(table)
        shown = [
            ("mean cumulative regret with 95% CI bands", _band_plot(plt, bands, "regret", "cumulative regret", title)),
            ("mean regret by stage", _stage_plot(plt, bands, title)),
        ]
        if any(band["policy_value"] is not None for band in bands.values()):
            uri = _band_plot(plt, bands, "policy_value", "policy value (exact)", title)
            shown.append(("value of the learned deterministic policy, with 95% CI bands", uri))
        figures[key] = shown
    return figures, None


# -- HTML ----------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _title(table: dict[str, Any]) -> str:
    kwargs = f" {canonical_json(table['env_kwargs'])}" if table["env_kwargs"] else ""
    return f"{table['env_id']}{kwargs}, T = {table['steps']}"


def _num(value: float | None, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _verdict(text: str) -> str:
    return f'<span class="{_e(text)}">{_e(text)}</span>'


def _study_html(table: dict[str, Any]) -> list[str]:
    out = [
        f"<h3>{_e(table['study'])}: {_e(table['title'])} (T = {table['steps']})</h3>",
        f'<p class="note">{_e(table["source"] + ". " if table["source"] else "")}Cells: {_e(table["metric"])}, '
        "mean over seeds ± 95% CI; "
        f"{_e(table['better'])} is better.</p>",
        f'<table class="study" data-study="{_e(table["study"])}"><thead><tr><th>agent</th>'
        + "".join(f"<th>{_e(table['column_key'] or '')} {_e(c)}</th>" for c in table["columns"])
        + "</tr></thead><tbody>",
    ]
    for row in table["rows"]:
        cells = []
        for cell in row["cells"]:
            if cell is None:
                cells.append('<td class="num">-</td>')
            else:
                ci = "n/a" if cell["ci95"] is None else _num(cell["ci95"], 3)
                cells.append(f'<td class="num">{_num(cell["mean"], 3)} ± {ci} ({cell["n_seeds"]})</td>')
        out.append(f"<tr><th>{_e(row['label'])}</th>{''.join(cells)}</tr>")
    out.append("</tbody></table>")
    claim = table["claim"]
    if claim is not None:
        out.append(f"<p>Claim: {_e(claim['text'])}. Holds: {_verdict(verdict_text(claim['holds']))}</p>")
    return out


def _env_html(table: dict[str, Any], figures: list[tuple[str, str]]) -> list[str]:
    valued = any(row["policy_value"] is not None for row in table["rows"])
    head = ["#", "agent", "seeds", "regret (mean ± 95% CI)", "regret / T", "nominator share", "ranker share"]
    head += ["final policy value"] if valued else []
    head += ["wall time (s)"]
    out = [
        f"<h3>{_e(_title(table))}</h3>",
        f'<table class="leaderboard" data-env="{_e(table["env_id"])}"><thead><tr>'
        + "".join(f"<th>{_e(h)}</th>" for h in head)
        + "</tr></thead><tbody>",
    ]
    for rank, row in enumerate(table["rows"], 1):
        label = row["agent"] + (f" {canonical_json(row['agent_kwargs'])}" if row["agent_kwargs"] else "")
        ci = "n/a" if row["ci95"] is None else _num(row["ci95"])
        cells = [
            str(rank),
            _e(label),
            str(row["n_seeds"]),
            f"{_num(row['mean_regret'])} ± {ci}",
            _num(row["mean_regret_per_step"], 4),
            _share(row["nominator_share"]),
            _share(row["ranker_share"]),
        ]
        cells += [_num(row["policy_value"], 3)] if valued else []
        cells += [_num(row["mean_wall_time_s"], 3)]
        tds = [f"<td>{c}</td>" if i == 1 else f'<td class="num">{c}</td>' for i, c in enumerate(cells)]
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</tbody></table>")
    for caption, uri in figures:
        out.append(f'<figure><img src="{uri}" alt="{_e(caption)}"><figcaption>{_e(caption)}</figcaption></figure>')
    return out


def render_html(data: dict[str, Any], figures: dict[str, list[tuple[str, str]]], note: str | None = None) -> str:
    """The page, from :func:`report_data` and the figures' data URIs (env key -> [(caption, URI)])."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>twostage-bench report</title>",
        f"<style>{_STYLE}</style>",
        f"<script>{_SCRIPT}</script>",
        "</head><body>",
        "<h1>twostage-bench report</h1>",
        f'<p class="note">Records: <code>{_e(data["source"])}</code> ({data["n_records"]} records; package '
        f"version(s) {_e(', '.join(data['versions']))}). Regret is the cumulative expected regret over T rounds, "
        "mean over seeds with a 95% confidence interval; bands are the 95% intervals of the mean at each "
        "checkpoint. For batched learners T counts gradient steps and the policy value is the exact value "
        "of the learned deterministic policy.</p>",
    ]
    if note:
        out.append(f'<p class="note">{_e(note)}</p>')
    if data["claims"]:
        out += [
            "<h2>Reproductions</h2>",
            '<table class="claims"><thead><tr><th>claim</th><th>title</th><th>T</th><th>seeds</th>'
            "<th>reproduced</th></tr></thead><tbody>",
        ]
        for claim in data["claims"]:
            seeds = claim["result"].get("seeds") or []
            out.append(
                f"<tr><td>{_e(claim['claim'])}</td><td>{_e(claim['title'])}</td>"
                f'<td class="num">{_e(claim["result"].get("steps"))}</td><td class="num">{len(seeds)}</td>'
                f"<td>{_verdict(claim['reproduced'])}</td></tr>"
            )
        out.append("</tbody></table>")
        for claim in data["claims"]:
            out += [f"<h3>{_e(claim['claim'])}</h3>", f"<pre>{_e(claim['text'])}</pre>"]
            caption = f"{claim['claim']}: the claim's figure"
            out += [f'<figure><img src="{uri}" alt="{_e(caption)}"></figure>' for uri in claim["figures"]]
    if data["studies"]:
        out.append("<h2>Studies</h2>")
        for table in data["studies"]:
            out += _study_html(table)
    out.append("<h2>Leaderboards by environment</h2>")
    for table in data["tables"]:
        out += _env_html(table, figures.get(table["env_key"], []))
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(
    source: str | Path, out_file: str | Path | None = None, claims: Sequence[str] | None = None
) -> dict[str, Any]:
    """Write the report of ``source`` (a results directory or a ``.jsonl`` file) as one HTML page.

    Args:
        source: where the records are.
        out_file: the page (default :data:`REPORT_FILE` in the results directory).
        claims: judge these claims (default: every claim whose cells have records in ``source``).

    Returns:
        ``{"file", "images", "tables", "studies", "claims" (name -> verdict text), "note"}``.

    Raises:
        agents.bench.config.BenchError: no records, an unknown claim, or an output path that is a
            directory or cannot be written.
    """
    path = Path(source)
    out = Path(out_file) if out_file is not None else (path if path.is_dir() else path.parent) / REPORT_FILE
    if out.is_dir():
        raise BenchError(f"cannot write the report to {out}: it is a directory (name a file, e.g. {out / 'r.html'})")
    data = report_data(path, claims)
    prepare_dir(out.parent, "report directory")
    figures, note = _figures(data)
    page = render_html(data, figures, note)
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as err:
        raise BenchError(f"cannot write the report {out}: {err.strerror or err}") from None
    return {
        "file": str(out),
        "images": sum(len(f) for f in figures.values()) + sum(len(c["figures"]) for c in data["claims"]),
        "tables": len(data["tables"]),
        "studies": len(data["studies"]),
        "claims": {claim["claim"]: claim["reproduced"] for claim in data["claims"]},
        "note": note,
    }


# -- the command ---------------------------------------------------------------------------
def configure_report(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``twostage-bench report``."""
    parser.add_argument("dir", metavar="DIR", help="results directory (every *.jsonl in it is read) or a .jsonl file")
    parser.add_argument("--out", metavar="FILE", help=f"the HTML file to write (default DIR/{REPORT_FILE})")
    parser.add_argument(
        "--claim",
        action="append",
        metavar="NAME",
        help="judge this claim on the records (repeatable; default: the claims whose cells have records in DIR)",
    )
    parser.add_argument("--json", action="store_true", help="print a machine-readable JSON summary on stdout")


def cmd_report(args: argparse.Namespace) -> int:
    """Run ``twostage-bench report``."""
    summary = write_report(args.dir, args.out, args.claim)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        claims = ", ".join(f"{name}: {text}" for name, text in summary["claims"].items()) or "none"
        print(
            f"report written to {summary['file']} ({summary['tables']} env tables, {summary['studies']} study "
            f"tables, {summary['images']} figures; reproductions: {claims})"
        )
        if summary["note"]:
            print(summary["note"])
    return 0
