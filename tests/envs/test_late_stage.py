"""Fixed late-stage rankers (Kiyohara et al. 2026, App. E): sampling, exact values, best candidate sets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import chisquare

from twostage_gym.core import late_stage
from twostage_gym.core.late_stage import LSR_KINDS, LateStageRanker, dinkelbach_sets
from twostage_gym.core.plackett_luce import enumerate_rankings, gumbel_topk, pl_log_prob, position_weights


def _q(rows: int, K: int, seed: int = 0) -> np.ndarray:
    return 1.0 + 4.0 * np.random.default_rng(seed).random((rows, K))


def _prefix_probs(kind: str, q: np.ndarray, L: int, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Every ordered L-prefix of the K candidates and its probability under the LSR, by brute force."""
    K = q.shape[-1]
    prefixes = enumerate_rankings(K, L)
    if kind == "noisy":
        return prefixes, np.exp(pl_log_prob(np.broadcast_to(q, (len(prefixes), K)), prefixes, temperature=tau))
    if kind == "uniform":
        return prefixes, np.full(len(prefixes), 1.0 / len(prefixes))
    order = np.argsort(-q if kind == "optimal" else q, kind="stable")[:L]
    return prefixes, (prefixes == order).all(axis=1).astype(float)


def _brute_value(kind: str, q: np.ndarray, weights: np.ndarray, tau: float = 1.0) -> float:
    prefixes, probs = _prefix_probs(kind, q, len(weights), tau)
    return float(probs @ (q[prefixes] @ weights))


@pytest.mark.parametrize("kind", LSR_KINDS)
@pytest.mark.parametrize(("L", "weights"), [(1, "sum"), (2, "dcg"), (3, "sum"), (5, "dcg")])
def test_expected_reward_matches_brute_force(kind, L, weights):
    q = _q(4, 5, seed=L)
    alpha = position_weights(weights, L)
    for tau in (1.0, 0.4):
        lsr = LateStageRanker(kind, tau)
        value, stderr = lsr.expected_reward(q, alpha)
        want = [_brute_value(kind, row, alpha, tau) for row in q]
        np.testing.assert_allclose(value, want, rtol=1e-12, atol=0)
        assert (stderr == 0).all()
        # The same value from the exact position marginals.
        marg = lsr.position_marginals(q, L)
        np.testing.assert_allclose(marg.sum(axis=-1), 1.0, atol=1e-12)
        np.testing.assert_allclose(np.einsum("l,blk,bk->b", alpha, marg, q), want, rtol=1e-12)


def test_noisy_single_output_is_softmax_dot_q():
    q = _q(6, 10, seed=3)
    for tau in (1.0, 0.3, 5.0):
        w = np.exp(q / tau)
        value, _ = LateStageRanker("noisy", tau).expected_reward(q, np.ones(1))
        np.testing.assert_allclose(value, (w * q).sum(1) / w.sum(1), rtol=1e-13)


@pytest.mark.parametrize("kind", LSR_KINDS)
def test_rank_frequencies_match_marginals(kind):
    K, L, n = 5, 3, 60_000
    q = _q(1, K, seed=7)[0]
    lsr = LateStageRanker(kind, 0.8)
    ranks = lsr.rank(np.broadcast_to(q, (n, K)), L, np.random.default_rng(0))
    assert ranks.shape == (n, L)
    assert (np.sort(ranks, 1)[:, 1:] != np.sort(ranks, 1)[:, :-1]).all()
    marg = lsr.position_marginals(q, L)
    for pos in range(L):
        counts = np.bincount(ranks[:, pos], minlength=K)
        if lsr.stochastic:
            assert chisquare(counts, marg[pos] * n).pvalue > 1e-3
        else:
            np.testing.assert_array_equal(counts, marg[pos] * n)


def test_noisy_rank_is_gumbel_topk_and_noise_can_be_drawn_first():
    q = _q(20, 6, seed=1)
    lsr = LateStageRanker("noisy", 0.7)
    a = lsr.rank(q, 3, np.random.default_rng(4))
    np.testing.assert_array_equal(a, gumbel_topk(q, 3, np.random.default_rng(4), temperature=0.7))
    for kind in LSR_KINDS:
        lsr = LateStageRanker(kind, 0.7)
        b = lsr.rank(q, 3, noise=lsr.draw_noise(20, 6, np.random.default_rng(4)))
        np.testing.assert_array_equal(lsr.rank(q, 3, np.random.default_rng(4)), b)


@pytest.mark.parametrize("kind", LSR_KINDS)
def test_values_do_not_depend_on_batch_or_candidate_order(kind):
    """Bit-identical per row, alone or in a batch, in any column order: envs rely on it."""
    q = _q(9, 7, seed=2)
    lsr = LateStageRanker(kind, 0.9)
    for alpha in (np.ones(1), position_weights("dcg", 3)):
        batch, _ = lsr.expected_reward(q, alpha)
        for i, row in enumerate(q):
            assert lsr.expected_reward(row[None], alpha)[0][0] == batch[i]
            assert lsr.expected_reward(row[::-1][None], alpha)[0][0] == batch[i]


def test_monte_carlo_estimate_beyond_the_exact_limit(monkeypatch):
    q = _q(3, 6, seed=5)
    alpha = position_weights("dcg", 3)
    lsr = LateStageRanker("noisy", 1.0)
    exact, _ = lsr.expected_reward(q, alpha)
    monkeypatch.setattr(late_stage, "EXACT_STATE_LIMIT", 5)
    assert not lsr.is_exact(6, 3) and lsr.is_exact(6, 1)
    with pytest.raises(ValueError, match="rng"):
        lsr.expected_reward(q, alpha)
    estimate, stderr = lsr.expected_reward(q, alpha, np.random.default_rng(0), n_samples=4000)
    assert (stderr > 0).all() and (stderr < 0.05).all()
    assert (np.abs(estimate - exact) < 4 * stderr).all()


def test_dinkelbach_beats_top_k_on_the_constructed_case():
    """{10, 1} beats {10, 2} under the noisy LSR: a weaker runner-up steals the top slot less often."""
    q = np.array([[10.0, 2.0, 1.0]])
    lsr = LateStageRanker("noisy", 1.0)
    best = dinkelbach_sets(q, 2, 1.0)
    np.testing.assert_array_equal(best, [[0, 2]])
    top_value = lsr.expected_reward(q[:, [0, 1]], np.ones(1))[0]
    best_value = lsr.expected_reward(q[:, [0, 2]], np.ones(1))[0]
    assert best_value > top_value
    sets, values, _ = lsr.best_candidate_sets(q, 2, np.ones(1))
    np.testing.assert_array_equal(sets, [[0, 2]])
    assert values[0] == best_value[0]


def _brute_best(lsr: LateStageRanker, q: np.ndarray, K: int, alpha: np.ndarray) -> np.ndarray:
    subsets = np.array(list(itertools.combinations(range(q.shape[1]), K)))
    values = np.stack([lsr.expected_reward(q[:, s], alpha)[0] for s in subsets], axis=1)
    return values.max(axis=1)


@pytest.mark.parametrize("tau", [0.3, 1.0, 3.0])
def test_dinkelbach_equals_brute_force(tau):
    q = 1.0 + 9.0 * np.random.default_rng(int(10 * tau)).random((40, 8))
    lsr = LateStageRanker("noisy", tau)
    for K in (2, 3, 5):
        sets = dinkelbach_sets(q, K, tau)
        assert (np.sort(sets, 1)[:, 1:] != np.sort(sets, 1)[:, :-1]).all()
        value = lsr.expected_reward(np.take_along_axis(q, sets, 1), np.ones(1))[0]
        np.testing.assert_allclose(value, _brute_best(lsr, q, K, np.ones(1)), rtol=1e-13)


@pytest.mark.parametrize("kind", ["optimal", "uniform", "anti-optimal"])
@pytest.mark.parametrize("L", [1, 2, 3])
def test_top_k_is_best_for_the_order_statistic_rankers(kind, L):
    q = 1.0 + 9.0 * np.random.default_rng(L).random((30, 7))
    lsr, alpha = LateStageRanker(kind), position_weights("dcg", L)
    sets, values, stderr = lsr.best_candidate_sets(q, 3, alpha)
    np.testing.assert_array_equal(np.sort(sets, 1), np.sort(np.argsort(-q, 1)[:, :3], 1))
    np.testing.assert_allclose(values, _brute_best(lsr, q, 3, alpha), rtol=1e-13)
    assert (stderr == 0).all()


@pytest.mark.parametrize(
    ("A", "K", "L", "tau", "weights"), [(10, 4, 2, 1.0, "sum"), (12, 5, 3, 0.3, "dcg"), (12, 6, 4, 3.0, "sum")]
)
@pytest.mark.parametrize("dist", ["uniform", "softplus"])
def test_noisy_multi_output_best_set_against_brute_force(A, K, L, tau, weights, dist):
    """The L > 1 family (top-j plus the worst K - j, and the L = 1 optimum) is an approximation; here it is exact."""
    rng = np.random.default_rng(A + K + L)
    q = (
        1.0 + 9.0 * rng.random((60, A))
        if dist == "uniform"
        else 1.0 + np.logaddexp(0, 3.2 * rng.standard_normal((60, A)))
    )
    lsr, alpha = LateStageRanker("noisy", tau), position_weights(weights, L)
    sets, values, _ = lsr.best_candidate_sets(q, K, alpha)
    np.testing.assert_allclose(lsr.expected_reward(np.take_along_axis(q, sets, 1), alpha)[0], values, rtol=0)
    top_value = lsr.expected_reward(-np.sort(-q, 1)[:, :K], alpha)[0]
    assert (values >= top_value).all()
    np.testing.assert_allclose(values, _brute_best(lsr, q, K, alpha), rtol=1e-12)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("best",), "lsr must be one of"),
        (("noisy", 0.0), "lsr_temperature"),
        (("noisy", float("inf")), "lsr_temperature"),
    ],
)
def test_invalid_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        LateStageRanker(*args)
