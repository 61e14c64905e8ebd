"""Result records: one JSON line per (env, agent, seed), appended and flushed as each job ends.

A record holds the configuration (see :class:`agents.bench.config.RunConfig`), its ``config_hash``,
the ``seed``, the package ``version``, and the fields of ``agents.evaluate``. Every ``*.jsonl`` file
in a results directory is read, so results are merged by copying record files into one directory.

A results directory has one writer at a time: :func:`results_lock` holds an exclusive lock on its
``.lock`` file while records are appended (see :func:`agents.bench.run.run_into`).
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from itertools import pairwise
from pathlib import Path
from typing import Any

import agents
from agents.bench.config import BenchError

try:  # POSIX only; without it a results directory is not locked (see results_lock)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "LOCK_FILE",
    "RECORDS_FILE",
    "RECORD_FIELDS",
    "SCHEMA",
    "append_record",
    "prepare_dir",
    "read_records",
    "record_key",
    "record_problem",
    "repair_tail",
    "results_lock",
]

RECORDS_FILE = "records.jsonl"
"""The file ``twostage-bench run`` appends to, inside the results directory."""

LOCK_FILE = ".lock"
"""The lock file of a results directory; it holds the pid of the last process that wrote records."""

SCHEMA = 1
"""Version of the record layout; bump it when a field changes meaning."""

RECORD_FIELDS = (
    "schema",
    "version",
    "config_hash",
    "env_id",
    "env_kwargs",
    "agent",
    "agent_kwargs",
    "seed",
    *agents.RECORD_KEYS,
)
"""Keys every record has (``steps`` is both a config field and an ``evaluate`` field)."""

_PROG = "twostage-bench"
_MAX_WARNINGS_PER_FILE = 10  # a binary file given by mistake must not print a warning per line


def record_key(record: dict[str, Any]) -> tuple[str, str, int, str]:
    """The identity of a record: (env id, agent, seed, config hash). A re-run skips known keys."""
    return (record["env_id"], record["agent"], int(record["seed"]), record["config_hash"])


# -- validation -----------------------------------------------------------------------------
def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not a seed


def _is_finite(value: Any) -> bool:
    # ints are finite however large; json.loads turns 1e400 into inf, which no record holds
    # (append_record writes with allow_nan=False).
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def _curve_problem(curve: Any, steps: int) -> str | None:
    """Why ``curve`` is not a regret curve of a ``steps``-round run, or None."""
    if not isinstance(curve, dict):
        return f"'curve' must be an object, got {_show(curve)}"
    for key in ("steps", "regret"):
        if not isinstance(curve.get(key), list):
            return f"'curve' must hold a list {key!r}, got {_show(curve.get(key))}"
    points = curve["steps"]
    if not all(_is_int(t) and 1 <= t <= steps for t in points) or any(a >= b for a, b in pairwise(points)):
        return f"'curve.steps' must be increasing rounds in 1..{steps}, got {_show(points)}"
    for key, values in curve.items():
        if key == "steps":
            continue
        if not isinstance(values, list) or len(values) != len(points):
            return f"'curve.{key}' must be a list of {len(points)} values (one per curve step), got {_show(values)}"
        # A batched learner's policy value is None where the env cannot score its policy.
        if not all(_is_finite(v) or (key == "policy_value" and v is None) for v in values):
            return f"'curve.{key}' must hold finite numbers, got {_show(values)}"
    return None


def record_problem(value: Any) -> str | None:
    """Why ``value`` (a parsed JSON line) is not a valid record, or None when it is one.

    Checks that every key of :data:`RECORD_FIELDS` is present with the right type and range, so a
    record that passes can be summarised by a leaderboard and keyed by :func:`record_key`.
    """
    if not isinstance(value, dict):
        return f"not a record (a JSON {type(value).__name__}, not an object)"
    missing = [key for key in RECORD_FIELDS if key not in value]
    if missing:
        return f"not a complete record (no {', '.join(repr(key) for key in missing)})"
    if value["schema"] != SCHEMA or not _is_int(value["schema"]):
        return f"'schema' is {_show(value['schema'])}; this version reads schema {SCHEMA}"
    for key in ("version", "config_hash", "env_id", "agent"):
        if not isinstance(value[key], str) or not value[key]:
            return f"{key!r} must be a non-empty string, got {_show(value[key])}"
    for key in ("env_kwargs", "agent_kwargs"):
        if not isinstance(value[key], dict):
            return f"{key!r} must be an object, got {_show(value[key])}"
    if not _is_int(value["seed"]) or value["seed"] < 0:
        return f"'seed' must be a non-negative integer, got {_show(value['seed'])}"
    if not _is_int(value["steps"]) or value["steps"] < 1:
        return f"'steps' must be a positive integer, got {_show(value['steps'])}"
    for key in ("cumulative_reward", "cumulative_regret", "nominator_regret", "ranker_regret", "wall_time_s"):
        if not _is_finite(value[key]):
            return f"{key!r} must be a finite number, got {_show(value[key])}"
    if value["wall_time_s"] < 0:
        return f"'wall_time_s' must be non-negative, got {_show(value['wall_time_s'])}"
    # Optional keys of batched learners (agents.common.evaluation.BATCHED_RECORD_KEYS).
    if value.get("policy_value") is not None and not _is_finite(value["policy_value"]):
        return f"'policy_value' must be a finite number or null, got {_show(value['policy_value'])}"
    for key in ("users_served", "overflow_step"):
        if value.get(key) is not None and (not _is_int(value[key]) or value[key] < 0):
            return f"{key!r} must be a non-negative integer or null, got {_show(value[key])}"
    return _curve_problem(value["curve"], value["steps"])


def _parse_line(raw: bytes) -> tuple[Any, str | None]:
    """A raw line's record and None, or (None, why it is not one)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return None, f"not UTF-8 text (byte {err.start})"
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError; RecursionError: absurd nesting
        return None, "not a complete record (not valid JSON)"
    return value, record_problem(value)


# -- reading and writing --------------------------------------------------------------------
def read_records(source: str | os.PathLike[str], warn: bool = True) -> list[dict[str, Any]]:
    """Read the records of a results directory (every ``*.jsonl`` in it) or of one file.

    Lines that are not valid records (the partial last line of an interrupted run, text that is
    not UTF-8 or not JSON, a field of the wrong type or range) are skipped, each with a warning
    naming the file and line on stderr when ``warn``. Duplicate keys keep the first record.

    Args:
        source: a directory or a ``.jsonl`` file; a missing directory reads as empty.
        warn: report skipped lines on stderr.

    Raises:
        agents.bench.config.BenchError: a records file that cannot be read (e.g. permission denied).
    """
    path = Path(source)
    try:
        if path.is_dir():
            files = sorted(p for p in path.glob("*.jsonl") if p.is_file())
        else:
            files = [path] if path.exists() else []
    except OSError as err:
        raise BenchError(f"cannot read the results directory {path}: {err.strerror or err}") from None
    records: list[dict[str, Any]] = []
    seen: set[tuple[str, str, int, str]] = set()
    for file in files:
        skipped = 0
        try:
            with open(file, "rb") as handle:  # bytes: a line that is not UTF-8 is skipped, not fatal
                for number, raw in enumerate(handle, 1):
                    if not raw.strip():
                        continue
                    value, problem = _parse_line(raw)
                    if problem is not None:
                        skipped += 1
                        if warn and skipped <= _MAX_WARNINGS_PER_FILE:
                            print(f"{_PROG}: warning: skipping {file}:{number}: {problem}", file=sys.stderr)
                        continue
                    key = record_key(value)
                    if key not in seen:
                        seen.add(key)
                        records.append(value)
        except OSError as err:
            raise BenchError(f"cannot read the records file {file}: {err.strerror or err}") from None
        if warn and skipped > _MAX_WARNINGS_PER_FILE:
            print(
                f"{_PROG}: warning: skipped {skipped - _MAX_WARNINGS_PER_FILE} more bad lines of {file}",
                file=sys.stderr,
            )
    return records


def _last_line_start(handle: Any, size: int) -> int:
    """The offset just after the last newline of a file of ``size`` bytes (0 if it has none)."""
    block = 1 << 16  # read backwards from the end: a big records file is not read whole
    end = size
    while end > 0:
        start = max(0, end - block)
        handle.seek(start)
        newline = handle.read(end - start).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0


def repair_tail(file: str | os.PathLike[str]) -> bool:
    """Make ``file`` end with a newline before appending to it.

    An interrupted write leaves a last line without its newline, which is never valid JSON (a
    proper prefix of a JSON object is not JSON): it is cut off, and its job is recomputed by the
    next run. A last line that is valid JSON is kept and terminated; if it is not a valid record,
    :func:`read_records` skips it with a warning, like any other bad line.

    Returns:
        True when a partial line was removed.
    """
    path = Path(file)
    if not path.exists() or path.stat().st_size == 0:
        return False
    with open(path, "r+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return False
        cut = _last_line_start(handle, size)
        handle.seek(cut)
        try:
            json.loads(handle.read(size - cut).decode("utf-8"))
        except (ValueError, RecursionError):  # UnicodeDecodeError too: a write cut inside a character
            handle.truncate(cut)
            return True
        handle.seek(0, os.SEEK_END)
        handle.write(b"\n")
        return False


def append_record(file: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one record as a JSON line, flushed and synced so an interruption cannot lose it."""
    line = json.dumps(record, sort_keys=True, allow_nan=False) + "\n"
    with open(file, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


# -- results directories --------------------------------------------------------------------
def _file_in_the_way(path: Path) -> Path | None:
    """The first of ``path`` and its parents that exists and is not a directory, if any."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def _probe_write(directory: Path) -> None:
    """Create and remove a file in ``directory``: the one test of writability that is never wrong.

    ``os.access`` is not enough: root passes it on a read-only directory, and it does not see
    every reason a file cannot be created.
    """
    handle, name = tempfile.mkstemp(prefix=".write-test-", dir=directory)
    os.close(handle)
    os.unlink(name)


def prepare_dir(directory: str | os.PathLike[str], role: str) -> Path:
    """Create ``directory`` (with its parents) if needed, and check that files can be created in it.

    Args:
        directory: the directory to write to.
        role: what it is, for the message, e.g. ``"results directory"``.

    Raises:
        agents.bench.config.BenchError: the path or one of its parents is a file, or the directory
            cannot be created or written (permission denied, read-only file system, ...).
    """
    path = Path(directory)
    try:
        blocker = _file_in_the_way(path)
        if blocker is not None:
            where = "it is a file" if blocker == path else f"{blocker} is a file"
            raise BenchError(f"cannot use {path} as the {role}: {where}, not a directory")
        path.mkdir(parents=True, exist_ok=True)
        _probe_write(path)
    except PermissionError:
        raise BenchError(f"cannot use {path} as the {role}: it is not writable (permission denied)") from None
    except OSError as err:
        raise BenchError(f"cannot use {path} as the {role}: {err.strerror or err}") from None
    return path


def _holder(handle: int) -> str:
    """`` (pid N)`` of the process holding a lock file, or an empty string when that is not known.

    The holder writes its pid just after it takes the lock, and clears it just before it lets go:
    a moment's retry covers a reader that comes in between, while the file is still empty.
    """
    for _ in range(10):
        try:
            os.lseek(handle, 0, os.SEEK_SET)
            text = os.read(handle, 32).decode("ascii").strip()
        except (OSError, UnicodeDecodeError):
            return ""
        if text.isdigit() and _pid_alive(int(text)):
            return f" (pid {text})"
        time.sleep(0.02)
    return ""


def _pid_alive(pid: int) -> bool:
    if pid <= 0:  # 0 and negative numbers address process groups, not a process
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # gone, or a number too large to be a pid
        return False
    except PermissionError:  # alive, and someone else's
        return True
    return True


@contextmanager
def results_lock(directory: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the exclusive lock of a results directory while writing records to it.

    The lock is ``flock`` on :data:`LOCK_FILE`, taken without waiting, and the holder's pid is
    written into the file for the message of a refused run. The kernel releases it when the
    holder dies, however it dies, so a killed run never leaves a stale lock. Where ``fcntl`` or
    the file system's locking is missing, a warning says the directory is not locked.

    Yields:
        The lock file's path.

    Raises:
        agents.bench.config.BenchError: another process holds the lock, or the lock file cannot be
            opened.
    """
    path = Path(directory) / LOCK_FILE
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise BenchError(f"cannot open the lock file {path}: {err.strerror or err}") from None
    locked = False
    try:
        if fcntl is None:
            print(f"{_PROG}: warning: {directory} is not locked (no fcntl on this platform)", file=sys.stderr)
        else:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except BlockingIOError:
                raise BenchError(
                    f"{directory} is in use by another twostage-bench run{_holder(handle)}: one results "
                    f"directory has one writer at a time; wait for that run to end or use another --out"
                ) from None
            except OSError as err:  # e.g. a network file system without locks
                print(f"{_PROG}: warning: {directory} is not locked ({err.strerror or err})", file=sys.stderr)
        os.ftruncate(handle, 0)
        os.lseek(handle, 0, os.SEEK_SET)
        os.write(handle, f"{os.getpid()}\n".encode())
        yield path
    finally:
        if locked:
            with suppress(OSError):  # best effort: the lock must be released whatever happens here
                os.ftruncate(handle, 0)  # no pid of a finished run is left to name (see _holder)
            # Explicitly: forked pool workers share this open file, and closing our descriptor
            # alone would not release the lock while one of them is still alive.
            fcntl.flock(handle, fcntl.LOCK_UN)
        os.close(handle)
