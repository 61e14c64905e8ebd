"""Context generators: the per-round item feature matrix X_t (|A| x d) that users bring.

A generator draws from the generator it is given and nothing else, so an environment can
keep contexts on a stream of their own (common random numbers across agents).
"""

from __future__ import annotations

import numpy as np

from twostage_gym.core.prop2 import PROP2_BANDIT_X

__all__ = ["GaussianContexts", "Prop2Contexts"]


class GaussianContexts:
    """x_{t,a} ~ N(0, I_d) independently for every item and round (Hron et al. 2021, Sec. 3.1).

    Draws are float32: that is the observation dtype, and numpy's float32 normal sampler is
    about twice as fast as the float64 one at |A| = 10,000, d = 80.
    """

    def __init__(self, n_items: int, dim: int) -> None:
        self.n_items = n_items
        self.dim = dim

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """Return a fresh ``(n_items, dim)`` float32 context."""
        return rng.standard_normal((self.n_items, self.dim), dtype=np.float32)


class Prop2Contexts:
    """Uniform draws from {X_(1), ..., X_(4)}: X of Eq. 6 with all rows but the j-th zeroed.

    Used by the Proposition 2 (bandit part) environments; under X_(j) the optimal item is a_(j).
    """

    n_items = 4
    dim = 4

    def __init__(self) -> None:
        # The four possible contexts, precomputed so a draw is one integer and one copy.
        self._table = np.zeros((4, 4, 4), dtype=np.float32)
        for j in range(4):
            self._table[j, j] = PROP2_BANDIT_X[j]

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """Return X_(j) for j drawn uniformly from {1, ..., 4}, as a ``(4, 4)`` float32 array."""
        return self._table[rng.integers(4)].copy()
