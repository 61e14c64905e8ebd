"""Shared fixtures: every registered environment id, and a results directory of ESR runs."""

from __future__ import annotations

from pathlib import Path

import pytest

import twostage_gym

ENV_IDS = list(twostage_gym.ENV_IDS)


@pytest.fixture(params=ENV_IDS)
def env_id(request) -> str:
    """Each registered ``TwoStage/...`` id in turn."""
    return request.param


@pytest.fixture(scope="session")
def table2_k10_records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results directory holding Table 2's K = 10 column only, at 20 steps and seed 0: a paper
    table in progress. Read it, or copy it before adding runs."""
    pytest.importorskip("torch")
    from agents.bench.cli import CLAIMS
    from agents.bench.policy_value_tables import METHODS
    from agents.bench.run import Job, run_into

    out = tmp_path_factory.mktemp("table2-k10")
    configs = CLAIMS["kiyohara2026-table2"].configs(20)
    run_into(out, [Job(configs[(m, "K=10")], 0) for m in METHODS], workers=2, progress=False)
    return out


# Hypothesis profiles for the fuzz harness (tests/fuzz): "ci", the default, is small and
# derandomised so that CI is reproducible; "deep" (``--hypothesis-profile=deep``) searches wider.
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the fuzz tests skip themselves without Hypothesis
    pass
else:
    settings.register_profile(
        "ci",
        max_examples=100,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.register_profile(
        "deep",
        max_examples=1000,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.load_profile("ci")
