"""Every example runs as-is, at small sizes, and prints what it promises."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *args: str) -> dict:
    """Run ``examples/<name>`` as ``__main__``-less module and call its ``main(args)``."""
    module = runpy.run_path(str(EXAMPLES / name), run_name="example")
    return module["main"](list(args))


def test_every_example_is_tested():
    tested = {
        "quickstart.py",
        "prop2_training_modes.py",
        "deadlock.py",
        "sb3_ppo.py",
        "independent_learners.py",
        "credit_assigned_pg.py",
        "topic_item.py",
        "learned_pools.py",
        "recommender_selection.py",
        "tree_beam_search.py",  # tested in tests/agents/tree/test_example.py
    }
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


@pytest.mark.parametrize("steps", ["50", "1000"])  # 1000: the episode's last round, at truncation
def test_quickstart(capsys, steps):
    totals = run_example("quickstart.py", "--steps", steps)
    assert totals["regret"] == pytest.approx(totals["nominator_regret"] + totals["ranker_regret"])
    out = capsys.readouterr().out
    assert f"round {steps}:" in out and "served item" in out
    assert "no item served yet" not in out


def test_prop2_teaching_example(capsys):
    results = run_example("prop2_training_modes.py", "--steps", "1500", "--seeds", "3")
    # Prop2A: 'own' succeeds and 'all' fails; the reverse failure of Prop2B needs a longer horizon.
    prop2a, prop2b = results["TwoStage/Nominators-Prop2A-v0"], results["TwoStage/Nominators-Prop2B-v0"]
    assert prop2a["own"] < 0.02 and prop2a["all"] > 0.1
    assert prop2b["all"] < 0.02
    assert "closed-form limits" in capsys.readouterr().out


def test_deadlock_example():
    results = run_example("deadlock.py", "--steps", "600", "--seeds", "3")
    for label, row in results.items():
        if "1e-2" in label or "greedy" in label:
            assert min(row.values()) > 0.1, label


def test_sb3_ppo_example(capsys):
    pytest.importorskip("stable_baselines3")
    results = run_example("sb3_ppo.py", "--timesteps", "256", "--eval-steps", "100")
    assert set(results) == {"ppo", "random", "ucb+ucb"}
    assert results["ucb+ucb"] < results["random"]
    assert "regret per round" in capsys.readouterr().out


def test_credit_assigned_pg_example(capsys):
    pytest.importorskip("torch")
    values = run_example("credit_assigned_pg.py", "--steps", "300")
    for name in ("v-pg-swr", "ca-pg", "top1-pg"):
        assert values["random ESR"] < values[name] < values["best ESR"]
    # Kiyohara et al., Fig. 3 / Table 2 at K = 20: credit assignment learns faster early on.
    assert values["ca-pg"] > values["v-pg-swr"] and values["top1-pg"] > values["v-pg-swr"]
    assert "policy value" in capsys.readouterr().out


def test_learned_pools_example(capsys):
    pytest.importorskip("torch")
    from twostage_gym.core.allocation import validate_pools

    out = run_example(
        "learned_pools.py", "--steps", "30", "--examples-per-item", "20", "--seeds", "2", "--bandit-steps", "50"
    )
    assert set(out["scores"]) == {"user+item", "item", "random"}
    for score in out["scores"].values():
        assert 0.0 <= score["recall"] <= 1.0 and 0.0 < score["precision"] <= 1.0
    validate_pools(out["learned_pools"], 100, 10)
    for totals in out["bandit"].values():
        assert totals["cumulative_regret"] == pytest.approx(totals["nominator_regret"] + totals["ranker_regret"])
    text = capsys.readouterr().out
    assert "precision@5" in text and "learned pool sizes" in text and "regret/T" in text


def test_topic_item_example(capsys):
    pytest.importorskip("torch")
    ctr = {name: sum(v) for name, v in run_example("topic_item.py", "--rounds", "200", "--seeds", "2").items()}
    assert set(ctr) == {"random", "2-random", "s-n-galm-ucb", "2-s-n-galm-ucb"}
    # Measured (seeds 0-1, 200 rounds): random 58, 2-random 50, s-n-galm-ucb 113, 2-s-n-galm-ucb 77.
    assert ctr["s-n-galm-ucb"] > 1.3 * ctr["random"] and ctr["2-s-n-galm-ucb"] > 1.2 * ctr["2-random"]
    assert "cumulative CTR after 200 rounds" in capsys.readouterr().out


def test_examples_run_as_scripts():
    import subprocess

    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py"), "--steps", "5"], capture_output=True, text=True, check=True
    )
    assert "cumulative regret" in out.stdout


def test_recommender_selection_example(capsys):
    out = run_example("recommender_selection.py", "--epochs", "2", "--seeds", "1", "--users", "40")
    assert out["design"].max_gradient <= 10 * (1 + 1e-3) + 1e-9  # Kiefer-Wolfowitz: max_a g_a = d
    assert out["request_design"].sum() == pytest.approx(1.0) and out["request_design"].min() >= 0
    for curve in out["recall"].values():
        assert len(curve) == 2 and 0 <= curve[0] <= curve[1] <= 1
    assert "cumulative recall per epoch" in capsys.readouterr().out
