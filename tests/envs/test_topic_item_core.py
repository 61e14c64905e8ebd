"""The shared parts behind ``TopicItem-v0``: DynaTopicRec (Alg. 2) on hand-worked examples, topic sizes,
the topic -> item index and its sampling, the click models and the streams."""

from __future__ import annotations

import numpy as np
import pytest

from twostage_gym.core.clicks import ClickModel, bernoulli_offset, sigmoid, threshold_for_rate
from twostage_gym.core.streams import UserStream, round_generator
from twostage_gym.core.topics import (
    TopicIndex,
    dyna_topic_rec,
    group_lists,
    power_law_sizes,
    sort_topics,
    top_topic_groups,
)


def dyna_reference(m: int, order: list[int], sizes: list[int], p: int) -> list[list[int]]:
    """Alg. 2 line by line, on Python lists (l_st holds the topics after the first m)."""
    groups = [[order[i]] for i in range(m)]
    held = [sizes[order[i]] for i in range(m)]
    rest = list(order[m:])
    while any(c <= p for c in held) and rest:
        for i in range(m):
            if held[i] <= p and rest:
                topic = rest.pop(0)
                groups[i].append(topic)
                held[i] += sizes[topic]
    return groups


@pytest.mark.parametrize(
    ("m", "sizes", "p", "expected", "held"),
    [
        # Group 2 (topic 1, one item) takes topic 2 and holds 4 > p = 3; group 1 had 5 already.
        (2, [5, 1, 3, 2, 4, 1], 3, [[0], [1, 2]], [5, 4]),
        # Two passes: groups 1 and 2 take topics 3, 4, then 5, 6; group 3 (6 items) takes none.
        (3, [1, 2, 6, 1, 1, 3, 2], 4, [[0, 3, 5], [1, 4, 6], [2]], [5, 5, 6]),
        # The topics run out: group 2 stays below p.
        (2, [3, 2, 4], 10, [[0, 2], [1]], [7, 2]),
        # c_i <= p (Alg. 2, line 6): a group holding exactly p items still takes a topic.
        (1, [3, 1, 5], 3, [[0, 1]], [4]),
    ],
)
def test_dyna_topic_rec_hand_worked(m, sizes, p, expected, held):
    order = np.arange(len(sizes))  # topic ids already sorted by score
    groups = dyna_topic_rec(order, np.array(sizes), m, p)
    assert group_lists(groups, order, m) == expected
    got = [sum(sizes[t] for t in g) for g in expected]
    assert got == held
    assert dyna_reference(m, list(order), sizes, p) == expected
    # Every group ends with more than p items unless the topics ran out.
    assert all(h > p for h in held) or (groups >= 0).all()


def test_dyna_topic_rec_follows_the_scores_and_is_batched():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 60, 30)
    scores = rng.standard_normal((200, 30))
    order = sort_topics(scores)
    batched = dyna_topic_rec(order, sizes, 5, 40)
    for row in range(200):
        expected = dyna_reference(5, order[row].tolist(), sizes.tolist(), 40)
        assert group_lists(batched[row], order[row], 5) == expected
        held = np.array([sizes[g].sum() for g in expected])
        assert (held > 40).all() or (batched[row] >= 0).all()
    # Ties go to the lower topic id.
    np.testing.assert_array_equal(sort_topics(np.array([1.0, 3.0, 3.0, 2.0])), [1, 2, 3, 0])


def test_top_topic_groups_is_alg1_without_line_8():
    groups = top_topic_groups(np.array([3, 0, 2, 1]), 2)
    np.testing.assert_array_equal(groups, [1, -1, -1, 0])


def test_power_law_sizes():
    sizes = power_law_sizes(10_000, 50, 1.0)
    assert sizes.sum() == 10_000 and sizes.min() >= 1 and (np.diff(sizes) <= 0).all()
    assert abs(sizes[0] / sizes[1] - 2.0) < 0.01 and abs(sizes[0] / sizes[49] - 50) < 2  # Zipf: r^-1
    balanced = power_law_sizes(103, 10, 0.0)
    assert balanced.max() - balanced.min() <= 1 and balanced.sum() == 103
    steep = power_law_sizes(1000, 20, 20.0)
    assert steep[0] == 1000 - 19 and (steep[1:] == 1).all()  # every topic keeps an item
    with pytest.raises(ValueError, match="n_topics"):
        power_law_sizes(5, 6, 1.0)


def test_topic_index_and_uniform_sampling():
    topics = np.array([2, 0, 1, 0, 2, 2, 1, 0, 2, 1])
    index = TopicIndex(topics, 3)
    np.testing.assert_array_equal(index.sizes, [3, 3, 4])
    np.testing.assert_array_equal(index.topic_items(2), [0, 4, 5, 8])
    np.testing.assert_array_equal(index.at([2, 0], np.arange(7)), [0, 4, 5, 8, 1, 3, 7])
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(index.sample(rng, [1], 5), [2, 6, 9])  # smaller than k: all of it
    counts = np.zeros(10)
    draws = 6000
    for _ in range(draws):
        s = index.sample(rng, [0, 2], 3)
        assert np.unique(s).size == 3 and np.isin(topics[s], [0, 2]).all()
        counts[s] += 1
    members = np.isin(topics, [0, 2])
    expected = draws * 3 / 7  # each of the 7 items is in a sample with probability 3/7
    sd = np.sqrt(draws * 3 / 7 * 4 / 7)
    assert np.abs(counts[members] - expected).max() < 4 * sd and counts[~members].sum() == 0


def test_threshold_click_model():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal(100_000)
    model = ClickModel.calibrated("threshold", scores, 0.05, 0.1)
    assert (model.labels(scores)).sum() == 5000
    assert model.threshold == threshold_for_rate(scores, 0.05)
    np.testing.assert_array_equal(np.unique(model.expected(scores)), [0.1, 0.9])
    uniforms = rng.random(scores.size)
    clicks = model.sample(scores, uniforms)
    flips = clicks != model.labels(scores)
    np.testing.assert_array_equal(flips, uniforms < 0.1)  # a click is the label, flipped
    assert abs(flips.mean() - 0.1) < 0.004
    with pytest.raises(ValueError, match="flip_prob"):
        ClickModel("threshold", 0.0, 0.6)


def test_bernoulli_click_model():
    rng = np.random.default_rng(1)
    scores = rng.standard_normal(50_000)
    model = ClickModel.calibrated("bernoulli", scores, 0.05)
    assert abs(model.expected(scores).mean() - 0.05) < 1e-9
    assert model.threshold == bernoulli_offset(scores, 0.05)
    clicks = model.sample(scores, rng.random(scores.size))
    assert abs(clicks.mean() - 0.05) < 0.004
    with pytest.raises(ValueError, match="flip_prob"):
        ClickModel("bernoulli", 0.0, 0.1)
    assert sigmoid(np.array([-1e4, 0.0, 1e4])).tolist() == [0.0, 0.5, 1.0]


def test_streams_depend_on_their_seeds_only():
    a = UserStream(np.random.default_rng(3), 7)
    b = UserStream(np.random.default_rng(3), 7)
    seq = [a.next() for _ in range(600)]  # crosses block boundaries
    assert seq == [b.next() for _ in range(600)] and set(seq) <= set(range(7))
    np.testing.assert_array_equal(round_generator(5, 9).random(4), round_generator(5, 9).random(4))
    assert not np.array_equal(round_generator(5, 9).random(4), round_generator(5, 10).random(4))
