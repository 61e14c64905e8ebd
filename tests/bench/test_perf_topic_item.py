"""The topic-item perf cases (issue 20, section 6) run in quick mode at reduced sizes: structure only, never timings."""

from __future__ import annotations

import math

import pytest

from agents.bench import perf_topic_item
from agents.bench.cli import main
from agents.bench.perf import PERF_CASES, run_perf

CASES = ["topic_item_env", "topic_item_decision", "topic_item_gblm_update"]


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reduced sizes: the structure of the report, not the numbers, is under test."""
    monkeypatch.setitem(perf_topic_item.SIZES, "step_items", (1000, 3000))
    monkeypatch.setitem(perf_topic_item.SIZES, "decision_items", 2000)
    monkeypatch.setitem(perf_topic_item.SIZES, "decision_topics", 10)
    monkeypatch.setitem(perf_topic_item.SIZES, "bilinear_dim", 8)


def positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def test_cases_are_registered_by_the_cli():
    for name in CASES:
        assert name in PERF_CASES


def test_quick_cases_at_reduced_sizes(small: None):
    pytest.importorskip("torch")
    report = run_perf(quick=True, cases=CASES)
    assert list(report["cases"]) == CASES
    for result in report["cases"].values():
        assert result["rows"]
        for row in result["rows"]:
            assert {"measure", "value", "unit"} <= set(row)
            assert positive(row["value"])
            if "target" in row:
                assert isinstance(row["met"], bool)

    env = report["cases"]["topic_item_env"]
    assert set(env["step_us"]) == {"1000", "3000"}
    assert all(positive(t) for t in env["step_us"].values())
    assert positive(env["ratio"]) and env["target_ratio"] == 1.5 and isinstance(env["met"], bool)
    assert env["budget"] == 1000

    decision = report["cases"]["topic_item_decision"]
    assert decision["env_kwargs"]["budget_per_slot"] is None
    assert set(decision["ms_per_round"]) == {"2-s-n-galm-ucb", "s-n-galm-ucb"}
    for times in decision["ms_per_round"].values():
        assert set(times) == {"decision_ms", "update_ms"}
        assert all(positive(t) for t in times.values())
    assert positive(decision["ratio"])
    assert decision["paper_ratio"] == pytest.approx(1.31 / 0.17)

    gblm = report["cases"]["topic_item_gblm_update"]
    assert gblm["design_dims"] == 64
    assert positive(gblm["update_ms"]) and positive(gblm["score_1000_ms"])


def test_cli_runs_a_case(small: None, capsys: pytest.CaptureFixture[str]):
    assert main(["perf", "--quick", "--case", "topic_item_gblm_update"]) == 0
    out = capsys.readouterr().out
    assert "topic_item_gblm_update" in out and "update at 64 dims" in out
