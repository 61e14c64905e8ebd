"""Recommender selection as a contextual bandit (Xu et al. 2021, Sec. 2 and the protocol of Sec. 5)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from twostage_gym.core.checks import choice
from twostage_gym.core.recommenders import RECOMMENDERS
from twostage_gym.envs.recommender_selection_world import (
    ORDER_STREAM,
    RatingData,
    SelectionConfig,
    SelectionRun,
    SelectionSplit,
    split_for,
)

__all__ = ["INFO_KEYS", "RatingData", "RecommenderSelectionEnv"]

INFO_KEYS = (
    "user",
    "proposals",
    "arm",
    "item",
    "rated",
    "epoch",
    "traffic_share",
    "reward",
    "expected_reward",
    "optimal_expected_reward",
    "regret",
    "nominator_regret",
    "ranker_regret",
    "positive",
    "recall",
)
"""The keys of every step's info, in order."""


def _check_action(action: Any, k: int) -> int:
    """The arm of ``action``: a Python or numpy integer (int64-castable), or a 0-d such array, in [0, k)."""
    if isinstance(action, np.ndarray):
        if action.ndim != 0 or action.dtype.kind not in "iu":
            raise ValueError(
                f"action must be an integer arm index in [0, {k}) (Discrete({k})), got an array of shape "
                f"{action.shape} and dtype {action.dtype}"
            )
        action = action[()]
    if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
        raise ValueError(
            f"action must be an integer arm index in [0, {k}) (Discrete({k})), got {type(action).__name__} {action!r}"
        )
    if isinstance(action, np.integer) and not np.can_cast(action.dtype, np.int64):
        # gymnasium's rule for Discrete: the value must cast safely to the space's int64.
        raise ValueError(f"action must be an integer type that int64 holds, got dtype {action.dtype}")
    if not 0 <= int(action) < k:
        raise ValueError(f"action {int(action)} is outside Discrete({k}): arms are 0..{k - 1}")
    return int(action)


class RecommenderSelectionEnv(gym.Env):
    """## Description

    Online recommender selection from *Towards the D-Optimal Online Experiment Design for
    Recommender Selection* (Xu, Ruan, Korpeoglu, Kumar, Achan; KDD 2021): k candidate
    recommenders each propose an item for a request, and the agent (the "system bandit") chooses
    whose proposal the user sees (Sec. 2, steps 1-4). Its reward is whether the user likes it. The
    semi-synthetic protocol of Sec. 5 turns a ratings log into this online game:

    - **Split.** A random ``train_fraction`` (10%) of the ratings trains the candidates at the
      start; the rest is the *test log*, which answers requests.
    - **Epochs.** Each epoch visits every user once, in a random order. A request is a user; each
      candidate proposes its highest-scored item for that user among the items the user has not
      rated in the training data, not been recommended before and not rejected.
    - **Feedback.** The chosen proposal, if the user rated it in the test log, moves to the user's
      history (a positive if the rating is >= ``positive_threshold``, 3 stars; the paper binarises
      at 2.5); any other chosen item goes to the user's reject list. Either way it is never
      proposed to that user again. Proposals that were not chosen are not shown and change nothing.
    - **Refits.** After each epoch the candidates refit on the initial training data plus the
      positives collected so far (``refit="epoch"``; ``"never"`` keeps the initial fit).
    - **Metric.** Cumulative recall: successes so far / positives in the initial test log.

    **Candidates** (k = 4 by default, ``recommenders=`` chooses a subset, in order): popularity,
    item-based CF (cosine), user-based CF (30 neighbours) and matrix factorisation (rank-16
    truncated SVD), all learning from the users x items matrix of known positives; see
    :mod:`twostage_gym.core.recommenders`. Their score tables are computed at each (re)fit, so a
    request costs one masked argmax over k precomputed rows.

    **Data.** With ``data_dir`` (a MovieLens-100K or -1M folder, with its user file; never
    downloaded) the ratings are MovieLens's and the side features are the users' age, gender and
    occupation (one-hot) and the movies' genres. With ``data`` a custom
    :class:`~twostage_gym.envs.recommender_selection_world.RatingData`. Otherwise a synthetic
    world (300 users, 500 items, 40 ratings each; see
    :func:`~twostage_gym.envs.recommender_selection_world.synthetic_data`) with the paper's
    motivation built in: users fall into ``n_segments`` segments whose users choose items in
    different ways (segment s follows ``ARCHETYPES[s % 4]``: "mainstream" users follow item
    popularity, "item-cluster" users like a few item clusters, "community" users share the
    favourite items of a small community of their segment, "latent-factor" users follow a smooth
    low-rank affinity), on top of a taste for popular items and for a few item clusters that every
    user has. Which candidate is best therefore depends on the segment, and the user features
    reveal the segment only noisily, so context can pay and must be learnt. ``segment_effect=0``
    makes all users alike; the default, 1.0, is the knob's maximum. Measured at 150 users, 300
    items, 12 epochs (seeds 0-9): user-CF is the best single candidate (final recall 0.158), the
    best candidate per segment is user-CF, item-CF, MF and none clearly (mainstream, item-cluster,
    community, latent-factor), and serving each segment its best candidate gains 0.022 +- 0.007
    recall over the best single one (0.002 +- 0.002 with ``segment_effect=0``; ``xu2021-fig3``'s
    note in ``twostage-bench reproduce`` gives the headroom rows).

    ## Action Space

    ``Discrete(k)``: the arm (candidate recommender) whose proposal is served. A Python or numpy
    integer, or a 0-d integer array; anything else (a float, a bool, an array of another shape, an
    arm outside 0..k-1) raises ``ValueError`` and leaves the env as it was.

    ## Observation Space

    ``Box(-inf, inf, (k, d), float32)``: row a is phi(request, a(request)) = [user features (d_u),
    the features of arm a's proposed item (d_i), one-hot of a (k)], d = d_u + d_i + k.
    ``env.unwrapped.feature_slices`` gives the column ranges ``"user"``, ``"item"`` and ``"arm"``.
    User and item features are standardised over users and items (mean 0, standard deviation 1 per
    column; constant columns are 0). Synthetic: d_u = n_segments + 4 (a noisy segment one-hot and 4
    noisy latent coordinates), d_i = 12 genre flags. MovieLens-100K: d_u = 23 (age, gender, 21
    occupations), d_i = 19 genres. ``context_observation(obs)`` is the user block, the part that
    never depends on the agent's actions.

    ## Rewards

    1.0 if the served item is a positive of the user in the test log (rated >= ``positive_threshold``
    and not yet collected), else 0.0. The log decides: there is no noise, so ``expected_reward`` is
    the reward itself.

    ## Episode End

    An episode is ``n_epochs`` epochs (20, the paper's), ``n_users * n_epochs`` steps; the step that
    completes them returns ``terminated=True`` (the protocol is over; stepping on raises
    ``RuntimeError``). ``max_episode_steps`` is 18,860 at registration, MovieLens-100K's 943 users x
    20 epochs, at least as long as the default synthetic episode (6,000 steps), so the env's own end
    comes first; pass ``max_episode_steps=None`` (or larger) to ``gym.make`` for a world whose episode
    is longer. ``env.unwrapped.steps_per_epoch`` (n_users) and ``episode_steps`` say the lengths.

    ## Seeding

    ``reset(seed)`` draws a key from which come the synthetic world (unless ``world_seed``), the
    train/test split and the request order, each from a stream of its own; rewards have no noise.
    The request order therefore depends only on the seed (common random numbers): agents on one seed
    face the same users in the same order. An unseeded ``reset`` keeps the world and the split and
    continues the order stream.

    ## Arguments

    - ``data_dir`` (path or None): a MovieLens folder (``u.data``, ``u.item``, ``u.user``; or
      ``ratings.dat``, ``movies.dat``, ``users.dat``). ``data`` (``RatingData`` or None): custom
      ratings with side features. At most one of them; neither: the synthetic world.
    - ``n_epochs`` (int, 20): at most n_items minus the most ratings of one user, so every user
      always has an item left to propose.
    - ``recommenders`` (sequence of distinct names from ``("popularity", "item-cf", "user-cf",
      "mf")``, all four): k >= 2.
    - ``refit`` (``"epoch"`` or ``"never"``); ``train_fraction`` (float in (0, 1), 0.1);
      ``positive_threshold`` (float, 3.0).
    - Synthetic only (None: the default): ``n_users`` (300), ``n_items`` (500), ``n_segments``
      (4, at most n_users), ``segment_effect`` (float in [0, 1], 1.0), ``ratings_per_user`` (40,
      below n_items), ``world_seed`` (int >= 0: one fixed world for every reset seed).
    - ``n_neighbors`` (int, 30; user-CF, capped at n_users - 1), ``mf_rank`` (int at most
      min(n_users, n_items), or None: 16, or that minimum where smaller); ``render_mode`` (``"ansi"`` or None).

    Integer arguments take Python or numpy integers (not bools, floats or strings). Invalid values
    raise ``ValueError`` naming the argument at ``gym.make``: among them k < 2, an unknown or
    repeated recommender name, a ``data_dir`` without the expected files, NaN in custom data's
    features, a split that leaves no training rating or no possible test positive, and a synthetic
    knob given with real data.

    No native vector env: each sub-env would hold its own users x items history, test log and k
    score tables, and its cost is the candidates' refits at the end of each epoch, which batching
    sub-envs does not reduce; ``gym.make_vec(..., vectorization_mode="sync")`` works.

    Cost (MovieLens-100K, measured on a shared 2-core machine with single-threaded BLAS;
    ``twostage-bench perf --case selection_env --case selection_refit`` measures it): a request takes
    about 0.1 ms (10,000 requests/s through ``gym.make``); the refits at an epoch's end about 0.6 s in
    all (item-CF 0.27 s, user-CF 0.21 s, MF 0.14 s, popularity 0.01 s); a whole 20-epoch episode
    about 11 s. The synthetic default episode (6,000 requests) takes about 0.5 s.

    ## Info keys

    ``user`` (int64), ``proposals`` (int64 (k,), each arm's proposed item), ``arm`` (int64, the
    served arm), ``item`` (int64, the served item), ``rated`` (bool: the user rated the served
    item in the test log, so it went to the history, not the reject list), ``epoch`` (int64, of
    the request, from 0), ``traffic_share`` (float64 (k,), each arm's share of this episode's
    requests so far), ``reward`` (float64).

    Oracle keys (agents must not read them): ``expected_reward`` (float64, = reward),
    ``optimal_expected_reward`` (1.0 if any arm's proposal is positive), ``regret`` (their
    difference), ``nominator_regret`` (0.0: the candidates' proposals are the env's, not the
    agent's, and the optimum is taken over them) and ``ranker_regret`` (= ``regret``: the whole
    regret is the selection's), ``positive`` (bool (k,), which proposals are positive) and
    ``recall`` (float64, cumulative successes / positives of the initial test log; never above 1).

    ## Version History

    - v0: initial version.

    ## Example

    >>> import gymnasium as gym
    >>> import numpy as np
    >>> import twostage_gym
    >>> env = gym.make("TwoStage/RecommenderSelection-v0", n_users=100, n_items=200, n_epochs=2)
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape, env.unwrapped.feature_slices["arm"]  # k = 4 arms, d = 8 + 12 + 4
    ((4, 24), slice(20, 24, None))
    >>> obs, reward, terminated, truncated, info = env.step(0)  # serve the popularity candidate
    >>> info["proposals"].shape, bool(info["regret"] == info["optimal_expected_reward"] - reward)
    ((4,), True)
    >>> steps = 1
    >>> while not terminated:
    ...     obs, reward, terminated, truncated, info = env.step(steps % 4)
    ...     steps += 1
    >>> steps == env.unwrapped.episode_steps, 0.0 <= float(info["recall"]) <= 1.0
    (True, True)
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        data_dir: str | None = None,
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
        render_mode: str | None = None,
    ) -> None:
        choice("render_mode", render_mode, self.metadata["render_modes"], allow_none=True)
        self.config = SelectionConfig(
            data_dir, data, n_epochs, recommenders, refit, train_fraction, positive_threshold, n_users, n_items,
            n_segments, segment_effect, ratings_per_user, n_neighbors, mf_rank, world_seed,
        )  # fmt: skip
        self.render_mode = render_mode
        self.action_space = self.config.action_space()
        self.observation_space = self.config.observation_space()
        self._split: SelectionSplit | None = None
        self._order_rng: np.random.Generator | None = None
        self._run: SelectionRun | None = None
        self._last: dict[str, Any] | None = None

    # -- public facts -------------------------------------------------------------------------
    @property
    def recommenders(self) -> tuple[str, ...]:
        """The candidates' names, arm by arm."""
        return self.config.recommenders

    @property
    def feature_slices(self) -> dict[str, slice]:
        """Column ranges of an observation row: ``"user"``, ``"item"`` and ``"arm"``."""
        return dict(self.config.feature_slices)

    @property
    def n_users(self) -> int:
        """Users of the data (each epoch requests every one once)."""
        return self.config.n_users

    @property
    def n_items(self) -> int:
        """Items of the catalog."""
        return self.config.n_items

    @property
    def steps_per_epoch(self) -> int:
        """Requests per epoch: every user once."""
        return self.config.steps_per_epoch

    @property
    def episode_steps(self) -> int:
        """Steps of an episode: ``n_users * n_epochs``."""
        return self.config.episode_steps

    @property
    def split(self) -> SelectionSplit:
        """The current split (data, initial training matrix, test log); after ``reset``."""
        if self._split is None:
            raise RuntimeError("call reset() first")
        return self._split

    @property
    def run_state(self) -> SelectionRun:
        """The episode's bookkeeping (history, reject lists, score tables); after ``reset``."""
        if self._run is None:
            raise RuntimeError("call reset() first")
        return self._run

    def context_observation(self, obs: Any) -> np.ndarray:
        """The user block of an observation (leading axes kept): it never depends on the agent's actions."""
        return np.asarray(obs)[..., self.config.feature_slices["user"]]

    # -- gymnasium API ----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None or self._split is None:
            key = int(self.np_random.integers(2**63))
            self._split = split_for(self.config, key)
            self._order_rng = np.random.default_rng([ORDER_STREAM, key])
        self._run = SelectionRun(self.config, self._split, self._order_rng)
        self._last = None
        return self._run.observation(), {}

    def step(self, action):
        run = self._run
        if run is None:
            raise RuntimeError("call reset() before step()")
        if run.done:
            raise RuntimeError("the episode has ended (n_epochs epochs); call reset()")
        arm = _check_action(action, self.config.k)
        reward, info = run.play(arm)
        self._last = info
        return run.observation(), reward, run.done, False, info

    def render(self) -> str | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' to make()")
            return None
        run = self._run
        if run is None:
            return "not reset yet\n"
        info = self._last
        if info is None:
            return f"request 0 (epoch 0): user {run.user}, proposals {run.proposals.tolist()}; no item served yet\n"
        arm = int(info["arm"])
        outcome = "positive" if info["reward"] else ("rated, not positive" if info["rated"] else "rejected")
        return (
            f"step {run.t}, epoch {int(info['epoch'])}: user {int(info['user'])}, proposals "
            f"{info['proposals'].tolist()} -> arm {arm} ({self.config.recommenders[arm]}) served item "
            f"{int(info['item'])}: {outcome}; expected reward {float(info['expected_reward']):.0f} (optimal "
            f"{float(info['optimal_expected_reward']):.0f}); regret {float(info['regret']):.0f}; "
            f"recall {float(info['recall']):.4f}\n"
        )
