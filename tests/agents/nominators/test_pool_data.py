"""The offline side of pool learning, torch-free: precision@K / recall@K and the multi-label generator."""

from __future__ import annotations

import numpy as np
import pytest

from twostage_gym.core.metrics import precision_at_k, recall_at_k, top_k_items
from twostage_gym.datasets.multilabel import check_training_data, make_multilabel, power_law_rates

# -- precision@K and recall@K -------------------------------------------------------------------


def test_precision_and_recall_on_a_hand_worked_example():
    labels = np.array(
        [
            [1, 1, 0, 0, 1, 0],  # 3 positives; retrieved {0, 2}: 1 hit
            [0, 0, 0, 0, 0, 0],  # no positive: both metrics 0 (Fig. 5's convention), not NaN
            [0, 0, 0, 1, 0, 0],  # 1 positive; retrieved {3, 5}: 1 hit
            [1, 1, 1, 1, 1, 1],  # all positive: precision 1, recall 2/6
        ],
        dtype=bool,
    )
    retrieved = np.array([[0, 2], [1, 4], [3, 5], [5, 0]])
    np.testing.assert_allclose(precision_at_k(retrieved, labels), [0.5, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(recall_at_k(retrieved, labels), [1 / 3, 0.0, 1.0, 2 / 6])
    # The mean is over all rows, the empty one included.
    assert recall_at_k(retrieved, labels).mean() == pytest.approx((1 / 3 + 0 + 1 + 1 / 3) / 4)
    # 0/1 integer labels are the same labels.
    np.testing.assert_array_equal(recall_at_k(retrieved, labels.astype(np.int8)), recall_at_k(retrieved, labels))


def test_top_k_items_sorts_best_first_and_breaks_ties_by_id():
    scores = np.array([[0.1, 0.5, 0.5, 0.2, -1.0], [5.0, 4.0, 3.0, 2.0, 1.0]])
    np.testing.assert_array_equal(top_k_items(scores, 3), [[1, 2, 3], [0, 1, 2]])
    np.testing.assert_array_equal(top_k_items(scores, 5), [[1, 2, 3, 0, 4], [0, 1, 2, 3, 4]])
    # Against a full sort of a large random matrix with ties.
    rng = np.random.default_rng(0)
    big = rng.integers(0, 20, size=(50, 300)).astype(float)
    full = np.lexsort((np.broadcast_to(np.arange(300), big.shape), -big), axis=1)[:, :7]
    np.testing.assert_array_equal(top_k_items(big, 7), full)


@pytest.mark.parametrize(
    ("retrieved", "labels", "match"),
    [
        (np.array([[0, 0]]), np.ones((1, 3), bool), "lists an item twice"),
        (np.array([[0, 3]]), np.ones((1, 3), bool), "outside"),
        (np.array([[0.0, 1.0]]), np.ones((1, 3), bool), "integer item ids"),
        (np.array([[0, 1], [1, 2]]), np.ones((1, 3), bool), "retrieved must be"),
        (np.array([[0, 1]]), np.ones(3, bool), "labels must be a 2-D"),
        (np.array([[0, 1]]), np.full((1, 3), 2), "labels must be booleans"),
    ],
)
def test_metrics_reject_bad_input(retrieved, labels, match):
    for metric in (precision_at_k, recall_at_k):
        with pytest.raises(ValueError, match=match):
            metric(retrieved, labels)


def test_top_k_rejects_bad_input():
    with pytest.raises(ValueError, match="k must be"):
        top_k_items(np.zeros((2, 3)), 4)
    with pytest.raises(ValueError, match="k must be"):
        top_k_items(np.zeros((2, 3)), 0)
    with pytest.raises(ValueError, match="NaN"):
        top_k_items(np.array([[0.0, np.nan]]), 1)
    with pytest.raises(ValueError, match="scores must be a 2-D"):
        top_k_items(np.zeros(3), 1)


# -- the generator ------------------------------------------------------------------------------


def test_power_law_rates_match_the_papers_shares():
    rates = power_law_rates(100, 0.1073, 1.55, 18.0)
    share = rates / rates.sum()
    assert rates.mean() == pytest.approx(0.1073)
    assert share[:5].sum() == pytest.approx(0.1922, abs=0.002)  # Fig. 2 (right): top 5 hold 19.22%
    assert share[50:].sum() == pytest.approx(0.1985, abs=0.002)  # bottom 50 hold 19.85%
    assert np.all(np.diff(rates) < 0)


def test_dataset_shapes_splits_and_seeding():
    kwargs = {"n_items": 30, "dim": 20, "n_clusters": 5, "examples_per_item": 40}
    data = make_multilabel(n_test=500, seed=3, **kwargs)
    assert data.train_contexts.shape == (1200, 20) and data.train_contexts.dtype == np.float32
    assert data.test_labels.shape == (500, 30) and data.test_labels.dtype == bool
    assert data.n_items == 30 and data.dim == 20 and data.examples_per_item == 40
    np.testing.assert_array_equal(np.bincount(data.train_items, minlength=30), np.full(30, 40))  # c per item
    assert set(np.unique(data.train_rewards)) <= {0.0, 1.0}
    assert np.bincount(data.item_clusters).tolist() == [6] * 5
    # Same seed, same numbers; another test size leaves the training set as it was.
    again = make_multilabel(n_test=200, seed=3, **kwargs)
    for field in ("train_contexts", "train_items", "train_rewards", "thresholds", "thetas"):
        np.testing.assert_array_equal(getattr(again, field), getattr(data, field))
    np.testing.assert_array_equal(again.test_labels, make_multilabel(n_test=200, seed=3, **kwargs).test_labels)
    assert not np.array_equal(make_multilabel(n_test=200, seed=4, **kwargs).train_contexts, again.train_contexts)


def test_dataset_statistics_follow_the_paper():
    data = make_multilabel(examples_per_item=50, n_test=20_000, seed=0)
    stats = data.summary()
    assert stats["positive_rate"] == pytest.approx(0.1073, abs=0.003)
    assert stats["top5_share"] == pytest.approx(0.1922, abs=0.01)
    assert stats["bottom50_share"] == pytest.approx(0.1985, abs=0.01)
    assert 0.03 < stats["empty_rows"] < 0.08  # the paper: about 5.5% of its test set
    # Each item's positive rate tracks its target (thresholds calibrated on other users).
    measured = data.test_labels.mean(axis=0)
    assert np.abs(measured - data.positive_rates).max() < 0.015
    # Labels are the thresholded true reward: a positive's f* is above the threshold but for noise.
    f = data.expected_rewards(data.test_contexts)
    assert (f[data.test_labels] > data.thresholds[np.nonzero(data.test_labels)[1]] - 0.5).all()


def test_items_of_a_cluster_share_a_low_dimensional_subspace():
    data = make_multilabel(n_items=40, dim=30, n_clusters=4, cluster_rank=2, examples_per_item=1, n_test=1, seed=1)
    for g in range(4):
        thetas = data.thetas[data.item_clusters == g]
        # Rank r = 2 from the cluster, + 1 from the shared engagement direction.
        assert np.linalg.matrix_rank(thetas, tol=1e-8) == 3
    assert np.linalg.matrix_rank(data.thetas, tol=1e-8) == 4 * 2 + 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"examples_per_item": 0}, "examples_per_item"),
        ({"examples_per_item": 2.0}, "examples_per_item"),
        ({"n_items": 0}, "n_items"),
        ({"n_clusters": 0}, "n_clusters"),
        ({"n_clusters": 60, "dim": 100}, "n_clusters \\* cluster_rank"),
        ({"positive_rate": 0.0}, "positive_rate"),
        ({"positive_rate": 0.5}, "rate of .* >= 1"),
        ({"label_noise": -1.0}, "label_noise"),
        ({"engagement": float("nan")}, "engagement"),
        ({"seed": -1}, "seed"),
        ({"examples_per_item": 10**8}, "examples_per_item=100000000.*the dataset would allocate"),
    ],
)
def test_generator_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_multilabel(**{"n_test": 10, **kwargs})


def test_training_data_checks_name_the_argument():
    x, a, r = np.zeros((4, 3)), np.array([0, 1, 2, 0]), np.zeros(4)
    assert [v.dtype for v in check_training_data(x, a, r, n_items=3)] == [np.float32, np.int64, np.float32]
    with pytest.raises(ValueError, match="contexts must be a non-empty 2-D"):
        check_training_data(np.zeros(4), a, r, 3)
    with pytest.raises(ValueError, match="contexts must have d=5"):
        check_training_data(x, a, r, 3, dim=5)
    with pytest.raises(ValueError, match="contexts must hold finite"):
        check_training_data(np.full((4, 3), np.inf), a, r, 3)
    with pytest.raises(ValueError, match="items must have shape"):
        check_training_data(x, a[:3], r, 3)
    with pytest.raises(ValueError, match="items has ids outside"):
        check_training_data(x, a + 1, r, 3)
    with pytest.raises(ValueError, match="items must hold integer"):
        check_training_data(x, a.astype(float), r, 3)
    with pytest.raises(ValueError, match="rewards must have shape"):
        check_training_data(x, a, np.zeros((4, 1)), 3)
