"""The world behind ``TwoStage/RecommenderSelection-v0``: ratings, configuration, the split and the protocol.

Xu et al. (2021), *Towards the D-Optimal Online Experiment Design for Recommender Selection*,
Sec. 5. The ratings (MovieLens, custom :class:`RatingData`, or the synthetic low-rank world of
:func:`synthetic_data`), the validated configuration, and :class:`SelectionRun`, the bookkeeping
of one episode of the paper's semi-synthetic protocol: the initial training data, the test log that
answers requests, each user's history and reject list, the candidates' refits, the recall.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from twostage_gym.core.checks import check_memory, choice, nonnegative_int, number, positive_int
from twostage_gym.core.recommenders import RECOMMENDERS, Recommender, fit_tables, make_recommender

__all__ = [
    "N_USERS",
    "REFIT",
    "RatingData",
    "SelectionConfig",
    "SelectionRun",
    "SelectionSplit",
    "movielens_data",
    "split_for",
    "standardise",
    "synthetic_data",
]

REFIT = ("epoch", "never")

N_USERS, N_ITEMS, N_SEGMENTS, RATINGS_PER_USER, SEGMENT_EFFECT = 300, 500, 4, 40, 1.0
"""Synthetic defaults: 300 users rate 40 of 500 items each (8% density; MovieLens-100K has 6.3%)."""

MF_RANK = 16
"""The matrix factorisation's default rank (capped at min(n_users, n_items) for small data)."""

N_GENRES, LATENT_DIM, USER_VIEW = 12, 8, 4
"""Synthetic genres (item features), latent dimension, and noisy latent coordinates in the user features."""

ARCHETYPES = ("mainstream", "item-cluster", "community", "latent-factor")
"""How the users of segment s choose items: ``ARCHETYPES[s % 4]`` (see :func:`synthetic_data`)."""

PREFERENCE = (3.0, 3.0, 4.0, 3.0)
"""Weight of each archetype's signal (popularity, item clusters, community items, latent affinity)
in the choice logits of a user who follows it alone."""

POPULARITY_BASE, CLUSTER_BASE = 1.0, 1.0
"""Weights of popularity and of the user's item clusters shared by every user, whatever the segment."""

CLUSTER_SIZE, CLUSTERS_PER_USER = 20, 2
COMMUNITY_SIZE, COMMUNITY_ITEMS = 8, 60
SEGMENT_SIGNAL = 1.0
"""Items per item cluster and favourite clusters per user; users per community (formed within a
segment) and each community's shared items; the weight of the segment one-hot in the user's noisy
segment features (unit Gaussian noise)."""

RATING_SHARES = (0.061, 0.114, 0.271, 0.342, 0.212)
"""Shares of 1..5 stars among the synthetic ratings: MovieLens-100K's."""

WORLD_STREAM = 0x5E1EC7
SPLIT_STREAM = 0x5B117
ORDER_STREAM = 0x0BDE
"""The synthetic world, the train/test split and the request order are drawn from
``np.random.default_rng([STREAM, key])`` each, so none of them moves another."""


def standardise(x: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to unit standard deviation (constant columns become 0), float32."""
    x = np.asarray(x, dtype=np.float64)
    std = x.std(axis=0)
    return ((x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)).astype(np.float32)


@dataclass(frozen=True, eq=False)
class RatingData:
    """A ratings log with user and item side features (custom data, MovieLens, or the synthetic world).

    Attributes:
        users, items: int64 ``(n_ratings,)`` ids in ``[0, n_users)`` and ``[0, n_items)``; each
            (user, item) pair at most once.
        ratings: float64 ``(n_ratings,)`` finite ratings (any scale; ``positive_threshold`` says
            which are positive).
        user_features: ``(n_users, d_u)`` finite reals (the environment standardises them).
        item_features: ``(n_items, d_i)`` finite reals (content features, e.g. genres).
        segments: int64 ``(n_users,)`` each user's segment where known (the synthetic world), else None.
        name: what the data is, for messages and ``render``.

    Raises:
        ValueError: naming ``data`` and the field: wrong shapes or dtypes, NaN or infinite
            values, ids out of range, a (user, item) pair rated twice.
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    user_features: np.ndarray
    item_features: np.ndarray
    segments: np.ndarray | None = None
    name: str = "custom"

    def __post_init__(self) -> None:
        uf = _real_table("user_features", self.user_features)
        itf = _real_table("item_features", self.item_features)
        n_users, n_items = uf.shape[0], itf.shape[0]
        users = _ids("users", self.users, n_users)
        items = _ids("items", self.items, n_items)
        ratings = np.array(self.ratings, copy=True)
        if ratings.ndim != 1 or ratings.dtype.kind not in "iuf":
            raise ValueError(f"data.ratings must be a 1-D array of real numbers, got shape {ratings.shape}")
        ratings = ratings.astype(np.float64)
        if not (users.size == items.size == ratings.size) or users.size < 2:
            raise ValueError(
                "data.users, data.items and data.ratings must have one entry per rating, at least 2, got "
                f"{users.size}, {items.size}, {ratings.size}"
            )
        if not np.isfinite(ratings).all():
            raise ValueError("data.ratings must be finite (NaN or infinite found)")
        pairs = users * n_items + items
        if np.unique(pairs).size != pairs.size:
            raise ValueError("data: a (user, item) pair is rated twice; keep one rating per pair")
        segments = None
        if self.segments is not None:
            segments = _ids("segments", self.segments, None)
            if segments.size != n_users:
                raise ValueError(f"data.segments must have one entry per user ({n_users}), got {segments.size}")
        for field, value in (
            ("users", users), ("items", items), ("ratings", ratings),
            ("user_features", uf), ("item_features", itf), ("segments", segments),
        ):  # fmt: skip
            if value is not None:
                value.flags.writeable = False
            object.__setattr__(self, field, value)

    @property
    def n_users(self) -> int:
        return int(self.user_features.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_features.shape[0])

    @property
    def n_ratings(self) -> int:
        return int(self.ratings.size)

    def max_ratings_per_user(self) -> int:
        return int(np.bincount(self.users, minlength=self.n_users).max())


def _real_table(field: str, value: Any) -> np.ndarray:
    a = np.array(value, copy=True)
    if a.ndim != 2 or a.shape[0] == 0 or a.dtype.kind not in "biuf":
        raise ValueError(f"data.{field} must be a 2-D array of real numbers with a row per id, got shape {a.shape}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"data.{field} must be finite (NaN or infinite found)")
    return a


def _ids(field: str, value: Any, n: int | None) -> np.ndarray:
    a = np.array(value, copy=True)
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise ValueError(f"data.{field} must be a 1-D array of integer ids, got dtype {a.dtype}, shape {a.shape}")
    a = a.astype(np.int64)
    if a.size and (a.min() < 0 or (n is not None and a.max() >= n)):
        bound = "" if n is None else f", below {n} (one row of features per id)"
        raise ValueError(f"data.{field} must be ids >= 0{bound}")
    return a


def movielens_data(data_dir: Any) -> RatingData:
    """MovieLens ratings of ``data_dir`` with demographics and genres as side features.

    Raises:
        ValueError: naming ``data_dir`` (see :func:`~twostage_gym.datasets.movielens_features.movielens_side_features`).
    """
    from twostage_gym.datasets.movielens import check_data_dir
    from twostage_gym.datasets.movielens_features import movielens_side_features

    check_data_dir(data_dir)
    return _movielens_rating_data(movielens_side_features(data_dir))


@functools.lru_cache(maxsize=4)
def _movielens_rating_data(side: Any) -> RatingData:
    # Keyed by the side features, themselves cached per folder while its files are unchanged: one
    # RatingData per data version, so envs on one folder share it (and the splits drawn from it).
    r = side.ratings
    return RatingData(r.users, r.items, r.ratings, side.user_features, side.item_features, name=r.name)


def synthetic_data(config: SelectionConfig, key: int) -> RatingData:
    """The synthetic world of ``config``, drawn from ``default_rng([WORLD_STREAM, key])``.

    Items have genres (12; a Zipf-distributed main genre and each other genre with probability 0.1),
    a latent vector v_i = sqrt(0.7) mean(genre centres) + sqrt(0.3) noise in R^8, a popularity
    p_i ~ N(0, 1) and an item cluster (``CLUSTER_SIZE`` items each). Users belong to ``n_segments``
    equal segments; each user has ``CLUSTERS_PER_USER`` favourite item clusters, a community
    (``COMMUNITY_SIZE`` users of the same segment who share ``COMMUNITY_ITEMS`` favourite items) and
    a latent vector w_u ~ N(0, I_8). Four choice signals, each standardised over all (user, item)
    pairs: popularity p_i, "item i is in one of u's clusters", "item i is one of u's community's
    items", and the affinity <w_u, v_i> / sqrt(8). Segment s follows the archetype
    ``ARCHETYPES[s % 4]`` (mainstream, item-cluster, community, latent-factor): its users' logits
    are the signals weighted by ``PREFERENCE`` times that archetype's one-hot, plus, for every
    user, popularity and the user's item clusters with weight 1 each (a shared taste for popular
    items and for a few kinds of item). A user rates ``ratings_per_user`` items drawn by Gumbel
    top-n from the logits; the rating (1-5 stars, MovieLens-100K's shares) orders the rated pairs
    by the same logits plus N(0, 1) noise.

    This is the paper's motivation (Sec. 1: "each recommender more favorable to specific customer
    groups"): users who follow popularity, who like a few item clusters, who share the tastes of a
    small community, or whose tastes are a smooth low-rank function. ``segment_effect`` e mixes each
    segment's weights with the others' (weights (1 - e) / 2 on every signal plus e on the own one,
    rescaled to the same norm): e = 0 makes all users alike.

    Measured at the claims' reduced world (150 users, 300 items, 12 epochs, seeds 0-9; each
    recommender served to every user all episode, recall of each segment's users): the best
    recommender of the mainstream segment is user-CF (0.086 against popularity's 0.074; 9 of 10
    seeds), of the item-cluster segment item-CF (0.037 against MF's 0.031; 9 of 10), of the
    community segment MF (0.040 against item-CF's 0.034; 8 of 10); for the latent-factor segment no
    recommender stands out (0.012-0.015; popularity in 4 of 10 seeds). The weights and sizes were
    chosen by this measurement alone (about 350 variants of these mechanisms, seeds 0-2); in none
    was popularity clearly the best recommender of a segment. Serving each segment its best
    recommender beats the best single one (user-CF, 0.158) by 0.022 +- 0.007 in final recall (sum
    of the segments' best over the best sum); with e = 0 by 0.002 +- 0.002. The archetypes are
    named by how their users choose, not by which recommender wins for them (user-CF's neighbours
    of a mainstream user are presumably other mainstream users, whose positives estimate
    popularity among them better than the global count).

    Features: users, a noisy view of the segment (``SEGMENT_SIGNAL`` times its one-hot plus unit
    Gaussian noise, one column per segment; the segment's own column is the largest for 55% of the
    users at the defaults) and 4 noisy coordinates of a fixed random projection of w_u (noise
    0.5); items, the genre flags.
    """
    rng = np.random.default_rng([WORLD_STREAM, int(key)])
    U, S, G, r, n = config.n_users, config.n_segments, N_GENRES, LATENT_DIM, config.ratings_per_user
    N = config.n_items
    segments = rng.permutation(np.arange(U) % S)
    # Items: genres, a latent vector near their genres' centres, a popularity, an item cluster.
    genre_weights = 1.0 / np.arange(1, G + 1)
    flags = rng.random((N, G)) < 0.1
    flags[np.arange(N), rng.choice(G, size=N, p=genre_weights / genre_weights.sum())] = True
    centres = rng.standard_normal((G, r))
    genre_mean = (flags @ centres) / flags.sum(axis=1, keepdims=True)
    v = np.sqrt(0.7) * genre_mean + np.sqrt(0.3) * rng.standard_normal((N, r))
    popularity = rng.standard_normal(N)
    n_clusters = max(1, N // CLUSTER_SIZE)
    cluster = rng.permutation(np.arange(N) % n_clusters)
    # Users: favourite item clusters, a community with its own favourite items, a latent vector.
    m = min(CLUSTERS_PER_USER, n_clusters)
    favourite_clusters = np.zeros((U, n_clusters), dtype=bool)
    np.put_along_axis(favourite_clusters, np.argsort(rng.random((U, n_clusters)), axis=1)[:, :m], True, axis=1)
    # Communities form within a segment: community users share tastes with their own kind.
    order = np.argsort(segments, kind="stable")
    rank = np.empty(U, dtype=np.int64)
    rank[order] = np.arange(U) - np.searchsorted(segments[order], segments[order])
    per_segment = -(-U // S // COMMUNITY_SIZE) + 1  # enough community ids for any segment
    community = segments * per_segment + rank // COMMUNITY_SIZE
    n_communities = S * per_segment
    shared = np.zeros((n_communities, N), dtype=bool)
    c_items = min(COMMUNITY_ITEMS, N)
    np.put_along_axis(shared, np.argsort(rng.random((n_communities, N)), axis=1)[:, :c_items], True, axis=1)
    w = rng.standard_normal((U, r))
    signals = np.stack(
        [
            np.broadcast_to(popularity, (U, N)),
            favourite_clusters[:, cluster],
            shared[community],
            (w @ v.T) / np.sqrt(r),
        ]
    ).astype(np.float64)  # (4, U, N), in ARCHETYPES order
    mean = signals.mean(axis=(1, 2), keepdims=True)
    std = signals.std(axis=(1, 2), keepdims=True)
    signals = (signals - mean) / np.where(std > 0, std, 1.0)
    # Each segment's weights: all alike at segment_effect 0, its own archetype's signal alone at 1.
    e = config.segment_effect
    mix = (1.0 - e) * np.full((S, 4), 0.5) + e * np.eye(4)[np.arange(S) % 4]
    mix *= np.asarray(PREFERENCE) / np.linalg.norm(mix, axis=1, keepdims=True)
    logits = np.einsum("um,mun->un", mix[segments], signals) + POPULARITY_BASE * signals[0] + CLUSTER_BASE * signals[1]
    noisy = logits + rng.gumbel(size=(U, N))
    rated = np.argpartition(-noisy, n - 1, axis=1)[:, :n]
    rows = np.repeat(np.arange(U), n)
    items = rated.reshape(-1)
    value = logits[rows, items] + rng.standard_normal(rows.size)
    cuts = np.quantile(value, np.cumsum(RATING_SHARES)[:-1])
    stars = 1.0 + np.searchsorted(cuts, value, side="right")
    projection = rng.standard_normal((USER_VIEW, r)) / np.sqrt(r)
    view = w @ projection.T + 0.5 * rng.standard_normal((U, USER_VIEW))
    segment_view = SEGMENT_SIGNAL * np.eye(S)[segments] + rng.standard_normal((U, S))
    user_features = np.concatenate([segment_view, view], axis=1)
    return RatingData(rows, items, stars, user_features, flags.astype(np.float64), segments, name="synthetic")


def _optional(check, name: str, value: Any, *args: Any) -> Any:
    return None if value is None else check(name, value, *args)


def _recommender_names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple, np.ndarray)):
        raise ValueError(f"recommenders must be a sequence of names from {RECOMMENDERS}, got {value!r}")
    names = list(value)
    for name in names:
        if not isinstance(name, str) or name not in RECOMMENDERS:
            raise ValueError(f"recommenders: unknown recommender {name!r}; the names are {RECOMMENDERS}")
    if len(names) < 2:
        raise ValueError(f"recommenders: selection needs k >= 2 candidates, got {len(names)}: {names}")
    if len(set(names)) != len(names):
        raise ValueError(f"recommenders must be distinct (a repeated candidate proposes the same items), got {names}")
    return tuple(names)


class SelectionConfig:
    """Validated constructor arguments of the environment, the data, and the fixed spaces.

    Raises:
        ValueError: naming the argument, for every invalid value or combination.
    """

    def __init__(
        self,
        data_dir: Any = None,
        data: RatingData | None = None,
        n_epochs: int = 20,
        recommenders: Sequence[str] = RECOMMENDERS,
        refit: str = "epoch",
        train_fraction: float = 0.1,
        positive_threshold: float = 3.0,
        n_users: int | None = None,
        n_items: int | None = None,
        n_segments: int | None = None,
        segment_effect: float | None = None,
        ratings_per_user: int | None = None,
        n_neighbors: int = 30,
        mf_rank: int | None = None,
        world_seed: int | None = None,
    ) -> None:
        self.n_epochs = positive_int("n_epochs", n_epochs)
        self.recommenders = _recommender_names(recommenders)
        self.refit = choice("refit", refit, REFIT)
        self.train_fraction = number("train_fraction", train_fraction, 0.0, 1.0, low_open=True, high_open=True)
        self.positive_threshold = number("positive_threshold", positive_threshold)
        n_users = _optional(positive_int, "n_users", n_users)
        n_items = _optional(positive_int, "n_items", n_items)
        n_segments = _optional(positive_int, "n_segments", n_segments)
        segment_effect = _optional(number, "segment_effect", segment_effect, 0.0, 1.0)
        ratings_per_user = _optional(positive_int, "ratings_per_user", ratings_per_user)
        self.n_neighbors = positive_int("n_neighbors", n_neighbors)
        mf_rank = _optional(positive_int, "mf_rank", mf_rank)
        self.world_seed = _optional(nonnegative_int, "world_seed", world_seed)
        if data is not None and not isinstance(data, RatingData):
            raise ValueError(f"data must be a RatingData or None, got {type(data).__name__}")
        if data is not None and data_dir is not None:
            raise ValueError("data and data_dir: pass one of them (data_dir reads MovieLens, data is custom)")
        synthetic_args = {
            "n_users": n_users, "n_items": n_items, "n_segments": n_segments,
            "segment_effect": segment_effect, "ratings_per_user": ratings_per_user, "world_seed": world_seed,
        }  # fmt: skip

        self.data: RatingData | None = None
        self.data_dir = None
        if data_dir is not None or data is not None:
            for name, value in synthetic_args.items():
                if value is not None:
                    raise ValueError(f"{name} applies to the synthetic world only (no data_dir, no data)")
            self.data = data if data is not None else movielens_data(data_dir)
            self.data_dir = None if data_dir is None else str(data_dir)
            self.n_users, self.n_items = self.data.n_users, self.data.n_items
            self.n_segments = self.segment_effect = self.ratings_per_user = None
            self.user_dim, self.item_dim = self.data.user_features.shape[1], self.data.item_features.shape[1]
            most_rated = self.data.max_ratings_per_user()
            n_ratings = self.data.n_ratings
            positives = int((self.data.ratings >= self.positive_threshold).sum())
        else:
            self.n_users = N_USERS if n_users is None else n_users
            self.n_items = N_ITEMS if n_items is None else n_items
            self.n_segments = N_SEGMENTS if n_segments is None else n_segments
            self.segment_effect = SEGMENT_EFFECT if segment_effect is None else segment_effect
            self.ratings_per_user = RATINGS_PER_USER if ratings_per_user is None else ratings_per_user
            if self.n_segments > self.n_users:
                raise ValueError(f"n_segments ({self.n_segments}) must not exceed n_users ({self.n_users})")
            if self.ratings_per_user >= self.n_items:
                raise ValueError(f"ratings_per_user ({self.ratings_per_user}) must be below n_items ({self.n_items})")
            self.user_dim, self.item_dim = self.n_segments + USER_VIEW, N_GENRES
            most_rated = self.ratings_per_user
            n_ratings = self.n_users * self.ratings_per_user
            # The star shares are fixed: a threshold keeps the ratings at or above it.
            stars = np.arange(1, 6)
            share = float(np.sum(np.asarray(RATING_SHARES)[stars >= self.positive_threshold]))
            positives = round(n_ratings * share)
        self.k = len(self.recommenders)
        self.obs_dim = self.user_dim + self.item_dim + self.k
        self.feature_slices = {
            "user": slice(0, self.user_dim),
            "item": slice(self.user_dim, self.user_dim + self.item_dim),
            "arm": slice(self.user_dim + self.item_dim, self.obs_dim),
        }
        self.check_memory()
        if self.n_items - most_rated < self.n_epochs:
            raise ValueError(
                f"n_epochs ({self.n_epochs}) must be at most n_items ({self.n_items}) minus the most ratings of one "
                f"user ({most_rated}): every user must have an unseen item to be recommended in every epoch"
            )
        self.n_train = round(self.train_fraction * n_ratings)
        if not 1 <= self.n_train <= n_ratings - 1:
            raise ValueError(
                f"train_fraction ({self.train_fraction}) leaves {self.n_train} of {n_ratings} ratings for "
                "training: both the training data and the test log need at least one"
            )
        if positives <= self.n_train:
            raise ValueError(
                f"positive_threshold ({self.positive_threshold}): only {positives} ratings are positive, "
                f"not more than the {self.n_train} training ratings, so a test log could hold none"
            )
        self.mf_rank = min(MF_RANK, self.n_users, self.n_items) if mf_rank is None else mf_rank
        if self.mf_rank > min(self.n_users, self.n_items):
            raise ValueError(
                f"mf_rank ({self.mf_rank}) must be at most min(n_users, n_items) = {min(self.n_users, self.n_items)}"
            )

    def signature(self) -> tuple:
        """What a split depends on (the arguments but ``n_epochs`` and ``refit``), hashable."""
        return (
            self.data, self.recommenders, self.train_fraction,
            self.positive_threshold, self.n_users, self.n_items, self.n_segments, self.segment_effect,
            self.ratings_per_user, self.n_neighbors, self.mf_rank, self.world_seed,
        )  # fmt: skip

    @property
    def steps_per_epoch(self) -> int:
        return self.n_users

    @property
    def episode_steps(self) -> int:
        return self.n_users * self.n_epochs

    def memory_parts(self) -> dict[str, int]:
        """Estimated bytes of the largest arrays, by what they hold."""
        U, N, k = self.n_users, self.n_items, self.k
        return {
            "score tables (k x users x items, float64, twice while refitting)": 16 * k * U * N,
            "protocol matrices (history, test log, positives)": 12 * U * N,
            "candidate fits (similarities, products)": 4 * N * N + 8 * U * U + 24 * U * N,
            "synthetic world draw (4 choice signals, logits, noise)": 0 if self.data is not None else 56 * U * N,
        }

    def check_memory(self) -> int:
        sizes = {"n_users": self.n_users, "n_items": self.n_items}
        if self.data is None:
            sizes["n_segments"] = self.n_segments
        return check_memory(sizes, self.memory_parts())

    def action_space(self) -> spaces.Discrete:
        return spaces.Discrete(self.k)

    def observation_space(self) -> spaces.Box:
        return spaces.Box(-np.inf, np.inf, (self.k, self.obs_dim), np.float32)

    def world(self, key: int) -> RatingData:
        """The ratings: the given data, or the synthetic world of ``key`` (``world_seed`` when given)."""
        if self.data is not None:
            return self.data
        return synthetic_data(self, key if self.world_seed is None else self.world_seed)


class SelectionSplit:
    """One split of a world's ratings (Sec. 5): ``n_train`` random ratings train, the rest is the test log.

    Holds the static arrays of an episode and the candidates' fit on the initial data, which an
    unseeded reset reuses.
    """

    def __init__(self, config: SelectionConfig, data: RatingData, key: int) -> None:
        self.config, self.data, self.key = config, data, int(key)
        shape = (data.n_users, data.n_items)
        rng = np.random.default_rng([SPLIT_STREAM, self.key])
        train = np.zeros(data.n_ratings, dtype=bool)
        train[rng.choice(data.n_ratings, size=config.n_train, replace=False)] = True
        positive = data.ratings >= config.positive_threshold
        self.known = np.zeros(shape, dtype=bool)  # rated in the training data: never proposed
        self.known[data.users[train], data.items[train]] = True
        self.train_matrix = np.zeros(shape)
        self.train_matrix[data.users[train & positive], data.items[train & positive]] = 1.0
        self.in_test = np.zeros(shape, dtype=bool)
        self.in_test[data.users[~train], data.items[~train]] = True
        self.test_positive = np.zeros(shape, dtype=bool)
        self.test_positive[data.users[~train & positive], data.items[~train & positive]] = True
        self.n_test_positives = int(self.test_positive.sum())
        self.user_features = standardise(data.user_features)
        self.item_features = standardise(data.item_features)
        self.recommenders = self.new_recommenders()
        self.initial_tables = fit_tables(self.recommenders, self.train_matrix)
        for array in (self.known, self.train_matrix, self.in_test, self.test_positive, self.initial_tables):
            array.flags.writeable = False  # shared by every run of the split; runs copy what they change

    @property
    def nbytes(self) -> int:
        arrays = (self.known, self.train_matrix, self.in_test, self.test_positive, self.initial_tables)
        return int(sum(a.nbytes for a in arrays))

    def new_recommenders(self) -> list[Recommender]:
        c = self.config
        return [make_recommender(name, c.n_neighbors, c.mf_rank) for name in c.recommenders]


SPLIT_CACHE_BYTES = 256 * 2**20
"""Splits (their world, test log and initial fits) kept for reuse, up to this many bytes in all."""

_SPLITS: OrderedDict[tuple, SelectionSplit] = OrderedDict()


def split_for(config: SelectionConfig, key: int) -> SelectionSplit:
    """The split of ``key`` under ``config``, reused while it is among the most recent ones.

    A split is a function of the arguments and the key alone, and its arrays are read-only, so
    envs (and resets of one env, e.g. a sweep over a few seeds) share it instead of drawing the
    world and fitting the candidates again.
    """
    cache_key = (config.signature(), int(key))
    split = _SPLITS.get(cache_key)
    if split is None:
        split = SelectionSplit(config, config.world(key), key)
        _SPLITS[cache_key] = split
    _SPLITS.move_to_end(cache_key)
    while len(_SPLITS) > 1 and sum(s.nbytes for s in _SPLITS.values()) > SPLIT_CACHE_BYTES:
        _SPLITS.popitem(last=False)
    return split


class SelectionRun:
    """The mutable state of one episode: history, reject lists, test log, refits, counts.

    ``blocked[u, i]`` is True for an item the user rated in the training data, was recommended
    and rated (history) or was recommended and had not rated (reject list): it is never proposed.
    """

    def __init__(self, config: SelectionConfig, split: SelectionSplit, order_rng: np.random.Generator) -> None:
        # The run's own config: a cached split may have been made under other n_epochs or refit.
        c = config
        self.split, self.config, self.order_rng = split, c, order_rng
        self.blocked = split.known.copy()
        self.rejected = np.zeros_like(split.known)
        self.in_test = split.in_test.copy()
        self.train_matrix = split.train_matrix.copy()
        self.recommenders = split.new_recommenders()
        self.tables = split.initial_tables.copy()
        self.t = 0
        self.successes = 0
        self.counts = np.zeros(c.k, dtype=np.int64)
        self.order = order_rng.permutation(c.n_users)
        self.user = int(self.order[0])
        self.proposals = self._propose(self.user)

    @property
    def epoch(self) -> int:
        return self.t // self.config.n_users

    @property
    def done(self) -> bool:
        return self.t >= self.config.episode_steps

    def _propose(self, user: int) -> np.ndarray:
        """int64 (k,): each candidate's best item for ``user`` that is neither known nor rejected."""
        rows = np.where(self.blocked[user], -np.inf, self.tables[:, user, :])
        return rows.argmax(axis=1).astype(np.int64)

    def observation(self) -> np.ndarray:
        s, c = self.split, self.config
        obs = np.zeros((c.k, c.obs_dim), dtype=np.float32)
        obs[:, c.feature_slices["user"]] = s.user_features[self.user]
        obs[:, c.feature_slices["item"]] = s.item_features[self.proposals]
        obs[:, c.feature_slices["arm"]] = np.eye(c.k, dtype=np.float32)
        return obs

    def play(self, arm: int) -> tuple[float, dict[str, Any]]:
        """Serve ``arm``'s proposal to the current user, update the bookkeeping, move to the next request."""
        c, s = self.config, self.split
        user, proposals = self.user, self.proposals
        item = int(proposals[arm])
        positive = s.test_positive[user, proposals] & self.in_test[user, proposals]
        reward = float(positive[arm])
        rated = bool(self.in_test[user, item])
        if rated:  # to the user's history, labelled by the rating
            self.in_test[user, item] = False
            if positive[arm]:
                self.train_matrix[user, item] = 1.0
                self.successes += 1
        else:  # to the reject list
            self.rejected[user, item] = True
        self.blocked[user, item] = True
        self.counts[arm] += 1
        epoch = self.epoch
        self.t += 1
        optimal = float(positive.any())
        regret = optimal - reward
        info = {
            "user": np.int64(user),
            "proposals": proposals.copy(),
            "arm": np.int64(arm),
            "item": np.int64(item),
            "rated": np.bool_(rated),
            "epoch": np.int64(epoch),
            "traffic_share": self.counts / self.t,
            "reward": np.float64(reward),
            "expected_reward": np.float64(reward),
            "optimal_expected_reward": np.float64(optimal),
            "regret": np.float64(regret),
            "nominator_regret": np.float64(0.0),
            "ranker_regret": np.float64(regret),
            "positive": positive.copy(),
            "recall": np.float64(self.successes / s.n_test_positives),
        }
        if self.t % c.n_users == 0:  # an epoch ends
            if c.refit == "epoch":
                self.tables = fit_tables(self.recommenders, self.train_matrix)
            self.order = self.order_rng.permutation(c.n_users)
        self.user = int(self.order[self.t % c.n_users])
        self.proposals = self._propose(self.user)
        return reward, info
