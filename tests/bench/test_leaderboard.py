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
from agents.bench.leaderboard import study_tables, write_leaderboard
from agents.bench.studies import Study, parse_study

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


# -- study tables ---------------------------------------------------------------------------
def _study(**changes) -> Study:
    data = {
        "name": "grid",
        "title": "a grid",
        "env": ENV,
        "steps": 100,
        "seeds": "0-3",
        "columns": "misspecification",
        "sweep": {"misspecification": [2, 4]},
        "agents": [{"name": "ucb+ucb"}, {"name": "ucb", "label": "single", "env_kwargs": {"n_nominators": 1}}],
        "claim": {"text": "two-stage wins", "better": [["ucb+ucb", "single"]]},
    }
    return parse_study({**data, **changes})


def _record(config, seed: int, regret: float, nominator: float, steps: int | None = None, **extra) -> dict:
    steps = config.steps if steps is None else steps
    points = [steps // 2, steps]
    return {
        "schema": 1,
        "version": "0.1.0",
        "config_hash": config.config_hash,
        **config.as_dict(),
        "steps": steps,
        "seed": seed,
        "cumulative_reward": 0.0,
        "cumulative_regret": regret,
        "nominator_regret": nominator,
        "ranker_regret": regret - nominator,
        "wall_time_s": 0.1,
        "curve": {
            "steps": points,
            "regret": [regret / 2, regret],
            "nominator_regret": [nominator / 2, nominator],
            "ranker_regret": [(regret - nominator) / 2, regret - nominator],
        },
        **extra,
    }


def _grid_records(study: Study) -> list[dict]:
    """ucb+ucb: regret 10 + seed (rho 2), 30 + seed (rho 4); single: 20 + 2 seed, 25 + 2 seed."""
    base = {("ucb+ucb", "2"): 10.0, ("ucb+ucb", "4"): 30.0, ("single", "2"): 20.0, ("single", "4"): 25.0}
    slope = {"ucb+ucb": 1.0, "single": 2.0}
    return [
        _record(cell.config, seed, base[(cell.row, cell.column)] + slope[cell.row] * seed, nominator=seed)
        for cell in study.cells()
        for seed in range(4)
    ]


def test_study_table_numbers_and_claim() -> None:
    study = _study()
    [table] = study_tables(_grid_records(study), study)
    assert table["study"] == "grid" and table["steps"] == 100 and table["columns"] == ["2", "4"]
    assert table["metric"] == "cumulative_regret" and table["better"] == "lower"
    assert [row["label"] for row in table["rows"]] == ["ucb+ucb", "single"]
    cell = table["rows"][1]["cells"][1]
    values = np.array([25.0, 27.0, 29.0, 31.0])
    assert cell["values"] == values.tolist() and cell["seeds"] == [0, 1, 2, 3]
    assert cell["mean"] == pytest.approx(28.0)
    assert cell["ci95"] == pytest.approx(stats.t.ppf(0.975, 3) * values.std(ddof=1) / 2)
    assert cell["env_kwargs"] == {"misspecification": 4, "n_nominators": 1}
    assert cell["curve"] == {"steps": [50, 100], "mean": [14.0, 28.0]}
    claim = table["claim"]
    # rho = 2: 11.5 against 23 (intervals apart); rho = 4: 31.5 against 28 (the claim fails there).
    assert [c["holds"] for c in claim["columns"]] == [True, False] and claim["holds"] is False
    assert claim["columns"][0]["pairs"][0]["separated"] is True
    json.dumps(table)  # plain data


def test_study_table_pending_cells_steps_and_other_metrics() -> None:
    study = _study()
    records = [
        r for r in _grid_records(study) if not (r["agent"] == "ucb" and r["env_kwargs"]["misspecification"] == 4)
    ]
    [table] = study_tables(records, study)
    assert table["rows"][1]["cells"][1] is None
    assert [c["holds"] for c in table["claim"]["columns"]] == [True, None] and table["claim"]["holds"] is None
    # A reduced run (another T) of the same study is a table of its own.
    short = [_record(c, 0, 5.0, 1.0, steps=10) for c in study.configs()]
    assert [t["steps"] for t in study_tables(records + short, study)] == [10, 100]
    # The nominator share leaves out seeds without regret; a policy value is better higher.
    share = _study(metric="nominator_share", claim={"text": "x", "better": [["single", "ucb+ucb"]]})
    zero = [_record(c, 9, 0.0, 0.0) for c in share.configs()]
    [table] = study_tables(_grid_records(share) + zero, share)
    assert table["rows"][0]["cells"][0]["values"] == pytest.approx([0 / 10, 1 / 11, 2 / 12, 3 / 13])
    # Means: rho = 2, single 0.061 < ucb+ucb 0.122; rho = 4, single 0.051 > ucb+ucb 0.046.
    assert [c["holds"] for c in table["claim"]["columns"]] == [True, False]
    # A share curve is undefined where a seed has no regret yet: left out of the mean, valid JSON.
    late = _record(share.cells()[0].config, 8, 10.0, 5.0)
    late["curve"]["regret"][0] = late["curve"]["nominator_regret"][0] = 0.0
    [table] = study_tables([late], share)
    assert table["rows"][0]["cells"][0]["curve"]["mean"] == [None, 0.5]
    json.dumps(table, allow_nan=False)
    valued = _study(metric="policy_value", claim={"text": "x", "better": [["ucb+ucb", "single"]]})
    records = [
        _record(c, s, 1.0, 0.0, policy_value=float(s + (5 if c.agent == "ucb+ucb" else 0)))
        for c in valued.configs()
        for s in range(3)
    ]
    [table] = study_tables(records, valued)
    assert table["better"] == "higher" and table["rows"][0]["cells"][0]["mean"] == pytest.approx(6.0)
    assert table["claim"]["holds"] is True


def test_leaderboard_splits_study_records_from_the_rest(results: Path, tmp_path: Path) -> None:
    study = _study()
    records = _grid_records(study) + _records(results)
    board = write_leaderboard(records, tmp_path / "board.md", plots=False, studies=study)
    assert [t["study"] for t in board["studies"]] == ["grid"]
    assert [t["env_kwargs"] for t in board["tables"]] == [{"n_items": 30, "dim": 6, "n_nominators": 3}]
    markdown = board["markdown"]
    assert markdown.index("## grid: a grid (T = 100)") < markdown.index("## Records outside the studies")
    assert "| `single` | 23.00 ± " in markdown
    assert "Holds in every column: **no** (misspecification = 2: yes; misspecification = 4: no)" in markdown
    assert study_tables(records, [study, _study(name="other")])[1]["study"] == "other"
    assert study_tables(_records(results)) == []  # no shipped study has these records
