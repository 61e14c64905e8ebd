"""Reduced-scale reproduction of Kiyohara et al. (2026), Table 2 / Fig. 3 at K = 20.

The paper (|A| = 1000, K = 20, L = 1, optimal LSR, batch 128, 10 seeds) reports at 50K gradient
steps a policy value of 8.39 for CA-PG and 8.33 for CA-PG-SwR against 7.88 for V-PG-SwR: the
credit-assigned gradients converge faster when the candidate set is large. Here the same setting
runs 300 steps on 3 seeds; our numbers (seeds 0-2) are about 7.73 (CA-PG) and 7.78 (CA-PG-SwR)
against 6.94 (V-PG-SwR), from about 6.3 at the start.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import agents

pytest.importorskip("torch")

pytestmark = pytest.mark.repro
SEEDS = range(3)
STEPS = 300


def mean_policy_value(name: str) -> float:
    env = gym.make("TwoStage/EarlyStageRanker-v0", n_candidates=20)
    values = []
    for seed in SEEDS:
        record = agents.evaluate(agents.make(name, env), env, STEPS, seed, num_checkpoints=2)
        values.append(record["policy_value"])
    return float(np.mean(values))


def test_credit_assigned_pg_converges_faster_than_vanilla_swr_at_k20():
    vanilla = mean_policy_value("v-pg-swr")
    for name in ("ca-pg", "ca-pg-swr"):
        assert mean_policy_value(name) > vanilla + 0.4, name
