"""The Kiyohara et al. (2026) table reproductions, end to end at a tiny scale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.bench.cli import main
from agents.bench.paper_tables import KIYOHARA2026_TABLE2, KIYOHARA2026_TABLE3
from agents.bench.policy_value_tables import value_at

pytest.importorskip("torch")


def test_value_at_reads_the_curve_and_the_interruption_point():
    record = {"curve": {"steps": [1, 5, 10], "policy_value": [1.0, 2.0, 3.0]}, "policy_value": 3.0}
    assert value_at({**record, "overflow_step": None}, 5) == 2.0
    assert value_at({**record, "overflow_step": None}, 7) == 2.0
    # Stopped by an overflow at step 6: later reads give the value at the interruption.
    stopped = {"curve": {"steps": [1, 5], "policy_value": [1.0, 2.0]}, "policy_value": 2.5, "overflow_step": 6}
    assert value_at(stopped, 10) == 2.5
    with pytest.raises(ValueError, match="no policy value"):
        value_at({**record, "overflow_step": None, "curve": {"steps": [5], "policy_value": [1.0]}}, 2)


@pytest.mark.parametrize(
    ("claim", "paper", "columns"),
    [("kiyohara2026-table2", KIYOHARA2026_TABLE2, 6), ("kiyohara2026-table3", KIYOHARA2026_TABLE3, 4)],
)
def test_table_reproduction_runs_end_to_end(tmp_path: Path, capsys, claim, paper, columns):
    argv = ["reproduce", claim, "--steps", "20", "--seeds", "0", "--workers", "2", "--out", str(tmp_path)]
    assert main([*argv, "--json", "--no-progress"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["steps"] == 20 and len(result["cells"]) == 4 * columns
    for cell in result["cells"]:
        early, final = cell["value_early"][0], cell["value_final"][0]
        assert cell["early_step"] == 2
        assert 1.0 < early and 1.0 < final  # q >= c = 1, so any candidate set is worth more than 1
        assert cell["paper"] is not None
    methods = {cell["method"] for cell in result["cells"]}
    assert methods == set(paper)
    assert isinstance(result["reproduced"], bool) and result["checks"]
    # A second run resumes from the records and prints the table beside the paper.
    assert main([*argv, "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "paper" in text and "reproduced:" in text
    if claim == "kiyohara2026-table2":
        assert (tmp_path / "kiyohara2026-table2-curves.png").exists()
