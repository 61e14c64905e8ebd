"""The training machinery: target paths, beam candidates, the linear model's gradient, the brute-force heap."""

from __future__ import annotations

import numpy as np
import pytest

from agents.tree.retrievers import BruteForceRetriever, fit_brute_force
from agents.tree.scorers import LinearScorer, softmax_grad
from agents.tree.training import expand_beam, level_candidates, target_paths, top_k, train_lists
from twostage_gym.core.tree import beam_search, build_tree


@pytest.mark.parametrize(
    ("n_items", "branches", "method"), [(37, 2, "balanced-kmeans"), (100, 3, "kmeans"), (64, 4, "random")]
)
def test_target_paths_follow_the_tree(n_items: int, branches: int, method: str) -> None:
    rng = np.random.default_rng(1)
    tree = build_tree(rng.normal(size=(n_items, 3)), branches, method, seed=2)
    items = np.arange(n_items)
    paths = target_paths(tree, items)
    assert paths.shape == (n_items, tree.n_levels)
    np.testing.assert_array_equal(paths[:, -1], tree.item_leaf)
    for level in range(tree.n_levels):
        node = paths[:, level]
        # The level's node covers the item, and is of that depth unless it is a shallower leaf.
        pos = np.argsort(tree.item_order)[items]
        assert ((tree.node_start[node] <= pos) & (pos < tree.node_stop[node])).all()
        assert ((tree.depth[node] == level + 1) | ((tree.leaf_item[node] >= 0) & (tree.depth[node] <= level + 1))).all()
        if level:
            parent_or_self = np.where(tree.depth[node] == level + 1, tree.parent[node], node)
            np.testing.assert_array_equal(parent_or_self, paths[:, level - 1])


def test_beam_lists_are_the_beam_search_candidates(data) -> None:
    """The beam loss's candidates at level l are D(B_{l-1}(x)) of the core beam search with the same scores."""
    tree, x = data.tree, data.x[:50]
    model = LinearScorer(tree.n_nodes, x.shape[1], np.random.default_rng(0), init_scale=1.0)
    result = beam_search(tree, model.scores, x, 5)
    paths = target_paths(tree, data.y[:50])
    lists = train_lists(tree, model.scores, x, paths, "beam", 5, 10, np.random.default_rng(0))
    assert len(lists) == tree.n_levels
    previous = np.zeros((50, 1), dtype=np.int64)
    for level, (ids, valid, target) in enumerate(lists):
        cand = expand_beam(tree, previous)
        for i in range(50):
            listed = set(ids[i, : cand.shape[1]][valid[i, : cand.shape[1]]].tolist()) | {int(paths[i, level])}
            assert listed == set(cand[i][cand[i] >= 0].tolist()) | {int(paths[i, level])}
        np.testing.assert_array_equal(ids[np.arange(50), target], paths[:, level])
        previous = result.levels[level]
        np.testing.assert_array_equal(
            top_k(cand, np.where(cand >= 0, model.scores(x, np.maximum(cand, 0)), -np.inf), 5), previous
        )


def test_sampled_lists_hold_the_target_and_same_level_negatives(data) -> None:
    tree = data.tree
    paths = target_paths(tree, data.y[:40])
    lists = train_lists(
        tree, lambda x, n: np.zeros(n.shape), data.x[:40], paths, "sampled", 5, 20, np.random.default_rng(0)
    )
    for level, (ids, valid, target) in enumerate(lists):
        np.testing.assert_array_equal(ids[np.arange(40), target], paths[:, level])
        pool = set(level_candidates(tree, level + 1).tolist())
        assert set(ids.ravel().tolist()) <= pool
        if valid is not None:  # a sampled level: the target is never also a negative
            assert not ((ids[:, 1:] == paths[:, level, None]) & valid[:, 1:]).any()


def test_linear_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(3)
    model = LinearScorer(7, 3, rng, init_scale=0.5, bias=True)
    x = rng.normal(size=(4, 3))
    ids = rng.integers(0, 7, (4, 5))
    valid = rng.random((4, 5)) < 0.8
    valid[:, 0] = True
    target = np.zeros(4, dtype=np.int64)

    def loss(w: np.ndarray, b: np.ndarray) -> float:
        s = np.einsum("ncd,nd->nc", w[ids], x) + b[ids]
        return softmax_grad(s, valid, target)[0] + softmax_grad(x @ w.T + b, None, np.arange(4))[0]

    w0, b0 = model.weight.copy(), model.bias.copy()
    model._adam.lr = 1.0  # Adam's first step is lr * sign(grad): read the gradient's sign off it
    model.step(x, [(ids, valid, target), (None, None, np.arange(4))])
    eps = 1e-6
    num = np.zeros_like(w0)
    for i in range(7):
        for k in range(3):
            d = np.zeros_like(w0)
            d[i, k] = eps
            num[i, k] = (loss(w0 + d, b0) - loss(w0 - d, b0)) / (2 * eps)
    moved = w0 - model.weight
    big = np.abs(num) > 1e-3
    assert big.sum() > 5
    np.testing.assert_array_equal(np.sign(moved[big]), np.sign(num[big]))
    np.testing.assert_allclose(np.abs(moved[big]), 1.0, rtol=1e-4)  # |lr * m_hat / sqrt(v_hat)| = 1 at step 1


def test_softmax_grad_is_the_analytic_gradient() -> None:
    rng = np.random.default_rng(0)
    s = rng.normal(size=(3, 4))
    valid = np.array([[1, 1, 0, 1], [1, 1, 1, 1], [0, 1, 1, 0]], dtype=bool)
    target = np.array([0, 3, 1])
    _, grad = softmax_grad(s, valid, target)
    eps = 1e-6
    for i in range(3):
        for j in range(4):
            d = np.zeros_like(s)
            d[i, j] = eps
            num = (softmax_grad(s + d, valid, target)[0] - softmax_grad(s - d, valid, target)[0]) / (2 * eps)
            assert grad[i, j] == pytest.approx(num, abs=1e-8)
    assert (grad[~valid] == 0).all()


@pytest.mark.parametrize(
    ("n_items", "branches", "method", "beam"),
    [(50, 2, "balanced-kmeans", 7), (90, 3, "kmeans", 10), (64, 8, "random", 5)],
)
def test_beam_search_on_max_node_scores_is_brute_force(n_items: int, branches: int, method: str, beam: int) -> None:
    """The brute-force retriever's node scores (max over the subtree) make beam search exact."""
    rng = np.random.default_rng(n_items)
    tree = build_tree(rng.normal(size=(n_items, 4)), branches, method, seed=0)
    scorer = LinearScorer(n_items, 4, rng, init_scale=1.0)
    bf = BruteForceRetriever(tree, scorer, [])
    x = rng.normal(size=(30, 4))
    exact = bf.retrieve(x, beam)
    s = x @ scorer.weight.T
    np.testing.assert_array_equal(np.take_along_axis(s, exact, 1), -np.sort(-s, axis=1)[:, :beam])
    found = beam_search(tree, bf.scores, x, beam).items
    np.testing.assert_array_equal(found, exact)


def test_brute_force_learns_and_is_deterministic(data) -> None:
    a = fit_brute_force(data.x, data.y, 256, epochs=3, seed=1)
    b = fit_brute_force(data.x, data.y, 256, epochs=3, seed=1)
    np.testing.assert_array_equal(a.scorer.weight, b.scorer.weight)
    assert a.losses[-1] < a.losses[0]
    recall = (a.retrieve(data.x_test, 10) == data.y_test[:, None]).any(axis=1).mean()
    assert recall > 0.5  # measured 0.82; a random top 10 of 256 items: 0.04
