"""Reduced-scale reproductions of Hron et al. (2021), judged on the median over 10 seeds."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import agents

pytestmark = pytest.mark.repro
SEEDS = range(10)
PROP2A, PROP2B = "TwoStage/Nominators-Prop2A-v0", "TwoStage/Nominators-Prop2B-v0"


def median_regret_rate(env_id: str, name: str, steps: int, **kwargs) -> float:
    """Median over seeds of cumulative regret / T."""
    env = gym.make(env_id)
    rates = [
        agents.evaluate(agents.make(name, env, **kwargs), env, steps, seed)["cumulative_regret"] / steps
        for seed in SEEDS
    ]
    return float(np.median(rates))


@pytest.mark.parametrize(("env_id", "good", "bad"), [(PROP2A, "own", "all"), (PROP2B, "all", "own")])
def test_proposition2_one_training_mode_fails_where_the_other_succeeds(env_id, good, bad):
    """Prop. 2 (bandit): with exploring learners (alpha = 2 in both stages), the good mode gets
    sublinear regret and the bad mode loses about one round in four."""
    rate_good = median_regret_rate(env_id, "ucb+ucb", 5000, alpha=2.0, nominator_training=good)
    rate_bad = median_regret_rate(env_id, "ucb+ucb", 5000, alpha=2.0, nominator_training=bad)
    assert rate_good < 0.02
    assert rate_bad > 0.1


@pytest.mark.parametrize("env_id", [PROP2A, PROP2B])
@pytest.mark.parametrize(("name", "kwargs"), [("ucb+ucb", {"alpha": 1e-2}), ("ucb+greedy", {})])
def test_deadlock_without_exploration(env_id, name, kwargs):
    """With the tuned alpha = 1e-2 or greedy nominators both modes get stuck: a nominator never
    proposes the item it scores low, and the ranker never serves an arm it has learned to avoid."""
    for mode in ("own", "all"):
        assert median_regret_rate(env_id, name, 2000, nominator_training=mode, **kwargs) > 0.1


@pytest.mark.parametrize("misspecification", [2, 4])
def test_figure3_two_stage_beats_single_stage_under_misspecification(misspecification):
    """Fig. 3: at the same s = d/rho, 'U+U' has lower regret than single-stage UCB, because the
    ranker sees all d features."""
    two = gym.make("TwoStage/Nominators-v0", misspecification=misspecification)
    one = gym.make("TwoStage/Nominators-v0", n_nominators=1, misspecification=misspecification)
    r_two = [agents.evaluate(agents.make("ucb+ucb", two), two, 1000, s)["cumulative_regret"] for s in SEEDS]
    r_one = [agents.evaluate(agents.make("ucb", one), one, 1000, s)["cumulative_regret"] for s in SEEDS]
    assert np.median(r_two) < np.median(r_one)


def test_figure4_nominator_share_falls_with_more_nominators():
    """Fig. 4 (bottom): the nominator share R^N / R of 'U+U' regret falls as N grows."""
    shares = []
    for n in (2, 5, 20):
        env = gym.make("TwoStage/Nominators-v0", n_nominators=n, misspecification=4)
        records = [agents.evaluate(agents.make("ucb+ucb", env), env, 1000, s) for s in SEEDS]
        shares.append(
            np.mean([r["nominator_regret"] for r in records]) / np.mean([r["cumulative_regret"] for r in records])
        )
    assert shares[0] > shares[1] > shares[2]
