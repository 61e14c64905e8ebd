"""Stage-wise exploration-exploitation with the D-optimal design (Xu et al. 2021, Algs. 1, 3 and 4).

A *stage* is ``explore_rounds`` exploration rounds, then ``exploit_rounds`` exploitation rounds;
then the next stage starts (the restart criterion: a fixed schedule, as the paper leaves the
criterion to the deployment). The linear reward model (a ridge regression on the features phi of
:class:`~agents.selection.features.FeatureMap`) takes every observation, but the model the
exploitation rounds use is refitted only when a stage's exploration ends, as in the paper's
back-end batch training; a round never waits on a model update.

* Exploration draws the recommender from a design over the request's k arms. With k = 4 arms and
  dim >> 4 features, log det M(pi) of one request alone is -inf, so the design is the
  prior-regularised one: pi maximises log det (A + M(pi)), the information the next observation
  adds to A, where A is

  - ``d-optimal`` (frequentist, Alg. 3): the stage's information matrix, reg I + the exploration
    rounds of this stage so far;
  - ``d-optimal-bayes`` and ``d-optimal-ts`` (Eq. 6): reg I + lam Phi_hist^T Phi_hist, the
    history of every exploration round so far, lam the history's weight;
  - ``uniform-explore`` (ablation): no design, pi uniform.

  The design is solved in the k-dimensional form log det A + log det (I_k + D^{1/2} G D^{1/2}),
  G = Phi A^{-1} Phi^T (Sylvester's identity), by :func:`~agents.selection.design.d_optimal_design`
  on features R with R R^T = G and prior I_k; A^{-1} is kept by Sherman-Morrison updates, so a
  round costs O(k dim^2 + k^3) and no dim x dim factorisation.
* Exploitation serves argmax <theta^, phi_a> with the stage's refitted theta^ (``d-optimal``,
  ``d-optimal-bayes``, ``uniform-explore``), or, for ``d-optimal-ts`` (Alg. 4), argmax of the
  scores under a draw theta~ ~ N(theta^, v^2 Sigma) from the stage's posterior, each round.
* ``d-optimal-nocontext`` (ablation) is ``d-optimal`` without the user features.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from agents.common.linalg import RidgeRegression, sherman_morrison_update
from agents.selection.bandits import (
    SelectionAgent,
    argmax_probabilities,
    argmax_random_ties,
    check_action,
    sample_scores,
)
from agents.selection.design import DEFAULT_EPS, d_optimal_design
from agents.selection.features import FeatureMap
from twostage_gym.core.checks import boolean, choice, integer, number

__all__ = ["DESIGNS", "EXPLOITS", "StagewiseAgent", "design_probabilities"]

DESIGNS = ("stage", "history", "uniform")
"""Exploration designs: the D-optimal design given the stage's information, given the whole
exploration history (Eq. 6), or uniform."""
EXPLOITS = ("greedy", "thompson")


def design_probabilities(Phi: np.ndarray, A_inv: np.ndarray, eps: float) -> np.ndarray:
    """The design pi over the rows of ``Phi`` maximising log det (A + M(pi)), given A^{-1}.

    By Sylvester's identity log det (A + Phi^T D Phi) = log det A + log det (I_r + R^T D R)
    for any R with R R^T = Phi A^{-1} Phi^T, so the design over ``Phi`` with the prior A is the
    design over R with the prior I: the same pi, solved in k dimensions.
    """
    G = Phi @ A_inv @ Phi.T
    w, V = np.linalg.eigh((G + G.T) / 2)
    keep = w > 1e-12 * max(1.0, float(w.max()))
    R = V[:, keep] * np.sqrt(w[keep])
    if R.shape[1] == 0:  # every arm already known exactly: nothing to learn, any design will do
        return np.full(len(Phi), 1.0 / len(Phi))
    return d_optimal_design(R, prior=np.eye(R.shape[1]), eps=eps).pi


class StagewiseAgent(SelectionAgent):
    """Stage-wise exploration and exploitation (Algs. 1, 3, 4): see the module docstring.

    Args:
        env: a selection env.
        design: ``"stage"`` (``d-optimal``), ``"history"`` (``d-optimal-bayes``, ``-ts``) or
            ``"uniform"`` (``uniform-explore``); set by the registered name.
        exploit: ``"greedy"`` or ``"thompson"`` (``d-optimal-ts``); set by the registered name.
        context: whether the user features enter the model (False: ``d-optimal-nocontext``).
        explore_rounds: exploration rounds per stage, >= 1 (50).
        exploit_rounds: exploitation rounds per stage before the next stage starts, >= 0 (200).
        reg: the ridge (prior precision) of the model and of the designs' A, in (0, 10^6] (1).
        lam: the weight of the exploration history in the Bayesian design's prior (Eq. 6's
            lambda), in [0, 10^3] (1); only for the ``"history"`` design.
        v: the posterior's scale of the Thompson draws, in (0, 100] (0.5); only for ``"thompson"``.
        eps: the design solver's certificate tolerance, in (0, 1] (0.01); not for ``"uniform"``.
        interactions: whether the user features also enter multiplied by the arm indicator.

    Raises:
        ValueError: an invalid argument, or one the learner does not use (``lam`` without the
            history design, ``v`` without Thompson exploitation, ``eps`` with a uniform design).
    """

    def __init__(
        self,
        env: gym.Env,
        design: str = "stage",
        exploit: str = "greedy",
        context: bool = True,
        explore_rounds: int = 50,
        exploit_rounds: int = 200,
        reg: float = 1.0,
        lam: float | None = None,
        v: float | None = None,
        eps: float | None = None,
        interactions: bool = True,
    ) -> None:
        super().__init__(env)
        self.design = choice("design", design, DESIGNS)
        self.exploit = choice("exploit", exploit, EXPLOITS)
        self.features = FeatureMap(env, boolean("context", context), boolean("interactions", interactions))
        self.explore_rounds = integer("explore_rounds", explore_rounds, low=1)
        self.exploit_rounds = integer("exploit_rounds", exploit_rounds, low=0)
        self.reg = number("reg", reg, 0.0, 1e6, low_open=True)
        if lam is not None and self.design != "history":
            raise ValueError(f"lam: only the Bayesian (history) design weighs the history; this design is {design!r}")
        if v is not None and self.exploit != "thompson":
            raise ValueError("v: only Thompson-sampling exploitation (d-optimal-ts) draws from the posterior")
        if eps is not None and self.design == "uniform":
            raise ValueError("eps: the uniform exploration solves no design")
        self.lam = number("lam", 1.0 if lam is None else lam, 0.0, 1e3)
        self.v = number("v", 0.5 if v is None else v, 0.0, 100.0, low_open=True)
        self.eps = number("eps", DEFAULT_EPS if eps is None else eps, 0.0, 1.0, low_open=True)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        dim = self.features.dim
        # RidgeRegression scales its lambda by the dimension; reg is the prior precision itself.
        self.model = RidgeRegression(1, dim, self.reg / dim)
        self.theta = np.zeros(dim)  # the stage's refitted model
        self.cov = np.eye(dim) / self.reg  # and its posterior covariance (Thompson draws)
        self.design_inv = np.eye(dim)[None] / self.reg  # A^{-1} of the exploration design
        self.round_in_stage = 0
        self.stages = 0

    @property
    def exploring(self) -> bool:
        """Whether the next round is an exploration round."""
        return self.round_in_stage < self.explore_rounds

    def act(self, observation: Any) -> int:
        Phi = self.features(observation)
        if self.exploring:
            if self.design == "uniform":
                return int(self.rng.integers(self.k))
            pi = design_probabilities(Phi, self.design_inv[0], self.eps)
            return int(self.rng.choice(self.k, p=pi))
        if self.exploit == "thompson":
            return argmax_random_ties(sample_scores(self.theta, Phi, self.cov, self.v, self.rng), self.rng)
        return argmax_random_ties(Phi @ self.theta, self.rng)

    def action_probabilities(self, observation: Any) -> np.ndarray | None:
        """The distribution :meth:`act` draws from this round, or None at a Thompson round.

        Exploration: the design's (or uniform) probabilities over the request's arms; greedy
        exploitation: one-hot on the best refitted score (uniform over tied arms, as :meth:`act`
        breaks ties). A Thompson exploitation round (``d-optimal-ts``) has no closed form.
        """
        Phi = self.features(observation)
        if self.exploring:
            if self.design == "uniform":
                return np.full(self.k, 1.0 / self.k)
            return design_probabilities(Phi, self.design_inv[0], self.eps)
        if self.exploit == "thompson":
            return None
        return argmax_probabilities(Phi @ self.theta)

    def update(self, observation: Any, action: Any, reward: float, info: Mapping[str, Any]) -> None:
        a = check_action(action, self.k)
        phi = self.features(observation)[a]
        self.model.update(phi[None], float(reward))
        if self.exploring:
            weight = self.lam if self.design == "history" else 1.0
            if weight > 0:
                sherman_morrison_update(self.design_inv, np.zeros(1, dtype=np.int64), phi[None], weight)
        self.round_in_stage += 1
        if self.round_in_stage == self.explore_rounds:
            # Alg. 3: the back-end refit at the end of the stage's exploration.
            self.theta = self.model.theta[0].copy()
            self.cov = self.model.cov[0].copy()
        if self.round_in_stage >= self.explore_rounds + self.exploit_rounds:
            self.round_in_stage = 0
            self.stages += 1
            if self.design == "stage":
                self.design_inv = np.eye(self.features.dim)[None] / self.reg
