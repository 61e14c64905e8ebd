"""Running jobs (a config and a seed each) on local processes, with progress and resumable output."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import agents
import twostage_gym
from agents.bench.config import RunConfig, validate_configs
from agents.bench.records import RECORDS_FILE, SCHEMA, append_record, read_records, record_key, repair_tail

__all__ = ["Job", "execute", "run_into", "run_job"]


@dataclass(frozen=True)
class Job:
    """One unit of work: evaluate ``config`` with ``seed``; it yields one record."""

    config: RunConfig
    seed: int

    @property
    def key(self) -> tuple[str, str, int, str]:
        """The key of the record this job writes (see :func:`agents.bench.records.record_key`)."""
        return (self.config.env_id, self.config.agent, self.seed, self.config.config_hash)


def run_job(job: Job) -> dict[str, Any]:
    """Build the env and agent of ``job``, run ``agents.evaluate`` and return the record."""
    env, agent = job.config.make()
    try:
        result = agents.evaluate(agent, env, job.config.steps, seed=job.seed)
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


class _Progress:
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


def _ignore_sigint() -> None:
    # Ctrl-C goes to the whole process group; only the parent handles it, so workers do not
    # print tracebacks, and the parent stops them itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def execute(
    jobs: Sequence[Job],
    workers: int,
    on_record: Callable[[dict[str, Any]], None],
    progress: bool = True,
    desc: str = "twostage-bench",
) -> list[tuple[Job, str]]:
    """Run ``jobs`` and hand each record to ``on_record`` (in this process) as soon as it is done.

    Jobs run longest first (by ``steps``) to balance the workers. With ``workers == 1`` they run
    in this process; otherwise on a ``ProcessPoolExecutor`` of ``workers`` processes. A job that
    raises does not stop the others.

    Returns:
        The failed jobs with their error messages.
    """
    ordered = sorted(jobs, key=lambda job: -job.config.steps)
    bar = _Progress(len(ordered), desc, progress)
    failures: list[tuple[Job, str]] = []
    try:
        if workers <= 1 or len(ordered) <= 1:
            for job in ordered:
                try:
                    record = run_job(job)
                except Exception as err:  # one bad job must not lose the others' records
                    failures.append((job, f"{type(err).__name__}: {err}"))
                else:
                    on_record(record)
                bar.update()
            return failures
        executor = ProcessPoolExecutor(max_workers=min(workers, len(ordered)), initializer=_ignore_sigint)
        try:
            pending: dict[Future, Job] = {executor.submit(run_job, job): job for job in ordered}
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
) -> dict[str, Any]:
    """Run the ``jobs`` whose records ``out_dir`` does not hold yet, appending each to ``records.jsonl``.

    The configs are validated first (each (env, agent) built once). Finished records are written
    one by one, flushed, so an interrupted run resumes where it stopped.

    Args:
        out_dir: results directory (created if needed).
        jobs: the (config, seed) pairs to have records for.
        workers: processes; default ``os.cpu_count()``.
        progress: show a progress bar on stderr.

    Returns:
        A JSON-serialisable summary: ``out``, ``records_file``, ``jobs``, ``skipped``, ``ran``,
        ``failed`` (list of {job, error}), ``dropped_partial_line``, ``wall_time_s``.

    Raises:
        agents.bench.config.BenchError: an invalid configuration (nothing is run).
    """
    validate_configs(list({job.config.config_hash: job.config for job in jobs}.values()))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    file = out / RECORDS_FILE
    dropped = repair_tail(file)
    done = {record_key(r) for r in read_records(out)}
    todo = [job for job in dict.fromkeys(jobs) if job.key not in done]
    start = time.perf_counter()
    failures = execute(todo, workers or os.cpu_count() or 1, lambda record: append_record(file, record), progress)
    return {
        "out": str(out),
        "records_file": str(file),
        "jobs": len(set(jobs)),
        "skipped": len(set(jobs)) - len(todo),
        "ran": len(todo) - len(failures),
        "failed": [
            {"env_id": j.config.env_id, "agent": j.config.label(), "seed": j.seed, "error": e} for j, e in failures
        ],
        "dropped_partial_line": dropped,
        "wall_time_s": time.perf_counter() - start,
    }
