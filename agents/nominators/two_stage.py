"""The two-stage linear learners of Hron et al. (2021, Sec. 3.1, App. B): UCB, Greedy and PG.

A two-stage learner ``<ranker>+<nominator>`` holds one ranker model on all d features and N
nominator models, one per pool, each on its own feature subset. All N nominators are scored
and updated in one batched numpy call: there is no Python loop over nominators or items.

Nominator training (Eq. 4) weighs nominator n's update by w_{n,t}:

* ``"all"``: w = 1 ('training-on-all', the paper's Sec. 3.1 default);
* ``"own"``: w = 1{a_t in A_n} (definition (i) of 'training-on-own');
* ``"own-selected"``: w = 1{a_t = a_{n,t}} (definition (ii)).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from agents.common.base import Agent, agent_rng, check_nonnegative, check_positive
from agents.common.linalg import RidgeRegression, softmax_probs
from twostage_gym.envs.nominators import NominatorsEnv

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_LAM",
    "DEFAULT_LR",
    "NOMINATOR_TRAINING",
    "STAGE_LEARNERS",
    "LinearStage",
    "TwoStageAgent",
    "nominators_env",
    "pool_structure",
]

STAGE_LEARNERS = ("ucb", "greedy", "pg")
NOMINATOR_TRAINING = ("all", "own", "own-selected")

# Table 1 of the paper (synthetic data): lambda = 1e-2, alpha = 1e-2, PG learning rate 1.
DEFAULT_LAM = 1e-2
DEFAULT_ALPHA = 1e-2
DEFAULT_LR = 1.0


def nominators_env(env: gym.Env) -> NominatorsEnv:
    """The :class:`NominatorsEnv` under ``env``'s wrappers, or a ``ValueError``."""
    base = env.unwrapped
    if not isinstance(base, NominatorsEnv):
        raise ValueError(f"env must be a TwoStage/Nominators environment, got {type(base).__name__}")
    return base


def pool_structure(env: NominatorsEnv) -> tuple[np.ndarray, np.ndarray]:
    """The env's padded pools ``(N, P)`` and the mask of real (non-padding) entries."""
    if env.instance is None:
        raise ValueError("reset the env before the agent: the pools are drawn by env.reset(seed=...)")
    pool_items = env.instance.pool_items
    return pool_items, np.arange(pool_items.shape[1])[None, :] < env.pool_sizes[:, None]


class LinearStage:
    """One stage's B linear learners over feature vectors of size p: UCB, Greedy or PG.

    Args:
        kind: ``"ucb"``, ``"greedy"`` or ``"pg"``.
        n_models: B, learners scored and updated together.
        dim: feature size p.
        alpha: UCB bonus (ignored unless ``kind == "ucb"``).
        lam: ridge regulariser before the x p scaling.
        lr: PG learning rate.
    """

    def __init__(self, kind: str, n_models: int, dim: int, alpha: float, lam: float, lr: float) -> None:
        self.kind, self.alpha, self.lr = kind, alpha, lr
        self.ridge = RidgeRegression(n_models, dim, lam) if kind != "pg" else None
        self.theta = np.zeros((n_models, dim))

    def reset(self) -> None:
        if self.ridge is not None:
            self.ridge.reset()
        self.theta[:] = 0.0

    def probs(self, X: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """PG's policy over the rows of ``X`` (B, M, p) -> (B, M)."""
        return softmax_probs(np.einsum("bmp,bp->bm", X, self.theta), mask)

    def choose(self, X: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator) -> tuple[np.ndarray, Any]:
        """Pick one row per model from ``X`` (B, M, p); returns the indices and PG's probabilities."""
        if self.ridge is not None:
            scores = self.ridge.ucb(X, self.alpha)
            if mask is not None:
                scores = np.where(mask, scores, -np.inf)
            return scores.argmax(axis=-1), None
        probs = self.probs(X, mask)
        # Inverse-CDF sampling of one index per model, vectorised over the B models.
        u = rng.random((X.shape[0], 1))
        idx = (probs.cumsum(axis=-1) < u).sum(axis=-1)
        return np.minimum(idx, X.shape[1] - 1), probs

    def learn(self, x: np.ndarray, r: float, w: np.ndarray, X: np.ndarray, probs: np.ndarray | None) -> None:
        """Update on the served item's features ``x`` (B, p) with weights ``w`` (B,)."""
        if self.ridge is not None:
            self.ridge.update(x, r, w)
            return
        # One REINFORCE step on the last tuple: theta += lr * r * (x_{a_t} - E_pi[x]) (App. B).
        expected_x = np.einsum("bm,bmp->bp", probs, X)
        self.theta += (self.lr * r * w)[:, None] * (x - expected_x)


class TwoStageAgent(Agent):
    """A ranker and N nominators, each UCB, Greedy or PG (Hron et al. 2021, Sec. 3.1, App. B).

    Args:
        env: a ``TwoStage/Nominators`` env (possibly wrapped); its pools and feature subsets are
            read at :meth:`reset`, so reset the env first.
        ranker: ``"ucb"``, ``"greedy"``, ``"pg"``, or ``None`` for a single-stage system (needs N = 1;
            the one nominator is the whole system).
        nominator: the nominators' learner, ``"ucb"``, ``"greedy"`` or ``"pg"``.
        alpha: UCB exploration bonus of every UCB stage (default 1e-2, Table 1).
        ranker_alpha: the ranker's bonus, overriding ``alpha``.
        nominator_alpha: the nominators' bonus, overriding ``alpha``.
        lam: ridge regulariser before the x d scaling (default 1e-2, Table 1); only for systems
            with a UCB or Greedy stage.
        lr: PG learning rate (default 1, Table 1); only for systems with a PG stage.
        nominator_training: ``"all"``, ``"own"`` or ``"own-selected"`` (Eq. 4 and footnote 4).
    """

    def __init__(
        self,
        env: gym.Env,
        ranker: str | None = "ucb",
        nominator: str = "ucb",
        alpha: float | None = None,
        ranker_alpha: float | None = None,
        nominator_alpha: float | None = None,
        lam: float | None = None,
        lr: float | None = None,
        nominator_training: str = "all",
    ) -> None:
        self.env = nominators_env(env)
        if ranker is not None and ranker not in STAGE_LEARNERS:
            raise ValueError(f"ranker must be one of {STAGE_LEARNERS} or None, got {ranker!r}")
        if nominator not in STAGE_LEARNERS:
            raise ValueError(f"nominator must be one of {STAGE_LEARNERS}, got {nominator!r}")
        if nominator_training not in NOMINATOR_TRAINING:
            raise ValueError(f"nominator_training must be one of {NOMINATOR_TRAINING}, got {nominator_training!r}")
        if ranker is None and self.env.n_nominators != 1:
            raise ValueError(f"a single-stage agent needs an env with n_nominators=1, got {self.env.n_nominators}")
        stages = {"ranker": ranker, "nominator": nominator}
        system = nominator if ranker is None else f"{ranker}+{nominator}"
        if alpha is not None and "ucb" not in stages.values():
            raise ValueError(f"alpha is the UCB bonus, but no stage of {system} is UCB")
        for stage, value in (("ranker", ranker_alpha), ("nominator", nominator_alpha)):
            if value is not None and stages[stage] != "ucb":
                raise ValueError(f"{stage}_alpha is the UCB bonus, but the {stage} is {stages[stage]!r}")
        base_alpha = DEFAULT_ALPHA if alpha is None else check_nonnegative("alpha", alpha)
        self.ranker_alpha = base_alpha if ranker_alpha is None else check_nonnegative("ranker_alpha", ranker_alpha)
        self.nominator_alpha = (
            base_alpha if nominator_alpha is None else check_nonnegative("nominator_alpha", nominator_alpha)
        )
        # A kwarg the system does not use is refused, as alpha is above: it would change nothing.
        if lam is not None and not {"ucb", "greedy"} & set(stages.values()):
            raise ValueError(f"lam is the ridge regulariser of UCB and Greedy stages; {system} has none")
        if lr is not None and "pg" not in stages.values():
            raise ValueError(f"lr is the policy-gradient learning rate; {system} has no PG stage")
        self.lam = DEFAULT_LAM if lam is None else check_positive("lam", lam)
        self.lr = DEFAULT_LR if lr is None else check_positive("lr", lr)
        self.ranker, self.nominator, self.nominator_training = ranker, nominator, nominator_training
        self.name = system
        self._ranker_stage: LinearStage | None = None
        self._nominator_stage: LinearStage | None = None

    def _alpha(self, kind: str, ucb_alpha: float) -> float:
        return ucb_alpha if kind == "ucb" else 0.0

    def reset(self, seed: int | None = None) -> None:
        env = self.env
        self.rng = agent_rng(seed)
        n, s = env.n_nominators, env.nominator_dim
        self.pool_items, self.pool_mask = pool_structure(env)
        self.features = env.feature_subsets
        self.in_pool = np.zeros((n, env.n_items), dtype=bool)
        self.in_pool[np.repeat(np.arange(n), self.pool_items.shape[1]), self.pool_items.ravel()] = True
        self._nominator_stage = LinearStage(
            self.nominator, n, s, self._alpha(self.nominator, self.nominator_alpha), self.lam, self.lr
        )
        self._ranker_stage = None
        if self.ranker is not None:
            self._ranker_stage = LinearStage(
                self.ranker, 1, env.dim, self._alpha(self.ranker, self.ranker_alpha), self.lam, self.lr
            )
        self._cache: tuple[Any, ...] | None = None

    def _views(self, observation: np.ndarray) -> np.ndarray:
        """Each nominator's view of its pool: ``(N, P, s)`` = X[pool_n][:, features_n]."""
        return observation[self.pool_items[:, :, None], self.features[:, None, :]]

    def _decide(self, observation: np.ndarray) -> tuple[np.ndarray, Any, Any, Any]:
        if self._nominator_stage is None:
            raise RuntimeError("call reset() before act()")
        if self._cache is not None and self._cache[0] is observation:
            return self._cache[1]
        views = self._views(observation)
        nominations, nom_probs = self._nominator_stage.choose(views, self.pool_mask, self.rng)
        candidates = self.pool_items[np.arange(len(nominations)), nominations]
        rank_X, rank_probs = None, None
        if self._ranker_stage is None:
            pick = 0
        else:
            rank_X = observation[candidates][None]
            pick_arr, rank_probs = self._ranker_stage.choose(rank_X, None, self.rng)
            pick = int(pick_arr[0])
        action = np.append(nominations, pick).astype(np.int64)
        result = (action, (views, nom_probs), (rank_X, rank_probs), candidates)
        self._cache = (observation, result)
        return result

    def act(self, observation: np.ndarray) -> np.ndarray:
        return self._decide(observation)[0].copy()

    def action_probabilities(self, observation: np.ndarray) -> np.ndarray | None:
        """P(served item) for ``observation`` (the draw that :meth:`act` then returns is made here).

        One-hot on the served item when no stage is PG; the one nominator's softmax over the
        catalog for the single-stage PG. ``None`` for a PG stage in a two-stage system, whose
        served item's marginal would sum over every candidate set.
        """
        action, (_, nom_probs), _, candidates = self._decide(observation)
        probs = np.zeros(self.env.n_items)
        if "pg" not in (self.ranker, self.nominator):
            probs[candidates[action[-1]]] = 1.0
            return probs
        if self.ranker is None:
            # Padding entries repeat the pool's last item with probability 0 (masked).
            np.add.at(probs, self.pool_items[0], nom_probs[0])
            return probs
        return None

    def update(self, observation: np.ndarray, action: Any, reward: float, info: Mapping[str, Any]) -> None:
        action = np.asarray(action)
        _, (views, nom_probs), (rank_X, rank_probs), decided_candidates = self._decide(observation)
        n = self.pool_items.shape[0]
        candidates = self.pool_items[np.arange(n), action[:n]]
        served = candidates[action[n]]
        if self.nominator_training == "all":
            w = np.ones(n)
        elif self.nominator_training == "own":
            w = self.in_pool[:, served].astype(np.float64)
        else:
            w = (candidates == served).astype(np.float64)
        x_nom = observation[served][self.features]
        self._nominator_stage.learn(x_nom, reward, w, views, nom_probs)
        if self._ranker_stage is not None:
            if not np.array_equal(candidates, decided_candidates):
                # The action differs from the one act() chose: score the candidates it names.
                rank_X = observation[candidates][None]
                rank_probs = self._ranker_stage.probs(rank_X, None) if self.ranker == "pg" else None
            self._ranker_stage.learn(observation[served][None], reward, np.ones(1), rank_X, rank_probs)
        self._cache = None
