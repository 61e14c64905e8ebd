"""Where a run's jobs compute: local processes (the default) or a Ray cluster (``run --executor ray``).

An executor only computes: it hands each job's record back to the driver, which alone writes the
records file (see :func:`agents.bench.run.run_into`), so resuming, the directory lock and the
de-duplication of jobs work the same whichever executor ran them, and the records are the same
(wall time aside).

Ray is an optional dependency (``pip install 'twostage-gym[distributed]'``), imported only when a
:class:`RayExecutor` runs.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agents.bench.config import BenchError
from agents.bench.run import Job, Progress, StateSaving, distinct, execute, run_job

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "RayExecutor", "make_executor"]

EXECUTORS = ("local", "ray")
"""The ``run --executor`` choices."""

RETRIES = 3
"""How many times Ray reruns a job whose worker died (a job that raises is not rerun: it failed)."""

_PROBE_TIMEOUT_S = 5.0
_HOST_PORT = re.compile(r"^(?:ray://)?(?P<host>[^:/\s]+):(?P<port>\d+)$")

_RAY_HINT = "the Ray executor needs Ray: pip install 'twostage-gym[distributed]'"


class Executor(Protocol):
    """Computes jobs and hands each record to the driver's ``on_record`` as soon as it is done."""

    def run(
        self,
        jobs: Sequence[Job],
        on_record: Callable[[dict[str, Any]], None],
        progress: bool = True,
        desc: str = "twostage-bench",
        states: StateSaving | None = None,
    ) -> list[tuple[Job, str]]:
        """Run ``jobs`` (each record key once); return the failed jobs with their error messages."""
        ...


@dataclass(frozen=True)
class LocalExecutor:
    """``workers`` local processes (in this process for one); see :func:`agents.bench.run.execute`."""

    workers: int

    def run(
        self,
        jobs: Sequence[Job],
        on_record: Callable[[dict[str, Any]], None],
        progress: bool = True,
        desc: str = "twostage-bench",
        states: StateSaving | None = None,
    ) -> list[tuple[Job, str]]:
        """Run ``jobs`` on local processes; see :class:`Executor`."""
        return execute(jobs, self.workers, on_record, progress, desc, states)


def _probe(address: str) -> None:
    """Check that something answers at a ``HOST:PORT`` address before Ray tries it: ``ray.init``
    retries an unreachable address for minutes, and Ctrl-C does not stop it.

    Raises:
        agents.bench.config.BenchError: nothing answers there within a few seconds.
    """
    match = _HOST_PORT.match(address)
    if match is None:  # 'auto', or a form Ray reads itself
        return
    try:
        socket.create_connection((match["host"], int(match["port"])), timeout=_PROBE_TIMEOUT_S).close()
    except OSError as err:
        raise BenchError(
            f"no Ray cluster answers at {address} ({err.strerror or err}); start one with 'ray start --head' "
            f"or give its head node's address"
        ) from None


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BenchError(_RAY_HINT) from None
    return ray


@dataclass(frozen=True)
class RayExecutor:
    """A Ray cluster: one task (one CPU) per job, records returned to the driver.

    Attributes:
        address: ``"auto"`` (the cluster this machine belongs to), ``"HOST:PORT"``, or None to
            start a local cluster (``ray.init()``; it stops when the run ends). If Ray is already
            initialised in this process, that instance is used and left running.
        num_cpus: CPUs of a local cluster started here (None: all of them); not used with an address.
        task: what each Ray task runs, ``(job, states) -> record``; :func:`agents.bench.run.run_job`
            unless a caller computes another kind of job.

    A task whose worker dies (a preempted node) is retried by Ray (up to :data:`RETRIES` times);
    with ``run --checkpoint-every`` and a results directory on a file system every node shares,
    the retry resumes a batched learner's job from its last saved state.
    """

    address: str | None = None
    num_cpus: int | None = None
    task: Callable[[Job, StateSaving | None], dict[str, Any]] = run_job

    def _connect(self, ray: Any) -> bool:
        """Initialise Ray unless it already is; True when this call started it."""
        if ray.is_initialized():
            return False
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if self.address is None:
            options["num_cpus"] = self.num_cpus
        else:
            _probe(self.address)
            options["address"] = self.address
        try:
            ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = "a local Ray cluster" if self.address is None else f"the Ray cluster at {self.address}"
            raise BenchError(f"cannot start or reach {where}: {err}") from None
        return True

    def run(
        self,
        jobs: Sequence[Job],
        on_record: Callable[[dict[str, Any]], None],
        progress: bool = True,
        desc: str = "twostage-bench",
        states: StateSaving | None = None,
    ) -> list[tuple[Job, str]]:
        """Run ``jobs`` as Ray tasks, longest first; see :class:`Executor`.

        Raises:
            agents.bench.config.BenchError: Ray is not installed, or the cluster cannot be reached.
        """
        ordered = sorted(distinct(jobs), key=lambda job: -job.config.steps)
        if not ordered:
            return []
        ray = _import_ray()
        started = self._connect(ray)
        bar = Progress(len(ordered), desc, progress)
        failures: list[tuple[Job, str]] = []
        try:
            task = ray.remote(num_cpus=1, max_retries=RETRIES)(self.task)
            pending = {task.remote(job, states): job for job in ordered}
            try:
                while pending:
                    ready, _ = ray.wait(list(pending), num_returns=1)
                    for ref in ready:
                        job = pending.pop(ref)
                        try:
                            record = ray.get(ref)
                        except ray.exceptions.RayTaskError as err:  # the job raised: report its own error
                            cause = err.cause if getattr(err, "cause", None) is not None else err
                            failures.append((job, f"{type(cause).__name__}: {cause}"))
                        except ray.exceptions.RayError as err:  # e.g. its worker died every retry
                            failures.append((job, f"{type(err).__name__}: {err}"))
                        else:
                            on_record(record)
                        bar.update()
            except BaseException:
                # Interrupted: stop the tasks still queued or running; their records are not
                # written, so a re-run computes them.
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise
        finally:
            bar.close()
            if started:
                ray.shutdown()
        return failures


def make_executor(name: str, workers: int, address: str | None = None) -> Executor:
    """The executor ``run --executor NAME`` asks for.

    Args:
        name: one of :data:`EXECUTORS`.
        workers: local processes (``local``), or the CPUs of a local Ray cluster (``ray`` without
            an address).
        address: the Ray cluster to join (``ray`` only).

    Raises:
        agents.bench.config.BenchError: an unknown executor, an address for the local one, or
            ``ray`` without Ray installed.
    """
    if name not in EXECUTORS:
        raise BenchError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
    if name == "local":
        if address is not None:
            raise BenchError("--address names a Ray cluster: use it with --executor ray")
        return LocalExecutor(workers)
    _import_ray()  # an install hint now, before the results directory is touched
    return RayExecutor(address, None if address is not None else workers)
