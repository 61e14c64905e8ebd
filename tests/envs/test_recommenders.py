"""The candidate recommenders of recommender selection: their scores against the formulas, ties, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from twostage_gym.core.recommenders import (
    RECOMMENDERS,
    TIE_BREAK,
    ItemCF,
    MatrixFactorization,
    Popularity,
    UserCF,
    fit_tables,
    make_recommender,
)


def _matrix(n_users: int = 12, n_items: int = 9, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = (rng.random((n_users, n_items)) < 0.35).astype(np.float64)
    m[:, -1] = 0.0  # an item nobody likes
    return m


def _without_tie_break(recommender, matrix: np.ndarray) -> np.ndarray:
    counts = matrix.sum(axis=0)
    share = counts / counts.max()
    return recommender.scores(np.arange(matrix.shape[0])) - TIE_BREAK * share


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return 0.0 if na == 0 or nb == 0 else float(a @ b / (na * nb))


def test_popularity_is_the_share_of_the_most_popular_item():
    m = _matrix()
    scores = _without_tie_break(Popularity().fit(m), m)
    counts = m.sum(axis=0)
    np.testing.assert_allclose(scores, np.tile(counts / counts.max(), (m.shape[0], 1)), atol=1e-12)


def test_item_cf_sums_cosine_similarities_to_the_users_positives():
    m = _matrix()
    scores = _without_tie_break(ItemCF().fit(m), m)
    n_users, n_items = m.shape
    expected = np.zeros((n_users, n_items))
    for u in range(n_users):  # the formula, one pair at a time
        for i in range(n_items):
            expected[u, i] = sum(_cosine(m[:, i], m[:, j]) for j in range(n_items) if j != i and m[u, j] > 0)
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_neighbors", [3, 30])
def test_user_cf_weights_the_nearest_neighbours_positives(n_neighbors):
    # Graded (non-binary) entries, so that no two neighbours tie in similarity.
    rng = np.random.default_rng(1)
    m = rng.random((12, 9)) * (rng.random((12, 9)) < 0.5)
    scores = _without_tie_break(UserCF(n_neighbors).fit(m), m)
    n_users = m.shape[0]
    expected = np.zeros_like(m)
    for u in range(n_users):
        sims = np.array([_cosine(m[u], m[v]) if v != u else -np.inf for v in range(n_users)])
        k = min(n_neighbors, n_users - 1)
        order = np.argsort(-sims, kind="stable")[:k]
        expected[u] = sum(max(sims[v], 0.0) * m[v] for v in order)
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)


def test_user_cf_with_one_user_has_no_neighbours():
    m = _matrix(n_users=1)
    scores = UserCF().fit(m).scores(np.array([0]))
    counts = m.sum(axis=0)
    np.testing.assert_allclose(scores[0], TIE_BREAK * counts / counts.max())


def test_mf_is_the_truncated_svd():
    m = _matrix(n_users=10, n_items=8, seed=2)
    full = MatrixFactorization(rank=8).fit(m)
    np.testing.assert_allclose(_without_tie_break(full, m), m, atol=1e-8)  # full rank: the matrix itself
    u, s, vt = np.linalg.svd(m)
    rank2 = _without_tie_break(MatrixFactorization(rank=2).fit(m), m)
    np.testing.assert_allclose(rank2, (u[:, :2] * s[:2]) @ vt[:2], atol=1e-6)


def test_fits_are_deterministic_and_stack():
    m = _matrix(seed=3)
    names = list(RECOMMENDERS)
    a = fit_tables([make_recommender(n) for n in names], m)
    b = fit_tables([make_recommender(n) for n in names], m.copy())
    assert a.shape == (4, *m.shape)
    np.testing.assert_array_equal(a, b)


def test_ties_go_to_the_more_popular_item():
    # User 0 likes nothing: item-CF scores every item 0, so the ranking is by popularity.
    m = np.array([[0, 0, 0, 0], [1, 1, 0, 0], [0, 1, 0, 1], [0, 1, 1, 1]], dtype=float)
    row = ItemCF().fit(m).scores(np.array([0]))[0]
    assert list(np.argsort(-row, kind="stable")) == [1, 3, 0, 2]


def test_scores_gather_rows():
    m = _matrix()
    rec = ItemCF().fit(m)
    np.testing.assert_array_equal(rec.scores(np.array([3, 1])), rec.table()[[3, 1]])
    assert rec.n_users == m.shape[0] and rec.n_items == m.shape[1]
    with pytest.raises(ValueError, match="read-only"):
        rec.table()[0, 0] = 1.0


@pytest.mark.parametrize(
    ("matrix", "pattern"),
    [
        (np.zeros(3), "2-D"),
        (np.zeros((0, 3)), "non-empty"),
        (np.array([[1.0, np.nan]]), "finite"),
        (np.array([[1.0, -1.0]]), "non-negative"),
        (np.array([["a", "b"]]), "real"),
    ],
)
def test_fit_refuses_bad_matrices(matrix, pattern):
    with pytest.raises(ValueError, match=pattern):
        Popularity().fit(matrix)


def test_bad_names_users_and_unfitted_use():
    with pytest.raises(ValueError, match="recommenders: unknown recommender 'svd'"):
        make_recommender("svd")
    with pytest.raises(RuntimeError, match="not fitted"):
        ItemCF().scores(np.array([0]))
    rec = Popularity().fit(_matrix())
    for users, pattern in [(np.array([99]), "in \\[0, 12\\)"), (np.array([0.5]), "integer"), (np.int64(0), "1-D")]:
        with pytest.raises(ValueError, match=pattern):
            rec.scores(users)
    with pytest.raises(ValueError, match="n_neighbors"):
        UserCF(0)
    with pytest.raises(ValueError, match="rank"):
        MatrixFactorization(rank=1.5)
