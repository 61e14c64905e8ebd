"""``twostage-bench run`` as real processes: workers die with a killed driver, one writer per directory.

These start the command as subprocesses (``python -m agents.bench.cli``), so they see what a user
sees: exit codes, stderr, and the processes left behind. Process discovery reads ``/proc``.
"""

from __future__ import annotations

import collections
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import agents.bench.run as bench_run
from agents.bench.cli import main
from agents.bench.records import LOCK_FILE, RECORDS_FILE, record_key

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

ENV = "TwoStage/Nominators-v0"
REPO = Path(__file__).resolve().parents[2]


def _argv(out: Path, seeds: str, steps: int, workers: int) -> list[str]:
    return [
        "run", "--env", ENV, "--agent", "ucb+ucb", "--seeds", seeds, "--steps", str(steps),
        "--workers", str(workers), "--out", str(out), "--no-progress", "--no-leaderboard",
    ]  # fmt: skip


def _start(argv: list[str], log: Path) -> subprocess.Popen:
    """Start ``twostage-bench`` with ``argv``; its stdout and stderr go to files, never to pipes
    (a pipe held open by an orphan would hang the test instead of failing it)."""
    with open(log.with_suffix(".out"), "wb") as out, open(log.with_suffix(".err"), "wb") as err:
        command = [sys.executable, "-m", "agents.bench.cli", *argv]
        return subprocess.Popen(command, cwd=REPO, stdout=out, stderr=err, stdin=subprocess.DEVNULL)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a live process, None once it is gone or a zombie (dead, not yet reaped)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, ppid = text[text.rindex(")") + 2 :].split()[:2]
    return None if state in ("Z", "X") else (state, int(ppid))


def _descendants(pid: int) -> list[int]:
    """The live processes below ``pid``: its children, theirs, and so on."""
    parents = {int(e): stat[1] for e in os.listdir("/proc") if e.isdigit() and (stat := _stat(int(e))) is not None}
    found, frontier = [], {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found += frontier
    return found


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def _record_lines(out: Path) -> list[dict]:
    """Every record line of the records file (not deduplicated, unlike read_records)."""
    return [json.loads(line) for line in (out / RECORDS_FILE).read_text().splitlines()]


@pytest.fixture
def reaped() -> Iterator[list[subprocess.Popen]]:
    """Subprocesses to kill and reap if a test fails half-way."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigkill_of_the_driver_kills_its_workers_and_the_run_resumes(tmp_path: Path, reaped: list) -> None:
    out = tmp_path / "out"
    argv = _argv(out, "0-11", 3000, workers=2)  # about 0.3 s a job: a few seconds for 12 jobs on 2 workers
    driver = _start(argv, tmp_path / "driver")
    reaped.append(driver)
    records = out / RECORDS_FILE
    _wait_for(lambda: records.exists() and records.stat().st_size > 0, 60, "the first record")
    # The two workers (and, where the start method has them, a fork server and a resource tracker).
    workers = _descendants(driver.pid)
    assert driver.poll() is None, "the run ended before it could be killed; make its jobs longer"
    assert len(workers) >= 2, workers
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    try:
        _wait_for(lambda: not any(_stat(pid) for pid in workers), 5, f"workers {workers} to die with the driver")
    finally:
        for pid in workers:  # do not leave orphans behind if they outlived the driver
            if _stat(pid) is not None:
                os.kill(pid, signal.SIGKILL)

    resumed = _start(argv, tmp_path / "resumed")
    reaped.append(resumed)
    assert resumed.wait(timeout=120) == 0, (tmp_path / "resumed.err").read_text()
    keys = collections.Counter(record_key(r) for r in _record_lines(out))  # every line is whole again
    assert sorted(seed for _, _, seed, _ in keys) == list(range(12))  # none lost
    assert set(keys.values()) == {1}  # none duplicated


def test_forkserver_workers_die_with_the_driver(tmp_path: Path, reaped: list) -> None:
    """With ``forkserver`` (Python 3.14's default on Linux) the workers' parent is the fork server,
    which outlives a killed driver while any worker lives; the workers must watch the driver itself."""
    out = tmp_path / "out"
    driver_code = (
        "import multiprocessing, sys; multiprocessing.set_start_method('forkserver'); "
        "from agents.bench.config import RunConfig; from agents.bench.run import Job, run_into; "
        f"jobs = [Job(RunConfig({ENV!r}, 'ucb+ucb', 3000), seed) for seed in range(12)]; "
        f"run_into({str(out)!r}, jobs, workers=2, progress=False)"
    )
    driver = subprocess.Popen([sys.executable, "-c", driver_code], cwd=REPO, stdin=subprocess.DEVNULL)
    reaped.append(driver)
    records = out / RECORDS_FILE
    _wait_for(lambda: records.exists() and records.stat().st_size > 0, 60, "the first record")
    below = _descendants(driver.pid)  # the fork server, its two workers, the resource tracker
    assert driver.poll() is None and len(below) >= 3, below
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    try:
        _wait_for(lambda: not any(_stat(pid) for pid in below), 5, f"processes {below} to end with the driver")
    finally:
        for pid in below:
            if _stat(pid) is not None:
                os.kill(pid, signal.SIGKILL)


def test_two_runs_into_one_directory_never_duplicate_a_job(tmp_path: Path, reaped: list) -> None:
    out = tmp_path / "out"
    argv = _argv(out, "0-7", 3000, workers=1)
    first, second = (_start(argv, tmp_path / name) for name in ("first", "second"))
    reaped += [first, second]
    codes = sorted(proc.wait(timeout=120) for proc in (first, second))
    errors = [(tmp_path / f"{name}.err").read_text() for name in ("first", "second")]
    # Normally the second to take the lock is refused at once; if one run ended before the other
    # started, the other found every record present and ran nothing. Never both at once.
    assert codes in ([0, 2], [0, 0]), errors
    if codes == [0, 2]:
        [refusal] = [e for e in errors if "error" in e]
        assert "in use by another twostage-bench run (pid " in refusal and refusal.count("\n") == 1
        assert "Traceback" not in refusal
    keys = collections.Counter(record_key(r) for r in _record_lines(out))
    assert len(keys) == 8 and set(keys.values()) == {1}


def test_a_locked_directory_is_refused_before_any_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bench_run.Job] = []
    monkeypatch.setattr(bench_run, "run_job", lambda job, states=None: calls.append(job) or {})
    out = tmp_path / "out"
    out.mkdir()
    # Another writer: flock conflicts between open files even within one process.
    with open(out / LOCK_FILE, "w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        holder.write(f"{os.getpid()}\n")
        holder.flush()
        assert main(_argv(out, "0-1", 5, workers=1)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("twostage-bench: error: ")
        assert f"{out} is in use by another twostage-bench run (pid {os.getpid()})" in err
        # reproduce --out writes its records the same way, so it is refused the same way.
        argv = ["reproduce", "hron2021-deadlock", "--steps", "5", "--seeds", "0", "--workers", "1", "--no-progress"]
        assert main([*argv, "--out", str(out)]) == 2
        assert "is in use by another twostage-bench run" in capsys.readouterr().err
    assert calls == [] and not (out / RECORDS_FILE).exists()
    # The lock went with its holder: the same command now runs.
    monkeypatch.undo()
    assert main(_argv(out, "0-1", 5, workers=1)) == 0
    assert len(_record_lines(out)) == 2


def test_the_lock_is_held_during_the_run_and_released_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    original = bench_run.run_job
    seen: list[bool] = []

    def probing(job: bench_run.Job, states: bench_run.StateSaving | None = None) -> dict:
        with open(out / LOCK_FILE) as other:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                seen.append(True)
            else:
                seen.append(False)
        assert (out / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        return original(job, states)

    monkeypatch.setattr(bench_run, "run_job", probing)
    assert main(_argv(out, "0", 5, workers=1)) == 0
    assert seen == [True]
    assert (out / LOCK_FILE).read_text() == ""  # a finished run's pid is not left to be named
    with open(out / LOCK_FILE) as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released: no BlockingIOError


def test_jobs_with_one_record_key_run_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agents.bench.config import RunConfig

    calls: list[int] = []
    original = bench_run.run_job
    lock = threading.Lock()

    def counting(job: bench_run.Job, states: bench_run.StateSaving | None = None) -> dict:
        with lock:
            calls.append(job.seed)
        return original(job, states)

    monkeypatch.setattr(bench_run, "run_job", counting)
    config = RunConfig(ENV, "random", 5)
    same = RunConfig(ENV, "random", 5)  # equal, and a distinct object
    jobs = [bench_run.Job(config, 0), bench_run.Job(same, 0), bench_run.Job(config, 1), bench_run.Job(config, 0)]
    summary = bench_run.run_into(tmp_path, jobs, workers=1, progress=False)
    assert sorted(calls) == [0, 1]
    assert (summary["jobs"], summary["ran"], summary["skipped"]) == (2, 2, 0)
    assert len(_record_lines(tmp_path)) == 2
    summary = bench_run.run_into(tmp_path, jobs, workers=1, progress=False)  # resume: all finished
    assert (summary["jobs"], summary["ran"], summary["skipped"]) == (2, 0, 2)
    assert sorted(calls) == [0, 1]


def test_the_fallback_watcher_exits_an_orphaned_worker(reaped: list) -> None:
    """Where prctl is missing, a daemon thread polling getppid() ends the orphan (checked here on Linux)."""
    grandchild = (
        "import os, time; from agents.bench.run import _watch_parent; "
        "_watch_parent(int(os.environ['WATCHED']), interval=0.05)"
    )
    middle = (
        "import os, subprocess, sys, time; "
        "env = {**os.environ, 'WATCHED': str(os.getpid())}; "
        f"p = subprocess.Popen([sys.executable, '-c', {grandchild!r}], env=env); "
        "print(p.pid, flush=True); time.sleep(120)"
    )
    proc = subprocess.Popen([sys.executable, "-c", middle], cwd=REPO, stdout=subprocess.PIPE, text=True)
    reaped.append(proc)
    watcher = int(proc.stdout.readline())
    time.sleep(0.3)
    assert _stat(watcher) is not None  # it waits while its parent lives
    proc.kill()
    proc.wait()
    try:
        _wait_for(lambda: _stat(watcher) is None, 5, "the watcher to exit")
    finally:
        if _stat(watcher) is not None:
            os.kill(watcher, signal.SIGKILL)


def test_checkpoints_let_a_killed_batched_run_resume_to_the_same_record(tmp_path: Path, reaped: list) -> None:
    """``run --checkpoint-every``: SIGKILL after a save, rerun: the job resumes from its state file
    and its record equals an uninterrupted run's (wall time aside); the state file is then removed."""
    pytest.importorskip("torch")
    env_kwargs = json.dumps({"n_users": 30, "n_items": 60, "n_candidates": 5})
    argv = [
        "run", "--env", "TwoStage/EarlyStageRanker-v0", "--agent", "ca-pg", "--env-kwargs", env_kwargs,
        "--agent-kwargs", '{"batch_size": 32}', "--seeds", "0", "--steps", "1500", "--workers", "1",
        "--no-progress", "--no-leaderboard",
    ]  # fmt: skip
    out = tmp_path / "out"
    driver = _start([*argv, "--out", str(out), "--checkpoint-every", "100"], tmp_path / "driver")
    reaped.append(driver)
    states = out / bench_run.STATES_DIR
    _wait_for(lambda: states.exists() and any(states.glob("*.pt")), 120, "the first saved state")
    assert driver.poll() is None, "the run ended before it could be killed; make it longer"
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert not (out / RECORDS_FILE).exists() or not _record_lines(out)

    resumed = _start([*argv, "--out", str(out), "--checkpoint-every", "100"], tmp_path / "resumed")
    reaped.append(resumed)
    assert resumed.wait(timeout=300) == 0, (tmp_path / "resumed.err").read_text()
    assert not any(states.glob("*.pt"))  # the record is kept: the state is gone
    assert main([*argv, "--out", str(tmp_path / "reference")]) == 0  # uninterrupted, no states
    (record,), (reference,) = _record_lines(out), _record_lines(tmp_path / "reference")
    record.pop("wall_time_s"), reference.pop("wall_time_s")
    assert record == reference
