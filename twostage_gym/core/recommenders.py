"""Candidate recommenders for recommender selection (Xu et al. 2021, Sec. 5, "Candidate recommenders").

Four classical top-N recommenders learn from a users x items matrix of known positives
(1 where the user rated the item at or above the positive threshold, 0 elsewhere):

* ``"popularity"``: an item's number of positives relative to the most popular item's;
* ``"item-cf"``: item-based collaborative filtering with cosine similarity between the items'
  columns; a user's score of an item is the sum of its similarities to the user's positives;
* ``"user-cf"``: user-based collaborative filtering with cosine similarity between the users'
  rows and the ``n_neighbors`` (30) most similar users; a user's score of an item is the
  similarity-weighted count of the neighbours' positives;
* ``"mf"``: matrix factorisation, a rank-``rank`` truncated SVD of the matrix ("PureSVD").

Each has ``fit(matrix)`` and ``scores(users)``, vectorised over users and items. ``fit`` computes
the whole users x items score table once, so that a request's proposal is one masked argmax over
a precomputed row.

Everything is dense numpy, on purpose: the suite's environments may import only numpy and
gymnasium, and at MovieLens-100K scale (943 x 1,682) a dense table is 12 MiB in float64, where one
BLAS matrix product computes the item-item similarities in a fraction of a second. SciPy sparse
matrices would pay off only for catalogs far larger than the ones these worlds use; the
``memory_parts`` estimate of the environment refuses sizes the dense tables cannot hold. The
truncated SVD is :func:`twostage_gym.datasets.movielens.fit_low_rank` (numpy's randomised
subspace iteration), seeded, so a fit is deterministic.

Ties (e.g. items that no neighbour rated) go to the more popular item, then to the lower item id:
every score carries ``TIE_BREAK`` times the item's popularity share, far below any real score gap.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from twostage_gym.core.checks import positive_int
from twostage_gym.datasets.movielens import fit_low_rank

__all__ = [
    "RECOMMENDERS",
    "TIE_BREAK",
    "ItemCF",
    "MatrixFactorization",
    "Popularity",
    "Recommender",
    "UserCF",
    "check_matrix",
    "fit_tables",
    "make_recommender",
]

RECOMMENDERS = ("popularity", "item-cf", "user-cf", "mf")
"""The candidates' names, in the paper's list order (popularity, item-based CF, user-based CF, MF)."""

TIE_BREAK = 1e-9
"""Weight of the popularity share (in [0, 1]) added to every score to break ties."""


def check_matrix(matrix: Any, name: str = "matrix") -> np.ndarray:
    """A 2-D array of finite non-negative reals with at least one row and one column, as float64.

    Raises:
        ValueError: naming ``name``.
    """
    m = np.asarray(matrix)
    if m.ndim != 2 or 0 in m.shape:
        raise ValueError(f"{name} must be a non-empty 2-D (users, items) array, got shape {m.shape}")
    if m.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {m.dtype}")
    m = m.astype(np.float64, copy=False)
    if not np.isfinite(m).all() or (m < 0).any():
        raise ValueError(f"{name} must hold finite non-negative values (1 for a known positive)")
    return m


class Recommender(ABC):
    """Base class: ``fit`` stores the score table, ``scores`` reads rows of it."""

    name = ""

    def __init__(self) -> None:
        self._table: np.ndarray | None = None

    @property
    def fitted(self) -> bool:
        return self._table is not None

    def fit(self, matrix: Any) -> Recommender:
        """Learn from ``matrix`` (users x items, 1 for a known positive) and compute every score.

        Returns:
            self.

        Raises:
            ValueError: naming ``matrix`` when it is not a non-empty 2-D finite non-negative array.
        """
        m = check_matrix(matrix)
        popularity = m.sum(axis=0)
        share = popularity / popularity.max() if popularity.max() > 0 else popularity
        table = self._raw_scores(m, share)
        table += TIE_BREAK * share  # broadcast over users
        self._table = table
        return self

    @abstractmethod
    def _raw_scores(self, matrix: np.ndarray, share: np.ndarray) -> np.ndarray:
        """Every user's score of every item, ``(users, items)``, before the popularity tie-break."""

    @property
    def n_users(self) -> int:
        return int(self._require().shape[0])

    @property
    def n_items(self) -> int:
        return int(self._require().shape[1])

    def _require(self) -> np.ndarray:
        if self._table is None:
            raise RuntimeError(f"the {self.name!r} recommender is not fitted; call fit(matrix) first")
        return self._table

    def scores(self, users: Any) -> np.ndarray:
        """float64 ``(len(users), n_items)``: the scores of ``users`` (int ids) for every item.

        Raises:
            ValueError: ``users`` not integer ids of the fitted matrix's rows.
        """
        table = self._require()
        u = np.asarray(users)
        if u.dtype.kind not in "iu" or u.ndim != 1:
            raise ValueError(f"users must be a 1-D array of integer user ids, got dtype {u.dtype}, shape {u.shape}")
        if u.size and (u.min() < 0 or u.max() >= table.shape[0]):
            raise ValueError(f"users must be in [0, {table.shape[0]}), got {u.min()}..{u.max()}")
        return table[u]

    def table(self) -> np.ndarray:
        """The whole float64 ``(n_users, n_items)`` score table (read-only view)."""
        view = self._require().view()
        view.flags.writeable = False
        return view


class Popularity(Recommender):
    """Relative popularity: positives per item over the most popular item's (the same for all users)."""

    name = "popularity"

    def _raw_scores(self, matrix: np.ndarray, share: np.ndarray) -> np.ndarray:
        return np.repeat(share[None, :], matrix.shape[0], axis=0)


def _unit_columns(matrix: np.ndarray) -> np.ndarray:
    """Columns scaled to unit Euclidean norm; all-zero columns stay zero."""
    norms = np.sqrt(np.einsum("ij,ij->j", matrix, matrix))
    return matrix / np.where(norms > 0, norms, 1.0)


class ItemCF(Recommender):
    """Item-based CF: cosine similarity of item columns, score(u, i) = sum_j in P(u) sim(i, j)."""

    name = "item-cf"

    def _raw_scores(self, matrix: np.ndarray, share: np.ndarray) -> np.ndarray:
        # float32 products: twice the BLAS speed, and the scores only need to be ordered.
        x = matrix.astype(np.float32)
        unit = _unit_columns(x)
        similarity = unit.T @ unit
        np.fill_diagonal(similarity, 0.0)  # an item is no evidence for itself
        return (x @ similarity).astype(np.float64)


class UserCF(Recommender):
    """User-based CF with the ``n_neighbors`` most cosine-similar users (the paper's 30)."""

    name = "user-cf"

    def __init__(self, n_neighbors: int = 30) -> None:
        super().__init__()
        self.n_neighbors = positive_int("n_neighbors", n_neighbors)

    def _raw_scores(self, matrix: np.ndarray, share: np.ndarray) -> np.ndarray:
        x = matrix.astype(np.float32)
        n_users = x.shape[0]
        n = min(self.n_neighbors, n_users - 1)
        weights = np.zeros((n_users, n_users), dtype=np.float32)
        if n > 0:
            unit = _unit_columns(x.T)  # users as unit columns
            similarity = unit.T @ unit
            np.fill_diagonal(similarity, -np.inf)  # a user is not their own neighbour
            neighbours = np.argpartition(-similarity, n - 1, axis=1)[:, :n]
            rows = np.arange(n_users)[:, None]
            weights[rows, neighbours] = np.maximum(similarity[rows, neighbours], 0.0)
        return (weights @ x).astype(np.float64)


class MatrixFactorization(Recommender):
    """Rank-``rank`` truncated SVD of the matrix; score(u, i) = its rank-r approximation (PureSVD)."""

    name = "mf"

    def __init__(self, rank: int = 16, seed: int = 0) -> None:
        super().__init__()
        self.rank = positive_int("rank", rank)
        self.seed = int(seed)

    def _raw_scores(self, matrix: np.ndarray, share: np.ndarray) -> np.ndarray:
        rank = min(self.rank, *matrix.shape)
        user, item = fit_low_rank(matrix, rank, seed=self.seed, n_iter=4)
        return user @ item.T


def make_recommender(name: str, n_neighbors: int = 30, mf_rank: int = 16, seed: int = 0) -> Recommender:
    """A new (unfitted) recommender by name (one of :data:`RECOMMENDERS`).

    Raises:
        ValueError: naming ``recommenders`` for an unknown name.
    """
    if not isinstance(name, str) or name not in RECOMMENDERS:
        raise ValueError(f"recommenders: unknown recommender {name!r}; the names are {RECOMMENDERS}")
    if name == "popularity":
        return Popularity()
    if name == "item-cf":
        return ItemCF()
    if name == "user-cf":
        return UserCF(n_neighbors)
    return MatrixFactorization(mf_rank, seed)


def fit_tables(recommenders: Sequence[Recommender], matrix: np.ndarray) -> np.ndarray:
    """Fit every recommender on ``matrix``; float64 ``(k, n_users, n_items)``, their score tables stacked."""
    return np.stack([r.fit(matrix).table() for r in recommenders])
