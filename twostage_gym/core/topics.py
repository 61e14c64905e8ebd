"""Topics over a catalog: power-law topic sizes, the topic -> item index, DynaTopicRec (Alg. 2 of the
topic-item paper) and budgeted candidate sampling from groups of topics.

*Two-Stage Neural Contextual Bandits for Adaptive Personalised Recommendations*, Sec. 3.1-3.2: a
round scores every topic, sorts them, and DynaTopicRec(m, sorted topics, p) builds m topic groups,
each starting from one of the top-m topics and absorbing the next best remaining topics until it
holds more than p items; the item stage then scores items of each group (under a computational
budget, a uniform sample of them) and takes one item per group.

Everything is numpy. :func:`dyna_topic_rec` is batched over rounds (a loop over slots and over the
passes of Alg. 2, never over rounds); sampling draws from the generator it is given.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "TopicIndex",
    "dyna_topic_rec",
    "group_lists",
    "power_law_sizes",
    "sort_topics",
    "top_topic_groups",
]


def power_law_sizes(n_items: int, n_topics: int, exponent: float) -> np.ndarray:
    """Topic sizes proportional to rank**-exponent (Zipf), every topic non-empty, summing to ``n_items``.

    Each topic gets one item; the other n_items - n_topics are shared in proportion to
    r**-exponent (r = 1..n_topics) by largest remainders, ties to the larger topic. ``exponent``
    0 gives balanced topics. Deterministic: the sizes depend on the arguments only.

    Returns:
        int64 ``(n_topics,)``, non-increasing.
    """
    if not 1 <= n_topics <= n_items:
        raise ValueError(f"need 1 <= n_topics <= n_items, got n_topics={n_topics}, n_items={n_items}")
    ranks = np.arange(1, n_topics + 1, dtype=np.float64)
    # log-space keeps r**-exponent finite and > 0 wherever it is representable; 0 beyond.
    weights = np.exp(-exponent * np.log(ranks))
    rest = n_items - n_topics
    share = rest * weights / weights.sum()
    sizes = np.floor(share).astype(np.int64)
    left = rest - int(sizes.sum())
    sizes[np.argsort(-(share - sizes), kind="stable")[:left]] += 1
    return sizes + 1


def sort_topics(scores: np.ndarray) -> np.ndarray:
    """Topics by decreasing score (Alg. 1, line 6), ties to the lower topic id. int64 (..., q)."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), axis=-1, kind="stable")


def dyna_topic_rec(order: np.ndarray, sizes: np.ndarray, n_groups: int, min_size: int) -> np.ndarray:
    """DynaTopicRec(m, sorted topics, p), Alg. 2, batched over rounds.

    Group i starts as the i-th best topic (i < m). Then, while some group holds at most ``min_size``
    items (Alg. 2, line 4: c_i <= p) and topics remain, the groups i = 1..m in turn, each one that
    still holds at most p items, take the best remaining topic. So every group ends with more than
    p items unless the topics ran out. (The paper's text says "at least p"; Alg. 2's c_i <= p is
    followed here, which gives the same groups except when a group holds exactly p items.)

    Args:
        order: int ``(..., q)`` topics sorted by decreasing score (:func:`sort_topics`), q >= m.
        sizes: int ``(q,)`` items per topic.
        n_groups: m, the number of groups (slots), 1 <= m <= q.
        min_size: p >= 1.

    Returns:
        int64 ``(..., q)``: the group (0..m-1) of each topic id, -1 for topics left out.
    """
    order = np.asarray(order, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    q = order.shape[-1]
    if not 1 <= n_groups <= q:
        raise ValueError(f"need 1 <= n_groups <= number of topics, got {n_groups} groups and {q} topics")
    if min_size < 1:
        raise ValueError(f"min_size must be >= 1, got {min_size}")
    # Groups never hold more than the whole catalog, so a larger p behaves as p = total items:
    # clamping keeps the comparison inside int64 for any Python int.
    p = min(int(min_size), int(sizes.sum()))
    flat = order.reshape(-1, q)
    n, rows = flat.shape[0], np.arange(flat.shape[0])
    groups = np.full((n, q), -1, dtype=np.int64)
    groups[rows[:, None], flat[:, :n_groups]] = np.arange(n_groups)
    held = sizes[flat[:, :n_groups]].copy()  # c_i, (n, m)
    nxt = np.full(n, n_groups, dtype=np.int64)  # position of l_st[0] in each row's order
    while True:
        active = (held <= p).any(axis=1) & (nxt < q)
        if not active.any():
            break
        for i in range(n_groups):  # one pass of the for-loop of Alg. 2, lines 5-11
            take = active & (held[:, i] <= p) & (nxt < q)
            if not take.any():
                continue
            r = rows[take]
            topic = flat[r, nxt[r]]
            groups[r, topic] = i
            held[r, i] += sizes[topic]
            nxt[r] += 1
    return groups.reshape(order.shape)


def top_topic_groups(order: np.ndarray, n_groups: int) -> np.ndarray:
    """Alg. 1 without line 8 (Sec. 4.2's 'no dynamic topic' ablation): group i is the i-th best topic alone.

    Returns:
        int64, the shape of ``order``: the group of each topic id, -1 for the others.
    """
    order = np.asarray(order, dtype=np.int64)
    flat = order.reshape(-1, order.shape[-1])
    groups = np.full(flat.shape, -1, dtype=np.int64)
    groups[np.arange(flat.shape[0])[:, None], flat[:, :n_groups]] = np.arange(n_groups)
    return groups.reshape(order.shape)


def group_lists(groups: np.ndarray, order: np.ndarray, n_groups: int) -> list[list[int]]:
    """One round's groups as lists of topic ids, each in the order it took them (by score).

    Args:
        groups: int ``(q,)`` from :func:`dyna_topic_rec` or :func:`top_topic_groups`.
        order: int ``(q,)`` the topics by decreasing score.
        n_groups: m.
    """
    g = np.asarray(groups)[np.asarray(order)]
    return [np.asarray(order)[g == i].tolist() for i in range(n_groups)]


class TopicIndex:
    """The topic -> item index of a catalog, built once: items sorted by topic and each topic's range.

    Args:
        item_topics: int ``(n_items,)`` the topic of each item, in 0..n_topics-1.
        n_topics: the number of topics; each must hold at least one item.

    Attributes:
        item_topics: int64 ``(n_items,)``.
        sizes: int64 ``(n_topics,)`` items per topic.
        starts: int64 ``(n_topics + 1,)`` topic t's items are ``items[starts[t]:starts[t + 1]]``.
        items: int64 ``(n_items,)`` item ids grouped by topic, increasing within a topic.
    """

    def __init__(self, item_topics: np.ndarray, n_topics: int) -> None:
        self.item_topics = np.asarray(item_topics, dtype=np.int64)
        if self.item_topics.size and (self.item_topics.min() < 0 or self.item_topics.max() >= n_topics):
            raise ValueError(f"item topics must be in 0..{n_topics - 1}")
        self.n_topics = int(n_topics)
        self.sizes = np.bincount(self.item_topics, minlength=n_topics).astype(np.int64)
        empty = np.flatnonzero(self.sizes == 0)
        if empty.size:
            raise ValueError(f"topic {int(empty[0])} holds no item: every topic must be non-empty")
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self.items = np.argsort(self.item_topics, kind="stable").astype(np.int64)

    @property
    def n_items(self) -> int:
        return int(self.item_topics.size)

    def topic_items(self, topic: int) -> np.ndarray:
        """The items of ``topic`` (a view, increasing ids)."""
        return self.items[self.starts[topic] : self.starts[topic + 1]]

    def union_size(self, topics: Sequence[int] | np.ndarray) -> int:
        """The number of items in the union of ``topics`` (distinct topics)."""
        return int(self.sizes[np.asarray(topics, dtype=np.int64)].sum())

    def at(self, topics: Sequence[int] | np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Items at ``positions`` of the union of ``topics`` listed topic by topic, in the given order.

        O(len(positions) log len(topics)), whatever the topics' sizes.
        """
        topics = np.asarray(topics, dtype=np.int64)
        ends = np.cumsum(self.sizes[topics])
        seg = np.searchsorted(ends, positions, side="right")
        offset = positions - (ends[seg] - self.sizes[topics[seg]])
        return self.items[self.starts[topics[seg]] + offset]

    def sample(self, rng: np.random.Generator, topics: Sequence[int] | np.ndarray, k: int) -> np.ndarray:
        """``k`` items drawn uniformly without replacement from the union of ``topics``; all of them
        (topic by topic, no draw) if the union holds at most ``k``. O(k) for a large union."""
        n = self.union_size(topics)
        if k >= n:
            return self.at(topics, np.arange(n))
        return self.at(topics, rng.choice(n, k, replace=False))
