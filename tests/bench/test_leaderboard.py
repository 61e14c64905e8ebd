"""``twostage-bench leaderboard``: the numbers equal a hand computation from the records."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from agents.bench.cli import main

ENV = "TwoStage/Nominators-v0"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("records")
    argv = ["run", "--env", ENV, "--agent", "ucb+ucb", "--agent", "random", "--agent", "oracle", "--seeds", "0-3"]
    argv += ["--steps", "60", "--env-kwargs", '{"n_items": 30, "dim": 6, "n_nominators": 3}']
    assert main([*argv, "--out", str(out), "--workers", "1", "--no-progress", "--no-leaderboard"]) == 0
    return out


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def test_leaderboard_matches_hand_computation(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    board_file = tmp_path / "board.md"
    assert main(["leaderboard", str(results), "--out", str(board_file), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    [table] = summary["tables"]
    assert table["env_id"] == ENV and table["steps"] == 60
    records = _records(results)
    expected = {}
    for agent in ("ucb+ucb", "random", "oracle"):
        mine = [r for r in records if r["agent"] == agent]
        regret = np.array([r["cumulative_regret"] for r in mine])
        half = stats.t.ppf(0.975, len(regret) - 1) * regret.std(ddof=1) / math.sqrt(len(regret))
        nominator = np.mean([r["nominator_regret"] for r in mine])
        expected[agent] = (regret.mean(), half, nominator / regret.mean() if regret.mean() > 0 else None)
    rows = table["rows"]
    assert [row["agent"] for row in rows] == sorted(expected, key=lambda a: expected[a][0])
    for row in rows:
        mean, half, share = expected[row["agent"]]
        assert row["n_seeds"] == 4 and row["seeds"] == [0, 1, 2, 3]
        assert row["mean_regret"] == pytest.approx(mean)
        assert row["ci95"] == pytest.approx(half)
        assert row["ci_method"] == "student-t"
        if share is None:
            assert row["nominator_share"] is None
        else:
            assert row["nominator_share"] == pytest.approx(share)
            assert row["nominator_share"] + row["ranker_share"] == pytest.approx(1.0)
    markdown = board_file.read_text()
    assert f"{rows[0]['mean_regret']:.2f} ± {rows[0]['ci95']:.2f}" in markdown
    assert markdown.index("`oracle`") < markdown.index("`random`")
    assert len(summary["plots"]) == 1 and Path(summary["plots"][0]).exists()
    assert Path(summary["plots"][0]).parent == tmp_path


def test_normal_interval_without_scipy(results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "scipy.stats", None)  # makes 'from scipy.stats import t' fail
    assert main(["leaderboard", str(results), "--out", str(tmp_path / "b.md"), "--no-plots", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["tables"][0]["rows"]
    regret = np.array([r["cumulative_regret"] for r in _records(results) if r["agent"] == rows[-1]["agent"]])
    assert rows[-1]["ci_method"] == "normal"
    assert rows[-1]["ci95"] == pytest.approx(1.96 * regret.std(ddof=1) / 2)


def test_leaderboard_default_file_and_merged_directories(results: Path, tmp_path: Path, capsys) -> None:
    merged = tmp_path / "merged"
    merged.mkdir()
    lines = (results / "records.jsonl").read_text().splitlines(keepends=True)
    (merged / "a.jsonl").write_text("".join(lines[:5]))
    (merged / "b.jsonl").write_text("".join(lines[3:]) + '{"truncated": ')  # overlap and a broken tail
    assert main(["leaderboard", str(merged), "--no-plots"]) == 0
    out = capsys.readouterr()
    assert "skipping" in out.err
    assert (merged / "leaderboard.md").read_text() in out.out
    assert main(["leaderboard", str(merged), "--no-plots", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["tables"][0]["rows"]
    assert [row["n_seeds"] for row in rows] == [4, 4, 4]  # duplicates across files count once


def test_leaderboard_of_empty_directory_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["leaderboard", str(tmp_path)]) == 2
    assert "no records" in capsys.readouterr().err
    assert main(["leaderboard", str(tmp_path / "missing")]) == 2
