"""Tree building (recursive balanced k-means) and beam search, Sec. 3.2.1 of the tree-retriever paper."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twostage_gym.core import ItemTree, beam_search, build_tree
from twostage_gym.core.tree import TREE_METHODS, _top_k_stable, item_representations


def _check_valid(tree: ItemTree, n_items: int) -> None:
    """Every item is exactly one leaf; parent/children/depth/ranges agree."""
    leaves = np.flatnonzero(tree.leaf_item >= 0)
    assert sorted(tree.leaf_item[leaves].tolist()) == list(range(n_items))
    assert np.array_equal(tree.leaf_item[tree.item_leaf], np.arange(n_items))
    assert sorted(tree.item_order.tolist()) == list(range(n_items))
    assert tree.parent[0] == -1 and tree.depth[0] == 0
    for v in range(tree.n_nodes):
        kids = tree.children[v][tree.children[v] >= 0]
        is_leaf = tree.leaf_item[v] >= 0
        assert (kids.size == 0) == is_leaf
        assert (tree.node_stop[v] - tree.node_start[v] == 1) == is_leaf
        if is_leaf:
            assert tree.item_order[tree.node_start[v]] == tree.leaf_item[v]
        else:
            assert 2 <= kids.size <= tree.branches
            assert np.all(tree.parent[kids] == v) and np.all(tree.depth[kids] == tree.depth[v] + 1)
            # the children's ranges tile the parent's, in order
            assert tree.node_start[kids[0]] == tree.node_start[v] and tree.node_stop[kids[-1]] == tree.node_stop[v]
            assert np.array_equal(tree.node_stop[kids[:-1]], tree.node_start[kids[1:]])
    for level in range(tree.n_levels + 1):
        assert np.all(tree.depth[tree.level_nodes(level)] == level)


def _sizes(tree: ItemTree, nodes: np.ndarray) -> np.ndarray:
    return tree.node_stop[nodes] - tree.node_start[nodes]


@pytest.mark.parametrize("branches", [2, 3, 4, 8])
@pytest.mark.parametrize("n_items", [37, 100, 9])
def test_balanced_tree(branches: int, n_items: int) -> None:
    x = np.random.default_rng(0).normal(size=(n_items, 4))
    tree = build_tree(x, branches, "balanced-kmeans", seed=3)
    _check_valid(tree, n_items)
    for v in np.flatnonzero(tree.leaf_item < 0):
        kids = tree.children[v][tree.children[v] >= 0]
        sizes = _sizes(tree, kids)
        assert sizes.max() - sizes.min() <= 1
        assert kids.size == min(branches, _sizes(tree, np.array([v]))[0])
    assert tree.n_levels == int(np.ceil(np.log(n_items) / np.log(branches) - 1e-9))


@pytest.mark.parametrize("method", ["kmeans", "random"])
@pytest.mark.parametrize("branches", [2, 3, 8])
def test_other_methods_build_valid_trees(method: str, branches: int) -> None:
    x = np.random.default_rng(1).normal(size=(50, 3))
    _check_valid(build_tree(x, branches, method, seed=0), 50)


def test_kmeans_identical_embeddings_terminates() -> None:
    # every item falls in one cluster: the split falls back to balanced, so the recursion ends
    tree = build_tree(np.ones((20, 2)), 3, "kmeans", seed=0)
    _check_valid(tree, 20)


def test_balanced_kmeans_separates_clusters() -> None:
    # four well separated blobs of 8 items: the root's 4 children are the blobs
    rng = np.random.default_rng(2)
    centers = np.array([[0, 0], [100, 0], [0, 100], [100, 100]], dtype=float)
    x = np.repeat(centers, 8, axis=0) + rng.normal(scale=0.1, size=(32, 2))
    tree = build_tree(x, 4, seed=0)
    for child in tree.children[0]:
        blob = tree.subtree_items(child) // 8
        assert np.all(blob == blob[0])


def test_seed_and_round_trips(tmp_path) -> None:
    x = np.random.default_rng(3).normal(size=(60, 3))
    tree = build_tree(x, 3, seed=7)
    again = build_tree(x, 3, seed=7)
    gen = build_tree(x, 3, seed=np.random.default_rng(7))
    for other in (again, gen, pickle.loads(pickle.dumps(tree))):
        assert other.branches == tree.branches
        for name, a in tree.to_dict().items():
            assert np.array_equal(a, other.to_dict()[name]), name
    path = tmp_path / "tree.npz"
    tree.to_npz(path)
    loaded = ItemTree.from_npz(path)
    for name, a in tree.to_dict().items():
        assert np.array_equal(a, loaded.to_dict()[name]), name
    for t in (tree, pickle.loads(pickle.dumps(tree)), loaded):
        for name, a in t.to_dict().items():
            assert name == "branches" or not a.flags.writeable, name
        with pytest.raises(ValueError):
            t.children[0, 0] = 5
        with pytest.raises(AttributeError):
            t.branches = 4  # type: ignore[misc]


def test_different_seeds_differ() -> None:
    x = np.random.default_rng(3).normal(size=(60, 3))
    a, b = build_tree(x, 2, "random", seed=0), build_tree(x, 2, "random", seed=1)
    assert not np.array_equal(a.item_order, b.item_order)


def _oracle(item_scores: np.ndarray, tree: ItemTree):
    """Node score = max item score over the node's subtree: beam search is then exact."""
    node_max = np.stack(
        [item_scores[:, tree.subtree_items(v)].max(axis=1) for v in range(tree.n_nodes)], axis=1
    )  # (n, n_nodes)
    return lambda contexts, nodes: np.take_along_axis(node_max, nodes, axis=1)


@pytest.mark.parametrize("method", TREE_METHODS)
@pytest.mark.parametrize("branches", [2, 3, 4])
@pytest.mark.parametrize("beam", [1, 3, 6])
def test_oracle_beam_search_is_exact(method: str, branches: int, beam: int) -> None:
    rng = np.random.default_rng(4)
    n_items, n = 41, 7
    tree = build_tree(rng.normal(size=(n_items, 3)), branches, method, seed=0)
    item_scores = rng.normal(size=(n, n_items))
    res = beam_search(tree, _oracle(item_scores, tree), np.zeros((n, 2)), beam)
    brute = np.argsort(-item_scores, axis=1)[:, :beam]
    assert np.array_equal(res.items, brute)
    assert np.array_equal(res.leaves, tree.item_leaf[brute])
    assert len(res.levels) == tree.n_levels
    for level in res.levels:
        assert level.shape == (n, beam)


def test_large_beam_returns_every_item() -> None:
    rng = np.random.default_rng(5)
    tree = build_tree(rng.normal(size=(23, 2)), 3, seed=0)
    res = beam_search(tree, lambda c, nodes: rng.normal(size=nodes.shape), np.zeros((4, 1)), 30)
    assert res.items.shape == (4, 30)
    for row in res.items:
        assert sorted(row[row >= 0].tolist()) == list(range(23))
        assert np.all(row[23:] == -1)
    # level 1 holds the root's 3 children, padded with -1
    assert np.all(res.levels[0][:, 3:] == -1) and np.all(res.levels[0][:, :3] >= 0)


def test_leaf_is_its_own_child() -> None:
    # N = 5, B = 4: the root's children hold 2, 1, 1, 1 items; three leaves sit at depth 1, above the last level 2
    tree = build_tree(np.arange(10.0).reshape(5, 2), 4, "random", seed=0)
    assert tree.n_levels == 2
    shallow = [v for v in tree.children[0] if tree.leaf_item[v] >= 0]
    assert len(shallow) == 3
    target = shallow[1]
    scores = np.zeros(tree.n_nodes)
    scores[target] = 10.0
    scores[tree.children[0][0]] = 5.0  # the internal child ranks second
    res = beam_search(tree, lambda c, nodes: scores[nodes], np.zeros((2, 1)), 1)
    assert np.all(res.levels[0][:, 0] == target)
    assert np.all(res.levels[1][:, 0] == target)  # D(v) = {v}: the leaf survives to the last level
    assert np.all(res.items[:, 0] == tree.leaf_item[target])
    # with beam 2 the depth-1 leaf competes with the depth-2 children of the internal node
    scores[tree.children[tree.children[0][0]][0]] = 20.0
    res = beam_search(tree, lambda c, nodes: scores[nodes], np.zeros((1, 1)), 2)
    assert res.leaves[0].tolist() == [tree.children[tree.children[0][0]][0], target]


def test_one_item_tree() -> None:
    tree = build_tree(np.zeros((1, 2)), 2)
    assert tree.n_nodes == 1 and tree.n_levels == 0
    res = beam_search(tree, lambda c, nodes: np.zeros(nodes.shape), np.zeros((3, 2)), 2)
    assert res.levels == () and res.items.tolist() == [[0, -1]] * 3


def test_item_representations() -> None:
    y = np.array([[1, 0, 1], [1, 0, 0], [0, 0, 1]])
    z = item_representations(y)
    assert np.allclose(z, [[1 / np.sqrt(2), 1 / np.sqrt(2), 0], [0, 0, 0], [1 / np.sqrt(2), 0, 1 / np.sqrt(2)]])
    f = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    zf = item_representations(y, f)
    assert np.allclose(zf[0], [1, 2] / np.sqrt(5)) and np.allclose(zf[2], [1, 0])
    with pytest.raises(ValueError, match="features"):
        item_representations(y, np.ones((2, 2)))
    with pytest.raises(ValueError, match="interactions"):
        item_representations(np.ones(3))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"branches": 1}, "branches"),
        ({"branches": 2.0}, "branches"),
        ({"item_embeddings": np.ones(5)}, "item_embeddings"),
        ({"item_embeddings": np.full((5, 2), np.nan)}, "item_embeddings"),
        ({"item_embeddings": np.zeros((0, 2))}, "item_embeddings"),
        ({"method": "ward"}, "method"),
        ({"seed": -1}, "seed"),
    ],
)
def test_build_bad_input(kwargs: dict, name: str) -> None:
    args = {"item_embeddings": np.ones((5, 2)), "branches": 2} | kwargs
    with pytest.raises(ValueError, match=name):
        build_tree(**args)


def test_search_bad_input() -> None:
    tree = build_tree(np.random.default_rng(0).normal(size=(9, 2)), 2)
    ok = lambda c, nodes: np.zeros(nodes.shape)  # noqa: E731
    with pytest.raises(ValueError, match="beam"):
        beam_search(tree, ok, np.zeros((2, 1)), 0)
    with pytest.raises(ValueError, match="contexts"):
        beam_search(tree, ok, np.zeros(2), 1)
    with pytest.raises(ValueError, match="tree"):
        beam_search("tree", ok, np.zeros((2, 1)), 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="node_scores_fn"):
        beam_search(tree, lambda c, nodes: np.full(nodes.shape, np.nan), np.zeros((2, 1)), 1)
    with pytest.raises(ValueError, match="node_scores_fn"):
        beam_search(tree, lambda c, nodes: np.zeros(3), np.zeros((2, 1)), 1)


def test_scale_smoke() -> None:
    """10^5 items, tiny dim: builds a balanced binary tree and searches a batch of 128 (speed is measured
    outside the tests, never asserted)."""
    rng = np.random.default_rng(0)
    n_items = 10**5
    x = rng.normal(size=(n_items, 4))
    tree = build_tree(x, 2, seed=0, n_iter=5)
    assert tree.n_levels == 17 and tree.n_items == n_items
    assert np.array_equal(np.sort(tree.leaf_item[tree.item_leaf]), np.arange(n_items))
    node_vecs = rng.normal(size=(tree.n_nodes, 4))
    ctx = rng.normal(size=(128, 4))
    res = beam_search(tree, lambda c, nodes: np.einsum("nd,ncd->nc", c, node_vecs[nodes]), ctx, 20)
    assert res.items.shape == (128, 20) and np.all(res.items >= 0)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 5),
    c=st.integers(1, 12),
    k=st.integers(1, 14),
    data=st.data(),
)
def test_top_k_keeps_the_stable_sort_order(n: int, c: int, k: int, data: st.DataObject) -> None:
    """The partition-based top k equals a full stable sort (valid first, then by score, ties in column
    order), with many ties, padding and -inf among the scores."""
    values = st.sampled_from([-np.inf, -1.0, 0.0, 0.0, 1.0, 2.0, np.inf])
    scores = np.array(data.draw(st.lists(values, min_size=n * c, max_size=n * c))).reshape(n, c)
    valid = np.array(data.draw(st.lists(st.booleans(), min_size=n * c, max_size=n * c))).reshape(n, c)
    expected = np.lexsort((-scores, ~valid), axis=1)[:, :k]
    got = _top_k_stable(scores, valid, k)
    # Padding columns are never chosen over a valid one; their order among themselves does not matter.
    real = np.take_along_axis(valid, expected, axis=1)
    assert np.array_equal(np.take_along_axis(valid, got, axis=1), real)
    assert np.array_equal(np.where(real, got, -1), np.where(real, expected, -1))
