"""The generalised linear UCB heads of the topic-item paper (Eqs. 2-4, Table 3), in numpy.

Every head predicts a click probability rho(logit) with rho the sigmoid, and a confidence width
from the inverse of a design matrix kept by rank-one updates (:mod:`agents.common.linalg`); its
UCB score is Eq. 1, ``rho(logit) + beta * width``. Coefficients are learned by gradient descent on
the logistic loss, one step per round on the round's m samples (learning rate ``lr``; the paper
trains its GLMs "by gradient descent" every iteration, lr 1e-2, bilinear 1e-3). When the
representations under a head change (an encoder was retrained), the per-user head is refitted on
the history (:func:`fit_logistic`) and the shared heads restart at the towers' prediction
(:mod:`agents.topic_item.neural`).

* :class:`PerUserGLM`: GLM-UCB and N-GLM-UCB (Eq. 2): theta_u per user, M_u = D_u^T D_u + I.
* :class:`AdditiveGLM`: S-N-GALM-UCB (Eq. 3): shared theta_x, theta_z; the item side's design is
  per user (the items the user was shown), the user side's per arm (the users it was shown to).
* :class:`BilinearGLM`: S-N-GBLM-UCB (Eq. 4): a shared Theta on vec(x z^T), W_0 = I, W^{-1} kept
  by rank-one (Woodbury) updates, never inverted: O((d1 d2)^2) per round, not O((d1 d2)^3).

Design matrices hold the representations of the rounds they were added in: they are never
rebuilt when an encoder changes (rebuilding the 4,096-dim W would be an inverse per retrain).
"""

from __future__ import annotations

import numpy as np

from agents.common.linalg import bilinear_width_matrix, inverse_norms, sherman_morrison_update, woodbury_update

__all__ = ["AdditiveGLM", "BilinearGLM", "LazyInverses", "PerUserGLM", "fit_logistic", "sigmoid"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """rho(x) = 1 / (1 + exp(-x)), without overflow warnings."""
    return np.exp(-np.logaddexp(0.0, -x))


def fit_logistic(params: list[np.ndarray], grad, steps: int, lr: float) -> None:
    """``steps`` Adam steps (in place) on a loss whose gradient ``grad(params)`` returns, one array per param."""
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, steps + 1):
        for p, g, mi, vi in zip(params, grad(params), m, v, strict=True):
            mi *= b1
            mi += (1 - b1) * g
            vi *= b2
            vi += (1 - b2) * g * g
            p -= lr * (mi / (1 - b1**t)) / (np.sqrt(vi / (1 - b2**t)) + eps)


class LazyInverses:
    """Inverses of designs I + sum c c^T for ``n`` entities, stored only for entities that have data.

    An entity without data has the identity as its inverse, so a per-item design over a catalog
    of 10^6 items costs memory only for the items shown so far.

    Args:
        n: the number of entities (users, items or topics).
        dim: the design's dimension.
    """

    def __init__(self, n: int, dim: int) -> None:
        self.dim = dim
        self.slot = np.full(n, -1, dtype=np.int64)
        self.store = np.empty((0, dim, dim))
        self.used = 0

    def norms(self, ids: np.ndarray, C: np.ndarray) -> np.ndarray:
        """``||C[j]||_{A_{ids[j]}^{-1}}`` for each row j (``ids`` (n,), ``C`` (n, dim))."""
        out = np.sqrt(np.einsum("nd,nd->n", C, C))  # the identity: entities without data
        slots = self.slot[ids]
        seen = np.flatnonzero(slots >= 0)
        if seen.size:
            out[seen] = inverse_norms(C[seen, None, :], self.store[slots[seen]])[:, 0]
        return out

    def norms_one(self, entity: int, C: np.ndarray) -> np.ndarray:
        """``||C[j]||_{A_entity^{-1}}`` for each row of ``C`` under one entity's design."""
        s = self.slot[entity]
        if s < 0:
            return np.sqrt(np.einsum("nd,nd->n", C, C))
        return inverse_norms(C, self.store[s])

    def add(self, ids: np.ndarray, C: np.ndarray) -> None:
        """A_{ids[j]} += C[j] C[j]^T for each row j (Sherman-Morrison on the inverses)."""
        new = np.unique(ids[self.slot[ids] < 0])
        if new.size:
            if self.used + new.size > self.store.shape[0]:  # grow by doubling: amortised O(1) a slot
                grown = np.empty((max(2 * self.store.shape[0], self.used + new.size, 8), self.dim, self.dim))
                grown[: self.used] = self.store[: self.used]
                self.store = grown
            self.slot[new] = np.arange(self.used, self.used + new.size)
            self.store[self.used : self.used + new.size] = np.eye(self.dim)
            self.used += new.size
        sherman_morrison_update(self.store, self.slot[ids], C)

    def matrix(self, entity: int) -> np.ndarray:
        """A_entity^{-1} (a copy; the identity for an entity without data)."""
        s = self.slot[entity]
        return np.eye(self.dim) if s < 0 else self.store[s].copy()

    def state_dict(self) -> dict[str, np.ndarray]:
        """The stored inverses and each entity's slot (copies)."""
        return {"slot": self.slot.copy(), "store": self.store[: self.used].copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned (same ``n`` and ``dim``)."""
        slot, store = np.asarray(state["slot"], dtype=np.int64), np.asarray(state["store"], dtype=np.float64)
        _check_shape("slot", slot, self.slot.shape)
        _check_shape("store", store, (len(store), self.dim, self.dim))
        self.slot, self.store, self.used = slot.copy(), store.copy(), len(store)


def _check_shape(name: str, value: np.ndarray, shape: tuple[int, ...]) -> None:
    if value.shape != shape:
        raise ValueError(f"the state's {name} has shape {value.shape}, this head's {shape}")


class PerUserGLM:
    """GLM-UCB (Eq. 2): rho(c^T theta_u) + beta ||c||_{M_u^{-1}}, M_u = D_u^T D_u + I, per user u.

    Args:
        n_users: users with their own theta_u and M_u.
        dim: the context's dimension (features and the bias 1).
        lr: the online gradient step's learning rate.
    """

    def __init__(self, n_users: int, dim: int, lr: float) -> None:
        self.lr = lr
        self.theta = np.zeros((n_users, dim))
        self.designs = LazyInverses(n_users, dim)

    def mean_width(self, user: int, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The predicted click rho(c^T theta_u) and the width ||c||_{M_u^{-1}} of each row of ``C`` (n, dim)."""
        return sigmoid(C @ self.theta[user]), self.designs.norms_one(user, C)

    def learn(self, user: int, C: np.ndarray, y: np.ndarray) -> None:
        """M_u += C^T C; one gradient step of theta_u on the round's logistic loss."""
        self.theta[user] += self.lr * (y - sigmoid(C @ self.theta[user])) @ C
        self.designs.add(np.full(len(C), user), C)

    def state_dict(self) -> dict[str, object]:
        """theta (a copy) and the designs' inverses."""
        return {"theta": self.theta.copy(), "designs": self.designs.state_dict()}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore what :meth:`state_dict` returned."""
        theta = np.asarray(state["theta"], dtype=np.float64)
        _check_shape("theta", theta, self.theta.shape)
        self.designs.load_state_dict(state["designs"])
        self.theta = theta.copy()

    def refit(self, users: np.ndarray, C: np.ndarray, y: np.ndarray, steps: int) -> None:
        """Refit every theta_u on its history (rows ``C`` of ``users`` with clicks ``y``)."""
        if steps == 0 or users.size == 0:
            return

        def grad(params: list[np.ndarray]) -> list[np.ndarray]:
            (theta,) = params
            err = sigmoid(np.einsum("nd,nd->n", C, theta[users])) - y
            g = np.zeros_like(theta)
            np.add.at(g, users, err[:, None] * C)
            return [g / users.size]

        fit_logistic([self.theta], grad, steps, self.lr)


class AdditiveGLM:
    """S-N-GALM-UCB (Eq. 3): rho(gamma x^T theta_x + (1 - gamma) theta_z^T z)
    + beta (gamma ||x||_{A^{-1}} + (1 - gamma) ||z||_{A'^{-1}}).

    A (the item side) is per user: I + the item contexts that user was shown; A' (the user side)
    is per arm: I + the user contexts it was shown to (Sec. 3.3's reading of D_i and D_u).

    Args:
        n_users, n_arms: the entities of the two designs.
        dim_x, dim_z: the item (or topic) and user contexts' dimensions.
        gamma: the weight of the item side, in [0, 1].
        lr: the online gradient step's learning rate.
    """

    def __init__(self, n_users: int, n_arms: int, dim_x: int, dim_z: int, gamma: float, lr: float) -> None:
        self.gamma, self.lr = gamma, lr
        self.theta_x, self.theta_z = np.zeros(dim_x), np.zeros(dim_z)
        self.item_side = LazyInverses(n_users, dim_x)
        self.user_side = LazyInverses(n_arms, dim_z)

    def restart(self, theta_x: np.ndarray) -> None:
        """Coefficients back to ``theta_x`` (item side) and 0 (user side); the designs are kept."""
        self.theta_x[:] = theta_x
        self.theta_z[:] = 0.0

    def _logit(self, X: np.ndarray, Z: np.ndarray) -> np.ndarray:
        return self.gamma * (X @ self.theta_x) + (1.0 - self.gamma) * (Z @ self.theta_z)

    def mean_width(self, user: int, arms: np.ndarray, X: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted clicks and widths of ``arms`` with contexts ``X`` (n, dim_x) for a user with context ``z``."""
        mean = sigmoid(self._logit(X, z[None, :]))
        item_width = self.item_side.norms_one(user, X)
        user_width = self.user_side.norms(arms, np.broadcast_to(z, (arms.size, z.size)))
        return mean, self.gamma * item_width + (1.0 - self.gamma) * user_width

    def learn(self, user: int, arms: np.ndarray, X: np.ndarray, z: np.ndarray, y: np.ndarray) -> None:
        err = y - sigmoid(self._logit(X, z[None, :]))
        self.theta_x += self.lr * self.gamma * err @ X
        self.theta_z += self.lr * (1.0 - self.gamma) * err.sum() * z
        self.item_side.add(np.full(len(X), user), X)
        self.user_side.add(arms, np.broadcast_to(z, (arms.size, z.size)))

    def state_dict(self) -> dict[str, object]:
        """The coefficients (copies) and both sides' design inverses."""
        return {
            "theta_x": self.theta_x.copy(),
            "theta_z": self.theta_z.copy(),
            "item_side": self.item_side.state_dict(),
            "user_side": self.user_side.state_dict(),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore what :meth:`state_dict` returned."""
        theta_x = np.asarray(state["theta_x"], dtype=np.float64)
        theta_z = np.asarray(state["theta_z"], dtype=np.float64)
        _check_shape("theta_x", theta_x, self.theta_x.shape)
        _check_shape("theta_z", theta_z, self.theta_z.shape)
        self.item_side.load_state_dict(state["item_side"])
        self.user_side.load_state_dict(state["user_side"])
        self.theta_x, self.theta_z = theta_x.copy(), theta_z.copy()


class BilinearGLM:
    """S-N-GBLM-UCB (Eq. 4): rho(x^T Theta z + b) + beta ||vec(x z^T)||_{W^{-1}}, W_0 = I, shared by all pairs.

    The scalar offset b (Table 3's bias) is learned with Theta but stays out of the design, so
    that W is d1 d2 x d1 d2 (4,096 at 64-dim representations).

    W^{-1} (d1 d2 x d1 d2) is kept by Woodbury updates with the round's m rows vec(x_s z^T): O(m
    (d1 d2)^2) a round, no inverse. A candidate's width is x^T K_z x with K_z contracted from W^{-1}
    once a round (:func:`agents.common.linalg.bilinear_width_matrix`), so a round costs
    O((d1 d2)^2 + n d1^2) for n candidates. At the paper's 64-dim embeddings W^{-1} holds 4,096^2
    float64 (128 MiB).

    Args:
        dim_x, dim_z: d1 and d2.
        lr: the online gradient step's learning rate (1e-3 in the paper).
        theta0: the initial Theta (d1, d2); the identity makes the head start as the two towers'
            own dot product x^T z.
    """

    def __init__(self, dim_x: int, dim_z: int, lr: float, theta0: np.ndarray | None = None) -> None:
        self.dim_x, self.dim_z, self.lr = dim_x, dim_z, lr
        self.theta0 = np.zeros((dim_x, dim_z)) if theta0 is None else np.array(theta0, dtype=np.float64)
        self.theta = self.theta0.copy()
        self.bias = np.zeros(1)
        self.inv = np.eye(dim_x * dim_z)

    def restart(self, bias: float = 0.0) -> None:
        """Theta back to theta0 and b to ``bias``; W^{-1} is kept."""
        self.theta[:] = self.theta0
        self.bias[:] = bias

    def mean_width(self, X: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = sigmoid(X @ (self.theta @ z) + self.bias)
        K = bilinear_width_matrix(self.inv, z, self.dim_x)
        quad = np.einsum("nd,nd->n", X @ K, X)
        return mean, np.sqrt(np.maximum(quad, 0.0))

    def learn(self, X: np.ndarray, z: np.ndarray, y: np.ndarray) -> None:
        err = y - sigmoid(X @ (self.theta @ z) + self.bias)
        self.theta += self.lr * np.outer(err @ X, z)
        self.bias += self.lr * err.sum()
        woodbury_update(self.inv, (X[:, :, None] * z[None, None, :]).reshape(len(X), -1))

    def state_dict(self) -> dict[str, np.ndarray]:
        """theta0, Theta, b and W^{-1} (copies)."""
        return {
            "theta0": self.theta0.copy(),
            "theta": self.theta.copy(),
            "bias": self.bias.copy(),
            "inv": self.inv.copy(),
        }

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned."""
        arrays = {key: np.asarray(state[key], dtype=np.float64) for key in ("theta0", "theta", "bias", "inv")}
        for key, value in arrays.items():
            _check_shape(key, value, getattr(self, key).shape)
        for key, value in arrays.items():
            setattr(self, key, value.copy())
