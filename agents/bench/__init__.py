"""The ``twostage-bench`` command and its parts: runs, records, leaderboards, suites, claims and perf.

* :mod:`agents.bench.config`: :class:`RunConfig` (env, agent, horizon, kwargs) and its hash.
* :mod:`agents.bench.records`: one JSON line per (env, agent, seed), resumable.
* :mod:`agents.bench.run`: jobs on local processes with a progress bar.
* :mod:`agents.bench.leaderboard`: Markdown tables with 95% confidence intervals, regret plots.
* :mod:`agents.bench.suites`, :mod:`agents.bench.claims`, :mod:`agents.bench.perf`: the registries
  of suites, paper claims and throughput cases.
* :mod:`agents.bench.cli`: the command line, ``main(argv) -> exit code``.
"""

from agents.bench.config import BenchError, RunConfig
from agents.bench.records import read_records
from agents.bench.run import Job, run_into

__all__ = ["BenchError", "Job", "RunConfig", "read_records", "run_into"]
