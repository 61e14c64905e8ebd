"""The Zhang et al. claims (Fig. 1, Table 1, Prop. 4.1) and the tree perf cases, at reduced sizes."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from agents.bench import perf_tree, tree_claims
from agents.bench.claims import CLAIMS
from agents.bench.cli import main
from agents.bench.perf import PERF_CASES, run_perf
from agents.bench.tree_claims import Fig1Claim, Prop41Claim, Table1Claim, prop41_terms
from twostage_gym.core.tree import beam_search, build_tree

NAMES = ["zhang2024-fig1", "zhang2024-table1", "zhang2024-prop41"]


def test_claims_are_registered_with_full_versions() -> None:
    for name in NAMES:
        assert name in CLAIMS and f"{name}-full" in CLAIMS


def test_prop41_identity_on_counts() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(1, 300))
        retrieved = rng.random(n) < rng.random()
        served = retrieved & (rng.random(n) < rng.random())
        t = prop41_terms(retrieved, served)
        assert t["identity"] and t["served_unretrieved"] == 0
        assert t["errors"] == t["misses"] + t["hit_wrong"]
        p_ret = Fraction(t["p_retrieve"])
        assert Fraction(t["p_two_stage"]) == p_ret + Fraction(t["p_rank"]) * (1 - p_ret)
    t = prop41_terms(np.array([True, True, False, True]), np.array([True, False, False, False]))
    assert (t["p_two_stage"], t["p_retrieve"], t["p_rank"]) == ("3/4", "1/4", "2/3")
    # A target served but not retrieved is impossible in a two-stage model; it breaks the identity.
    broken = prop41_terms(np.array([False, True]), np.array([True, True]))
    assert broken["served_unretrieved"] == 1 and not broken["identity"]


def test_prop41_claim_runs_resumes_and_reports(tmp_path, capsys) -> None:
    claim = Prop41Claim("p", "t", "s", branches=(2, 4), n_train=500, queries=40, seeds=(0,))
    result = claim.run(out=tmp_path, progress=False)
    assert result["reproduced"] is True
    assert [c["n"] for c in result["cells"]] == [40, 40]
    text = claim.render(result)
    assert "exact" in text and "reproduced: yes" in text
    file = tmp_path / "tree" / "records.jsonl"
    lines = file.read_text().splitlines()
    assert len(lines) == 2
    again = claim.run(out=tmp_path, progress=False)  # resumes: nothing to run
    assert file.read_text().splitlines() == lines and again["cells"] == result["cells"]
    report = claim.run(steps=41, out=tmp_path, progress=False, run_missing=False)
    assert report["reproduced"] is None and all("n" not in c for c in report["cells"])
    assert "pending" in claim.render(report)


def test_fig1_claim_structure_and_missing_data(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tree_claims, "DATA_DIR", tmp_path / "nowhere")
    claim = Fig1Claim(
        "f", "t", "s", branches=(2, 8, 32), datasets=("synthetic", "ml-100k"), n_train=800, epochs=1,
        n_negatives=20, n_test=300, seeds=(0,),
    )  # fmt: skip
    result = claim.run(progress=False)
    synthetic, movielens = result["datasets"]
    assert [r["levels"] for r in synthetic["rows"]] == [10, 4, 2]
    for row in synthetic["rows"]:
        assert 0.0 <= row["mean"] <= row["recall@100"] <= 1.0
    assert not movielens["available"] and all(r["mean"] is None for r in movielens["rows"])
    assert [c["holds"] for c in result["checks"]][2:] == [None, None]
    assert result["reproduced"] in (False, None)
    text = claim.render(result)
    assert "no data" in text and "Spearman" in text
    json.dumps(result)


def test_table1_claim_structure() -> None:
    claim = Table1Claim(
        "t1", "t", "s", retrievers={"high recall": 2000, "low recall": 100}, n_train=2000, ks=(40, 120),
        epochs=1, n_test=300, seeds=(0,),
    )  # fmt: skip
    result = claim.run(progress=False)
    high, low = result["rows"]["high recall"], result["rows"]["low recall"]
    for row in (high, low):
        assert row["recall"][0] <= row["recall"][1]  # a larger beam retrieves more
        assert all(0 < e <= 2000 for e in row["h_ts_examples"])
        assert row["gain_per_seed"][0] == [pytest.approx(row["h_ts"][0] - row["ts"][0])]
    assert high["recall"][0] > low["recall"][0]
    assert len(result["checks"]) == 4
    assert "H-TS" in claim.render(result)


def test_user_errors_of_the_claims(tmp_path, capsys) -> None:
    assert main(["reproduce", "zhang2024-prop41", "--report"]) == 2
    claim = CLAIMS["zhang2024-prop41"]
    with pytest.raises(tree_claims.BenchError):
        claim.run(progress=False, run_missing=False)
    with pytest.raises(tree_claims.BenchError, match="checkpoint"):
        claim.run(progress=False, save_every=10)


@pytest.mark.repro
def test_prop41_reduced_scale_reproduces(capsys) -> None:
    assert main(["reproduce", "zhang2024-prop41", "--check", "--no-progress"]) == 0
    assert "reproduced: yes" in capsys.readouterr().out


@pytest.mark.repro
def test_table1_reduced_scale_numbers() -> None:
    """Table 1 at reduced scale, as measured: H-TS does not beat TS on the synthetic world.

    Measured (seed 0): high recall (0.59 / 0.76 / 0.86 at K = 40 / 80 / 120) H-TS - TS = -0.0035 /
    -0.0050 / -0.0070; low recall (0.21 / 0.25 / 0.25) -0.0090 / -0.0060 / -0.0100 (seed 1: -0.004 to
    -0.010). With few retrieved examples H-TS is worse at every K: the paper's own caveat, that
    harmonized training needs a high-recall retriever to leave it enough examples.
    """
    result = CLAIMS["zhang2024-table1"].run(progress=False)
    low, high = result["rows"]["low recall"], result["rows"]["high recall"]
    assert all(r < 0.35 for r in low["recall"]) and all(r > 0.5 for r in high["recall"])
    assert all(h < t for h, t in zip(low["h_ts"], low["ts"], strict=True))


@pytest.mark.repro
def test_fig1_reduced_scale_numbers() -> None:
    """Fig. 1 on the synthetic world at reduced scale, as measured: recall@20 does not move with B.

    Measured (seed 0): 0.346 / 0.346 / 0.348 / 0.341 / 0.354 for B = 2 / 4 / 8 / 16 / 32 (seeds 0-2:
    0.332 / 0.333 / 0.328 / 0.327 / 0.333), while the number of levels falls from 10 to 2. The paper's
    rise (0.178 -> 0.190 on MIND) does not reproduce here: with a beam of 100 of 1,024 items, the
    search rarely loses the target whatever the depth.
    """
    full = CLAIMS["zhang2024-fig1"]
    claim = Fig1Claim(
        "f", "t", "s", branches=full.branches, datasets=("synthetic",), n_train=full.n_train, epochs=full.epochs,
        n_negatives=full.n_negatives, n_test=full.n_test, seeds=(0,),
    )  # fmt: skip
    rows = claim.run(progress=False)["datasets"][0]["rows"]
    recalls = [r["mean"] for r in rows]
    assert [r["levels"] for r in rows] == [10, 5, 4, 3, 2]
    assert all(0.3 < r < 0.4 for r in recalls) and max(recalls) - min(recalls) < 0.03


# -- perf ------------------------------------------------------------------------------------------


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reduced sizes: the structure of the report, not the numbers, is under test."""
    for key, value in {
        "quick_search_items": 3000,
        "queries": 16,
        "beam": 20,
        "branches": 8,
        "dim": 8,
        "quick_build_items": (500, 2000),
    }.items():
        monkeypatch.setitem(perf_tree.SIZES, key, value)
    perf_tree._SETUP.clear()


def test_perf_cases_at_reduced_sizes(small: None) -> None:
    cases = ["tree_beam_search", "tree_vs_faiss", "tree_build"]
    assert all(name in PERF_CASES for name in cases)
    report = run_perf(quick=True, cases=cases)
    search = report["cases"]["tree_beam_search"]
    assert search["n_items"] == 3000 and search["speedup"] > 0
    assert 0.0 < search["recall@K"] <= 1.0
    assert 20 < search["nodes_scored_per_query"] < 3000
    faiss = report["cases"]["tree_vs_faiss"]
    if "skipped" not in faiss:
        assert 0.0 < faiss["faiss_recall@K"] <= 1.0
        # Matched budgets: faiss scores about as many items as the tree scores nodes.
        per_list = 3000 / faiss["nlist"]
        assert abs(faiss["faiss_scored_per_query"] - faiss["tree_scored_per_query"]) <= per_list
    assert set(report["cases"]["tree_build"]["seconds"]) == {"500", "2000"}
    json.dumps(report)
    perf_tree._SETUP.clear()


def test_perf_helpers_are_exact() -> None:
    items, queries = perf_tree.catalog(500, 6, 10)
    exact = perf_tree.brute_force_top_k(items, queries, 7)
    scores = queries @ items.T
    np.testing.assert_array_equal(np.sort(np.take_along_axis(scores, exact, 1), 1), np.sort(scores, 1)[:, -7:])
    assert perf_tree.recall_at_k(exact, exact) == 1.0
    tree = build_tree(items, 4, seed=0)
    result = beam_search(tree, perf_tree.centroid_scorer(tree, items), queries, 7)

    # Nodes scored: the root's children, then the children of each level's beam (a leaf: itself).
    def width(v: int) -> int:
        return 1 if tree.leaf_item[v] >= 0 else int((tree.children[v] >= 0).sum())

    per_query = [width(0) + sum(width(v) for beam in result.levels[:-1] for v in beam[i] if v >= 0) for i in range(10)]
    assert perf_tree._scored_per_query(tree, result.levels) == pytest.approx(np.mean(per_query))
