"""The D-optimal design solver: the Kiefer-Wolfowitz identity, the regularised optimality
condition, agreement with a general convex solver, and refused input."""

from __future__ import annotations

import numpy as np
import pytest

from agents.selection.design import d_optimal_design, design_gradient, log_det_information
from agents.selection.staged import design_probabilities

SIZES = [(6, 6), (20, 6), (60, 10), (200, 20), (500, 30)]


def features(k: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((k, d))


@pytest.mark.parametrize(("k", "d"), SIZES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kiefer_wolfowitz_identity_at_the_optimum(k, d, seed):
    Phi = features(k, d, seed)
    eps = 1e-4
    result = d_optimal_design(Phi, eps=eps)
    assert result.converged
    assert result.pi.min() >= 0.0 and result.pi.sum() == pytest.approx(1.0, abs=1e-12)
    # sum_a pi(a) g_a = tr(M^{-1} M) = d, and at the optimum max_a g_a = d (G-optimality).
    g = design_gradient(Phi, result.pi)
    assert result.pi @ g == pytest.approx(d, rel=1e-9)
    assert d * (1 - 1e-9) <= g.max() <= d * (1 + eps) * (1 + 1e-9)
    np.testing.assert_allclose(result.gradient, g, rtol=1e-8)
    # On the support every arm is (nearly) on the ellipsoid's boundary: g_a close to d.
    support = result.pi > 1e-3
    assert g[support].min() >= d * (1 - 0.05)


@pytest.mark.parametrize(("k", "d"), [(4, 6), (4, 30), (10, 40), (30, 60)])
@pytest.mark.parametrize("seed", [0, 1])
def test_regularised_design_meets_the_general_equivalence_theorem(k, d, seed):
    rng = np.random.default_rng(seed)
    Phi = rng.standard_normal((k, d))
    B = rng.standard_normal((d, 2 * d)) / np.sqrt(2 * d)
    prior = 0.5 * B @ B.T + 0.1 * np.eye(d)
    with pytest.raises(ValueError, match="rank-deficient"):
        d_optimal_design(Phi)  # k < d: only the regularised design is defined
    eps = 1e-6
    result = d_optimal_design(Phi, prior=prior, eps=eps)
    g = design_gradient(Phi, result.pi, prior)
    # pi is optimal iff max_a g_a <= sum_a pi(a) g_a (Kiefer 1974's equivalence theorem, with A).
    assert g.max() <= (1 + eps) * (result.pi @ g) * (1 + 1e-9)
    assert result.gap <= eps
    # ... and no feasible move improves log det by more than the certificate's gap allows.
    best = log_det_information(Phi, result.pi, prior)
    bound = result.max_gradient - result.mean_gradient
    for _ in range(200):
        other = rng.dirichlet(np.full(k, 0.5))
        assert log_det_information(Phi, other, prior) <= best + bound + 1e-12


def test_the_k_dimensional_form_gives_the_same_design():
    rng = np.random.default_rng(3)
    Phi = rng.standard_normal((4, 25))
    prior = np.eye(25) * 2.0 + 0.3 * np.outer(Phi[0], Phi[0])
    direct = d_optimal_design(Phi, prior=prior, eps=1e-8)
    reduced = design_probabilities(Phi, np.linalg.inv(prior), eps=1e-8)
    np.testing.assert_allclose(reduced, direct.pi, atol=1e-4)
    assert log_det_information(Phi, reduced, prior) == pytest.approx(direct.log_det, abs=1e-8)


@pytest.mark.parametrize(("k", "d", "with_prior"), [(8, 3, False), (30, 5, False), (4, 6, True), (12, 8, True)])
def test_agrees_with_cvxpy(k, d, with_prior):
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(k + d)
    Phi = rng.standard_normal((k, d))
    prior = np.eye(d) * 0.5 if with_prior else None
    eps = 1e-6
    ours = d_optimal_design(Phi, prior=prior, eps=eps)
    pi = cp.Variable(k, nonneg=True)
    M = Phi.T @ cp.diag(pi) @ Phi
    problem = cp.Problem(cp.Maximize(cp.log_det(M + prior if with_prior else M)), [cp.sum(pi) == 1])
    problem.solve(solver=cp.CLARABEL)
    theirs = log_det_information(Phi, np.clip(pi.value, 0, None) / np.clip(pi.value, 0, None).sum(), prior)
    # Ours is within its certificate of the optimum, and the interior-point optimum within 1e-5 of ours.
    assert ours.log_det >= theirs - 1e-5
    assert ours.log_det <= theirs + (ours.max_gradient - ours.mean_gradient) + 1e-6


def test_no_underflow_in_high_dimension():
    # det M ~ 1e-200 at d = 100 with small features: det() gives 0, slogdet does not.
    Phi = features(300, 100, 0) * 1e-2
    result = d_optimal_design(Phi)
    assert np.linalg.det(Phi.T @ (result.pi[:, None] * Phi)) == 0.0
    assert np.isfinite(result.log_det) and result.converged
    assert result.max_gradient <= 100 * 1.01 * (1 + 1e-9)


def test_deterministic():
    Phi = features(150, 12, 4)
    a, b = d_optimal_design(Phi), d_optimal_design(Phi)
    np.testing.assert_array_equal(a.pi, b.pi)
    assert a.iterations == b.iterations


def test_max_iter_reports_not_converged():
    result = d_optimal_design(features(500, 30, 0), eps=1e-6, max_iter=3)
    assert not result.converged and result.iterations == 3 and result.gap > 1e-6


def test_rank_deficient_phi_is_refused():
    Phi = features(50, 5, 0)
    Phi[:, 4] = Phi[:, 0] + Phi[:, 1]  # a redundant feature
    with pytest.raises(ValueError, match=r"rank-deficient \(rank 4 < d = 5"):
        d_optimal_design(Phi)
    with pytest.raises(ValueError, match="rank-deficient"):
        d_optimal_design(np.zeros((10, 3)))
    # A prior that fills the missing direction makes the design defined again.
    assert d_optimal_design(Phi, prior=np.eye(5) * 0.1).converged
    with pytest.raises(ValueError, match="together are rank-deficient"):
        d_optimal_design(Phi, prior=np.zeros((5, 5)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"Phi": np.ones(5)}, "Phi must be a"),
        ({"Phi": [[1.0, np.nan], [0.0, 1.0]]}, "Phi must be finite"),
        ({"Phi": "ab"}, "Phi must be a"),
        ({"prior": np.eye(3)}, r"prior must be a \(2, 2\)"),
        ({"prior": [[1.0, 0.5], [0.0, 1.0]]}, "prior must be symmetric"),
        ({"prior": -np.eye(2)}, "prior must be positive semi-definite"),
        ({"prior": [[np.inf, 0.0], [0.0, 1.0]]}, "prior must be finite"),
        ({"eps": 0.0}, "eps must be"),
        ({"eps": True}, "eps must be"),
        ({"max_iter": 0}, "max_iter must be"),
        ({"max_iter": 2.0}, "max_iter must be"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, match):
    args = {"Phi": np.eye(2)} | kwargs
    with pytest.raises(ValueError, match=match):
        d_optimal_design(**args)
