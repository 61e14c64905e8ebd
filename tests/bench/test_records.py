"""Records files with bad lines: ``run`` resumes and ``leaderboard`` builds, each bad line skipped with a warning."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import agents.bench.run as bench_run
from agents.bench.cli import main
from agents.bench.records import RECORDS_FILE, read_records, record_problem, repair_tail

ENV = "TwoStage/Nominators-v0"
ARGV = ["--env", ENV, "--agent", "random", "--seeds", "0-1", "--steps", "5", "--workers", "1", "--no-progress"]


@pytest.fixture(scope="module")
def good_lines(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """The two record lines of a tiny run (seeds 0 and 1)."""
    out = tmp_path_factory.mktemp("good")
    assert main(["run", *ARGV, "--out", str(out), "--no-leaderboard"]) == 0
    return (out / RECORDS_FILE).read_bytes().splitlines(keepends=True)


def _with(line: bytes, key: str, value: object) -> bytes:
    record = json.loads(line)
    record[key] = value
    return json.dumps(record).encode() + b"\n"


# How line 1 (seed 0's record) is damaged, and the reason its warning gives.
BAD_LINES = {
    "seed-abc": (lambda line: _with(line, "seed", "abc"), "'seed' must be a non-negative integer, got 'abc'"),
    "curve-null": (lambda line: _with(line, "curve", None), "'curve' must be an object, got None"),
    "regret-x": (lambda line: _with(line, "cumulative_regret", "x"), "'cumulative_regret' must be a finite number"),
    "steps-0": (lambda line: _with(line, "steps", 0), "'steps' must be a positive integer, got 0"),
    "not-utf-8": (lambda line: b"\xff\xfe" + line[2:], "not UTF-8 text (byte 0)"),
}


@pytest.mark.parametrize("case", BAD_LINES)
def test_a_bad_line_is_skipped_by_run_and_leaderboard(
    tmp_path: Path,
    good_lines: list[bytes],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    damage, reason = BAD_LINES[case]
    file = tmp_path / RECORDS_FILE
    file.write_bytes(damage(good_lines[0]) + good_lines[1])  # seed 0's record is damaged
    warning = f"twostage-bench: warning: skipping {file}:1: {reason}"

    calls: list[int] = []
    original = bench_run.run_job
    monkeypatch.setattr(bench_run, "run_job", lambda job, states=None: calls.append(job.seed) or original(job, states))
    assert main(["run", *ARGV, "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert err.count(warning) == 1 and "Traceback" not in err  # warned once, though read twice
    assert calls == [0]  # resumed: only the job whose record was unreadable ran again
    assert {r["seed"] for r in read_records(tmp_path, warn=False)} == {0, 1}

    assert main(["leaderboard", str(tmp_path), "--no-plots", "--json"]) == 0
    captured = capsys.readouterr()
    assert warning in captured.err
    [table] = json.loads(captured.out)["tables"]
    assert [row["n_seeds"] for row in table["rows"]] == [2]


def test_record_problem_names_the_field(good_lines: list[bytes]) -> None:
    record = json.loads(good_lines[0])
    assert record_problem(record) is None

    def problem(change: dict) -> str:
        bad = copy.deepcopy(record)
        for key, value in change.items():
            if value is KeyError:
                del bad[key]
            else:
                bad[key] = value
        found = record_problem(bad)
        assert found is not None, change
        return found

    assert "'seed'" in problem({"seed": True})  # JSON true is not a seed
    assert "'seed'" in problem({"seed": -1})
    assert "'seed'" in problem({"seed": 1.5})
    assert "'steps'" in problem({"steps": "5"})
    assert "'cumulative_regret'" in problem({"cumulative_regret": float("nan")})
    assert "'cumulative_regret'" in problem({"cumulative_regret": None})
    assert "'wall_time_s'" in problem({"wall_time_s": -1.0})
    assert "'env_kwargs'" in problem({"env_kwargs": []})
    assert "'config_hash'" in problem({"config_hash": ""})
    assert "'schema'" in problem({"schema": 99})
    assert "'policy_value'" in problem({"policy_value": "high"})
    assert "no 'agent'" in problem({"agent": KeyError})
    assert "'curve.regret'" in problem({"curve": {**record["curve"], "regret": record["curve"]["regret"][:-1]}})
    assert "'curve.steps'" in problem({"curve": {**record["curve"], "steps": record["curve"]["steps"][::-1]}})
    assert "'curve.steps'" in problem({"curve": {**record["curve"], "steps": [99] * len(record["curve"]["steps"])}})
    assert "not a record" in (record_problem([1, 2]) or "")
    # Optional keys of batched learners may be null.
    assert record_problem({**record, "policy_value": None, "overflow_step": None, "users_served": 40}) is None


def test_many_bad_lines_give_a_bounded_number_of_warnings(
    tmp_path: Path, good_lines: list[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "binary.jsonl"
    file.write_bytes(b"".join(bytes([0x80 + n]) + b"\n" for n in range(25)) + good_lines[0])
    assert len(read_records(tmp_path)) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 11
    assert err[0] == f"twostage-bench: warning: skipping {file}:1: not UTF-8 text (byte 0)"
    assert err[-1] == f"twostage-bench: warning: skipped 15 more bad lines of {file}"


def test_repair_tail_cuts_only_a_partial_line(tmp_path: Path, good_lines: list[bytes]) -> None:
    file = tmp_path / RECORDS_FILE
    file.write_bytes(good_lines[0] + good_lines[1][:-30])  # an interrupted write
    assert repair_tail(file) is True
    assert file.read_bytes() == good_lines[0]
    assert repair_tail(file) is False and file.read_bytes() == good_lines[0]
    # A whole JSON line missing only its newline is kept, even an invalid record: it is not a
    # partial write, and read_records skips it with a warning like any other bad line.
    bad = _with(good_lines[1], "seed", "abc")
    file.write_bytes(good_lines[0] + bad[:-1])
    assert repair_tail(file) is False
    assert file.read_bytes() == good_lines[0] + bad
    # A write cut inside a multi-byte character is partial too.
    file.write_bytes(good_lines[0] + '{"agent": "\u00e9'.encode()[:-1])
    assert repair_tail(file) is True and file.read_bytes() == good_lines[0]
