"""The linear-bandit building blocks every family shares, batched over B models.

They first served the nominators of Hron et al. (2021, Sec. 3.1 and App. B), whose conventions
they keep:

* :class:`RidgeRegression` keeps Sigma = (lambda d I + sum_i w_i x_i x_i^T)^{-1} by
  Sherman-Morrison rank-one updates (O(d^2) per update, no inverse), for B models at once;
  the regulariser lambda is multiplied by the input dimension d as in Appendix B.
* UCB scores <theta, x> + alpha sqrt(x^T Sigma x); Greedy is alpha = 0.
* The linear softmax policy pi(a) ∝ exp(<theta, x_a>) and its score function, for the
  policy-gradient learner of Appendix B.

The topic-item learners (GLM-UCB and its neural and shared variants) add inverses of design
matrices M = I + sum_s c_s c_s^T kept by rank-one updates, never by inverting M:

* :func:`sherman_morrison_update`: one rank-one update each for many matrices of a stack (a
  per-user or per-item design), repeated indices applied one after another;
* :func:`woodbury_update`: k rank-one updates of one matrix at once (the m served items of a
  round), O(k d^2), in row blocks so that a 4,096-dim design needs no d x d temporary;
* :func:`inverse_norms` (||c||_{M^{-1}} for many c) and :func:`bilinear_width_matrix`, which
  turns ||vec(x z^T)||_{W^{-1}} for a fixed z into x^T K_z x, O(d1^2 d2^2) once a round instead
  of once per candidate.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "RidgeRegression",
    "bilinear_width_matrix",
    "inverse_norms",
    "sherman_morrison_update",
    "softmax_log_prob",
    "softmax_log_prob_grad",
    "softmax_probs",
    "woodbury_update",
]


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


def sherman_morrison_update(inv: np.ndarray, index: np.ndarray, x: np.ndarray, w: np.ndarray | float = 1.0) -> None:
    """In place: ``inv[index[j]] <- (inv[index[j]]^{-1} + w_j x_j x_j^T)^{-1}`` for every row j.

    One rank-one Sherman-Morrison update per row, O(d^2) each, vectorised over the rows. Rows that
    share an index are applied one after another (in waves: every index's first row, then every
    index's second row...), so the result is that of sequential updates in row order.

    Args:
        inv: float64 ``(N, d, d)`` a stack of symmetric positive definite inverses.
        index: int ``(n,)`` which matrix each row updates.
        x: ``(n, d)`` the rows.
        w: ``(n,)`` or scalar weights >= 0.
    """
    index = np.asarray(index, dtype=np.int64).reshape(-1)
    x = np.asarray(x, dtype=np.float64).reshape(index.size, inv.shape[-1])
    w = np.broadcast_to(np.asarray(w, dtype=np.float64), index.shape)
    if index.size == 0:
        return
    # The occurrence number of each row among the rows of its index (0 for the first).
    order = np.argsort(index, kind="stable")
    sorted_index = index[order]
    starts = np.flatnonzero(np.r_[True, sorted_index[1:] != sorted_index[:-1]])
    counts = np.diff(np.r_[starts, index.size])
    occurrence = np.empty(index.size, dtype=np.int64)
    occurrence[order] = np.arange(index.size) - np.repeat(starts, counts)
    for wave in range(int(occurrence.max()) + 1):
        rows = np.flatnonzero(occurrence == wave)  # distinct indices within a wave
        at, xs, ws = index[rows], x[rows], w[rows]
        sx = np.einsum("bij,bj->bi", inv[at], xs)
        denom = 1.0 + ws * np.einsum("bi,bi->b", xs, sx)
        inv[at] -= (ws / denom)[:, None, None] * sx[:, :, None] * sx[:, None, :]


_WOODBURY_BLOCK = 2**21  # entries of a row block of the update (16 MiB of float64)


def woodbury_update(inv: np.ndarray, X: np.ndarray) -> None:
    """In place: ``inv <- (inv^{-1} + X^T X)^{-1}``, k rank-one updates of one matrix at once.

    Woodbury: (M + X^T X)^{-1} = M^{-1} - U^T (I_k + U X^T)^{-1} U with U = X M^{-1}. In exact
    arithmetic this equals k Sherman-Morrison updates, one per row of X; it costs O(k d^2) and a
    k x k solve, and reads the d x d matrix twice whatever k is. The subtraction runs in row
    blocks, so that a large design (d = 4,096: 128 MiB) needs no d x d temporary.

    Args:
        inv: float64 ``(d, d)`` a symmetric positive definite inverse.
        X: ``(k, d)`` the rows to add.
    """
    X = np.asarray(X, dtype=np.float64).reshape(-1, inv.shape[0])
    if X.shape[0] == 0:
        return
    U = X @ inv  # (k, d); inv is symmetric, so this is (inv X^T)^T
    S = np.eye(X.shape[0]) + U @ X.T
    V = np.linalg.solve(S, U)  # (k, d): the k x k system, never a d x d inverse
    d = inv.shape[0]
    step = max(1, _WOODBURY_BLOCK // d)
    for lo in range(0, d, step):
        inv[lo : lo + step] -= U[:, lo : lo + step].T @ V


def inverse_norms(C: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """``||c||_{M^{-1}} = sqrt(c^T M^{-1} c)`` of each row of ``C`` (..., n, d) under ``inv`` (..., d, d)."""
    quad = np.einsum("...nd,...nd->...n", C @ inv, C)
    return np.sqrt(np.maximum(quad, 0.0))


def bilinear_width_matrix(inv: np.ndarray, z: np.ndarray, d1: int) -> np.ndarray:
    """K_z with ``vec(x z^T)^T W^{-1} vec(x z^T) = x^T K_z x`` for every x in R^d1.

    ``vec`` is the row-major flattening (``np.outer(x, z).ravel()``, i.e. ``np.kron(x, z)``), so
    K_z[a, b] = sum_{j, l} z_j W^{-1}[(a, j), (b, l)] z_l. It costs O(d1^2 d2^2) once, after which
    each candidate's width is O(d1^2) instead of O(d1^2 d2^2).

    Args:
        inv: ``(d1 d2, d1 d2)`` the design's inverse W^{-1}.
        z: ``(d2,)`` the user representation.
        d1: the item representation's dimension.

    Returns:
        float64 ``(d1, d1)``, symmetric.
    """
    z = np.asarray(z, dtype=np.float64)
    d2 = z.size
    blocks = inv.reshape(d1, d2, d1, d2)
    half = np.tensordot(blocks, z, axes=([3], [0]))  # (d1, d2, d1)
    return np.tensordot(z, half, axes=([0], [1]))  # (d1, d1)
