"""The ``twostage-bench`` command: ``run``, ``leaderboard``, ``list``, ``perf`` and ``reproduce``.

Each subcommand is a :class:`Command` in :data:`COMMANDS` (a help line, a function adding its
arguments, and a handler returning the exit code), so a new subcommand is one more entry.
:func:`main` takes ``argv`` and returns the exit code, so it also runs in-process (tests, notebooks).

Exit codes: 0 success; 1 some jobs failed (or ``reproduce --check`` did not reproduce);
2 bad input; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym

import agents
import twostage_gym
from agents.bench import perf_esr as _perf_esr  # noqa: F401  (registers the ESR perf cases)
from agents.bench import perf_selection as _perf_selection  # noqa: F401  (registers the D-optimal design perf case)
from agents.bench import perf_selection_env as _perf_selection_env  # noqa: F401  (recommender selection perf cases)
from agents.bench import perf_topic_item as _perf_topic_item  # noqa: F401  (registers the topic-item perf cases)
from agents.bench import perf_tree as _perf_tree  # noqa: F401  (registers the tree perf cases)
from agents.bench import policy_value_tables as _tables  # noqa: F401  (registers the Kiyohara tables)
from agents.bench import pool_learning as _pools  # noqa: F401  (registers the Hron et al. Sec. 4 claims)
from agents.bench import selection_claims as _selection  # noqa: F401  (registers the Xu et al. claims)
from agents.bench import topic_item_claims as _topic_item  # noqa: F401  (registers the topic-item Sec. 4 claims)
from agents.bench import tree_claims as _tree_claims  # noqa: F401  (registers the Zhang et al. claims)
from agents.bench.claims import CLAIMS
from agents.bench.config import (
    BenchError,
    RunConfig,
    check_names,
    default_steps,
    parse_kwargs,
    parse_seeds,
)
from agents.bench.executors import EXECUTORS, make_executor
from agents.bench.leaderboard import write_leaderboard
from agents.bench.logged_feedback import cmd_log, configure_log
from agents.bench.perf import PERF_CASES, render_perf, run_perf
from agents.bench.records import prepare_dir, read_records
from agents.bench.report import cmd_report, configure_report
from agents.bench.run import Job, distinct, run_into
from agents.bench.studies import Study, keep_studies, resolve_study, shipped_studies, studies_of
from agents.bench.suites import SUITES

__all__ = ["COMMANDS", "Command", "main"]

PROG = "twostage-bench"


@dataclass(frozen=True)
class Command:
    """A subcommand: its one-line help, how to add its arguments, and its handler (-> exit code)."""

    help: str
    description: str
    configure: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace], int]


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a machine-readable JSON summary on stdout")


# -- run ------------------------------------------------------------------------------------
def _configure_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--suite",
        choices=sorted(SUITES),
        help="run a registered suite: a set of studies (the default when no --study, --env or --agent is given)",
    )
    parser.add_argument(
        "--study",
        action="append",
        metavar="FILE|NAME",
        help="run a study: a TOML file, or the name of a shipped one (repeatable; see 'list studies')",
    )
    parser.add_argument("--env", action="append", metavar="ID", help="environment id (repeatable)")
    parser.add_argument("--agent", action="append", metavar="NAME", help="agent name (repeatable)")
    parser.add_argument(
        "--seeds",
        metavar="SEEDS",
        help="seeds: '0-9', '0,3,5', '7' or a mix like '0-4,8' (default 0-9, or the studies')",
    )
    parser.add_argument(
        "--steps",
        type=_positive_int,
        metavar="N",
        help="horizon T (default: the env's max_episode_steps, or the studies')",
    )
    parser.add_argument("--env-kwargs", metavar="JSON", help="JSON object of gym.make kwargs, for every --env")
    parser.add_argument("--agent-kwargs", metavar="JSON", help="JSON object of agents.make kwargs, for every --agent")
    parser.add_argument(
        "--out", metavar="DIR", help="results directory (default results/<suite>, or results/<study> for one study)"
    )
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="where jobs compute: local processes (default) or a Ray cluster (the 'distributed' extra); "
        "either way only this process writes DIR",
    )
    parser.add_argument(
        "--address",
        metavar="auto|HOST:PORT",
        help="with --executor ray: the cluster to join (default: start a local one with --workers CPUs)",
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        metavar="K",
        help="worker processes, or the CPUs of a local Ray cluster (default: os.cpu_count(); 1 runs in-process)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        metavar="N",
        help="batched learners (e.g. the ESR policy gradients) save their state every N steps in DIR/states; "
        "after a kill the same command resumes each job from its last state, with the same record",
    )
    parser.add_argument("--no-leaderboard", action="store_true", help="do not write DIR/leaderboard.md afterwards")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_json(parser)


@dataclass(frozen=True)
class _Plan:
    """What ``run``'s arguments ask for: the jobs, the results directory and the studies behind them."""

    jobs: list[Job]
    out: str
    suite: str | None
    studies: tuple[Study, ...]


def _run_plan(args: argparse.Namespace) -> _Plan:
    """The jobs, results directory, suite and studies that ``run``'s arguments ask for."""
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None
    if args.env or args.agent:
        if args.suite or args.study:
            raise BenchError("give either --suite, --study or --env/--agent, not several")
        if not (args.env and args.agent):
            raise BenchError("a custom run needs at least one --env and one --agent (or use --study or --suite)")
        if args.out is None:
            raise BenchError("a custom run needs --out DIR")
        check_names((env_id, agent) for env_id in args.env for agent in args.agent)
        env_kwargs = parse_kwargs(args.env_kwargs, "--env-kwargs")
        agent_kwargs = parse_kwargs(args.agent_kwargs, "--agent-kwargs")
        jobs = [
            Job(RunConfig(env_id, agent, args.steps or default_steps(env_id), env_kwargs, agent_kwargs), seed)
            for env_id in args.env
            for agent in args.agent
            for seed in (seeds if seeds is not None else range(10))
        ]
        return _Plan(jobs, args.out, None, ())
    if args.env_kwargs is not None or args.agent_kwargs is not None:
        raise BenchError("--env-kwargs and --agent-kwargs apply to --env/--agent runs, not to a suite or study")
    if args.study:
        if args.suite:
            raise BenchError("give either --suite or --study, not both")
        studies = tuple(map(resolve_study, dict.fromkeys(args.study)))
        names = [study.name for study in studies]
        if len(set(names)) != len(names):
            raise BenchError(f"two --study files have the same name {max(names, key=names.count)!r}")
        if len(studies) > 1 and args.out is None:
            raise BenchError("a run of several studies needs --out DIR")
        out = args.out or str(Path("results") / studies[0].name)
        jobs = distinct(job for study in studies for job in study.jobs(seeds, args.steps))
        return _Plan(jobs, out, None, studies)
    name = args.suite or "default"
    suite = SUITES[name]
    return _Plan(suite.jobs(seeds, args.steps), args.out or str(Path("results") / name), name, suite.studies)


def _cmd_run(args: argparse.Namespace) -> int:
    plan = _run_plan(args)
    out = plan.out
    board_file = Path(out) / "leaderboard.md"
    if not args.no_leaderboard and board_file.is_dir():  # found now, not after every job has run
        raise BenchError(f"cannot write the leaderboard to {board_file}: it is a directory (or use --no-leaderboard)")
    executor = make_executor(args.executor, args.workers or os.cpu_count() or 1, args.address)
    try:
        summary = run_into(
            out,
            plan.jobs,
            args.workers,
            progress=not args.no_progress,
            save_every=args.checkpoint_every,
            executor=executor,
        )
    except KeyboardInterrupt:
        keep_studies(out, plan.studies)
        saved = len(read_records(out, warn=False))
        print(
            f"\n{PROG}: interrupted; {saved} records are saved in {out}. Run the same command to resume.",
            file=sys.stderr,
        )
        return 130
    keep_studies(out, plan.studies)
    summary["suite"] = plan.suite
    summary["studies"] = [study.name for study in plan.studies]
    summary["executor"] = args.executor
    if not args.no_leaderboard:
        records = read_records(out, warn=False)  # run_into has warned about any bad line already
        board = write_leaderboard(records, board_file, source=out, studies=studies_of(Path(out), plan.studies))
        summary["leaderboard"] = {k: board[k] for k in ("markdown_file", "plots", "plot_note")}
    if args.json:
        _print_json(summary)
    else:
        print(
            f"{summary['ran']} run, {summary['skipped']} already in {summary['records_file']}, "
            f"{len(summary['failed'])} failed ({summary['wall_time_s']:.1f} s)"
        )
        if summary["dropped_partial_line"]:
            print("a partial last line (interrupted write) was removed; its job was run again")
        if not args.no_leaderboard:
            print(board["markdown"])
            print(f"leaderboard written to {board['markdown_file']}")
            if board["plot_note"]:
                print(board["plot_note"])
    for failure in summary["failed"]:
        job = f"{failure['agent']} on {failure['env_id']} seed {failure['seed']}"
        print(f"{PROG}: failed: {job}: {failure['error']}", file=sys.stderr)
    return 1 if summary["failed"] else 0


# -- leaderboard ----------------------------------------------------------------------------
def _configure_leaderboard(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR", help="results directory (every *.jsonl in it is read) or a .jsonl file")
    parser.add_argument(
        "--out", metavar="FILE", help="Markdown file to write (default DIR/leaderboard.md); plots go beside it"
    )
    parser.add_argument(
        "--study",
        action="append",
        metavar="FILE|NAME",
        help="tabulate these studies only (repeatable; default: the shipped ones and those kept in DIR/studies)",
    )
    parser.add_argument("--no-plots", action="store_true", help="do not draw the regret curves")
    _add_json(parser)


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    source = Path(args.dir)
    if not source.exists():
        raise BenchError(f"no such results directory or file: {source}")
    chosen = [resolve_study(text) for text in args.study or ()]
    records = read_records(source)
    if not records:
        raise BenchError(f"no records in {source} (expected JSON lines written by '{PROG} run')")
    folder = source if source.is_dir() else source.parent
    studies = chosen or studies_of(folder)
    board = write_leaderboard(
        records, args.out or folder / "leaderboard.md", source=str(source), plots=not args.no_plots, studies=studies
    )
    if args.json:
        _print_json({k: v for k, v in board.items() if k != "markdown"})
    else:
        print(board["markdown"])
        print(f"leaderboard written to {board['markdown_file']}")
        if board["plot_note"] and not args.no_plots:
            print(board["plot_note"])
    return 0


# -- list -----------------------------------------------------------------------------------
_LISTS = ("envs", "agents", "suites", "studies", "claims", "perf")


def _configure_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=_LISTS, help="what to list")
    _add_json(parser)


def _listing(what: str) -> list[dict[str, Any]]:
    if what == "envs":
        return [
            {"id": env_id, "max_episode_steps": gym.spec(env_id).max_episode_steps, "kwargs": gym.spec(env_id).kwargs}
            for env_id in twostage_gym.ENV_IDS
        ]
    if what == "agents":
        return [{"name": s.name, "family": s.family, "description": s.description} for s in agents.registry.values()]
    if what == "suites":
        return [{"name": s.name, "jobs": len(s.jobs()), "description": s.description} for s in SUITES.values()]
    if what == "studies":
        default = shipped_studies()
        return [
            {
                "name": s.name,
                "suite": "default" if s.name in default else "full-scale",
                "jobs": len(s.jobs()),
                "steps": s.steps,
                "title": s.title,
                "file": s.path,
            }
            for s in shipped_studies(full=True).values()
        ]
    if what == "claims":
        return [{"name": c.name, "title": c.title, "source": c.source} for c in CLAIMS.values()]
    return [{"name": c.name, "description": c.description} for c in PERF_CASES.values()]


def _cmd_list(args: argparse.Namespace) -> int:
    items = _listing(args.what)
    if args.json:
        _print_json(items)
        return 0
    for item in items:
        if args.what == "envs":
            kwargs = json.dumps(item["kwargs"]) if item["kwargs"] else "defaults"
            print(f"{item['id']:<32} T={item['max_episode_steps']:<6} {kwargs}")
        elif args.what == "agents":
            print(f"{item['name']:<16} {item['family']:<20} {item['description']}")
        elif args.what == "studies":
            jobs = f"{item['jobs']:>4} jobs x T={item['steps']:<7}"
            print(f"{item['name']:<24} {item['suite']:<10} {jobs} {item['title']}")
        else:
            rest = [v for k, v in item.items() if k != "name"]
            print(f"{item['name']:<20} " + "  ".join(str(v) for v in rest))
    return 0


# -- perf -----------------------------------------------------------------------------------
def _configure_perf(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="few repeats: a fast smoke run, noisy numbers")
    parser.add_argument("--case", action="append", choices=list(PERF_CASES), help="run only this case (repeatable)")
    parser.add_argument("--out", metavar="FILE", help="also write the JSON report to FILE")
    _add_json(parser)


def _cmd_perf(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else None
    if out is not None:  # checked before measuring, which takes a while
        if out.is_dir():
            raise BenchError(
                f"cannot write the perf report to {out}: it is a directory (name a file, e.g. {out / 'x.json'})"
            )
        prepare_dir(out.parent, "perf report directory")
    report = run_perf(quick=args.quick, cases=args.case)
    if out is not None:
        try:
            out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        except OSError as err:
            raise BenchError(f"cannot write the perf report {out}: {err.strerror or err}") from None
    if args.json:
        _print_json(report)
    else:
        print(render_perf(report))
    return 0


# -- reproduce ------------------------------------------------------------------------------
def _configure_reproduce(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("claim", nargs="?", metavar="CLAIM", help=f"one of: {', '.join(CLAIMS)}")
    parser.add_argument("--list", action="store_true", help="list the registered claims")
    parser.add_argument("--steps", type=_positive_int, metavar="N", help="horizon T (default: the claim's)")
    parser.add_argument("--seeds", metavar="SEEDS", help="seeds, e.g. '0-9' (default: the claim's)")
    parser.add_argument("--workers", type=_positive_int, metavar="K", help="worker processes (default: os.cpu_count())")
    parser.add_argument("--out", metavar="DIR", help="keep the records in DIR (and resume from it)")
    parser.add_argument(
        "--report",
        action="store_true",
        help="run nothing: judge the records already in --out DIR (cells not run yet show as pending)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        metavar="N",
        help="batched learners (e.g. the ESR policy gradients) save their state every N steps in --out DIR/states; "
        "after a kill the same command resumes each job from its last state, with the same record",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 unless every cell agrees with the paper")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_json(parser)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    if args.list or args.claim is None:
        if not args.list:
            raise BenchError(f"name a claim; registered: {', '.join(CLAIMS)} (or use --list)")
        return _cmd_list(argparse.Namespace(what="claims", json=args.json))
    if args.claim not in CLAIMS:
        raise BenchError(f"unknown claim {args.claim!r}; registered: {', '.join(CLAIMS)}")
    if args.report and args.out is None:
        raise BenchError("--report judges the records of a results directory: give --out DIR")
    if args.checkpoint_every is not None and (args.out is None or args.report):
        raise BenchError("--checkpoint-every saves the runs' state in a results directory: give --out DIR")
    claim = CLAIMS[args.claim]
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None
    workers = args.workers or os.cpu_count() or 1
    try:
        result = claim.run(
            args.steps, seeds, workers, args.out, not args.no_progress, not args.report, args.checkpoint_every
        )
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return 130
    if args.json:
        _print_json(result)
    else:
        print(claim.render(result))
    return 1 if args.check and result["reproduced"] is not True else 0


COMMANDS: dict[str, Command] = {
    "run": Command(
        "run envs x agents x seeds, a study or a suite into a results directory (locally or on Ray)",
        "Run every (env, agent, seed) job and append one JSON record per job to DIR/records.jsonl.\n"
        "Records already in DIR are skipped, so an interrupted run resumes by running the same\n"
        "command again. --study FILE runs a study (a TOML grid; see 'list studies' for the shipped\n"
        "ones); without --study/--env/--agent, runs the default suite (the shipped studies) into\n"
        "results/default. --executor ray runs the jobs on a Ray cluster; only this process writes DIR.\n"
        "Afterwards the leaderboard of DIR is written to DIR/leaderboard.md (unless --no-leaderboard).",
        _configure_run,
        _cmd_run,
    ),
    "leaderboard": Command(
        "Markdown leaderboard (a table per study, 95%% CIs) and plots of a results directory",
        "One table per study run into DIR (or, for older records, per default study): rows are agents,\n"
        "columns the swept values, each cell the mean over seeds with a 95% confidence interval\n"
        "(Student t), and whether the paper's predicted ordering holds in every column. Records outside\n"
        "the studies get one table per env configuration, sorted by mean cumulative regret: seeds, mean\n"
        "with a 95% interval, regret / T, nominator and ranker shares of regret, wall time.\n"
        "A PNG of the mean curves per table is written beside the Markdown file.",
        _configure_leaderboard,
        _cmd_leaderboard,
    ),
    "list": Command(
        "list environments, agents, suites, studies, claims or perf cases",
        "List what the bench knows: env ids, agent names (with family and description), suites,\n"
        "shipped studies (the default suite's and the full-scale ones), reproducible claims and perf cases.",
        _configure_list,
        _cmd_list,
    ),
    "perf": Command(
        "throughput report: env steps/s, vector env, agent cost per round",
        "Measure and report throughput (median of repeats after a warm-up); targets are reported as\n"
        "met or missed, never asserted.",
        _configure_perf,
        _cmd_perf,
    ),
    "reproduce": Command(
        "reproduce a paper's claim and print our numbers beside the paper's",
        "Run the configurations of a registered claim and print, per cell, our numbers beside the\n"
        "paper's. --steps and --seeds give a reduced run; --out DIR keeps the records, so a second\n"
        "run resumes, and --out DIR --report prints the claim from the records so far, running nothing.",
        _configure_reproduce,
        _cmd_reproduce,
    ),
    "log": Command(
        "log bandit feedback with exact propensities (Open Bandit Pipeline's layout) to a .npz file",
        "Run a learner online for N rounds and write every round with the exact probability that it\n"
        "took the logged action: the served item's (Nominators), or the Plackett-Luce probability\n"
        "of the sampled candidate set (early-stage ranker). load_logged_feedback(FILE) in\n"
        "agents.bench.logged_feedback returns OBP's bandit_feedback dictionary.",
        configure_log,
        cmd_log,
    ),
    "report": Command(
        "one self-contained static HTML page of a results directory: tables, curves, verdicts",
        "Write DIR/report.html (or --out FILE), viewable offline: the study and leaderboard tables,\n"
        "regret curves with 95% CI bands, regret split by stage, policy value against steps, and\n"
        "the verdicts of the claims whose cells have records in DIR (judged on them; nothing is run).",
        configure_report,
        cmd_report,
    ),
}
"""Subcommands by name, in ``--help`` order."""


_EPILOG = f"""\
examples:
  {PROG} run --suite default                      # the default suite into results/default, then its leaderboard
  {PROG} run --env TwoStage/Nominators-v0 --agent ucb+ucb --agent random --seeds 0-4 --steps 500 --out results/mine
  {PROG} leaderboard results/mine
  {PROG} run --study hron2021-prop2 --seeds 0-4           # one study: one table, agents x swept values
  {PROG} run --study my-study.toml --executor ray --address auto --out results/mine
  {PROG} reproduce hron2021-prop2 --steps 2000 --seeds 0-4
  {PROG} perf --quick
  {PROG} list agents
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Benchmarks of two-stage recommender learners on the twostage-gym environments.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {twostage_gym.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        command.configure(
            sub.add_parser(
                name,
                help=command.help,
                description=command.description,
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``twostage-bench`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits on bad usage and on --help; keep main() in-process
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
    try:
        return COMMANDS[args.command].handler(args)
    except BenchError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
