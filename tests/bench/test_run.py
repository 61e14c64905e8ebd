"""``twostage-bench run``: records, config hashes, resuming, validation before any work."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

import agents.bench.run as bench_run
import twostage_gym
from agents.bench.cli import main
from agents.bench.config import MAX_SEEDS, BenchError, format_seeds, parse_seeds
from agents.bench.records import RECORD_FIELDS
from agents.bench.suites import SUITES

ENV = "TwoStage/Nominators-v0"
ENV_KWARGS = {"n_items": 20, "dim": 4, "n_nominators": 2}


def _run(out: Path, *extra: str) -> int:
    return main(
        [
            "run",
            "--env", ENV,
            "--agent", "ucb+ucb",
            "--agent", "random",
            "--seeds", "0-1",
            "--steps", "50",
            "--env-kwargs", json.dumps(ENV_KWARGS),
            "--out", str(out),
            "--workers", "1",
            "--no-progress",
            "--no-leaderboard",
            *extra,
        ]
    )  # fmt: skip


def _lines(out: Path) -> list[str]:
    return (out / "records.jsonl").read_text().splitlines()


def _count_jobs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Record which jobs actually run (workers=1 runs them in this process)."""
    calls: list[tuple[str, int]] = []
    original = bench_run.run_job

    def counting(job: bench_run.Job, states: bench_run.StateSaving | None = None) -> dict:
        calls.append((job.config.agent, job.seed))
        return original(job, states)

    monkeypatch.setattr(bench_run, "run_job", counting)
    return calls


def test_run_writes_one_record_per_env_agent_seed(tmp_path: Path) -> None:
    assert _run(tmp_path) == 0
    records = [json.loads(line) for line in _lines(tmp_path)]
    assert len(records) == 4
    assert {(r["agent"], r["seed"]) for r in records} == {("ucb+ucb", 0), ("ucb+ucb", 1), ("random", 0), ("random", 1)}
    for record in records:
        assert set(RECORD_FIELDS) <= set(record)
        assert record["version"] == twostage_gym.__version__
        assert record["env_id"] == ENV and record["env_kwargs"] == ENV_KWARGS
        assert record["agent_kwargs"] == {} and record["steps"] == 50
        config = {"env_id": ENV, "env_kwargs": ENV_KWARGS, "agent": record["agent"], "agent_kwargs": {}, "steps": 50}
        canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
        assert record["config_hash"] == hashlib.sha256(canonical.encode()).hexdigest()
        assert record["cumulative_regret"] == pytest.approx(record["nominator_regret"] + record["ranker_regret"])
    hashes = {r["agent"]: r["config_hash"] for r in records}
    assert len(set(hashes.values())) == 2  # the seed is not part of the hash


def test_rerun_skips_existing_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _run(tmp_path) == 0
    before = (tmp_path / "records.jsonl").read_bytes()
    calls = _count_jobs(monkeypatch)
    assert _run(tmp_path) == 0
    assert calls == []
    assert (tmp_path / "records.jsonl").read_bytes() == before
    # A new seed runs only the new jobs.
    assert _run(tmp_path, "--seeds", "0-2") == 0
    assert sorted(calls) == [("random", 2), ("ucb+ucb", 2)]
    assert len(_lines(tmp_path)) == 6


def test_truncated_last_line_is_recomputed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _run(tmp_path) == 0
    file = tmp_path / "records.jsonl"
    data = file.read_bytes()
    file.write_bytes(data[: len(data) - 40])  # an interrupted write: half a line, no newline
    lost = json.loads(data.splitlines()[-1])
    calls = _count_jobs(monkeypatch)
    assert _run(tmp_path) == 0
    assert calls == [(lost["agent"], lost["seed"])]
    records = [json.loads(line) for line in _lines(tmp_path)]  # every line is whole again
    assert len(records) == 4


def test_interrupted_run_keeps_finished_records_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = bench_run.run_job
    calls: list[int] = []

    def interrupted(job: bench_run.Job, states: bench_run.StateSaving | None = None) -> dict:
        calls.append(job.seed)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(job, states)

    monkeypatch.setattr(bench_run, "run_job", interrupted)
    assert _run(tmp_path) == 130
    assert len(_lines(tmp_path)) == 2
    monkeypatch.setattr(bench_run, "run_job", original)
    calls_after = _count_jobs(monkeypatch)
    assert _run(tmp_path) == 0
    assert len(calls_after) == 2
    assert len(_lines(tmp_path)) == 4


def test_process_pool_and_suite_with_reduced_horizon(tmp_path: Path) -> None:
    out = tmp_path / "suite"
    argv = ["run", "--suite", "default", "--seeds", "0", "--steps", "20", "--workers", "2", "--no-progress"]
    assert main([*argv, "--out", str(out), "--json"]) == 0
    records = [json.loads(line) for line in _lines(out)]
    assert len(records) == len(SUITES["default"].jobs(seeds=[0]))
    # --steps counts rounds: a two-stage topic -> item round is two env steps.
    assert {r["steps"] for r in records} == {20, 40}
    assert {r["agent"] for r in records if r["steps"] == 40} == {"2-n-greedy", "2-s-n-galm-ucb"}
    markdown = (out / "leaderboard.md").read_text()
    # One table per paper effect (shipped study), and no per-env tables beside them.
    assert [line for line in markdown.splitlines() if line.startswith("## ")] == [
        f"## {study.name}: {study.title} (T = 20)" for study in SUITES["default"].studies
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--agent", "no-such-agent"], "valid agents: ucb+ucb"),
        (["--env", "TwoStage/Nope-v0"], "valid ids: TwoStage/Nominators-v0"),
        (["--seeds", "5-2"], "bad seeds"),
        (["--seeds", "a,b"], "bad seeds"),
        (["--env-kwargs", "{n_items: 3}"], "invalid JSON"),
        (["--agent-kwargs", "[1, 2]"], "expected a JSON object"),
        (["--env-kwargs", '{"n_items": 0}'], "n_items"),
        (["--agent", "ucb"], "n_nominators=1"),  # single-stage agent on a two-stage env
        (["--agent", "greedy+greedy", "--agent-kwargs", '{"alpha": 2}'], "alpha"),
    ],
)
def test_bad_input_exits_nonzero_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    out = tmp_path / "out"
    base = {"--env": ENV, "--agent": "ucb+ucb", "--seeds": "0", "--steps": "10"}
    flags = dict(zip(argv[::2], argv[1::2], strict=True))
    args = ["run", "--out", str(out), "--workers", "1", "--no-progress"]
    for flag, value in {**base, **flags}.items():
        args += [flag, value]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "error" in err and message in err
    assert not out.exists()


def test_custom_run_needs_out(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--env", ENV, "--agent", "random"]) == 2
    assert "--out" in capsys.readouterr().err


def test_parse_seeds() -> None:
    assert parse_seeds("0-9") == list(range(10))
    assert parse_seeds("0,3,5") == [0, 3, 5]
    assert parse_seeds("7") == [7]
    assert parse_seeds("0-2,8") == [0, 1, 2, 8]
    for seeds in ([0, 1, 2, 8], [7], [0, 3, 5], [1, 2, 4, 5, 6, 9]):
        assert parse_seeds(format_seeds(seeds)) == seeds
    for bad in ("", "-1", "3-", "1,1", "x"):
        with pytest.raises(BenchError):
            parse_seeds(bad)


def test_parse_seeds_many() -> None:
    # 40,000 seeds took 15 s when repeats were found with list.count; a set makes it linear.
    # The result is asserted here, never the time (speed is reported by perf, not tested).
    seeds = parse_seeds("0-39999")
    assert seeds == list(range(40_000))
    assert format_seeds(seeds) == "0-39999"
    assert parse_seeds("100-39999,0-99") == [*range(100, 40_000), *range(100)]
    with pytest.raises(BenchError, match="seed 5 appears more than once"):
        parse_seeds("0-39999,7,5")  # the smallest repeated seed is named, as before
    with pytest.raises(BenchError, match=f"more than {MAX_SEEDS} seeds"):
        parse_seeds("0-10000000000")  # a typo, refused before a list of ten billion is built


def test_default_suite_layout() -> None:
    jobs = SUITES["default"].jobs()
    # The shipped studies. Fig. 3: 2 values of rho x (5 two-stage agents, 3 single-stage ones, random
    # and oracle); Fig. 4: 4 values of N; Prop. 2: 2 envs x 2 training modes. Ten seeds each.
    # Kiyohara et al.: 4 ESR methods, five seeds. Topic -> item: Table 5 (3 values of m x 4 rows) and
    # Fig. 3 (2 rows beyond Table 5's); Xu et al.: 9 learners; Zhang et al.: 2 retrievers x 5 values
    # of B; three seeds each.
    assert len(jobs) == (2 * 10 + 4 + 2 * 2) * 10 + 4 * 5 + (3 * 4 + 2 + 9 + 2 * 5) * 3
    assert len({job.key for job in jobs}) == len(jobs)
    assert {job.config.agent for job in jobs} >= {"ucb+ucb", "pg+pg", "random", "oracle", "ucb", "greedy", "pg"}


def test_plain_progress_and_no_plots_without_optional_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # the bench extra is not installed
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    argv = ["run", "--env", ENV, "--agent", "random", "--seeds", "0-1", "--steps", "10", "--workers", "1"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "2/2 jobs done" in captured.err
    assert "matplotlib is not installed" in captured.out
    assert not list(tmp_path.glob("*.png"))


def test_failed_job_does_not_lose_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    original = bench_run.run_job

    def flaky(job: bench_run.Job, states: bench_run.StateSaving | None = None) -> dict:
        if job.seed == 1 and job.config.agent == "random":
            raise FloatingPointError("boom")
        return original(job, states)

    monkeypatch.setattr(bench_run, "run_job", flaky)
    assert _run(tmp_path) == 1
    assert "random on TwoStage/Nominators-v0 seed 1: FloatingPointError: boom" in capsys.readouterr().err
    assert len(_lines(tmp_path)) == 3
