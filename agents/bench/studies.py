"""Studies: a paper's comparison as one grid (envs x swept env kwargs x agents x seeds), read from TOML.

A study file names the study and its grid; ``twostage-bench run --study FILE`` runs it and the
leaderboard shows it as one table (rows: agents, columns: the values of one swept parameter).
The default suite is the study files shipped in ``agents/bench/studies/`` (one per paper effect);
``twostage-bench list studies`` lists them. A study file looks like this::

    name = "hron2021-fig3"                # the study's name (letters, digits, '.', '_', '-')
    title = "two-stage learners against single-stage ones"
    source = "Hron et al. 2021, Fig. 3"   # optional
    env = "TwoStage/Nominators-v0"        # an env id, or a list of them (then "env" can be the columns)
    steps = 1000                          # the horizon T of every job, in rounds (see steps_per_round)
    seeds = "0-9"                         # a seed list as for --seeds, or a TOML list of integers
    columns = "misspecification"          # a key of [sweep], or "env"; omitted: a single column
    metric = "cumulative_regret"          # optional; see METRICS

    [env_kwargs]                          # optional: gym.make kwargs of every job
    n_items = 100

    [sweep]                               # optional: env kwargs to sweep, each a list of values
    misspecification = [2, 4]

    [env_defaults]                        # optional: a swept value equal to the env's default is
    n_candidates = 10                     # left out, so that cell is the env's default configuration

    [[agents]]                            # one row per entry (and per value of a non-column sweep)
    name = "ucb+ucb"
    kwargs = { alpha = 0.01 }             # optional: agents.make kwargs
    [[agents]]
    name = "ucb"
    label = "ucb (single-stage)"          # optional: the row's name (default: name and kwargs)
    env_kwargs = { n_nominators = 1 }     # optional: env kwargs of this row only
    steps_per_round = 1                   # optional: env steps a round of this row (steps counts rounds)

    [claim]                               # optional: the paper's predicted ordering
    text = "two-stage beats single-stage at the same misspecification"
    better = [["ucb+ucb", "ucb (single-stage)"]]   # (row, row) pairs: the first does better
    [claim.by_column]                     # optional: column label -> pairs, instead of `better` there
    "4" = [["ucb+ucb", "ucb (single-stage)"]]

Every job is an ordinary (env, env kwargs, agent, agent kwargs, seed) bench job with its config
hash, so records written before a study existed still count toward it (``env_defaults`` lets a
swept column be the configuration such runs wrote without the key). The studies shipped in
``agents/bench/studies/full/`` are the papers' full-scale grids, for a cluster: ``run --study NAME``
finds them, and they are not part of the default suite.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.bench.config import BenchError, RunConfig, canonical_json, parse_seeds
from agents.bench.run import Job

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (the bench extra depends on tomli there)
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None  # type: ignore[assignment]

__all__ = [
    "FULL_STUDIES_DIR",
    "METRICS",
    "RUN_STUDIES_DIR",
    "STUDIES_DIR",
    "Cell",
    "Study",
    "StudyAgent",
    "StudyClaim",
    "column_label",
    "keep_studies",
    "load_study",
    "parse_study",
    "resolve_study",
    "shipped_studies",
    "studies_of",
]

STUDIES_DIR = Path(__file__).resolve().parent / "studies"
"""The study files shipped with the package: the default suite, one per paper effect."""

FULL_STUDIES_DIR = STUDIES_DIR / "full"
"""Shipped study files at the papers' full scale (for a cluster), not in the default suite."""

METRICS: dict[str, str] = {
    "cumulative_regret": "lower",
    "nominator_regret": "lower",
    "ranker_regret": "lower",
    "nominator_share": "lower",
    "cumulative_reward": "higher",
    "policy_value": "higher",
}
"""The record values a study's table can show (``nominator_share`` is nominator regret / regret per
seed), each with the direction that counts as better."""

RUN_STUDIES_DIR = "studies"
"""The folder of a results directory that keeps the files of the studies run into it."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_TOP_KEYS = {
    "name",
    "title",
    "source",
    "env",
    "steps",
    "seeds",
    "columns",
    "metric",
    "env_kwargs",
    "env_defaults",
    "sweep",
    "agents",
    "claim",
}
_AGENT_KEYS = {"name", "kwargs", "env_kwargs", "label", "steps_per_round"}
_CLAIM_KEYS = {"text", "better", "by_column"}


@dataclass(frozen=True)
class StudyAgent:
    """One agent entry of a study: a row of its table (per value of any non-column sweep)."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    steps_per_round: int = 1

    @property
    def row_label(self) -> str:
        """The row's name: ``label``, else the agent name with its kwargs."""
        if self.label:
            return self.label
        return self.name if not self.kwargs else f"{self.name} {canonical_json(self.kwargs)}"


@dataclass(frozen=True)
class StudyClaim:
    """A paper's predicted ordering: in each column, the first row of each pair does better."""

    text: str
    better: tuple[tuple[str, str], ...] = ()
    by_column: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()

    def pairs(self, column: str) -> tuple[tuple[str, str], ...]:
        """The (better, worse) row pairs predicted in ``column`` (its label)."""
        return dict(self.by_column).get(column, self.better)


@dataclass(frozen=True)
class Cell:
    """One (row, column) of a study with its run configuration (``config.steps`` env steps, that
    is ``steps_per_round`` env steps for each of the study's rounds)."""

    row: str
    column: str
    config: RunConfig
    steps_per_round: int = 1


def column_label(value: Any) -> str:
    """How a column's value is written: strings as they are, other values as canonical JSON."""
    return value if isinstance(value, str) else canonical_json(value)


@dataclass(frozen=True)
class Study:
    """A validated study (see the module docstring for the file format).

    Attributes:
        name: the study's name (``run --study NAME`` finds a shipped one by it).
        title: one line.
        source: the paper and figure or table, or "".
        envs: env ids.
        steps: horizon T in rounds (a row with ``steps_per_round`` k runs k T env steps).
        seeds: default seeds.
        columns: the swept key that forms the columns (``"env"`` for the env ids), or None.
        metric: a key of :data:`METRICS`.
        env_kwargs: gym.make kwargs of every job.
        sweep: (key, values) pairs of swept env kwargs.
        env_defaults: swept keys with the env's default value, left out of a cell's kwargs there.
        agents: the agent entries.
        claim: the predicted ordering, or None.
        path: the file it was read from, or "".
    """

    name: str
    title: str
    source: str
    envs: tuple[str, ...]
    steps: int
    seeds: tuple[int, ...]
    columns: str | None
    metric: str
    env_kwargs: dict[str, Any]
    sweep: tuple[tuple[str, tuple[Any, ...]], ...]
    agents: tuple[StudyAgent, ...]
    claim: StudyClaim | None = None
    path: str = ""
    env_defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def column_values(self) -> list[Any]:
        """The values of the column key, in file order (``[None]`` without one)."""
        if self.columns is None:
            return [None]
        if self.columns == "env":
            return list(self.envs)
        return list(dict(self.sweep)[self.columns])

    def cells(self, steps: int | None = None) -> list[Cell]:
        """Every (row, column) of the grid with its config; ``steps`` replaces the study's T (rounds)."""
        steps = self.steps if steps is None else steps
        others = [(key, values) for key, values in self.sweep if key != self.columns]
        cells = []
        for env_id in self.envs:
            for combination in itertools.product(*(values for _, values in others)):
                extra = dict(zip((key for key, _ in others), combination, strict=True))
                suffix = ", ".join(f"{key}={column_label(value)}" for key, value in extra.items())
                if len(self.envs) > 1 and self.columns != "env":
                    suffix = ", ".join(filter(None, [env_id, suffix]))
                for value in [env_id] if self.columns == "env" else self.column_values:
                    swept = dict(extra)
                    if self.columns not in (None, "env"):
                        swept[self.columns] = value
                    for agent in self.agents:
                        env_kwargs = {**self.env_kwargs, **swept, **agent.env_kwargs}
                        for key, default in self.env_defaults.items():
                            if key in env_kwargs and canonical_json(env_kwargs[key]) == canonical_json(default):
                                del env_kwargs[key]
                        config = RunConfig(env_id, agent.name, steps * agent.steps_per_round, env_kwargs, agent.kwargs)
                        row = agent.row_label if not suffix else f"{agent.row_label} ({suffix})"
                        column = "" if value is None else column_label(value)
                        cells.append(Cell(row, column, config, agent.steps_per_round))
        return cells

    def configs(self, steps: int | None = None) -> list[RunConfig]:
        """The distinct configurations of the grid, in order."""
        return list(dict.fromkeys(cell.config for cell in self.cells(steps)))

    def jobs(self, seeds: Iterable[int] | None = None, steps: int | None = None) -> list[Job]:
        """Every (config, seed) job; ``seeds`` and ``steps`` (rounds) replace the study's (a reduced run)."""
        seeds = self.seeds if seeds is None else tuple(seeds)
        return [Job(config, seed) for config in self.configs(steps) for seed in seeds]

    def rows(self) -> list[str]:
        """The row labels, in order."""
        return list(dict.fromkeys(cell.row for cell in self.cells()))


# -- parsing --------------------------------------------------------------------------------
def _fail(where: str, key: str, message: str) -> BenchError:
    return BenchError(f"study {where}: {key}: {message}")


def _table(value: Any, where: str, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, key, f"expected a table (e.g. {key} = {{ n_items = 50 }}), got {value!r}")
    return value


def _text(value: Any, where: str, key: str, required: bool = True) -> str:
    if not isinstance(value, str) or (required and not value.strip()):
        raise _fail(where, key, f"expected a non-empty string, got {value!r}")
    return value


def _unknown(table: dict[str, Any], allowed: set[str], where: str, prefix: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise _fail(where, prefix + extra[0], f"unknown key; expected one of {', '.join(sorted(allowed))}")


def _seeds(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, str):
        try:
            return tuple(parse_seeds(value))
        except BenchError as err:
            raise _fail(where, "seeds", str(err)) from None
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        if min(value) < 0 or len(set(value)) != len(value):
            raise _fail(where, "seeds", f"expected distinct non-negative integers, got {value!r}")
        return tuple(value)
    raise _fail(where, "seeds", f'expected a seed list such as "0-9" or [0, 1, 2], got {value!r}')


def _agent(entry: Any, index: int, where: str) -> StudyAgent:
    key = f"agents[{index}]"
    entry = _table(entry, where, key)
    _unknown(entry, _AGENT_KEYS, where, f"{key}.")
    if "name" not in entry:
        raise _fail(where, f"{key}.name", "missing (the agent's registered name)")
    per_round = entry.get("steps_per_round", 1)
    if isinstance(per_round, bool) or not isinstance(per_round, int) or per_round < 1:
        raise _fail(where, f"{key}.steps_per_round", f"expected a positive integer, got {per_round!r}")
    return StudyAgent(
        name=_text(entry["name"], where, f"{key}.name"),
        kwargs=_table(entry.get("kwargs", {}), where, f"{key}.kwargs"),
        env_kwargs=_table(entry.get("env_kwargs", {}), where, f"{key}.env_kwargs"),
        label=_text(entry.get("label", ""), where, f"{key}.label", required="label" in entry),
        steps_per_round=per_round,
    )


def _pairs(value: Any, where: str, key: str, rows: list[str]) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(r, str) for r in p) for p in value
    ):
        raise _fail(where, key, f"expected a list of [better row, worse row] pairs, got {value!r}")
    for better, worse in value:
        for row in (better, worse):
            if row not in rows:
                raise _fail(where, key, f"no row {row!r}; the rows are {', '.join(map(repr, rows))}")
        if better == worse:
            raise _fail(where, key, f"a pair compares row {better!r} with itself")
    return tuple((better, worse) for better, worse in value)


def _claim(value: Any, where: str, rows: list[str], columns: list[str]) -> StudyClaim:
    claim = _table(value, where, "claim")
    _unknown(claim, _CLAIM_KEYS, where, "claim.")
    text = _text(claim.get("text"), where, "claim.text")
    better = _pairs(claim.get("better", []), where, "claim.better", rows)
    by_column = []
    for column, pairs in _table(claim.get("by_column", {}), where, "claim.by_column").items():
        if column not in columns:
            raise _fail(where, f"claim.by_column.{column}", f"no such column; the columns are {', '.join(columns)}")
        by_column.append((column, _pairs(pairs, where, f"claim.by_column.{column}", rows)))
    if not better and not by_column:
        raise _fail(where, "claim", "give `better` pairs or `by_column` pairs")
    return StudyClaim(text, better, tuple(by_column))


def parse_study(data: dict[str, Any], where: str = "<study>") -> Study:
    """Validate parsed TOML ``data`` and return the :class:`Study`.

    Args:
        data: the TOML document as a dict.
        where: the file name, for messages.

    Raises:
        agents.bench.config.BenchError: a missing or unknown key, or a value of the wrong type or
            range; the message names the key. (Env ids, agent names and kwargs are checked when the
            study's jobs are validated, before any of them runs.)
    """
    _unknown(data, _TOP_KEYS, where, "")
    for key in ("name", "title", "env", "steps", "seeds", "agents"):
        if key not in data:
            raise _fail(where, key, "missing")
    name = _text(data["name"], where, "name")
    if not _NAME.match(name):
        raise _fail(where, "name", f"use letters, digits, '.', '_' and '-' only, got {name!r}")
    envs = data["env"] if isinstance(data["env"], list) else [data["env"]]
    if not envs or not all(isinstance(e, str) and e for e in envs) or len(set(envs)) != len(envs):
        raise _fail(where, "env", f"expected an env id or a list of distinct env ids, got {data['env']!r}")
    steps = data["steps"]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise _fail(where, "steps", f"expected a positive integer, got {steps!r}")
    metric = data.get("metric", "cumulative_regret")
    if metric not in METRICS:
        raise _fail(where, "metric", f"expected one of {', '.join(METRICS)}, got {metric!r}")
    env_kwargs = _table(data.get("env_kwargs", {}), where, "env_kwargs")
    sweep = []
    for key, values in _table(data.get("sweep", {}), where, "sweep").items():
        if not isinstance(values, list) or not values:
            raise _fail(where, f"sweep.{key}", f"expected a non-empty list of values, got {values!r}")
        if len({canonical_json(v) for v in values}) != len(values):
            raise _fail(where, f"sweep.{key}", f"a value appears more than once in {values!r}")
        if key in env_kwargs:
            raise _fail(where, f"sweep.{key}", "is also a fixed env_kwargs key; give it in one place")
        sweep.append((key, tuple(values)))
    env_defaults = _table(data.get("env_defaults", {}), where, "env_defaults")
    for key in env_defaults:
        if key not in dict(sweep):
            raise _fail(where, f"env_defaults.{key}", "not a swept key (only swept values can be left out)")
    columns = data.get("columns")
    if columns is not None:
        allowed = [key for key, _ in sweep] + (["env"] if len(envs) > 1 else [])
        if columns not in allowed:
            hint = ", ".join(allowed) if allowed else "none (no [sweep] and a single env)"
            raise _fail(where, "columns", f"expected a swept key; the choices are {hint}; got {columns!r}")
    entries = data["agents"]
    if not isinstance(entries, list) or not entries:
        raise _fail(where, "agents", "expected one or more [[agents]] tables")
    study_agents = tuple(_agent(entry, i, where) for i, entry in enumerate(entries))
    labels = [agent.row_label for agent in study_agents]
    if len(set(labels)) != len(labels):
        raise _fail(where, "agents", "two entries have the same row label; give them distinct `label`s")
    study = Study(
        name=name,
        title=_text(data["title"], where, "title"),
        source=_text(data.get("source", ""), where, "source", required=False),
        envs=tuple(envs),
        steps=steps,
        seeds=_seeds(data["seeds"], where),
        columns=columns,
        metric=metric,
        env_kwargs=env_kwargs,
        sweep=tuple(sweep),
        agents=study_agents,
        path=where,
        env_defaults=env_defaults,
    )
    try:
        cells = study.cells()  # RunConfig checks that every kwargs value is JSON
    except BenchError as err:
        raise _fail(where, "env_kwargs", str(err)) from None
    hashes = [cell.config.config_hash for cell in cells]
    if len(set(hashes)) != len(hashes):
        raise _fail(where, "agents", "two cells of the grid are the same configuration")
    if "claim" in data:
        columns_seen = list(dict.fromkeys(cell.column for cell in cells))
        claim = _claim(data["claim"], where, study.rows(), columns_seen)
        study = dataclasses.replace(study, claim=claim)
    return study


def load_study(path: str | Path) -> Study:
    """Read and validate the study file at ``path``.

    Raises:
        agents.bench.config.BenchError: the file cannot be read, is not TOML, or is not a valid study.
    """
    path = Path(path)
    if tomllib is None:  # pragma: no cover - Python 3.10 without tomli
        raise BenchError("reading a study file on Python 3.10 needs tomli (pip install 'twostage-gym[bench]')")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise BenchError(f"cannot read the study file {path}: {getattr(err, 'strerror', None) or err}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise BenchError(f"study {path}: not valid TOML ({err})") from None
    return parse_study(data, str(path))


def _study_files(directory: Path) -> Iterator[Path]:
    return iter(sorted(directory.glob("*.toml"))) if directory.is_dir() else iter(())


def shipped_studies(full: bool = False) -> dict[str, Study]:
    """The studies shipped in :data:`STUDIES_DIR` by name (the default suite); with ``full``,
    those of :data:`FULL_STUDIES_DIR` (the papers' full-scale grids) after them."""
    studies = {}
    files = [*_study_files(STUDIES_DIR), *(_study_files(FULL_STUDIES_DIR) if full else ())]
    for file in files:
        study = load_study(file)
        studies[study.name] = study
    return studies


def resolve_study(text: str) -> Study:
    """A study by the path of its file, or by the name of a shipped study.

    Raises:
        agents.bench.config.BenchError: no such file and no shipped study of that name.
    """
    path = Path(text)
    if path.suffix == ".toml" or path.exists():
        if not path.exists():
            raise BenchError(f"no such study file: {path}")
        return load_study(path)
    shipped = shipped_studies(full=True)
    if text not in shipped:
        raise BenchError(f"unknown study {text!r}: not a file, nor a shipped study ({', '.join(shipped)})")
    return shipped[text]


def keep_studies(out: str | Path, studies: Iterable[Study]) -> None:
    """Copy the files of ``studies`` (run into the results directory ``out``) to ``out/studies``.

    Raises:
        agents.bench.config.BenchError: the files cannot be written.
    """
    studies = [study for study in studies if Path(study.path).is_file()]  # not those built in code
    if not studies or not Path(out).is_dir():
        return
    folder = Path(out) / RUN_STUDIES_DIR
    try:
        folder.mkdir(exist_ok=True)
        for study in studies:
            (folder / f"{study.name}.toml").write_text(Path(study.path).read_text(encoding="utf-8"), encoding="utf-8")
    except OSError as err:
        raise BenchError(f"cannot keep the study files in {folder}: {err.strerror or err}") from None


def studies_of(directory: str | Path, chosen: Iterable[Study] = ()) -> list[Study]:
    """The studies to tabulate for a results directory: those run into it (kept by
    :func:`keep_studies`), or the default suite's for a directory without any (older records),
    then ``chosen`` (by name, later ones win).

    Only what was run: the full-scale studies share cells with the default ones (e.g. the ESR at
    K = 20), and a table of a study nobody ran, filled by chance, would mislead.
    """
    kept = [load_study(file) for file in _study_files(Path(directory) / RUN_STUDIES_DIR)]
    base = kept or list(shipped_studies().values())
    return list({s.name: s for s in (*base, *chosen)}.values())
