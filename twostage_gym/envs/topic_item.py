"""Topic -> item recommendation under a computational budget (the topic-item paper, Alg. 1-2, Sec. 4)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from twostage_gym.core.checks import choice
from twostage_gym.core.streams import UserStream
from twostage_gym.core.vector import advance_steps, scatter_info, seed_list, vector_arguments
from twostage_gym.envs.topic_item_world import (
    PHASE_ITEM,
    PHASE_TOPIC,
    SCORE_BOUND,
    TopicItemConfig,
    TopicItemWorld,
    check_scores,
    item_stage,
    observe,
    seed_streams,
    split_observation,
    start_round,
    topic_stage,
    world_key,
)

__all__ = ["INFO_KEYS", "TopicItemEnv", "TopicItemVectorEnv"]

INFO_KEYS = (
    "phase",
    "user",
    "items",
    "clicks",
    "topic_groups",
    "group_sizes",
    "scores_used",
    "expected_reward",
    "optimal_expected_reward",
    "reachable_expected_reward",
    "regret",
    "topic_regret",
    "item_regret",
    "nominator_regret",
    "ranker_regret",
    "best_item_reachable",
)
"""The keys of every step's info, in order (both phases carry all of them)."""

_ORACLE_FLOATS = (
    "expected_reward",
    "optimal_expected_reward",
    "reachable_expected_reward",
    "regret",
    "topic_regret",
    "item_regret",
    "nominator_regret",
    "ranker_regret",
)


class _Rounds:
    """The state of N rows (the single env has one, the vector env one per sub-env) and their rounds.

    Each row has its world, its user stream, its round key and counter, the phase of its round in
    progress, the round's generator and click uniforms, and the groups and candidates drawn so far.
    Rows of one world are played as one batch.
    """

    def __init__(self, config: TopicItemConfig, n: int) -> None:
        c = self.config = config
        self.n = n
        self.worlds: list[TopicItemWorld | None] = [None] * n
        self.streams: list[UserStream | None] = [None] * n
        self.round_keys = np.zeros(n, dtype=np.int64)
        self.rounds = np.zeros(n, dtype=np.int64)
        self.phases = np.zeros(n, dtype=np.int64)
        self.users = np.zeros(n, dtype=np.int64)
        self.rngs: list[np.random.Generator | None] = [None] * n
        self.uniforms = np.zeros((n, c.n_slots))
        self.groups = np.full((n, c.n_topics), -1, dtype=np.int64)
        self.group_sizes = np.zeros((n, c.n_slots), dtype=np.int64)
        self.candidates = np.full((n, c.n_rows), -1, dtype=np.int64)
        self.candidate_groups = np.full((n, c.n_rows), -1, dtype=np.int64)
        self.n_candidates = np.zeros(n, dtype=np.int64)

    @property
    def ready(self) -> bool:
        return all(s is not None for s in self.streams)

    def seed_row(self, row: int, seed: int | None, np_random: np.random.Generator, cache: dict) -> None:
        """(Re)seed a row from its generator: its world (shared through ``cache`` by key) and streams."""
        key = world_key(self.config, seed, np_random)
        self.streams[row], self.round_keys[row] = seed_streams(np_random, self.config.n_users)
        if key not in cache:
            cache[key] = TopicItemWorld(self.config, key)
        self.worlds[row] = cache[key]
        self.rounds[row] = -1  # start_rounds moves on to round 0

    def start_rounds(self, rows: np.ndarray) -> None:
        """Begin the next round of ``rows``: the next user, the round's generator and draws."""
        c = self.config
        for r in rows:
            self.rounds[r] += 1
            self.users[r] = self.streams[r].next()
            rng, uniforms, candidates = start_round(c, int(self.round_keys[r]), int(self.rounds[r]))
            self.rngs[r], self.uniforms[r] = rng, uniforms
            self.groups[r], self.group_sizes[r] = -1, 0
            self.candidates[r], self.candidate_groups[r] = -1, -1
            if candidates is None:
                self.phases[r], self.n_candidates[r] = PHASE_TOPIC, 0
            else:
                self.phases[r], self.n_candidates[r] = PHASE_ITEM, candidates.size
                self.candidates[r, : candidates.size] = candidates

    def by_world(self, rows: np.ndarray) -> list[tuple[TopicItemWorld, np.ndarray]]:
        """``rows`` split by world: (world, positions in ``rows``) pairs."""
        out: dict[int, tuple[TopicItemWorld, list[int]]] = {}
        for j, r in enumerate(rows):
            out.setdefault(id(self.worlds[r]), (self.worlds[r], []))[1].append(j)
        return [(w, np.array(js, dtype=np.int64)) for w, js in out.values()]

    def observations(self, rows: np.ndarray) -> np.ndarray:
        c = self.config
        obs = np.empty((rows.size, c.obs_size), dtype=np.float32)
        for world, sel in self.by_world(rows):
            r = rows[sel]
            obs[sel] = observe(c, world, self.phases[r], self.users[r], self.candidates[r], self.candidate_groups[r])
        return obs

    def play(self, rows: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One step of ``rows`` with their (checked) ``scores`` (len(rows), n_rows): rewards and info rows.

        Topic-phase rows form their groups and candidates; item-phase rows are served, clicked
        and begin their next round.
        """
        c = self.config
        n, m, T = rows.size, c.n_slots, c.n_topics
        reward = np.zeros(n)
        info: dict[str, np.ndarray] = {
            "phase": self.phases[rows].copy(),
            "user": self.users[rows].copy(),
            "items": np.full((n, m), -1, dtype=np.int64),
            "clicks": np.zeros((n, m), dtype=np.int64),
            "topic_groups": np.zeros((n, T), dtype=np.int64),
            "group_sizes": np.zeros((n, m), dtype=np.int64),
            "scores_used": np.zeros(n, dtype=np.int64),
            **{k: np.zeros(n) for k in _ORACLE_FLOATS},
            "best_item_reachable": np.zeros(n, dtype=bool),
        }
        served = []
        for world, sel in self.by_world(rows):
            topic = sel[info["phase"][sel] == PHASE_TOPIC]
            if topic.size:
                r = rows[topic]
                out = topic_stage(c, world, scores[topic, :T], [self.rngs[i] for i in r])
                self.groups[r], self.group_sizes[r] = out["groups"], out["group_sizes"]
                self.candidates[r], self.candidate_groups[r] = out["candidates"], out["candidate_groups"]
                self.n_candidates[r] = out["n_candidates"]
                self.phases[r] = PHASE_ITEM
                info["topic_groups"][topic], info["group_sizes"][topic] = out["groups"], out["group_sizes"]
                info["scores_used"][topic] = T
            item = sel[info["phase"][sel] == PHASE_ITEM]
            if item.size:
                r = rows[item]
                cand, groups = self.candidates[r], self.candidate_groups[r]
                out = item_stage(c, world, self.users[r], cand, groups, scores[item], self.uniforms[r])
                reward[item] = out.pop("reward")
                for key, value in out.items():
                    info[key][item] = value
                info["nominator_regret"][item] = out["topic_regret"]
                info["ranker_regret"][item] = out["item_regret"]
                info["topic_groups"][item], info["group_sizes"][item] = self.groups[r], self.group_sizes[r]
                info["scores_used"][item] = (T if c.hierarchy else 0) + self.n_candidates[r]
                served.append(r)
        if served:
            self.start_rounds(np.concatenate(served))
        return reward, info


def _parse_action(action: Any, shape: tuple[int, ...]) -> tuple[np.ndarray, Any]:
    """The scores of an action, and the phase(s) it claims (None for a plain array)."""
    if isinstance(action, dict):
        if set(action) != {"phase", "scores"}:
            keys = sorted(map(str, action))
            raise ValueError(f"a phase-tagged action is a dict with keys 'phase' and 'scores', got keys {keys}")
        return check_scores(action["scores"], shape), action["phase"]
    return check_scores(action, shape), None


def _check_phase(claimed: Any, actual: np.ndarray, envs: np.ndarray | None = None) -> None:
    """The phase rule: a phase-tagged action must be for the phase its round is in.

    Args:
        claimed: the phase(s) the action says, an integer (single env) or one per sub-env in ``envs``.
        actual: int64 the phases of the rounds, shape of ``claimed``.
        envs: the sub-env indices (vector env), named in the message; None for the single env.
    """
    c = np.asarray(claimed)
    if c.shape != actual.shape or c.dtype.kind not in "iu":
        what = "an integer" if envs is None else f"integers, one per sub-env ({len(actual)} active)"
        raise ValueError(f"the action's 'phase' must be {what}, got {claimed!r}")
    wrong = np.flatnonzero(c.reshape(-1) != actual.reshape(-1))
    if wrong.size:
        j = int(wrong[0])
        said, now = int(c.reshape(-1)[j]), int(actual.reshape(-1)[j])
        where = "" if envs is None else f"sub-env {int(envs[j])}: "
        stage = "topic" if now == PHASE_TOPIC else "item"
        raise ValueError(
            f"{where}acting in the wrong phase: the action is for phase {said} but the round is in phase {now} "
            f"(the {stage} stage); read the phase from the observation"
        )


class _WorldAPI(ABC):
    """The public catalog, the observation layout and the oracle, shared by the single and the vector env."""

    config: TopicItemConfig

    @abstractmethod
    def _shared_world(self) -> TopicItemWorld:
        """The world this env (or every sub-env of the vector env) plays."""

    @property
    def world(self) -> TopicItemWorld:
        """The current world (:class:`~twostage_gym.envs.topic_item_world.TopicItemWorld`)."""
        return self._shared_world()

    @property
    def item_features(self) -> np.ndarray:
        """float32 ``(n_items, item_dim)``: every item's features x_i (static; read once)."""
        return self._shared_world().item_features

    @property
    def user_features(self) -> np.ndarray:
        """float32 ``(n_users, user_dim)``: every simulated user's features z_u."""
        return self._shared_world().user_features

    @property
    def topic_features(self) -> np.ndarray:
        """float32 ``(n_topics, item_dim)``: every topic's features."""
        return self._shared_world().topic_features

    @property
    def item_topics(self) -> np.ndarray:
        """int64 ``(n_items,)``: the topic of every item."""
        return self._shared_world().index.item_topics

    @property
    def topic_sizes(self) -> np.ndarray:
        """int64 ``(n_topics,)``: items per topic."""
        return self._shared_world().index.sizes

    @property
    def optimal_items(self) -> np.ndarray:
        """Oracle: int64 ``(n_users, n_slots)`` each user's best m items of the catalog, best first."""
        return self._shared_world().optimal_items

    @property
    def optimal_expected_rewards(self) -> np.ndarray:
        """Oracle: float64 ``(n_users,)`` each user's ``optimal_expected_reward``."""
        return self._shared_world().optimal_values

    def expected_clicks(self, users: Any, items: Any) -> np.ndarray:
        """Oracle: expected clicks (flip included) of ``users`` (B,) on their ``items`` (B, C), float64 (B, C)."""
        c = self.config
        users = np.asarray(users, dtype=np.int64).reshape(-1)
        items = np.asarray(items, dtype=np.int64).reshape(users.size, -1)
        if users.size and (users.min() < 0 or users.max() >= c.n_users):
            raise ValueError(f"users must be in 0..{c.n_users - 1}")
        if items.size and (items.min() < 0 or items.max() >= c.n_items):
            raise ValueError(f"items must be in 0..{c.n_items - 1}")
        return self._shared_world().expected(users, items)

    def logged_clicks(self, n: int, seed: int = 0, per_user: int = 20) -> dict[str, np.ndarray]:
        """A logged history for pre-training (the paper's S_known): clicks of users *outside* the simulated set.

        Synthetic: ``ceil(n / per_user)`` new users from the same population (latents drawn as the
        simulated users', features by the same view), each shown ``per_user`` items drawn uniformly
        from the catalog (with replacement), clicking by the world's click model (flip included).
        MovieLens: ``n`` ratings drawn without replacement from the users not simulated, a click
        where the rating is >= 4. The same (world, ``seed``) gives the same records.

        Returns:
            ``user_features`` float32 (n_logged_users, user_dim); ``users`` int64 (n,) rows of it;
            ``items`` int64 (n,); ``clicks`` int64 (n,) in {0, 1}.
        """
        return self._shared_world().logged_clicks(self.config, n, seed, per_user)

    def split_observation(self, obs: Any) -> dict[str, np.ndarray]:
        """Named views of an observation or a batch of them (see the class docstring)."""
        return split_observation(self.config, obs)

    def context_observation(self, obs: Any) -> np.ndarray:
        """The part of an observation that never depends on the agent's actions: phase, user and z_u.

        The item phase's table holds candidates drawn from the groups the agent's topic scores
        formed, so two agents on one seed see the same users (common random numbers) but, in the
        item phase, their own candidates. Leading axes are kept.
        """
        return np.asarray(obs)[..., : self.config.header]


class TopicItemEnv(_WorldAPI, gym.Env):
    """## Description

    The two-stage topic -> item recommender of *Two-Stage Neural Contextual Bandits for Adaptive
    Personalised Recommendations* (anonymous, under review): Algorithm 1 (the two-stage framework),
    Algorithm 2 (DynaTopicRec, dynamic topic reconstruction), the computational budget B and the
    click simulator of Section 4. Each round a user arrives (uniformly from ``n_users``); the agent
    scores every *topic*; the env sorts them and builds m topic groups by DynaTopicRec; it samples
    candidate items from each group within the budget; the agent scores the *candidate set*; the
    env serves the best-scored item of each group (one per slot); the user clicks on each of the m
    items or not, and the reward is the number of clicks.

    A round is **two steps**: the topic phase, then the item phase; the observation's first entry
    says which. With ``hierarchy=False`` (one stage) there is no topic phase and a round is one step.

    **The budget** (Sec. 4, "Computational Budget"): B = b * m acquisition scores a round, b =
    ``budget_per_slot``. The topics cost n_topics scores; each group gets (B - n_topics) // m
    candidates, drawn uniformly without replacement from its items (all of them if it holds fewer),
    so ``scores_used`` never exceeds B. DynaTopicRec (Alg. 2): group i starts from the i-th best
    topic; while a group holds at most p = ``min_group_size`` items, it takes the next best
    remaining topic (see :func:`~twostage_gym.core.topics.dyna_topic_rec`).

    **The world** (synthetic): topics have Zipf sizes, size(rank r) proportional to r^-a
    (``topic_size_exponent`` a = 1; 10,000 items in 50 topics range from 2,213 to 45 items),
    shuffled over topic ids, every topic non-empty. Latents, k = ``latent_dim``: topic centres
    mu_t ~ N(0, I_k); items phi_i = sqrt(rho) mu_topic(i) + sqrt(1 - rho) eps_i, eps_i ~ N(0, I_k),
    rho = ``topic_affinity``; users theta_u ~ N(0, I_k / k). The score is
    score(u, i) = <theta_u, phi_i> + ``size_popularity`` * z(topic(i)), z the standardised log topic
    size. The two knobs give the structure the paper's effects rest on: with rho > 0 each user's
    positives gather in the few topics whose centres point their way (user-topic affinity; without
    it a topic stage cannot help); with size_popularity > 0 large topics click more (Sec. 3.2,
    "large topics tend to have high click predictions"; without it random topics cost nothing
    against random items, and Table 5's 2-random < random cannot show). At the defaults (rho = 0.7,
    0.3; measured on 4 worlds) a user's own top-3 topics hold 89% of their positives against 57%
    in the population's top-3, and an item of uniformly random topic groups (p = 200) clicks 13% less
    than a uniformly random item. 0 turns either knob off: with ``topic_affinity=0`` a user's top-3
    topics are the population's (77% and 76%, all from popularity); with ``size_popularity=0``
    random groups click as random items do (ratio 0.99); with both off a user's top-3 topics hold
    41% of their positives, the 3 largest topics' share of the catalog.

    **Features** (what the agent sees; Sec. 2's x_i in R^d1 and z_u in R^d2): item features
    x_i = R_x phi_i + s eps, user features z_u = R_z sqrt(k) theta_u + s eps, topic features
    v_t = R_x mean(phi_i : i in t) + s eps, with R_x, R_z fixed random isometries (d x k,
    orthonormal rows when d <= k: a *partial* view that drops k - d latent directions) and
    s = ``feature_noise`` (noise on unit-scale coordinates). The topic popularity is not in the
    features; a topic's size is (the ``log_size`` column), and so are the topic ids.

    **Clicks** (Sec. 4, "Off-Policy Bandit Simulator"): ``click_model="threshold"``: the label
    y = 1[score >= THRES], flipped with probability ``flip_prob`` (0.1, the paper's user-preference
    noise), THRES set per world so that a share ``positive_rate`` (5%) of the simulated users'
    user-item pairs is positive (from all pairs, or a sample of 2^20 of them when there are more).
    ``"bernoulli"``: y ~ Bernoulli(sigmoid(2 (score - c))), c set so that the mean click probability
    over the pairs is ``positive_rate``; no flip.

    **MovieLens** (``dataset="movielens"``, ``data_dir=PATH`` holding ``u.data``/``u.item`` or
    ``ratings.dat``/``movies.dat``; never downloaded): items are the rated movies, topics their
    first genres (Sec. 4), a rating >= 4 a positive. The score is a rank-``latent_dim`` truncated SVD
    of the users x items matrix of positives (scaled to unit standard deviation), so every pair has
    a score and a click; ``n_users`` users of the data are simulated, the others are the logged
    history. Features, clicks and the round are as above. See :mod:`twostage_gym.datasets.movielens`.

    ## Action Space

    ``Box(-1e6, 1e6, (n_rows,), float32)``: a score per row of the observation's table. Topic
    phase: the first n_topics entries score topics 0..n_topics-1 (higher first; ties to the lower
    id). Item phase: the entries of the candidate rows (mask 1) score those items; the env serves
    the highest of each group (ties to the first row), or the m highest with ``hierarchy=False``.
    Entries of padding rows are ignored but must be valid too. NaN, infinite or out-of-bound
    scores, another dtype or shape raise ``ValueError`` and leave the env as it was.

    The phase rule: an agent may tag its action, ``{"phase": 0 or 1, "scores": array}``; an action
    for the other phase than the round's raises ``ValueError`` ("acting in the wrong phase"). A
    plain array (what RL libraries send) is read for the current phase.

    ## Observation Space

    ``Box((2 + user_dim + n_rows * width,), float32)``, flat for SB3's ``MlpPolicy``; the layout,
    also given by ``env.unwrapped.split_observation(obs)``:

    - ``[0]`` phase (0 topic, 1 item); ``[1]`` the user's index; ``[2:2 + user_dim]`` z_u;
    - then a table of ``n_rows`` rows x ``width`` columns: ``mask`` (1 for a live row), ``id``
      (topic id / item id), ``topic``, ``group`` (the item's group 0..m-1; -1 for topic rows and
      in the one-stage variant), ``log_size`` (log of the topic's size), then the features
      (``item_dim`` columns: topic features in the topic phase, item features in the item phase).

    Topic phase: row t is topic t (t < n_topics). Item phase: the candidates, group by group.
    Padding rows are all zero. n_rows = max(n_topics, m * ((B - n_topics) // m)) with a budget
    (capped at n_items), n_items without one; one-stage: min(B, n_items).

    Features are static, so where carrying them every step would be too large the observation
    carries ids only: ``features_in_obs=None`` (default) includes them while n_rows * item_dim
    <= 2^20 (e.g. every budgeted configuration of the paper; not ``budget_per_slot=None`` at 10^6
    items), and the agent then reads ``env.unwrapped.item_features`` / ``topic_features`` once
    and indexes them with the ``id`` column. ``width`` = 5 + item_dim with features, 5 without.
    ``env.unwrapped.context_observation(obs)`` is the part that never depends on the agent's
    actions (phase, user, z_u); the item phase's table holds the candidates of the agent's groups.

    ## Rewards

    The number of clicks on the m served items (0..m) at the item phase; 0 at the topic phase.

    ## Episode End

    Never terminates. Truncation comes from ``max_episode_steps``: 4000 at registration, i.e. 2000
    two-step rounds (the paper's 2000 iterations); a one-stage round is one step. An unseeded
    ``reset`` keeps the world, continues the user stream and starts a new round (an episode cut
    after a topic phase drops that round).

    ## Seeding

    The world is drawn from ``world_seed`` if given, else from the reset seed. Users come from their
    own stream; round r's click noise and candidate sampling come from a generator of (seed, r)
    alone (common random numbers): agents on one seed face the same users, the same click noise,
    and the same candidates whenever they pick the same groups, whatever they did before.

    ## Arguments

    - ``n_users`` (int, 100); ``n_items`` (int, 10,000; at most 2^24) and ``n_topics`` (int, 50),
      synthetic only (None: the default; the data's with MovieLens).
    - ``n_slots`` (int, 5): m, at most n_topics. ``budget_per_slot`` (int, 200): b; B = b m must be
      at least n_topics + m; None: no budget (Table 6), every item of the groups is a candidate.
    - ``min_group_size`` (int >= 1 or None): p of DynaTopicRec; None: b, or n_items // n_topics
      without a budget (Table 6).
    - ``hierarchy`` (bool, True): False is the one-stage variant (Table 5's one-stage rows at the
      same budget): B items drawn uniformly from the catalog, the m highest scores served.
    - ``dynamic_topics`` (bool, True): False is Sec. 4.2's ablation: group i is the i-th best
      topic alone (Alg. 1 without line 8), padded with items drawn uniformly from outside the m
      chosen topics up to the per-group share.
    - ``click_model`` (``"threshold"`` or ``"bernoulli"``); ``positive_rate`` (float, 0.05, in (0, 1));
      ``flip_prob`` (float in [0, 0.5] or None: 0.1; threshold model only).
    - ``topic_affinity`` (float in [0, 1], 0.7), ``size_popularity`` (float in [0, 10], 0.3),
      ``topic_size_exponent`` (float in [0, 20], 1.0): synthetic only (None: the default).
    - ``latent_dim`` k (int, 16; the SVD's rank with MovieLens), ``item_dim`` d1 (int, 16),
      ``user_dim`` d2 (int, 16), ``feature_noise`` (float in [0, 100], 0.5).
    - ``features_in_obs`` (bool or None: automatic, see above).
    - ``dataset`` (``"synthetic"`` or ``"movielens"``), ``data_dir`` (path; MovieLens only).
    - ``world_seed`` (int >= 0 or None); ``render_mode`` (``"ansi"`` or None).

    Integer arguments take Python or numpy integers (not bools, floats or strings), real ones also
    floats; a bool is a bool. Invalid values and combinations raise ``ValueError`` naming the
    argument at ``gym.make``: among them n_slots > n_topics, a budget below n_topics + n_slots,
    p < 1, a missing ``data_dir``, and an argument that does not apply (``flip_prob`` with
    Bernoulli clicks, the synthetic knobs with MovieLens, ``min_group_size`` without DynaTopicRec).

    Cost: a new world scans every user x item score once in blocks (never a users x items matrix)
    to set the threshold and each user's best m items: about 0.3 s at the defaults, 5-7 s at 10^6
    items with 100 users (about 400 MiB). A step costs O(B k + n_topics log n_topics) with a budget
    (candidate sampling is O(share) per group through the topic -> item index built once): measured
    at B = 1000, about 0.45 ms for a topic phase and 0.3-0.5 ms for an item phase, the same at 10^4
    and 10^6 items. Without a budget it is O(n_items k): at 10^6 items about 70 ms a two-stage round
    and 140 ms a one-stage one.

    ## Info keys

    Every step carries all keys (numpy scalars and arrays). ``phase`` (int64, of the step taken),
    ``user`` (int64), ``items`` (int64 (m,), the served items, -1 at the topic phase), ``clicks``
    (int64 (m,), clicks per slot), ``topic_groups`` (int64 (n_topics,), each topic's group, -1 if
    none; all -1 one-stage), ``group_sizes`` (int64 (m,), items per group in the catalog),
    ``scores_used`` (int64, the round's acquisition scores so far: n_topics at the topic phase,
    n_topics + candidates at the item phase; never above B).

    Oracle keys (agents must not read them), float64, set at the item phase and 0.0 at the topic
    phase (so sums over steps are sums over rounds): ``expected_reward`` (expected clicks of the m
    served items, flip included), ``optimal_expected_reward`` (of the user's best m items of the
    whole catalog), ``reachable_expected_reward`` (the best the candidates allowed: the best item
    of each group; the best m candidates one-stage), ``regret`` = ``topic_regret`` (optimal -
    reachable: what the groups and the candidate sampling lost) + ``item_regret`` (reachable -
    expected: what the item scores lost), exactly; ``nominator_regret`` = ``topic_regret`` and
    ``ranker_regret`` = ``item_regret`` (the suite's stage names); ``best_item_reachable`` (bool:
    one of the user's best items was among the candidates). All regrets are >= 0 and exactly 0
    when the served items are the optimal ones.

    ## Version History

    - v0: initial version.

    ## Example

    >>> import gymnasium as gym
    >>> import numpy as np
    >>> import twostage_gym
    >>> env = gym.make("TwoStage/TopicItem-v0", n_items=2000, n_topics=20, budget_per_slot=100)
    >>> obs, info = env.reset(seed=0)
    >>> view = env.unwrapped.split_observation(obs)
    >>> int(view["phase"]), int(view["mask"].sum())  # the topic phase: one row per topic
    (0, 20)
    >>> obs, reward, terminated, truncated, info = env.step(view["log_size"].copy())  # large topics first
    >>> view = env.unwrapped.split_observation(obs)
    >>> int(view["phase"]), int(info["scores_used"]), int(view["mask"].sum())  # 5 groups of 96 candidates
    (1, 20, 480)
    >>> scores = (view["features"] @ view["user_features"][:16]).astype(np.float32)  # a naive two-tower score
    >>> obs, reward, terminated, truncated, info = env.step(scores)
    >>> split = bool(info["regret"] == info["topic_regret"] + info["item_regret"])
    >>> info["items"].shape, int(info["scores_used"]), split
    ((5,), 500, True)
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

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
        render_mode: str | None = None,
    ) -> None:
        choice("render_mode", render_mode, self.metadata["render_modes"], allow_none=True)
        self.config = TopicItemConfig(
            n_users, n_items, n_topics, n_slots, budget_per_slot, min_group_size, hierarchy, dynamic_topics,
            click_model, positive_rate, flip_prob, topic_affinity, size_popularity, topic_size_exponent,
            latent_dim, item_dim, user_dim, feature_noise, features_in_obs, dataset, data_dir, world_seed,
        )  # fmt: skip
        self.render_mode = render_mode
        self.action_space = self.config.action_space()
        self.observation_space = self.config.observation_space()
        self._rounds = _Rounds(self.config, 1)
        self._worlds: dict[int, TopicItemWorld] = {}
        if self.config.world_seed is not None:
            key = self.config.world_seed
            self._worlds[key] = self._rounds.worlds[0] = TopicItemWorld(self.config, key)
        self._last: dict[str, Any] | None = None
        self._t = 0

    def _shared_world(self) -> TopicItemWorld:
        if self._rounds.worlds[0] is None:
            raise RuntimeError("call reset() first (or pass world_seed to draw the world at construction)")
        return self._rounds.worlds[0]

    @property
    def phase(self) -> int:
        """The phase of the round in progress: 0 (score topics) or 1 (score the candidate items)."""
        return int(self._rounds.phases[0])

    @property
    def current_user(self) -> int:
        """The index of the user of the round in progress (also in the observation)."""
        if not self._rounds.ready:
            raise RuntimeError("call reset() before using the environment")
        return int(self._rounds.users[0])

    # -- gymnasium API ----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        rows = np.zeros(1, dtype=np.int64)
        if seed is not None or not self._rounds.ready:
            # Keep only the world in use: a seed sweep must not accumulate worlds.
            current = self._rounds.worlds[0]
            self._worlds = {} if current is None else {current.key: current}
            self._rounds.seed_row(0, seed, self.np_random, self._worlds)
        self._rounds.start_rounds(rows)
        self._last, self._t = None, 0
        return self._rounds.observations(rows)[0], {}

    def step(self, action):
        if not self._rounds.ready:
            raise RuntimeError("call reset() before step()")
        scores, claimed = _parse_action(action, self.action_space.shape)
        if claimed is not None:
            _check_phase(claimed, self._rounds.phases[0])
        rows = np.zeros(1, dtype=np.int64)
        reward, info = self._rounds.play(rows, scores[None, :])
        out = {}
        for key in INFO_KEYS:
            value = info[key][0]
            out[key] = bool(value) if key == "best_item_reachable" else (value.copy() if value.ndim else value)
        self._t += 1
        self._last = out
        return self._rounds.observations(rows)[0], float(reward[0]), False, False, out

    def render(self) -> str | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' to make()")
            return None
        return _round_summary(self.config, self._t, self._last, self._rounds) + "\n"


def _round_summary(config: TopicItemConfig, t: int, info: dict[str, Any] | None, rounds: _Rounds) -> str:
    if info is None:
        stage = "topic stage" if rounds.phases[0] == PHASE_TOPIC else "item stage"
        return f"round start, {stage}: user {int(rounds.users[0])}; no item served yet"
    if int(info["phase"]) == PHASE_TOPIC:
        groups = info["topic_groups"]
        lists = [np.flatnonzero(groups == g).tolist() for g in range(config.n_slots)]
        return (
            f"step {t}, topic stage: user {int(info['user'])}, groups {lists} "
            f"({info['group_sizes'].tolist()} items), {int(rounds.n_candidates[0])} candidates; "
            "the item stage picks the served items next (their regret comes with them)"
        )
    return (
        f"step {t}, item stage: user {int(info['user'])}, served items {info['items'].tolist()} -> clicks "
        f"{info['clicks'].tolist()}; expected reward {float(info['expected_reward']):.3f} (optimal "
        f"{float(info['optimal_expected_reward']):.3f}); regret {float(info['regret']):.3f} = topic "
        f"{float(info['topic_regret']):.3f} + item {float(info['item_regret']):.3f}; "
        f"scores used {int(info['scores_used'])}"
    )


class TopicItemVectorEnv(_WorldAPI, VectorEnv):
    """Native vector version of :class:`TopicItemEnv`.

    Gives exactly what ``gym.make_vec(id, n, vectorization_mode="sync")`` gives for the same seeds
    (observations, rewards, terminations, truncations and info with ``_key`` masks, next-step
    autoreset), also when sub-envs are in different phases (after a truncation that cut a round).
    Each sub-env keeps its own user stream and round generators, as in the sync env, so the draws
    loop over sub-envs; the stages, the observations and the info are batched computations over the
    sub-envs that share a world. With ``world_seed`` all sub-envs share one world, and the catalog,
    ``logged_clicks`` etc. are available on the vector env itself.

    Actions: float32 ``(num_envs, n_rows)`` scores, or ``{"phase": int (num_envs,), "scores": ...}``
    (the phase rule, per sub-env; sub-envs about to autoreset are not checked).

    Arguments: ``num_envs`` (a positive int), ``max_episode_steps`` (a positive int, 4000 by default,
    or None for no truncation: the vector env truncates itself, as ``TimeLimit`` does in the sync
    env), and the keyword arguments of :class:`TopicItemEnv` (``render_mode`` excepted).
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, max_episode_steps: int | None = 4000, **kwargs: Any) -> None:
        self.num_envs, self.max_episode_steps = vector_arguments(
            "TopicItemVectorEnv", num_envs, max_episode_steps, kwargs
        )
        unknown = set(kwargs) - set(_CONFIG_ARGS)
        if unknown:
            raise TypeError(f"unexpected keyword arguments {sorted(unknown)}")
        self.config = TopicItemConfig(**kwargs)
        self.config.check_memory(self.num_envs)
        self.single_action_space = self.config.action_space()
        self.single_observation_space = self.config.observation_space()
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._rounds = _Rounds(self.config, self.num_envs)
        if self.config.world_seed is not None:
            world = TopicItemWorld(self.config, self.config.world_seed)
            self._rounds.worlds = [world] * self.num_envs
        self._steps = np.zeros(self.num_envs, dtype=np.int64)
        self._prev_done = np.zeros(self.num_envs, dtype=bool)
        self._all = np.arange(self.num_envs)

    def _shared_world(self) -> TopicItemWorld:
        worlds = self._rounds.worlds
        if any(w is None for w in worlds):
            raise RuntimeError("call reset() first (or pass world_seed to draw the world at construction)")
        if len({id(w) for w in worlds}) > 1:
            raise RuntimeError("the sub-envs have different worlds; pass world_seed to share one")
        return worlds[0]

    @property
    def phases(self) -> np.ndarray:
        """int64 ``(num_envs,)`` the phase of each sub-env's round in progress."""
        return self._rounds.phases.copy()

    @property
    def current_users(self) -> np.ndarray:
        """int64 ``(num_envs,)`` the users of the rounds in progress."""
        return self._rounds.users.copy()

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        seeds = seed_list(seed, self.num_envs)
        cache = {w.key: w for w in self._rounds.worlds if w is not None}
        for e, s in enumerate(seeds):
            if s is not None or self._rounds.streams[e] is None:
                np_random, _ = seeding.np_random(s)
                self._rounds.seed_row(e, s, np_random, cache)
        self._rounds.start_rounds(self._all)
        self._steps[:] = 0
        self._prev_done[:] = False
        return self._rounds.observations(self._all), {}

    def step(self, actions):
        if not self._rounds.ready:
            raise RuntimeError("call reset() before step()")
        active = np.flatnonzero(~self._prev_done)
        scores = self._check_actions(actions, active)
        rewards = np.zeros(self.num_envs)
        info: dict[str, Any] = {}
        if active.size:
            reward, rows_info = self._rounds.play(active, scores[active])
            rewards[active] = reward
            info = scatter_info({key: rows_info[key] for key in INFO_KEYS}, active, self.num_envs)
        # Sub-envs whose episode ended last step autoreset now (an unseeded reset: same world,
        # the user stream continues, a new round begins).
        done = np.flatnonzero(self._prev_done)
        if done.size:
            self._rounds.start_rounds(done)
        terminated, truncated = advance_steps(self._steps, self._prev_done, self.max_episode_steps)
        self._prev_done = truncated.copy()
        return self._rounds.observations(self._all), rewards, terminated, truncated, info

    def _check_actions(self, actions: Any, active: np.ndarray) -> np.ndarray:
        """The checked scores (num_envs, n_rows); rows of sub-envs about to autoreset are not read."""
        shape = (self.num_envs, *self.single_action_space.shape)
        claimed = None
        if isinstance(actions, dict):
            if set(actions) != {"phase", "scores"}:
                keys = sorted(map(str, actions))
                raise ValueError(f"a phase-tagged action is a dict with keys 'phase' and 'scores', got keys {keys}")
            claimed, actions = actions["phase"], actions["scores"]
        a = np.asarray(actions)
        if a.shape != shape:
            raise ValueError(f"actions must have shape {shape} (scores of each sub-env), got {a.shape}")
        if a.dtype != np.float32:
            raise ValueError(f"scores must have dtype float32 (the action space's dtype), got dtype {a.dtype}")
        rows = a if active.size == self.num_envs else a[active]
        if rows.size and not (rows.min() >= -SCORE_BOUND and rows.max() <= SCORE_BOUND):
            for e in active:
                try:
                    check_scores(a[e], self.single_action_space.shape)
                except ValueError as err:
                    raise ValueError(f"sub-env {e}: {err}") from None
        if claimed is not None:
            claimed_arr = np.asarray(claimed)
            if claimed_arr.shape != (self.num_envs,) or claimed_arr.dtype.kind not in "iu":
                raise ValueError(f"the action's 'phase' must be an integer array of shape ({self.num_envs},)")
            _check_phase(claimed_arr[active], self._rounds.phases[active], active)
        return a


_CONFIG_ARGS = (
    "n_users", "n_items", "n_topics", "n_slots", "budget_per_slot", "min_group_size", "hierarchy",
    "dynamic_topics", "click_model", "positive_rate", "flip_prob", "topic_affinity", "size_popularity",
    "topic_size_exponent", "latent_dim", "item_dim", "user_dim", "feature_noise", "features_in_obs", "dataset",
    "data_dir", "world_seed",
)  # fmt: skip
