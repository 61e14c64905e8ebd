"""``examples/independent_learners.py`` runs as-is and prints a regret table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pettingzoo")

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "independent_learners.py"


def test_example_runs_and_reports_regret():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--steps", "150", "--seed", "1"], capture_output=True, text=True, check=True
    )
    lines = result.stdout.strip().splitlines()
    assert "150 rounds" in lines[0]
    rows = [line.split() for line in lines[1:]]
    assert len(rows) == 4
    for row in rows:
        regret, nominator_regret, ranker_regret = map(float, row[-3:])
        # Eq. 1 (up to the table's rounding) and non-negative expected regrets.
        assert regret == pytest.approx(nominator_regret + ranker_regret, abs=0.11)
        assert min(regret, nominator_regret, ranker_regret) >= 0
    oracle_rows = [row for row in rows if row[:2] == ["env", "oracle"]]
    assert len(oracle_rows) == 2 and all(float(row[-1]) == 0.0 for row in oracle_rows)
