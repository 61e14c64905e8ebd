"""User errors of ``twostage-bench``: one line on stderr, exit code 2, no traceback, and no work done."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import agents.bench.records as bench_records
import agents.bench.run as bench_run
from agents.bench.cli import main
from agents.bench.records import RECORDS_FILE

ENV = "TwoStage/Nominators-v0"
REPO = Path(__file__).resolve().parents[2]


def _run_argv(out: Path | str, *extra: str) -> list[str]:
    return [
        "run", "--env", ENV, "--agent", "random", "--seeds", "0-1", "--steps", "5",
        "--workers", "1", "--no-progress", "--out", str(out), *extra,
    ]  # fmt: skip


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The only line on stderr, checked to be a bench error (not a traceback)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("twostage-bench: error: "), err
    return err


@pytest.fixture
def jobs_run(monkeypatch: pytest.MonkeyPatch) -> list[bench_run.Job]:
    """The jobs that actually start (workers=1 runs them in this process)."""
    calls: list[bench_run.Job] = []
    original = bench_run.run_job

    def counting(job: bench_run.Job, states: bench_run.StateSaving | None = None) -> dict:
        calls.append(job)
        return original(job, states)

    monkeypatch.setattr(bench_run, "run_job", counting)
    return calls


def _deny_writes(monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
    """Make ``directory`` unwritable to the bench's check, the way a read-only directory is.

    Tests run as root in CI, where chmod does not stop writes; the check itself creates a real
    file (see test_read_only_directories_refused_by_the_real_check for the unpatched path).
    """
    original = bench_records._probe_write

    def denied(path: Path) -> None:
        if Path(path).resolve() == directory.resolve():
            raise PermissionError(13, "Permission denied", str(path))
        original(path)

    monkeypatch.setattr(bench_records, "_probe_write", denied)


def _cli_bound_by_file_modes(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``twostage-bench argv`` in a child process for which a read-only mode stops writes.

    As root (CI), the child is started by ``setpriv`` without CAP_DAC_OVERRIDE, the capability
    that lets root write where the mode says no; the test is skipped where that is impossible.
    """
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: a read-only mode does not stop writes")
        prefix = [setpriv, "--bounding-set", "-dac_override"]
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "agents.bench.cli", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if prefix and done.stderr.startswith("setpriv"):
        pytest.skip(f"cannot drop CAP_DAC_OVERRIDE here: {done.stderr.strip()}")
    return done


def _only_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("twostage-bench: error: "), done.stderr
    return done.stderr


# -- run --out ------------------------------------------------------------------------------
def test_run_out_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], jobs_run: list) -> None:
    out = tmp_path / "afile"
    out.write_text("not a directory")
    assert main(_run_argv(out)) == 2
    assert f"cannot use {out} as the results directory: it is a file" in _one_error_line(capsys)
    assert jobs_run == [] and out.read_text() == "not a directory"


def test_run_out_below_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], jobs_run: list) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("")
    assert main(_run_argv(blocker / "sub" / "dir")) == 2
    assert f"{blocker} is a file, not a directory" in _one_error_line(capsys)
    assert jobs_run == []


def test_run_into_a_read_only_directory_is_refused_before_any_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, jobs_run: list
) -> None:
    out = tmp_path / "ro"
    out.mkdir()
    _deny_writes(monkeypatch, out)
    assert main(_run_argv(out)) == 2
    assert f"cannot use {out} as the results directory: it is not writable" in _one_error_line(capsys)
    assert jobs_run == [] and list(out.iterdir()) == []  # no record, no lock file


def test_read_only_directories_refused_by_the_real_check(tmp_path: Path) -> None:
    results = tmp_path / "results"
    assert main(_run_argv(results, "--no-leaderboard")) == 0
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        done = _cli_bound_by_file_modes(_run_argv(out))
        assert f"cannot use {out} as the results directory: it is not writable" in _only_error_line(done)
        done = _cli_bound_by_file_modes(["leaderboard", str(results), "--out", str(out / "board.md")])
        assert f"cannot use {out} as the leaderboard directory: it is not writable" in _only_error_line(done)
        assert list(out.iterdir()) == []  # no record, no lock file, no leaderboard
    finally:
        out.chmod(0o755)


def test_read_only_records_file_refused_before_any_job(tmp_path: Path) -> None:
    assert main(_run_argv(tmp_path, "--seeds", "0", "--no-leaderboard")) == 0
    records = tmp_path / RECORDS_FILE
    before = records.read_bytes()
    records.chmod(0o444)
    try:
        done = _cli_bound_by_file_modes(_run_argv(tmp_path, "--no-leaderboard"))  # seed 1 is to run
        assert f"cannot write the records file {records}" in _only_error_line(done)
    finally:
        records.chmod(0o644)
    assert records.read_bytes() == before


def test_run_leaderboard_path_taken_by_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jobs_run: list
) -> None:
    (tmp_path / "leaderboard.md").mkdir()
    assert main(_run_argv(tmp_path)) == 2
    assert "leaderboard.md: it is a directory" in _one_error_line(capsys)
    assert jobs_run == []
    assert main(_run_argv(tmp_path, "--no-leaderboard")) == 0  # the way out the message names


def test_run_out_is_a_file_from_the_shell(tmp_path: Path) -> None:
    out = tmp_path / "afile"
    out.write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "agents.bench.cli", *_run_argv(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    message = f"cannot use {out} as the results directory: it is a file, not a directory"
    assert done.stderr == f"twostage-bench: error: {message}\n"


def test_env_kwargs_too_big_for_memory(tmp_path: Path, capsys: pytest.CaptureFixture[str], jobs_run: list) -> None:
    # A ValueError from the env, or a MemoryError the bench turns into a user error: one line either way.
    assert main(_run_argv(tmp_path / "out", "--env-kwargs", json.dumps({"n_items": 10**12}))) == 2
    assert "n_items" in _one_error_line(capsys)
    assert jobs_run == [] and not (tmp_path / "out").exists()


# -- leaderboard --out ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("results")
    assert main(_run_argv(out, "--no-leaderboard")) == 0
    return out


def test_leaderboard_into_a_read_only_directory(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _deny_writes(monkeypatch, tmp_path)
    assert main(["leaderboard", str(results), "--out", str(tmp_path / "board.md")]) == 2
    assert f"cannot use {tmp_path} as the leaderboard directory: it is not writable" in _one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_leaderboard_of_a_read_only_results_directory(
    results: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _deny_writes(monkeypatch, results)  # the default --out is DIR/leaderboard.md
    assert main(["leaderboard", str(results)]) == 2
    assert "it is not writable" in _one_error_line(capsys)


def test_leaderboard_out_below_a_file(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("")
    assert main(["leaderboard", str(results), "--out", str(blocker / "board.md")]) == 2
    assert f"cannot use {blocker} as the leaderboard directory: it is a file" in _one_error_line(capsys)
    assert main(["leaderboard", str(results), "--out", str(blocker / "sub" / "board.md")]) == 2
    assert f"{blocker} is a file, not a directory" in _one_error_line(capsys)


def test_leaderboard_out_is_a_directory(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["leaderboard", str(results), "--out", str(tmp_path)]) == 2
    assert f"cannot write the leaderboard to {tmp_path}: it is a directory" in _one_error_line(capsys)


def test_perf_out_below_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("")
    assert main(["perf", "--quick", "--case", "env_step", "--out", str(blocker / "perf.json")]) == 2
    assert f"cannot use {blocker} as the perf report directory: it is a file" in _one_error_line(capsys)
