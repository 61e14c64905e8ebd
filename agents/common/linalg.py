"""The linear-bandit building blocks every family shares, batched over B models.

They first served the nominators of Hron et al. (2021, Sec. 3.1 and App. B), whose conventions
they keep:

* :class:`RidgeRegression` keeps Sigma = (lambda d I + sum_i w_i x_i x_i^T)^{-1} by
  Sherman-Morrison rank-one updates (O(d^2) per update, no inverse), for B models at once;
  the regulariser lambda is multiplied by the input dimension d as in Appendix B.
* UCB scores <theta, x> + alpha sqrt(x^T Sigma x); Greedy is alpha = 0.
* The linear softmax policy pi(a) ∝ exp(<theta, x_a>) and its score function, for the
  policy-gradient learner of Appendix B.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RidgeRegression", "softmax_log_prob", "softmax_log_prob_grad", "softmax_probs"]


class RidgeRegression:
    """B independent ridge regressions in dimension ``dim``, updated by Sherman-Morrison.

    Args:
        n_models: B.
        dim: input dimension d.
        lam: lambda before scaling; the regulariser is ``lam * dim``.
    """

    def __init__(self, n_models: int, dim: int, lam: float) -> None:
        self.n_models, self.dim, self.lam = n_models, dim, lam
        self.reset()

    def reset(self) -> None:
        """Back to the prior: Sigma = I / (lambda d), theta = 0."""
        reg = self.lam * self.dim
        self.cov = np.broadcast_to(np.eye(self.dim) / reg, (self.n_models, self.dim, self.dim)).copy()
        self.b = np.zeros((self.n_models, self.dim))
        self.theta = np.zeros((self.n_models, self.dim))

    def update(self, x: np.ndarray, r: np.ndarray | float, w: np.ndarray | float = 1.0) -> None:
        """Add one observation per model: features ``x`` (B, d), reward ``r``, weight ``w`` >= 0."""
        x = np.asarray(x, dtype=np.float64).reshape(self.n_models, self.dim)
        w = np.broadcast_to(np.asarray(w, dtype=np.float64), (self.n_models,))
        sx = np.einsum("bij,bj->bi", self.cov, x)
        denom = 1.0 + w * np.einsum("bi,bi->b", x, sx)
        self.cov -= (w / denom)[:, None, None] * sx[:, :, None] * sx[:, None, :]
        self.b += (w * np.asarray(r, dtype=np.float64))[..., None] * x
        self.theta = np.einsum("bij,bj->bi", self.cov, self.b)

    def mean(self, X: np.ndarray) -> np.ndarray:
        """Predicted reward <theta_b, x> for features ``X`` (B, M, d) -> (B, M)."""
        return np.einsum("bmd,bd->bm", X, self.theta)

    def width(self, X: np.ndarray) -> np.ndarray:
        """Confidence width sqrt(x^T Sigma_b x) for ``X`` (B, M, d) -> (B, M)."""
        quad = np.einsum("bmd,bmd->bm", X @ self.cov, X)
        return np.sqrt(np.maximum(quad, 0.0))

    def ucb(self, X: np.ndarray, alpha: float) -> np.ndarray:
        """UCB scores <theta, x> + alpha sqrt(x^T Sigma x); the plain mean when ``alpha == 0``."""
        scores = self.mean(X)
        if alpha:
            scores = scores + alpha * self.width(X)
        return scores


def softmax_probs(logits: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Row-wise softmax over the last axis; entries where ``mask`` is False get probability 0."""
    if mask is not None:
        logits = np.where(mask, logits, -np.inf)
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def softmax_log_prob(theta: np.ndarray, X: np.ndarray, a: int) -> float:
    """log pi(a) = <theta, x_a> - log sum_a' exp(<theta, x_a'>) for one context ``X`` (M, d)."""
    logits = X @ theta
    m = logits.max()
    return float(logits[a] - m - np.log(np.exp(logits - m).sum()))


def softmax_log_prob_grad(theta: np.ndarray, X: np.ndarray, a: int) -> np.ndarray:
    """Gradient of :func:`softmax_log_prob` in theta: x_a - E_pi[x]."""
    return X[a] - softmax_probs(X @ theta) @ X
