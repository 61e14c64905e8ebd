"""Executors: local processes and a real local Ray cluster give the same records, wall time aside."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agents.bench.cli import main
from agents.bench.config import BenchError, RunConfig
from agents.bench.executors import LocalExecutor, RayExecutor, make_executor
from agents.bench.run import Job, StateSaving, execute, run_job

STUDY = """
name = "tiny"
title = "a tiny study for the executors"
env = "TwoStage/Nominators-v0"
steps = 40
seeds = "0-1"
columns = "misspecification"

[env_kwargs]
n_items = 20
dim = 4

[sweep]
misspecification = [2, 4]

[[agents]]
name = "ucb+ucb"

[[agents]]
name = "random"
"""

ESR_STUDY = """
name = "tiny-esr"
title = "a batched learner that saves its state"
env = "TwoStage/EarlyStageRanker-v0"
steps = 30
seeds = "0"

[[agents]]
name = "ca-pg"
"""


def _records(out: Path) -> dict[str, dict[str, Any]]:
    """The records of ``out`` by (config hash, seed), without their wall time."""
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    return {f"{r['config_hash']}/{r['seed']}": {k: v for k, v in r.items() if k != "wall_time_s"} for r in records}


def test_local_executor_is_execute() -> None:
    jobs = [Job(RunConfig("TwoStage/Nominators-v0", "ucb+ucb", 30, {"n_items": 10, "dim": 3}), s) for s in (0, 1)]
    direct: list[dict[str, Any]] = []
    through: list[dict[str, Any]] = []
    assert execute(jobs, 1, direct.append, progress=False) == []
    assert LocalExecutor(1).run(jobs, through.append, progress=False) == []
    strip = [{k: v for k, v in r.items() if k != "wall_time_s"} for r in direct]
    assert strip == [{k: v for k, v in r.items() if k != "wall_time_s"} for r in through]


def test_make_executor_checks_its_arguments() -> None:
    assert make_executor("local", 3) == LocalExecutor(3)
    with pytest.raises(BenchError, match="--address names a Ray cluster"):
        make_executor("local", 2, "auto")
    with pytest.raises(BenchError, match="unknown executor 'dask'"):
        make_executor("dask", 2)
    pytest.importorskip("ray")
    # The CPUs of a local cluster come from --workers; a cluster joined by address has its own.
    assert make_executor("ray", 2) == RayExecutor(None, 2)
    assert make_executor("ray", 2, "auto") == RayExecutor("auto", None)


def test_importing_the_bench_does_not_import_ray() -> None:
    code = "import sys, agents.bench.cli, agents.bench.executors; print('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_ray_missing_is_an_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes 'import ray' fail
    study = tmp_path / "tiny.toml"
    study.write_text(STUDY)
    argv = ["run", "--study", str(study), "--out", str(tmp_path / "out"), "--executor", "ray", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == "twostage-bench: error: the Ray executor needs Ray: pip install 'twostage-gym[distributed]'"
    assert not (tmp_path / "out").exists()  # refused before anything was written


@pytest.mark.slow
def test_ray_records_equal_the_local_executors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ray = pytest.importorskip("ray")
    study, esr = tmp_path / "tiny.toml", tmp_path / "esr.toml"
    study.write_text(STUDY)
    esr.write_text(ESR_STUDY)
    # The batched learner saves its state on the way (every 10 steps): the tasks write state files
    # under the driver's results directory, and the driver removes each once its record is kept.
    common = ["run", "--study", str(study), "--study", str(esr), "--checkpoint-every", "10"]
    common += ["--workers", "2", "--no-progress", "--no-leaderboard", "--json"]
    assert main([*common, "--out", str(tmp_path / "local")]) == 0
    capsys.readouterr()
    try:
        # A real local Ray cluster of 2 CPUs, started by the executor and shut down after the run.
        assert main([*common, "--out", str(tmp_path / "ray"), "--executor", "ray"]) == 0
        assert not ray.is_initialized()
    finally:
        if ray.is_initialized():
            ray.shutdown()
    summary = json.loads(capsys.readouterr().out)
    assert summary["executor"] == "ray" and summary["ran"] == 9 and summary["failed"] == []
    local, remote = _records(tmp_path / "local"), _records(tmp_path / "ray")
    assert len(local) == 9
    assert remote == local
    assert not list((tmp_path / "ray" / "states").glob("*"))


def _preempted_once(job: Job, states: StateSaving | None) -> dict[str, Any]:
    """Run ``job`` in a Ray task whose first attempt dies just after it saves its state (a node lost
    to preemption): the retry must resume from that state."""
    import os

    import agents.common.evaluation as evaluation

    assert states is not None
    marker = Path(states.directory).parent / "preempted"
    if not marker.exists():
        marker.touch()
        original = evaluation.write_run_state

        def save_then_die(path: Any, state: dict[str, Any]) -> None:
            original(path, state)
            os._exit(1)

        evaluation.write_run_state = save_then_die
    else:  # the retry, in a fresh worker: note that it reads the saved state
        original_read = evaluation.read_run_state

        def read_and_note(path: Any, run: dict[str, Any]) -> dict[str, Any]:
            (marker.parent / "resumed").touch()
            return original_read(path, run)

        evaluation.read_run_state = read_and_note
    return run_job(job, states)


@pytest.mark.slow
def test_a_preempted_ray_task_resumes_from_its_state(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    job = Job(RunConfig("TwoStage/EarlyStageRanker-v0", "ca-pg", 30), 0)
    expected: list[dict[str, Any]] = []
    assert execute([job], 1, expected.append, progress=False) == []
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the task is defined here
    records: list[dict[str, Any]] = []
    states = StateSaving(str(tmp_path / "states"), 10)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        failures = RayExecutor(task=_preempted_once).run([job], records.append, progress=False, states=states)
    finally:
        ray.shutdown()
    assert failures == []
    # The first attempt died after saving its state at step 10; the retry resumed from it.
    assert (tmp_path / "preempted").exists() and (tmp_path / "resumed").exists()
    [record] = records
    strip = {"wall_time_s"}
    assert {k: v for k, v in record.items() if k not in strip} == {
        k: v for k, v in expected[0].items() if k not in strip
    }


def test_an_address_where_no_cluster_answers_is_one_line(tmp_path: Path, capsys) -> None:
    pytest.importorskip("ray")
    study = tmp_path / "tiny.toml"
    study.write_text(STUDY)
    argv = ["run", "--study", str(study), "--out", str(tmp_path / "out"), "--executor", "ray"]
    assert main([*argv, "--address", "127.0.0.1:1", "--no-progress"]) == 2  # port 1: refused at once
    err = capsys.readouterr().err.strip()
    assert err.startswith("twostage-bench: error: no Ray cluster answers at 127.0.0.1:1") and "\n" not in err
