"""Result records: one JSON line per (env, agent, seed), appended and flushed as each job ends.

A record holds the configuration (see :class:`agents.bench.config.RunConfig`), its ``config_hash``,
the ``seed``, the package ``version``, and the fields of ``agents.evaluate``. Every ``*.jsonl`` file
in a results directory is read, so results are merged by copying record files into one directory.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import agents

__all__ = [
    "RECORDS_FILE",
    "RECORD_FIELDS",
    "SCHEMA",
    "append_record",
    "read_records",
    "record_key",
    "repair_tail",
]

RECORDS_FILE = "records.jsonl"
"""The file ``twostage-bench run`` appends to, inside the results directory."""

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


def record_key(record: dict[str, Any]) -> tuple[str, str, int, str]:
    """The identity of a record: (env id, agent, seed, config hash). A re-run skips known keys."""
    return (record["env_id"], record["agent"], int(record["seed"]), record["config_hash"])


def _is_record(value: Any) -> bool:
    return isinstance(value, dict) and all(key in value for key in RECORD_FIELDS)


def read_records(source: str | os.PathLike[str], warn: bool = True) -> list[dict[str, Any]]:
    """Read the records of a results directory (every ``*.jsonl`` in it) or of one file.

    Lines that are not complete records (e.g. the partial last line of an interrupted run) are
    skipped, with a warning on stderr when ``warn``. Duplicate keys keep the first record.

    Args:
        source: a directory or a ``.jsonl`` file; a missing directory reads as empty.
        warn: report skipped lines on stderr.
    """
    path = Path(source)
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path] if path.exists() else []
    records: list[dict[str, Any]] = []
    seen: set[tuple[str, str, int, str]] = set()
    for file in files:
        with open(file, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError:
                    value = None
                if not _is_record(value):
                    if warn:
                        print(f"twostage-bench: skipping {file}:{number}: not a complete record", file=sys.stderr)
                    continue
                key = record_key(value)
                if key not in seen:
                    seen.add(key)
                    records.append(value)
    return records


def repair_tail(file: str | os.PathLike[str]) -> bool:
    """Make ``file`` end with a newline before appending to it.

    An interrupted write leaves a last line without its newline. If that line is a complete record
    it is kept and terminated; otherwise it is cut off (it is recomputed by the next run).

    Returns:
        True when a partial line was removed.
    """
    path = Path(file)
    if not path.exists() or path.stat().st_size == 0:
        return False
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return False
    cut = data.rfind(b"\n") + 1
    try:
        complete = _is_record(json.loads(data[cut:]))
    except (json.JSONDecodeError, UnicodeDecodeError):
        complete = False
    with open(path, "r+b") as handle:
        if complete:
            handle.seek(0, os.SEEK_END)
            handle.write(b"\n")
        else:
            handle.truncate(cut)
    return not complete


def append_record(file: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one record as a JSON line, flushed and synced so an interruption cannot lose it."""
    line = json.dumps(record, sort_keys=True, allow_nan=False) + "\n"
    with open(file, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
