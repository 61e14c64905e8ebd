"""Running jobs (a config and a seed each) on local processes, with progress and resumable output.

Only the driver (the process that calls :func:`execute` or :func:`run_into`) writes records; the
pool's workers only compute them, and they die with the driver however it ends, even by SIGKILL
(see :func:`init_worker`). :func:`run_into` can also hand the jobs to another executor (a Ray
cluster, :mod:`agents.bench.executors`), under the same rules.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import agents
import twostage_gym
from agents.bench.config import BenchError, RunConfig, validate_configs
from agents.bench.records import (
    RECORDS_FILE,
    SCHEMA,
    append_record,
    prepare_dir,
    read_records,
    record_key,
    repair_tail,
    results_lock,
)
from agents.common.batched import BatchedAgent

if TYPE_CHECKING:  # executors imports this module
    from agents.bench.executors import Executor

__all__ = ["STATES_DIR", "Job", "Progress", "StateSaving", "distinct", "execute", "init_worker", "run_into", "run_job"]


@dataclass(frozen=True)
class Job:
    """One unit of work: evaluate ``config`` with ``seed``; it yields one record."""

    config: RunConfig
    seed: int

    @property
    def key(self) -> tuple[str, str, int, str]:
        """The key of the record this job writes (see :func:`agents.bench.records.record_key`)."""
        return (self.config.env_id, self.config.agent, self.seed, self.config.config_hash)


@dataclass(frozen=True)
class StateSaving:
    """Where and how often the jobs of batched learners save their state (``run --checkpoint-every``).

    A job's state file is named after its config hash and seed, so a rerun of the same command
    finds it and resumes the job there; the driver deletes it once the job's record is written.
    Per-round learners do not save their state: their jobs are short, and a rerun repeats them.
    """

    directory: str
    every: int

    def file(self, config_hash: str, seed: int) -> Path:
        """The state file of the job with ``config_hash`` and ``seed``."""
        return Path(self.directory) / f"{config_hash[:16]}-seed{seed}.pt"


STATES_DIR = "states"
"""The folder of the results directory that holds the state files of jobs in progress."""


def run_job(job: Job, states: StateSaving | None = None) -> dict[str, Any]:
    """Build the env and agent of ``job``, run ``agents.evaluate`` and return the record.

    With ``states``, a batched learner's job saves its state every ``states.every`` steps and
    resumes from a state file that an earlier, killed run left.
    """
    env, agent = job.config.make()
    saving: dict[str, Any] = {}
    if states is not None and isinstance(agent, BatchedAgent):
        saving = {"state_file": states.file(job.config.config_hash, job.seed), "save_every": states.every}
    try:
        result = agents.evaluate(agent, env, job.config.steps, seed=job.seed, **saving)
    finally:
        env.close()
    return {
        "schema": SCHEMA,
        "version": twostage_gym.__version__,
        "config_hash": job.config.config_hash,
        **result,
        **job.config.as_dict(),
        "seed": job.seed,
    }


def distinct(jobs: Iterable[Job]) -> list[Job]:
    """``jobs`` without repeats of a record key (the first of each is kept, in order).

    Keys, not job equality: two configs can compare equal (``{"n": 1}`` and ``{"n": 1.0}``) yet
    hash differently, and the key is what a record is found by.
    """
    unique: dict[tuple[str, str, int, str], Job] = {}
    for job in jobs:
        unique.setdefault(job.key, job)
    return list(unique.values())


class Progress:
    """A tqdm bar on a terminal; plain lines in logs (CI) or when tqdm (the ``bench`` extra) is missing."""

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.total, self.desc, self.enabled, self.done = total, desc, enabled, 0
        self.bar = None
        self.every = max(1, total // 20)
        if enabled and sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self.bar = tqdm(total=total, desc=desc, unit="job", file=sys.stderr)

    def update(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update()
        elif self.enabled and (self.done % self.every == 0 or self.done == self.total):
            print(f"{self.desc}: {self.done}/{self.total} jobs done", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_WATCH_INTERVAL_S = 0.5  # how often the fallback without prctl looks for its parent


def _arm_parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        # prctl is variadic and the kernel reads unsigned longs: pass them as such, not as C ints.
        args = (ctypes.c_ulong(signal.SIGKILL), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
        return libc.prctl(_PR_SET_PDEATHSIG, *args) == 0
    except (OSError, AttributeError):  # no libc to load, or no prctl in it
        return False


def _watch_parent(parent_pid: int, interval: float = _WATCH_INTERVAL_S) -> None:
    """Exit this process as soon as its parent is no longer ``parent_pid`` (it died; we were re-parented)."""
    while True:
        time.sleep(interval)
        if os.getppid() != parent_pid:
            os._exit(1)


def _wait_for_eof(sentinel: int) -> None:
    """Exit this process when ``sentinel`` (a pipe whose write end only the driver holds) reaches EOF."""
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def init_worker(driver_pid: int, start_method: str) -> None:
    """Initializer of each pool worker: ignore Ctrl-C, and die with the driver.

    Ctrl-C goes to the whole process group; only the driver handles it, so workers do not print
    tracebacks, and the driver stops them itself. A driver killed outright (SIGKILL, the OOM
    killer) runs no clean-up, so each worker watches the driver instead; otherwise orphaned
    workers would compute for minutes, for nobody, holding the caller's pipes open:

    * ``fork`` and ``spawn``: the driver is the worker's parent. On Linux the kernel sends the
      worker SIGKILL when its parent dies (``PR_SET_PDEATHSIG``; it follows the thread that
      forked the worker, the one running :func:`execute`, which outlives the pool). Elsewhere a
      daemon thread polls ``os.getppid()``.
    * ``forkserver``: the parent is the fork server, which lives on while any of its children
      does, so the parent's death is no signal. A daemon thread waits instead on the pipe that
      multiprocessing gives each child, whose write end only the driver holds: it reaches EOF
      when the driver dies, even as an unreaped zombie.

    Args:
        driver_pid: the pid of the process that runs :func:`execute`.
        start_method: the pool's multiprocessing start method.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if start_method == "forkserver":
        parent = multiprocessing.parent_process()
        if parent is not None and parent.pid == driver_pid and parent.sentinel is not None:
            # Already at EOF if the driver died before this line: no race to check for.
            threading.Thread(target=_wait_for_eof, args=(parent.sentinel,), daemon=True, name="watch-driver").start()
        return
    if not _arm_parent_death_signal():
        threading.Thread(target=_watch_parent, args=(driver_pid,), daemon=True, name="watch-driver").start()
    # The driver may have died before the signal was armed, which then never comes: check after.
    if os.getppid() != driver_pid:
        os._exit(1)


def execute(
    jobs: Sequence[Job],
    workers: int,
    on_record: Callable[[dict[str, Any]], None],
    progress: bool = True,
    desc: str = "twostage-bench",
    states: StateSaving | None = None,
) -> list[tuple[Job, str]]:
    """Run ``jobs`` and hand each record to ``on_record`` (in this process) as soon as it is done.

    With ``states``, the jobs of batched learners save and resume their state (see :class:`StateSaving`).

    Jobs with the same record key run once. They run longest first (by ``steps``) to balance the
    workers. With ``workers == 1`` they run in this process; otherwise on a ``ProcessPoolExecutor``
    of ``workers`` processes, which die with this one (see :func:`init_worker`). A job that
    raises does not stop the others.

    Returns:
        The failed jobs with their error messages.
    """
    ordered = sorted(distinct(jobs), key=lambda job: -job.config.steps)
    bar = Progress(len(ordered), desc, progress)
    failures: list[tuple[Job, str]] = []
    try:
        if workers <= 1 or len(ordered) <= 1:
            for job in ordered:
                try:
                    record = run_job(job, states)
                except Exception as err:  # one bad job must not lose the others' records
                    failures.append((job, f"{type(err).__name__}: {err}"))
                else:
                    on_record(record)
                bar.update()
            return failures
        context = multiprocessing.get_context()
        executor = ProcessPoolExecutor(
            max_workers=min(workers, len(ordered)),
            mp_context=context,
            initializer=init_worker,
            initargs=(os.getpid(), context.get_start_method()),
        )
        try:
            pending: dict[Future, Job] = {executor.submit(run_job, job, states): job for job in ordered}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    job = pending.pop(future)
                    error = future.exception()
                    if error is None:
                        on_record(future.result())
                    else:
                        failures.append((job, f"{type(error).__name__}: {error}"))
                    bar.update()
        except BaseException:
            # Interrupted: stop now instead of waiting for the running jobs; their records are
            # not written, so a re-run computes them. The workers are this executor's own children.
            for process in list(getattr(executor, "_processes", {}).values()):
                process.terminate()
            executor.shutdown(wait=False, cancel_futures=True)
            raise
        executor.shutdown()
        return failures
    finally:
        bar.close()


def run_into(
    out_dir: str | os.PathLike[str],
    jobs: Sequence[Job],
    workers: int | None = None,
    progress: bool = True,
    save_every: int | None = None,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Run the ``jobs`` whose records ``out_dir`` does not hold yet, appending each to ``records.jsonl``.

    The configs are validated first (each (env, agent) built once), then the directory is created
    and checked writable, and locked (:func:`agents.bench.records.results_lock`) until the run ends,
    all before any job starts. Jobs with equal record keys run once. Finished records are written
    one by one, flushed, so an interrupted run resumes where it stopped.

    Args:
        out_dir: results directory (created if needed).
        jobs: the (config, seed) pairs to have records for.
        workers: processes; default ``os.cpu_count()``.
        progress: show a progress bar on stderr.
        save_every: the jobs of batched learners save their state in ``out_dir/states`` every
            ``save_every`` steps, and a rerun resumes each from its last state instead of step 0
            (:class:`StateSaving`); None saves nothing.
        executor: where the jobs compute (:mod:`agents.bench.executors`, e.g. a Ray cluster);
            None: ``workers`` local processes. Either way only this process writes records.

    Returns:
        A JSON-serialisable summary: ``out``, ``records_file``, ``jobs`` (distinct), ``skipped``,
        ``ran``, ``failed`` (list of {job, error}), ``dropped_partial_line``, ``wall_time_s``.

    Raises:
        agents.bench.config.BenchError: an invalid configuration, a directory that cannot be written,
            or one that another run is writing (nothing is run); or a records file that cannot be
            appended to during the run (the records written so far are kept).
    """
    validate_configs(list({job.config.config_hash: job.config for job in jobs}.values()))
    out = prepare_dir(out_dir, "results directory")
    file = out / RECORDS_FILE
    with results_lock(out):
        try:
            if file.exists():
                open(file, "ab").close()  # appendable: found now, not after the first job
            dropped = repair_tail(file)
        except OSError as err:
            raise BenchError(f"cannot write the records file {file}: {err.strerror or err}") from None
        done = {record_key(r) for r in read_records(out)}
        unique = distinct(jobs)
        todo = [job for job in unique if job.key not in done]

        # Absolute: a Ray worker does not share the driver's working directory.
        states = None if save_every is None else StateSaving(str((out / STATES_DIR).resolve()), int(save_every))

        def write(record: dict[str, Any]) -> None:
            try:
                append_record(file, record)
            except OSError as err:
                raise BenchError(
                    f"cannot append to the records file {file}: {err.strerror or err}; "
                    f"the records written so far are kept, and the same command resumes"
                ) from None
            if states is not None:  # the record is kept: its job's state is no longer needed
                states.file(record["config_hash"], record["seed"]).unlink(missing_ok=True)

        start = time.perf_counter()
        if executor is None:
            failures = execute(todo, workers or os.cpu_count() or 1, write, progress, states=states)
        else:
            failures = executor.run(todo, write, progress, states=states)
    return {
        "out": str(out),
        "records_file": str(file),
        "jobs": len(unique),
        "skipped": len(unique) - len(todo),
        "ran": len(todo) - len(failures),
        "failed": [
            {"env_id": j.config.env_id, "agent": j.config.label(), "seed": j.seed, "error": e} for j, e in failures
        ],
        "dropped_partial_line": dropped,
        "wall_time_s": time.perf_counter() - start,
    }
