"""The world behind ``TwoStage/TopicItem-v0``: configuration, the drawn world, and one batched round.

The topic-item paper (*Two-Stage Neural Contextual Bandits for Adaptive Personalised
Recommendations*, Alg. 1-2, Sec. 4). The configuration (validated arguments and the fixed spaces),
the world (latents, features, topics, the calibrated click model and each user's best m items,
precomputed once), the action check, and the batched stages a round is made of: the topic stage
(DynaTopicRec and budgeted candidate sampling), the item stage (one item per group, clicks and the
oracle quantities) and the observation. The env classes in :mod:`twostage_gym.envs.topic_item`
compose these, so the single env and the vector env cannot drift.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from twostage_gym.core.checks import boolean, choice, nonnegative_int, number, optional, positive_int, within_bound
from twostage_gym.core.clicks import CLICK_MODELS, ClickModel
from twostage_gym.core.streams import UserStream, round_generator
from twostage_gym.core.topics import TopicIndex, dyna_topic_rec, power_law_sizes, sort_topics, top_topic_groups
from twostage_gym.core.vector import check_vector_memory
from twostage_gym.datasets.movielens import check_data_dir, movielens_score_model

__all__ = [
    "COLUMNS",
    "DATASETS",
    "PHASE_ITEM",
    "PHASE_TOPIC",
    "SCORE_BOUND",
    "TopicItemConfig",
    "TopicItemWorld",
    "check_scores",
    "item_stage",
    "observe",
    "seed_streams",
    "split_observation",
    "start_round",
    "topic_stage",
    "world_key",
]

DATASETS = ("synthetic", "movielens")
PHASE_TOPIC, PHASE_ITEM = 0, 1

SCORE_BOUND = 1e6
"""Bound of the scores action space. Only the order of scores matters (sorting topics, the argmax of
a group), so any finite bound works; the early-stage ranker's 1e6 is kept for one convention."""

COLUMNS = ("mask", "id", "topic", "group", "log_size")
"""The leading columns of each row of the observation's table; the item features follow."""

N_ITEMS, N_TOPICS = 10_000, 50
TOPIC_AFFINITY, SIZE_POPULARITY, TOPIC_SIZE_EXPONENT, FLIP_PROB = 0.7, 0.3, 1.0, 0.1
"""Synthetic defaults. With them a user's own top three topics hold about 89% of their positives
(against 57% in the three topics that are best for the population), and items of uniformly random
topic groups click about 13% less than uniformly random items (Table 5's 2-random < random)."""

MAX_ID = 2**24
"""Ids travel as float32 in the observation, which holds every integer up to 2**24 exactly."""

FEATURE_LIMIT = 2**20
"""``features_in_obs=None`` puts the candidates' features in the observation while rows x item_dim
stays at most this many floats (4 MiB), and ids only above it."""

WORLD_STREAM = 0x70B1C
"""The world is drawn from ``np.random.default_rng([WORLD_STREAM, key])``, key the world seed or reset seed."""
LOG_STREAM = 0x106
"""``logged_clicks(n, seed)`` draws from ``np.random.default_rng([LOG_STREAM, key, seed])``."""

_THRESHOLD_SAMPLE = 2**20  # pairs whose scores set the click threshold (all pairs when fewer)
_BLOCK = 2**16  # elements of a (users x items) block of scores while a world is scanned
_PAIR_CHUNK = 2**16  # pairs scored at a time where many are


class TopicItemConfig:
    """Validated constructor arguments shared by the single and the vector env, and the fixed spaces.

    Raises:
        ValueError: naming the argument, for every invalid value or combination.
    """

    def __init__(
        self,
        n_users: int = 100,
        n_items: int | None = None,
        n_topics: int | None = None,
        n_slots: int = 5,
        budget_per_slot: int | None = 200,
        min_group_size: int | None = None,
        hierarchy: bool = True,
        dynamic_topics: bool = True,
        click_model: str = "threshold",
        positive_rate: float = 0.05,
        flip_prob: float | None = None,
        topic_affinity: float | None = None,
        size_popularity: float | None = None,
        topic_size_exponent: float | None = None,
        latent_dim: int = 16,
        item_dim: int = 16,
        user_dim: int = 16,
        feature_noise: float = 0.5,
        features_in_obs: bool | None = None,
        dataset: str = "synthetic",
        data_dir: str | None = None,
        world_seed: int | None = None,
    ) -> None:
        # Types and ranges first, each by name, so that a wrong value is named before any relation.
        self.n_users = positive_int("n_users", n_users)
        n_items = optional(positive_int, "n_items", n_items)
        n_topics = optional(positive_int, "n_topics", n_topics)
        self.n_slots = positive_int("n_slots", n_slots)
        self.budget_per_slot = optional(positive_int, "budget_per_slot", budget_per_slot)
        min_group_size = optional(positive_int, "min_group_size", min_group_size)
        self.hierarchy = boolean("hierarchy", hierarchy)
        self.dynamic_topics = boolean("dynamic_topics", dynamic_topics)
        self.click_model = choice("click_model", click_model, CLICK_MODELS)
        self.positive_rate = number("positive_rate", positive_rate, 0.0, 1.0, low_open=True, high_open=True)
        flip_prob = optional(number, "flip_prob", flip_prob, 0.0, 0.5)
        topic_affinity = optional(number, "topic_affinity", topic_affinity, 0.0, 1.0)
        size_popularity = optional(number, "size_popularity", size_popularity, 0.0, 10.0)
        topic_size_exponent = optional(number, "topic_size_exponent", topic_size_exponent, 0.0, 20.0)
        self.latent_dim = positive_int("latent_dim", latent_dim)
        self.item_dim = positive_int("item_dim", item_dim)
        self.user_dim = positive_int("user_dim", user_dim)
        self.feature_noise = number("feature_noise", feature_noise, 0.0, 100.0)
        features_in_obs = boolean("features_in_obs", features_in_obs, allow_none=True)
        self.dataset = choice("dataset", dataset, DATASETS)
        self.world_seed = optional(nonnegative_int, "world_seed", world_seed)
        if self.click_model == "bernoulli" and flip_prob is not None:
            raise ValueError("flip_prob applies to click_model='threshold' only (Bernoulli clicks are not flipped)")
        self.flip_prob = (FLIP_PROB if flip_prob is None else flip_prob) if self.click_model == "threshold" else 0.0

        self.data = self.user_factors = self.item_factors = None
        if self.dataset == "movielens":
            if data_dir is None:
                raise ValueError("data_dir: dataset='movielens' needs data_dir, the folder holding the MovieLens files")
            path = check_data_dir(data_dir)
            given = {
                "n_items": n_items,
                "n_topics": n_topics,
                "topic_affinity": topic_affinity,
                "size_popularity": size_popularity,
                "topic_size_exponent": topic_size_exponent,
            }
            for name, value in given.items():
                if value is not None:
                    raise ValueError(f"{name} applies to dataset='synthetic' only; with MovieLens the data decides it")
            self.data_dir = str(path)
            self._check_movielens_sizes(path)
        else:
            if data_dir is not None:
                raise ValueError(f"data_dir applies to dataset='movielens' only, got data_dir={data_dir!r}")
            self.data_dir = None
            self.n_items = N_ITEMS if n_items is None else n_items
            self.n_topics = N_TOPICS if n_topics is None else n_topics
            self.topic_affinity = TOPIC_AFFINITY if topic_affinity is None else topic_affinity
            self.size_popularity = SIZE_POPULARITY if size_popularity is None else size_popularity
            self.topic_size_exponent = TOPIC_SIZE_EXPONENT if topic_size_exponent is None else topic_size_exponent
            if self.n_topics > self.n_items:
                raise ValueError(
                    f"n_topics ({self.n_topics}) must not exceed n_items ({self.n_items}): every topic needs an item"
                )
        for name in ("n_users", "n_items"):
            if getattr(self, name) > MAX_ID:
                raise ValueError(f"{name} must be at most {MAX_ID} (ids travel as float32), got {getattr(self, name)}")
        T, m = self.n_topics, self.n_slots
        if m > T:
            raise ValueError(f"n_slots (m={m}) must not exceed n_topics ({T}): each slot starts from its own topic")

        # The budget B = b m: every topic's score, then (B - n_topics) // m items per group (Sec. 4).
        self.budget = None if self.budget_per_slot is None else self.budget_per_slot * m
        if self.budget is not None and self.budget < T + m:
            raise ValueError(
                f"budget_per_slot: the budget B = budget_per_slot * n_slots = {self.budget} is below "
                f"n_topics + n_slots = {T + m}: a round must afford every topic's score and an item per slot"
            )
        if not self.hierarchy and not self.dynamic_topics:
            raise ValueError("dynamic_topics=False applies to hierarchy=True (the one-stage variant has no topics)")
        if min_group_size is not None and not (self.hierarchy and self.dynamic_topics):
            raise ValueError("min_group_size applies to hierarchy=True with dynamic_topics=True (DynaTopicRec) only")
        if min_group_size is not None:
            self.min_group_size = min_group_size
        elif self.budget_per_slot is not None:
            self.min_group_size = self.budget_per_slot  # the paper's p = b (Sec. 4.1)
        else:
            self.min_group_size = max(1, self.n_items // T)  # Table 6: "# items / # topics"

        # The fixed shapes: rows of the table (padded to the larger of n_topics and the item candidates).
        if self.hierarchy:
            self.per_group = None if self.budget is None else (self.budget - T) // m
            self.max_candidates = self.n_items if self.budget is None else min(m * self.per_group, self.n_items)
            self.n_rows = max(T, self.max_candidates)
        else:
            self.per_group = None
            self.max_candidates = self.n_items if self.budget is None else min(self.budget, self.n_items)
            self.n_rows = self.max_candidates
        if features_in_obs is None:
            features_in_obs = self.n_rows * self.item_dim <= FEATURE_LIMIT
        self.features_in_obs = features_in_obs
        self.width = len(COLUMNS) + (self.item_dim if features_in_obs else 0)
        self.header = 2 + self.user_dim
        self.obs_size = self.header + self.n_rows * self.width
        self.check_memory()

    def _check_movielens_sizes(self, path: Any) -> None:
        # Loading and fitting are cached per folder and rank, so envs of one study share them.
        try:
            data, user, item = movielens_score_model(path, self.latent_dim)
        except ValueError as err:
            if "rank" in str(err):
                raise ValueError(f"latent_dim: {err}") from None
            raise
        self.data, self.user_factors, self.item_factors = data, user, item
        self.n_items, self.n_topics = data.n_items, data.n_topics
        self.topic_affinity = self.size_popularity = self.topic_size_exponent = None
        if self.n_users >= data.n_users:
            raise ValueError(
                f"n_users ({self.n_users}) must be below the data's {data.n_users} users: "
                "the others are the logged history (logged_clicks)"
            )

    # -- memory ---------------------------------------------------------------------------------
    def memory_parts(self, num_envs: int = 1) -> dict[str, int]:
        """Estimated bytes of the largest arrays the env allocates, by what they hold.

        Args:
            num_envs: sub-envs of a vector env (1 for the single env). Without ``world_seed``
                each sub-env seeded on its own draws its own world, so worlds count num_envs times.
        """
        U, T, k, d1, d2 = self.n_users, self.n_topics, self.latent_dim, self.item_dim, self.user_dim
        N, P, W, m = self.n_items, self.n_rows, self.width, self.n_slots
        worlds = 1 if self.world_seed is not None else num_envs
        # float32 latents and features, float64 temporaries while drawing them (about 28 bytes an
        # entry at the peak, as in the early-stage ranker), topic ids and the topic index.
        parts = {
            "item tables (latents, features, topics, index)": worlds * (28 * N * (k + d1) + 40 * N),
            "user tables (latents, features, best items)": worlds * (28 * U * (k + d2) + 32 * U * m),
            "topic tables": worlds * (28 * T * (k + d1) + 4 * P * W),
            "world scan (score blocks, threshold sample)": 48 * _BLOCK
            + 24 * min(U * N, _THRESHOLD_SAMPLE)
            + 12 * _PAIR_CHUNK * k,
            # float32 bounds and two bool masks per Box entry, an observation, the action.
            "spaces": 10 * (self.obs_size + P),
            # Per sub-env: the observation, the candidates and their groups, the candidates'
            # gathered latents and scores at the item stage.
            "step working set": num_envs * (8 * self.obs_size + 24 * P + 12 * P * k + 8 * T),
        }
        if self.data is not None:
            parts["ratings and score model"] = 24 * self.data.n_users * self.data.n_items + 40 * self.data.n_ratings
        return parts

    def check_memory(self, num_envs: int = 1) -> int:
        """Refuse sizes whose arrays exceed :data:`twostage_gym.core.checks.MEMORY_LIMIT_BYTES`.

        Raises:
            ValueError: naming the size arguments and giving the estimate.
        """
        sizes = {
            "n_users": self.n_users,
            "n_items": self.n_items,
            "latent_dim": self.latent_dim,
            "item_dim": self.item_dim,
            "user_dim": self.user_dim,
            "budget_per_slot": self.budget_per_slot,
        }
        return check_vector_memory(sizes, self.memory_parts(num_envs), num_envs, self.world_seed)

    # -- spaces ---------------------------------------------------------------------------------
    def action_space(self) -> spaces.Box:
        return spaces.Box(-SCORE_BOUND, SCORE_BOUND, (self.n_rows,), np.float32)

    def observation_space(self) -> spaces.Box:
        low = np.full(self.obs_size, -np.inf, dtype=np.float32)
        high = np.full(self.obs_size, np.inf, dtype=np.float32)
        low[:2], high[:2] = 0.0, (1.0, self.n_users - 1)  # phase, user
        tl = low[self.header :].reshape(self.n_rows, self.width)
        th = high[self.header :].reshape(self.n_rows, self.width)
        tl[:, :5] = (0.0, 0.0, 0.0, -1.0, 0.0)
        # np.log as for the world's log sizes, so that a topic holding every item sits on the bound.
        th[:, :5] = (1.0, self.n_items - 1, self.n_topics - 1, self.n_slots - 1, np.log(np.float64(self.n_items)))
        return spaces.Box(low, high, (self.obs_size,), np.float32)


class TopicItemWorld:
    """One world: latents, the agent's features, topics, the click model and the per-user optimum.

    Scores: score(u, i) = <theta_u, phi_i> + bias(topic(i)), computed in float64 from float32
    latents by explicit accumulations over the latent dimensions, so that a pair's score is the
    same bit for bit whether it is computed alone, in a batch or while the world is scanned (a
    label at the threshold never depends on how it was computed).

    Attributes:
        key: the seed it was drawn from.
        index: the :class:`~twostage_gym.core.topics.TopicIndex` (topic of every item, sizes).
        topic_bias: float64 ``(n_topics,)`` the popularity term of each topic.
        user_latents: float32 ``(n_users, latent_dim)``; ``item_latents`` float32 ``(n_items, latent_dim)``.
        user_features: float32 ``(n_users, user_dim)``; ``item_features`` float32 ``(n_items, item_dim)``;
            ``topic_features`` float32 ``(n_topics, item_dim)``.
        log_sizes: float32 ``(n_topics,)`` log of each topic's size (a column of the observation).
        click: the calibrated :class:`~twostage_gym.core.clicks.ClickModel`.
        optimal_items: int64 ``(n_users, m)`` each user's best m items of the catalog, best first.
        best_values: float64 ``(n_users, m)`` their expected clicks (non-increasing).
        optimal_values: float64 ``(n_users,)`` their sum, each user's ``optimal_expected_reward``.
        n_positives: int64 ``(n_users,)`` items with score >= threshold (the noiseless positives).
        topic_table: float32 ``(n_rows, width)`` the topic phase's table (the same every round).
    """

    def __init__(self, config: TopicItemConfig, key: int) -> None:
        c = config
        self.key = int(key)
        rng = np.random.default_rng([WORLD_STREAM, self.key])
        k = c.latent_dim
        if c.dataset == "synthetic":
            self._draw_synthetic(c, rng)
            # Unit-variance latent coordinates by construction (items) and after sqrt(k) (users).
            item_scale, user_scale = 1.0, 1.0 / math.sqrt(k)
        else:
            self._from_movielens(c, rng)
            item_scale = float(np.std(self._item_latents_t)) or 1.0
            user_scale = float(np.std(self.user_latents)) or 1.0
        self.log_sizes = np.log(self.index.sizes).astype(np.float32)
        # The agent's view (Sec. 2: x_i in R^d1, z_u in R^d2): a fixed random isometry of the
        # standardised latent plus Gaussian noise. d < latent_dim drops directions (a partial view).
        self._item_view = _isometry(rng, c.item_dim, k)
        self._user_view = _isometry(rng, c.user_dim, k)
        self._user_scale = user_scale
        self.item_features = self._view(self.item_latents / item_scale, self._item_view, c.feature_noise, rng)
        self.user_features = self._view(self.user_latents / user_scale, self._user_view, c.feature_noise, rng)
        # A topic's features view the mean latent of its items.
        sorted_latents = self.item_latents[self.index.items]
        means = np.add.reduceat(sorted_latents.astype(np.float64), self.index.starts[:-1], axis=0)
        means /= self.index.sizes[:, None]
        self.topic_features = self._view(means / item_scale, self._item_view, c.feature_noise, rng)
        self.click = self._calibrate(c, rng)
        self._precompute(c)
        self.topic_table = self._topic_table(c)

    # -- drawing --------------------------------------------------------------------------------
    def _draw_synthetic(self, c: TopicItemConfig, rng: np.random.Generator) -> None:
        T, N, k = c.n_topics, c.n_items, c.latent_dim
        sizes = power_law_sizes(N, T, c.topic_size_exponent)[rng.permutation(T)]
        self.index = TopicIndex(rng.permutation(np.repeat(np.arange(T), sizes)), T)
        centres = rng.standard_normal((T, k), dtype=np.float32)
        noise = rng.standard_normal((N, k), dtype=np.float32)
        # phi_i = sqrt(rho) mu_topic(i) + sqrt(1 - rho) eps_i: rho = topic_affinity is the share of an
        # item's latent variance its topic explains; users then agree within a topic, and a user's
        # positives gather in the few topics whose centres point their way.
        rho = c.topic_affinity
        latents = np.float32(math.sqrt(rho)) * centres[self.index.item_topics]
        latents += np.float32(math.sqrt(1.0 - rho)) * noise
        del noise
        self._item_latents_t = np.ascontiguousarray(latents.T)
        del latents
        self.user_latents = (rng.standard_normal((c.n_users, k)) / math.sqrt(k)).astype(np.float32)
        # Large topics more popular (Sec. 3.2): a bias linear in the standardised log topic size.
        log_size = np.log(self.index.sizes.astype(np.float64))
        spread = log_size.std()
        z = (log_size - log_size.mean()) / spread if spread > 0 else np.zeros(T)
        self.topic_bias = c.size_popularity * z

    def _from_movielens(self, c: TopicItemConfig, rng: np.random.Generator) -> None:
        data = c.data
        self.index = TopicIndex(data.item_topics, data.n_topics)
        self._item_latents_t = np.ascontiguousarray(c.item_factors.T.astype(np.float32))
        # The simulated users: a random subset; the others are the logged history.
        self.dataset_users = np.sort(rng.choice(data.n_users, c.n_users, replace=False)).astype(np.int64)
        self.user_latents = c.user_factors[self.dataset_users].astype(np.float32)
        self.topic_bias = np.zeros(data.n_topics)  # the low-rank scores carry the data's popularity

    @staticmethod
    def _view(latents: np.ndarray, view: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
        out = (np.asarray(latents, dtype=np.float32) @ view.T).astype(np.float32)
        out += np.float32(noise) * rng.standard_normal(out.shape, dtype=np.float32)
        return out

    def _calibrate(self, c: TopicItemConfig, rng: np.random.Generator) -> ClickModel:
        """The click model whose positives make up ``positive_rate`` of the users' pairs."""
        U, N = c.n_users, c.n_items
        if U * N <= _THRESHOLD_SAMPLE:
            flat = np.arange(U * N, dtype=np.int64)
        else:
            flat = rng.integers(0, U * N, _THRESHOLD_SAMPLE)
        users, items = np.divmod(flat, N)
        scores = np.concatenate(
            [
                self.scores(users[s : s + _PAIR_CHUNK], items[s : s + _PAIR_CHUNK, None])[:, 0]
                for s in range(0, flat.size, _PAIR_CHUNK)
            ]
        )
        return ClickModel.calibrated(c.click_model, scores, c.positive_rate, c.flip_prob)

    def _precompute(self, c: TopicItemConfig) -> None:
        """Each user's best m items and the noiseless positives, in blocks of users x items."""
        U, N, m = c.n_users, c.n_items, c.n_slots
        users_per_block = max(1, min(U, _BLOCK // N, 64))
        items_per_block = max(m, _BLOCK // users_per_block)
        self.optimal_items = np.empty((U, m), dtype=np.int64)
        self.n_positives = np.zeros(U, dtype=np.int64)
        theta = self.user_latents.astype(np.float64)
        for u0 in range(0, U, users_per_block):
            th = theta[u0 : u0 + users_per_block]
            rows = slice(u0, u0 + th.shape[0])
            ids = vals = None
            for i0 in range(0, N, items_per_block):
                z = self._score_block(th, i0, min(i0 + items_per_block, N))
                self.n_positives[rows] += (z >= self.click.threshold).sum(axis=1)
                if ids is None:  # the first block holds at least m items (n_items >= n_topics >= m)
                    top = np.argpartition(-z, m - 1, axis=1)[:, :m]
                    ids, vals = top + i0, np.take_along_axis(z, top, 1)
                    continue
                # Later blocks: only scores above a row's current m-th best can enter its top m
                # (a tie loses to the lower id already held), usually a handful.
                r, col = np.nonzero(z > vals.min(axis=1, keepdims=True))
                if r.size:
                    ids, vals = _merge_top(ids, vals, r, col + i0, z[r, col], m)
            # Best first; equal scores by item id among those held.
            order = np.lexsort((ids, -vals), axis=1)
            self.optimal_items[rows] = np.take_along_axis(ids, order, 1)
        # Their expected clicks through the same per-pair path as every round's, so that a round that
        # picks exactly these items has zero regret, exactly.
        self.best_values = self.expected(np.arange(U), self.optimal_items)
        self.optimal_values = canonical_sum(self.best_values)

    def _topic_table(self, c: TopicItemConfig) -> np.ndarray:
        table = np.zeros((c.n_rows, c.width), dtype=np.float32)
        t = np.arange(c.n_topics)
        table[t, 0], table[t, 1], table[t, 2], table[t, 3], table[t, 4] = 1.0, t, t, -1.0, self.log_sizes
        if c.features_in_obs:
            table[t, len(COLUMNS) :] = self.topic_features
        return table

    # -- the truth --------------------------------------------------------------------------------
    @property
    def item_latents(self) -> np.ndarray:
        """float32 ``(n_items, latent_dim)`` (a transposed view of the stored array)."""
        return self._item_latents_t.T

    @property
    def item_topics(self) -> np.ndarray:
        return self.index.item_topics

    def _score_block(self, theta: np.ndarray, lo: int, hi: int) -> np.ndarray:
        lt = self._item_latents_t
        z = theta[:, 0, None] * lt[0, lo:hi]
        product = np.empty_like(z)
        for j in range(1, lt.shape[0]):
            # float64 times float32 promoted to float64, as in scores_from: the same products.
            np.multiply(theta[:, j, None], lt[j, lo:hi], out=product)
            z += product
        z += self.topic_bias[self.index.item_topics[lo:hi]]
        return z

    def scores_from(self, theta: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Scores of latent users ``theta`` (B, k) float64 for their ``items`` (B, C): float64 (B, C).

        The same operations, in the same order, as the world scan: bit-identical scores."""
        g = self._item_latents_t[:, items]  # (k, B, C) float32
        z = theta[:, 0, None] * g[0]
        for j in range(1, g.shape[0]):
            z += theta[:, j, None] * g[j]
        z += self.topic_bias[self.index.item_topics[items]]
        return z

    def scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """score(u, i) for ``users`` (B,) and their ``items`` (B, C): float64 (B, C). O(B C k)."""
        return self.scores_from(self.user_latents[users].astype(np.float64), items)

    def expected(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Expected clicks (the flip included) of ``users`` (B,) on their ``items`` (B, C): float64 (B, C)."""
        return self.click.expected(self.scores(users, items))

    # -- the logged history -------------------------------------------------------------------------
    def logged_clicks(self, config: TopicItemConfig, n: int, seed: int, per_user: int) -> dict[str, np.ndarray]:
        """``n`` logged (user, item, click) records of users outside the simulated set (see the env)."""
        n = positive_int("n", n)
        seed = nonnegative_int("seed", seed)
        per_user = positive_int("per_user", per_user)
        rng = np.random.default_rng([LOG_STREAM, self.key, seed])
        if config.dataset == "movielens":
            return self._logged_movielens(config, n, rng)
        n_log = -(-n // per_user)
        theta = (rng.standard_normal((n_log, config.latent_dim)) / math.sqrt(config.latent_dim)).astype(np.float32)
        users = np.arange(n, dtype=np.int64) // per_user
        items = rng.integers(0, config.n_items, n)
        uniforms = rng.random(n)
        scores = np.concatenate(
            [
                self.scores_from(theta[users[s : s + _PAIR_CHUNK]].astype(np.float64), items[s : s + _PAIR_CHUNK, None])
                for s in range(0, n, _PAIR_CHUNK)
            ]
        )[:, 0]
        features = self._view(theta / self._user_scale, self._user_view, config.feature_noise, rng)
        return {
            "user_features": features,
            "users": users,
            "items": items.astype(np.int64),
            "clicks": self.click.sample(scores, uniforms),
        }

    def _logged_movielens(self, config: TopicItemConfig, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        data = config.data
        outside = np.flatnonzero(~np.isin(data.users, self.dataset_users))
        if n > outside.size:
            raise ValueError(f"n: the data holds {outside.size} ratings of users outside the simulated set, asked {n}")
        records = np.sort(rng.choice(outside, n, replace=False))
        dataset_users, users = np.unique(data.users[records], return_inverse=True)
        theta = config.user_factors[dataset_users]
        features = self._view(theta / self._user_scale, self._user_view, config.feature_noise, rng)
        return {
            "user_features": features,
            "users": users.astype(np.int64),
            "items": data.items[records].astype(np.int64),
            "clicks": (data.ratings[records] >= 4.0).astype(np.int64),
        }


def _top_rows(scores: np.ndarray, m: int) -> np.ndarray:
    """The positions of the m highest scores of each row, best first, ties to the lower position.

    What ``np.argsort(-scores, kind="stable")[:, :m]`` gives, in O(n) a row instead of O(n log n)
    (a one-stage round without a budget scores the whole catalog).
    """
    kth = -np.partition(-scores, m - 1, axis=1)[:, m - 1 : m]  # each row's m-th highest score
    above = scores > kth
    tied = scores == kth
    take = above | (tied & (np.cumsum(tied, axis=1) <= m - above.sum(axis=1, keepdims=True)))
    pos = np.nonzero(take)[1].reshape(scores.shape[0], m)  # exactly m a row, in row order
    order = np.argsort(-np.take_along_axis(scores, pos, 1), axis=1, kind="stable")
    return np.take_along_axis(pos, order, 1)


def _merge_top(
    ids: np.ndarray, vals: np.ndarray, rows: np.ndarray, new_ids: np.ndarray, new_vals: np.ndarray, m: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's top m of its held (ids, vals) and the new entries (rows, new_ids, new_vals)."""
    n = ids.shape[0]
    counts = np.bincount(rows, minlength=n)
    width = int(counts.max())
    pos = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)  # rows come sorted
    more_ids = np.full((n, width), -1, dtype=np.int64)
    more_vals = np.full((n, width), -np.inf)
    more_ids[rows, pos], more_vals[rows, pos] = new_ids, new_vals
    all_ids, all_vals = np.concatenate([ids, more_ids], axis=1), np.concatenate([vals, more_vals], axis=1)
    order = np.lexsort((all_ids, -all_vals), axis=1)[:, :m]
    return np.take_along_axis(all_ids, order, 1), np.take_along_axis(all_vals, order, 1)


def _isometry(rng: np.random.Generator, d: int, k: int) -> np.ndarray:
    """A random ``(d, k)`` float32 matrix with orthonormal rows (d <= k) or columns (d > k)."""
    q, r = np.linalg.qr(rng.standard_normal((max(d, k), max(d, k))))
    q *= np.sign(np.diag(r))  # the Haar-uniform orthogonal matrix (Mezzadri 2007)
    return q[:d, :k].astype(np.float32)


def canonical_sum(values: np.ndarray) -> np.ndarray:
    """Sum over the last axis of the values sorted decreasingly, left to right.

    One fixed order for every sum of m expected clicks: equal multisets give equal sums bit for bit,
    and (floating-point addition being monotone) values that are no larger one by one, after
    sorting, give a sum that is no larger. So regrets are >= 0 and exactly 0 at the optimum.
    """
    v = -np.sort(-np.asarray(values, dtype=np.float64), axis=-1)
    total = v[..., 0].copy()
    for j in range(1, v.shape[-1]):
        total += v[..., j]
    return total


# -- streams ---------------------------------------------------------------------------------------
def world_key(config: TopicItemConfig, seed: int | None, np_random: np.random.Generator) -> int:
    if config.world_seed is not None:
        return config.world_seed
    if seed is not None:
        return int(seed)
    return int(np_random.integers(0, 2**63 - 1))


def seed_streams(np_random: np.random.Generator, n_users: int) -> tuple[UserStream, int]:
    """The user stream and the round key of an env, from its generator.

    Users never depend on what the agent does. Round r's draws (click noise, then candidate
    sampling) come from ``round_generator(round_key, r)``, so they never depend on earlier rounds.
    """
    user_seed, round_key = np_random.integers(0, 2**63 - 1, size=2)
    return UserStream(np.random.default_rng(int(user_seed)), n_users), int(round_key)


def start_round(
    config: TopicItemConfig, round_key: int, round_index: int
) -> tuple[np.random.Generator, np.ndarray, np.ndarray | None]:
    """A round's generator, its m click uniforms (drawn first, so that their values never depend on
    the candidates) and, for the one-stage variant, its candidates (the budget's items, uniformly)."""
    rng = round_generator(round_key, round_index)
    uniforms = rng.random(config.n_slots)
    candidates = None
    if not config.hierarchy:
        if config.max_candidates < config.n_items:
            candidates = rng.choice(config.n_items, config.max_candidates, replace=False).astype(np.int64)
        else:
            candidates = np.arange(config.n_items, dtype=np.int64)
    return rng, uniforms, candidates


# -- actions ---------------------------------------------------------------------------------------
def check_scores(action: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Validate a scores action and return it as a float32 array.

    Raises:
        ValueError: wrong shape, a dtype other than float32, a NaN or infinite score, or a score
            outside [-SCORE_BOUND, SCORE_BOUND].
    """
    a = np.asarray(action)
    if a.shape != shape:
        raise ValueError(f"scores must have shape {shape} (one score per row of the observation), got {a.shape}")
    if a.dtype != np.float32:
        raise ValueError(f"scores must have dtype float32 (the action space's dtype), got dtype {a.dtype}")
    within_bound("scores", a, SCORE_BOUND, "score")
    return a


# -- the stages ------------------------------------------------------------------------------------
def topic_stage(
    config: TopicItemConfig, world: TopicItemWorld, topic_scores: np.ndarray, rngs: list[np.random.Generator]
) -> dict[str, np.ndarray]:
    """Stage one of Alg. 1 for a batch of rounds: sort topics, build the groups, sample candidates.

    Args:
        topic_scores: ``(B, n_topics)`` the agent's topic scores.
        rngs: the B rounds' generators (consumed by the candidate sampling).

    Returns:
        ``groups`` int64 (B, n_topics) (group of each topic, -1 if none), ``group_sizes`` int64
        (B, m) items per group in the catalog, ``candidates`` and ``candidate_groups`` int64
        (B, n_rows) padded with -1, ``n_candidates`` int64 (B,).
    """
    c, index = config, world.index
    m, n = c.n_slots, topic_scores.shape[0]
    order = sort_topics(topic_scores)
    if c.dynamic_topics:
        groups = dyna_topic_rec(order, index.sizes, m, c.min_group_size)
    else:
        groups = top_topic_groups(order, m)
    sizes = np.stack([(index.sizes * (groups == g)).sum(axis=1) for g in range(m)], axis=1)
    candidates = np.full((n, c.n_rows), -1, dtype=np.int64)
    candidate_groups = np.full((n, c.n_rows), -1, dtype=np.int64)
    n_candidates = np.zeros(n, dtype=np.int64)
    share = c.n_items if c.per_group is None else c.per_group
    for r in range(n):  # each round draws from its own generator (common random numbers)
        ranked_groups = groups[r][order[r]]
        lists = [order[r][ranked_groups == g] for g in range(m)]
        items = [index.sample(rngs[r], topics, share) for topics in lists]
        if not c.dynamic_topics and c.per_group is not None:
            # Sec. 4.2: a topic smaller than its share is padded with items drawn uniformly from the
            # rest of the catalog (outside the m chosen topics), so both variants score as many items.
            need = [share - len(x) for x in items]
            if sum(need):
                rest = np.flatnonzero(groups[r] < 0)
                pad = index.sample(rngs[r], rest, sum(need))
                cuts = np.cumsum(need)[:-1]
                items = [np.concatenate([x, p]) for x, p in zip(items, np.split(pad, cuts), strict=True)]
        flat = np.concatenate(items)
        candidates[r, : flat.size] = flat
        candidate_groups[r, : flat.size] = np.repeat(np.arange(m), [len(x) for x in items])
        n_candidates[r] = flat.size
    return {
        "groups": groups,
        "group_sizes": sizes,
        "candidates": candidates,
        "candidate_groups": candidate_groups,
        "n_candidates": n_candidates,
    }


def item_stage(
    config: TopicItemConfig,
    world: TopicItemWorld,
    users: np.ndarray,
    candidates: np.ndarray,
    candidate_groups: np.ndarray,
    item_scores: np.ndarray,
    uniforms: np.ndarray,
) -> dict[str, np.ndarray]:
    """Stage two for a batch of rounds: the served items, the clicks and the oracle quantities.

    Two-stage: the argmax of the scores within each group (Alg. 1, lines 11-14), ties to the first
    row. One-stage: the m highest scores among the candidates. The *reachable* reward is the best
    the candidates allowed (the best item of each group; the best m candidates), so
    ``regret = topic_regret + item_regret`` with topic_regret = optimal - reachable (the first stage:
    groups and candidate sampling) and item_regret = reachable - expected (the item scores).

    Returns:
        float64 (B,) ``reward``, ``expected_reward``, ``optimal_expected_reward``,
        ``reachable_expected_reward``, ``topic_regret``, ``item_regret``, ``regret``; int64 (B, m)
        ``items`` and ``clicks``; bool (B,) ``best_item_reachable``.
    """
    m = config.n_slots
    valid = candidates >= 0
    safe = np.where(valid, candidates, 0)
    scores = world.scores(users, safe)  # O(B n_rows latent_dim)
    values = np.where(valid, world.click.expected(scores), -np.inf)
    masked = np.where(valid, item_scores, -np.inf)
    if config.hierarchy:
        pos = np.empty((users.size, m), dtype=np.int64)
        best = np.empty((users.size, m))
        for g in range(m):
            in_group = candidate_groups == g
            pos[:, g] = np.argmax(np.where(in_group, masked, -np.inf), axis=1)
            best[:, g] = np.where(in_group, values, -np.inf).max(axis=1)
    else:
        pos = _top_rows(masked, m)
        best = -np.partition(-values, m - 1, axis=1)[:, :m]
    items = np.take_along_axis(candidates, pos, 1)
    chosen = np.take_along_axis(values, pos, 1)
    clicks = world.click.sample(np.take_along_axis(scores, pos, 1), uniforms)
    optimal = world.optimal_values[users]
    reachable = canonical_sum(best)
    expected = canonical_sum(chosen)
    topic_regret = optimal - reachable
    item_regret = reachable - expected
    return {
        "reward": clicks.sum(axis=1).astype(np.float64),
        "items": items,
        "clicks": clicks,
        "expected_reward": expected,
        "optimal_expected_reward": optimal,
        "reachable_expected_reward": reachable,
        "topic_regret": topic_regret,
        "item_regret": item_regret,
        "regret": topic_regret + item_regret,
        "best_item_reachable": values.max(axis=1) == world.best_values[users, 0],
    }


def observe(
    config: TopicItemConfig,
    world: TopicItemWorld,
    phases: np.ndarray,
    users: np.ndarray,
    candidates: np.ndarray,
    candidate_groups: np.ndarray,
) -> np.ndarray:
    """The observations of a batch of rows: float32 ``(B, obs_size)`` (layout: :func:`split_observation`)."""
    c = config
    n = users.size
    obs = np.zeros((n, c.obs_size), dtype=np.float32)
    obs[:, 0], obs[:, 1] = phases, users
    obs[:, 2 : c.header] = world.user_features[users]
    table = obs[:, c.header :].reshape(n, c.n_rows, c.width)
    topic_rows = phases == PHASE_TOPIC
    if topic_rows.any():
        table[topic_rows] = world.topic_table
    item_rows = np.flatnonzero(~topic_rows)
    if item_rows.size:
        cand = candidates[item_rows]
        valid = cand >= 0
        safe = np.where(valid, cand, 0)
        topics = world.index.item_topics[safe]
        sub = np.zeros((item_rows.size, c.n_rows, c.width), dtype=np.float32)
        sub[..., 0] = valid
        sub[..., 1] = np.where(valid, cand, 0)
        sub[..., 2] = np.where(valid, topics, 0)
        sub[..., 3] = np.where(valid, candidate_groups[item_rows], 0)
        sub[..., 4] = np.where(valid, world.log_sizes[topics], 0.0)
        if c.features_in_obs:
            sub[..., len(COLUMNS) :] = np.where(valid[..., None], world.item_features[safe], 0.0)
        table[item_rows] = sub
    return obs


def split_observation(config: TopicItemConfig, obs: Any) -> dict[str, np.ndarray]:
    """Named views of an observation (or a batch of them, leading axes kept).

    Returns:
        ``phase`` and ``user`` (...,), ``user_features`` (..., user_dim), ``table`` (..., n_rows,
        width), and its columns ``mask``, ``id``, ``topic``, ``group``, ``log_size`` (..., n_rows)
        and ``features`` (..., n_rows, item_dim), the latter None when features are not in the
        observation. Ids, topics, groups and phases are float32 holding exact integers.
    """
    obs = np.asarray(obs)
    if obs.shape[-1:] != (config.obs_size,):
        raise ValueError(f"an observation has {config.obs_size} entries, got shape {obs.shape}")
    lead = obs.shape[:-1]
    table = obs[..., config.header :].reshape(*lead, config.n_rows, config.width)
    out = {
        "phase": obs[..., 0],
        "user": obs[..., 1],
        "user_features": obs[..., 2 : config.header],
        "table": table,
    }
    for j, name in enumerate(COLUMNS):
        out[name] = table[..., j]
    out["features"] = table[..., len(COLUMNS) :] if config.features_in_obs else None
    return out
