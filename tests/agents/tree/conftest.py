"""Small synthetic clustered data for the tree learners' tests, built from ``core.tree`` alone."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from twostage_gym.core.tree import ItemTree, build_tree


@dataclass(frozen=True)
class Clustered:
    """Items around planted cluster centres; a context is its target's embedding plus noise."""

    items: np.ndarray
    tree: ItemTree
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def clustered(n_items: int = 256, dim: int = 8, branches: int = 4, noise: float = 0.5, seed: int = 0) -> Clustered:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(16, dim))
    items = centres[rng.integers(0, 16, n_items)] + 0.5 * rng.normal(size=(n_items, dim))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, n_items, n)
        return items[y] + noise * rng.normal(size=(n, dim)), y

    x, y = draw(6000)
    x_test, y_test = draw(1000)
    return Clustered(items, build_tree(items, branches, seed=0), x, y, x_test, y_test)


@pytest.fixture(scope="session")
def data() -> Clustered:
    return clustered()
