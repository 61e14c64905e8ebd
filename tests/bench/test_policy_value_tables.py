"""The Kiyohara et al. (2026) table reproductions, end to end at a tiny scale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.bench.claims import CLAIMS, verdict
from agents.bench.cli import main
from agents.bench.paper_tables import KIYOHARA2026_TABLE2, KIYOHARA2026_TABLE3
from agents.bench.policy_value_tables import _mean_se, _with_se, value_at
from agents.bench.records import read_records, record_key
from agents.bench.run import Job

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


def test_report_judges_the_records_so_far_and_the_tables_share_their_common_cells(table2_k10_records: Path, capsys):
    # Only Table 2's K = 10 column has runs (the env's default K, L = 1, M = 1), as in a run in progress.
    tmp_path = table2_k10_records
    records = (tmp_path / "records.jsonl").read_bytes()

    def report(claim: str, *extra: str) -> dict:
        argv = ["reproduce", claim, "--steps", "20", "--seeds", "0", "--out", str(tmp_path), "--report"]
        assert main([*argv, *extra, "--json", "--no-progress"]) == 0
        return json.loads(capsys.readouterr().out)

    result = report("kiyohara2026-table2")
    assert (tmp_path / "records.jsonl").read_bytes() == records  # nothing ran
    ran = {c["method"]: c for c in result["cells"] if c["column"] == "K=10"}
    assert all(c["n_seeds"] == 1 and c["value_final"][0] > 1.0 for c in ran.values())
    # One seed gives no standard error.
    assert all(c["value_early"][1] is None and c["value_final"][1] is None for c in ran.values())
    pending = [c for c in result["cells"] if c["column"] != "K=10"]
    assert len(pending) == 20 and all(c["n_seeds"] == 0 and c["value_final"] is None for c in pending)
    # Both checks read columns not run yet: pending, and so is the verdict.
    assert [v["holds"] for v in result["checks"]] == [None, None] and result["reproduced"] is None

    # Table 3's L = 1, M = 1 cells are the same runs.
    shared = {c["method"]: c for c in report("kiyohara2026-table3")["cells"] if c["column"] == "L=1,M=1"}
    assert {m: c["value_final"] for m, c in shared.items()} == {m: c["value_final"] for m, c in ran.items()}

    # The text marks pending cells and checks, and cells short of seeds; --check fails until reproduced.
    argv = ["reproduce", "kiyohara2026-table2", "--steps", "20", "--seeds", "0-1", "--out", str(tmp_path)]
    assert main([*argv, "--report", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "pending" in text and "(1/2 seeds)" in text and "reproduced: pending" in text
    v_pg = ran["v-pg"]
    assert f"{v_pg['value_early'][0]:.2f} -> {v_pg['value_final'][0]:.2f} (1/2 seeds)" in text
    assert main([*argv, "--report", "--check", "--no-progress"]) == 1
    capsys.readouterr()
    assert main(["reproduce", "kiyohara2026-table2", "--report", "--no-progress"]) == 2
    assert "--out" in capsys.readouterr().err


def test_a_cell_shows_its_standard_error_only_when_it_has_two_seeds_or_more():
    assert _mean_se([8.0, 9.0]) == (8.5, 0.5) and _with_se(8.5, 0.5) == "8.50±0.50"
    assert _mean_se([8.0]) == (8.0, None) and _with_se(8.0, None) == "8.00"
    assert _mean_se([]) is None


def test_verdict_is_false_on_any_failure_then_pending_on_any_gap():
    assert verdict([True, True]) is True
    assert verdict([True, None]) is None
    assert verdict([None, False]) is False
    assert verdict([]) is True


def test_reference_records_are_cells_of_the_tables_at_the_papers_scale():
    # docs/reference-runs/kiyohara2026 holds paper-scale runs; a change to a table's configurations
    # would leave them behind (their config hash no longer a cell's), and the docs would show
    # pending cells where runs were made.
    records = read_records(Path(__file__).resolve().parents[2] / "docs" / "reference-runs" / "kiyohara2026")
    tables = [CLAIMS["kiyohara2026-table2"], CLAIMS["kiyohara2026-table3"]]
    cells = {Job(c, seed).key for t in tables for c in t.configs(t.steps).values() for seed in t.seeds}
    assert records and all(record_key(r) in cells for r in records)
    assert {r["steps"] for r in records} == {500_000}
