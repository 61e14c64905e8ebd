"""The linear building blocks against their formulas."""

from __future__ import annotations

import numpy as np
import pytest

from agents.common.linalg import RidgeRegression, softmax_log_prob, softmax_log_prob_grad, softmax_probs


def test_sherman_morrison_equals_direct_inverse_after_500_updates():
    rng = np.random.default_rng(0)
    B, d, lam = 3, 8, 1e-2
    ridge = RidgeRegression(B, d, lam)
    gram = np.broadcast_to(lam * d * np.eye(d), (B, d, d)).copy()
    xy = np.zeros((B, d))
    for _ in range(500):
        x, r, w = rng.standard_normal((B, d)), rng.standard_normal(B), rng.integers(0, 2, B).astype(float)
        ridge.update(x, r, w)
        gram += w[:, None, None] * x[:, :, None] * x[:, None, :]
        xy += (w * r)[:, None] * x
    np.testing.assert_allclose(ridge.cov, np.linalg.inv(gram), rtol=0, atol=1e-8)
    np.testing.assert_allclose(ridge.theta, np.linalg.solve(gram, xy[..., None])[..., 0], rtol=0, atol=1e-8)


def test_regulariser_is_scaled_by_dimension():
    ridge = RidgeRegression(1, 10, 0.5)
    np.testing.assert_allclose(ridge.cov[0], np.eye(10) / 5.0)


def test_ucb_score_equals_its_formula():
    rng = np.random.default_rng(1)
    ridge = RidgeRegression(2, 5, 1e-2)
    for _ in range(30):
        ridge.update(rng.standard_normal((2, 5)), rng.standard_normal(2))
    X = rng.standard_normal((2, 7, 5))
    alpha = 0.7
    expected = np.empty((2, 7))
    for b in range(2):
        for m in range(7):
            x = X[b, m]
            expected[b, m] = ridge.theta[b] @ x + alpha * np.sqrt(x @ ridge.cov[b] @ x)
    np.testing.assert_allclose(ridge.ucb(X, alpha), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ridge.ucb(X, 0.0), np.einsum("bmd,bd->bm", X, ridge.theta))  # Greedy


def test_zero_weight_update_changes_nothing():
    ridge = RidgeRegression(2, 3, 1.0)
    ridge.update(np.ones((2, 3)), 1.0, np.array([1.0, 0.0]))
    np.testing.assert_array_equal(ridge.cov[1], np.eye(3) / 3.0)
    assert not np.allclose(ridge.cov[0], np.eye(3) / 3.0)


def test_pg_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    X, theta, a, eps = rng.standard_normal((6, 4)), rng.standard_normal(4), 3, 1e-6
    numeric = np.array(
        [
            (softmax_log_prob(theta + eps * e, X, a) - softmax_log_prob(theta - eps * e, X, a)) / (2 * eps)
            for e in np.eye(4)
        ]
    )
    np.testing.assert_allclose(softmax_log_prob_grad(theta, X, a), numeric, rtol=1e-6, atol=1e-8)


def test_softmax_probs_mask_and_normalisation():
    p = softmax_probs(np.array([[1.0, 2.0, 3.0]]), np.array([[True, False, True]]))
    assert p[0, 1] == 0.0
    assert p.sum() == pytest.approx(1.0)
    assert p[0, 2] / p[0, 0] == pytest.approx(np.e**2)
