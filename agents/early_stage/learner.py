"""The early-stage-ranker policy-gradient learner (Kiyohara et al. 2026, Secs. 2-4, App. B, D, E).

One class runs the five methods of :mod:`agents.early_stage`; they share the model
(:class:`agents.early_stage.model.TwoTowerESR`), the batch loop and the optimiser, and differ only in the
score function (:mod:`agents.early_stage.scores`). The loss of a batch is

* V-PG, V-PG-SwR: ``-mean_i score(A^K_i) * sum_l alpha_l r_{i,l}``,
* CA-PG, CA-PG-SwR, TOP1-PG: ``-mean_i sum_l alpha_l r_{i,l} score(a_{i,l})``,

with alpha the env's position weights, A^K_i the sampled candidate set (``info["candidates"]``),
a_{i,l} the LSR's served items (``info["ranking"]``) and r_{i,l} their rewards
(``info["position_rewards"]``).

Design choices (App. E and the paper's code):

* **Optimiser**: Adagrad, as the paper's code uses (its online learner's default optimiser), with
  the paper's learning rates, 1e-2 for the CA-PGs and 1e-1 for the V-PGs, at batch size 128.
  ``"sgd"`` and ``"adam"`` are available.
* **Gradient overflow**: when the loss or a gradient is non-finite (or the logits are, at
  ``act``), the step is not applied, training stops (as in the paper's runs), ``stopped`` becomes
  True and ``overflow_step`` records the step. The parameters stay those of the last finite step.
  The scores compute the Plackett-Luce normalisers as sums of the remaining mass, not by Eq. 8's
  difference, so the numerical failure behind many of the paper's overflows (log 0 once the
  taken items hold all the mass in float32) does not occur; a diverging model still stops.
  Finite logits beyond the env's bound (1e6) are shifted per row, which leaves the policy as is.
* **Adaptive learning rate** (Eq. 9): lr / p with p = E[pi_LSR(a | x, A^K)] the LSR's expected
  propensity of its own choice. The learner does not know the LSR, so ``adaptive_lr`` is either
  the number p (known to the experimenter, as in the paper, which computes it by Monte-Carlo
  with the LSR in hand) or ``"probe"``: estimate p from the learner's own interactions. p is
  the probability that two independent LSR draws on the same (user, candidate set) agree, so
  whenever a user appears more than once in a batch, the learner serves each of its copies the
  same candidate set (the model's greedy set, forced by large logits) and counts how often the
  LSR's choices coincide; those rows are left out of the gradient. After ``probe_pairs`` pairs
  (alpha-weighted over positions, clipped to [1/K, 1]) the learning rate becomes lr / p and
  probing stops; until then it is lr.
* **GRPO-style normalisation** (App. E): with ``grpo=True`` each position's rewards are
  standardised within the batch and shifted by the positivity constant c: (r - mean) / std + c,
  which keeps the rewards positive on average as Theorem 3.3 asks of CA-PG.
* **Forward pass**: ``act`` builds the autograd graph of the batch's logits and ``update`` reuses
  it when it is given the same observation array (else it recomputes). Measured at |A| = 1000,
  K = 10, batch 128: 0.1 ms per step faster than recomputing with one model, 0.1-0.5 ms with five.
* **Overlap with the environment**: the first half of every score's pass over the catalog,
  exp(z - max) and its sum (:func:`agents.early_stage.scores.catalog_mass`), depends on the logits
  alone. ``act`` starts it on a worker thread, so it runs while the caller steps the environment
  (numpy and torch both release the GIL in their array loops), and ``update`` picks it up.
  The result is the same as computing it in ``update``. Small batches (fewer than
  ``_OVERLAP_MIN`` logits) compute it in ``update``: there the hand-over costs more than it saves.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents.common.base import agent_rng, check_nonnegative, check_positive
from agents.common.batched import BatchedAgent
from agents.early_stage.methods import DEFAULT_LR, METHODS
from agents.early_stage.model import TwoTowerESR
from agents.early_stage.scores import (
    CatalogMass,
    ca_log_marginal,
    ca_log_marginal_swr,
    catalog_mass,
    pl_log_prob,
    pl_log_prob_swr,
)
from twostage_gym.core.checks import boolean, check_memory, integer
from twostage_gym.core.plackett_luce import greedy_candidates
from twostage_gym.envs.early_stage_ranker import LOGIT_BOUND, EarlyStageRankerEnv

__all__ = ["OPTIMIZERS", "ESRPolicyGradient"]

OPTIMIZERS = ("adagrad", "sgd", "adam")
DEFAULT_PROBE_PAIRS = 256
MAX_THREADS = 2**12  # torch.set_num_threads overflows far above any real machine's core count
DEFAULT_GRPO_CONSTANT = 1.0  # App. E's positivity constant c
_VANILLA = ("v-pg", "v-pg-swr")
# A probe row's candidate set gets logits this far above the rest (after the env divides by the
# ESR temperature): more than the whole range of float32 Gumbel noise, so the set is certain.
_PROBE_MARGIN = 1000.0


_OVERLAP_MIN = 2**18
"""Logits (batch x experts x items) from which the catalog pass runs on the worker thread. Below,
the hand-over costs more than the overlap saves: measured at batch 128 and 1000 items, the
worker made a step 0.05-0.2 ms slower with one model (128,000 logits) and 0.4-1.0 ms faster with
five (640,000)."""


@functools.cache
def _worker() -> ThreadPoolExecutor:
    """The thread that computes the scores' catalog pass ahead (one per process, shared by the learners)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="esr-catalog")


# A forked child (e.g. a bench worker) has the parent's executor object but not its thread.
os.register_at_fork(after_in_child=_worker.cache_clear)


class ESRPolicyGradient(BatchedAgent):
    """A policy-gradient learner for the early-stage ranker (V-PG, V-PG-SwR, CA-PG, CA-PG-SwR, TOP1-PG).

    Built by ``agents.make(name, env)``; trained by ``agents.evaluate``, which feeds it batches of
    ``batch_size`` users from the env's native vector env. It reads the env's configuration
    (catalog size, K, L, M, ESR temperature, position weights) at construction, never the
    reward model.

    Args:
        The arguments of :func:`agents.early_stage.make_learner`, which documents them for
        ``agents.make`` (``tests/agents/early_stage/test_learners.py`` keeps the two signatures equal).
    """

    def __init__(
        self,
        env: gym.Env,
        method: str = "ca-pg",
        lr: float | None = None,
        batch_size: int = 128,
        embedding_dim: int = 10,
        init_std: float = 1.0,
        optimizer: str = "adagrad",
        adaptive_lr: float | str | None = None,
        probe_pairs: int | None = None,
        grpo: bool = False,
        grpo_constant: float | None = None,
        device: str | torch.device = "cpu",
        num_threads: int | None = 1,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        base = env.unwrapped
        if not isinstance(base, EarlyStageRankerEnv):
            raise ValueError(f"env must be a TwoStage/EarlyStageRanker environment, got {type(base).__name__}")
        config = base.config
        if config.action_type != "logits":
            raise ValueError(f"the ESR learners output logits; the env has action_type={config.action_type!r}")
        self.env = base
        self.method = method
        self.n_items, self.user_dim = config.n_items, config.dim
        self.n_candidates, self.n_outputs, self.n_experts = config.n_candidates, config.n_outputs, config.n_experts
        self.temperature = config.esr_temperature
        if method == "top1-pg" and self.n_experts != 1:
            raise ValueError(f"top1-pg is CA-PG-SwR with one logit model; the env has n_experts={self.n_experts}")
        self.alpha = np.asarray(config.alpha, dtype=np.float64)
        self.lr = DEFAULT_LR[method] if lr is None else check_positive("lr", lr)
        self.batch_size = integer("batch_size", batch_size, low=1)
        self.embedding_dim = integer("embedding_dim", embedding_dim, low=1)
        self.init_std = check_positive("init_std", init_std)
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        self.optimizer_name = optimizer
        if adaptive_lr is not None and adaptive_lr != "probe":
            p = check_positive("adaptive_lr", adaptive_lr)
            if p > 1:
                raise ValueError(f"adaptive_lr is the LSR propensity in (0, 1] or 'probe', got {adaptive_lr!r}")
        self.adaptive_lr = adaptive_lr
        # A kwarg the learner would not use is refused rather than ignored.
        if probe_pairs is not None and adaptive_lr != "probe":
            raise ValueError(f"probe_pairs applies to adaptive_lr='probe' only, got adaptive_lr={adaptive_lr!r}")
        self.probe_pairs = DEFAULT_PROBE_PAIRS if probe_pairs is None else integer("probe_pairs", probe_pairs, low=1)
        self.grpo = boolean("grpo", grpo)
        if grpo_constant is not None and not self.grpo:
            raise ValueError("grpo_constant applies to grpo=True only")
        self.grpo_constant = (
            DEFAULT_GRPO_CONSTANT if grpo_constant is None else check_nonnegative("grpo_constant", grpo_constant)
        )
        try:
            self.device = torch.device(device)
            torch.empty(0, device=self.device)  # e.g. "cuda" on a CPU-only build fails here, not at reset
        except (RuntimeError, TypeError, AssertionError) as err:
            raise ValueError(f"device {device!r} is not usable: {err}") from None
        self.num_threads = None if num_threads is None else integer("num_threads", num_threads, 1, MAX_THREADS)
        # Refuse a model no memory holds here, not with a MemoryError at reset or at the first step.
        floats = 4  # float32
        params = floats * self.n_experts * (self.user_dim + 1 + self.n_items) * self.embedding_dim
        logits = floats * self.batch_size * self.n_experts * self.n_items
        check_memory(
            {"embedding_dim": self.embedding_dim, "batch_size": self.batch_size, "n_items": self.n_items},
            # The parameters with their gradients, the optimiser's state and the draw at reset;
            # a batch's logits with the score's pass over them and their gradients.
            {"the model and its optimiser": 4 * params, "a batch's logits": 3 * logits},
            owner="learner",
        )
        self.name = method
        self.assignment = config.assignment
        self._assignment_t = None if self.assignment is None else torch.as_tensor(self.assignment, device=self.device)
        self._alpha_t = torch.as_tensor(self.alpha, dtype=torch.float32, device=self.device)
        self.model: TwoTowerESR | None = None
        self._keep_graph = True

    # ------------------------------------------------------------------ lifecycle

    def reset(self, seed: int | None = None) -> None:
        """Draw a fresh model (from ``seed``'s agent stream) and optimiser; forget the probe."""
        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(int(agent_rng(seed).integers(2**62)))
        self.model = TwoTowerESR(
            self.n_items,
            self.user_dim,
            self.n_experts,
            self.embedding_dim,
            self.init_std,
            generator=generator,
            device=self.device,
        )
        self.optimizer = self._make_optimizer(list(self.model.parameters()))
        self.steps = 0
        self.stopped = False
        self.overflow_step = None
        self.lsr_propensity: float | None = None
        self._probe_counts = np.zeros(self.n_outputs)
        self._probe_n = 0
        self._probing = self.adaptive_lr == "probe"
        if self.adaptive_lr is not None and not self._probing:
            self._set_propensity(float(self.adaptive_lr))
        self._probe_rows: tuple[Any, np.ndarray, np.ndarray] | None = None
        self._graph: tuple[Any, torch.Tensor, Future[CatalogMass] | None] | None = None

    def _make_optimizer(self, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        cls = {"adagrad": torch.optim.Adagrad, "sgd": torch.optim.SGD, "adam": torch.optim.Adam}[self.optimizer_name]
        try:
            # The fused kernels update all parameters in one call: half the time on CPU.
            return cls(params, lr=self.lr, fused=True)
        except (RuntimeError, TypeError, ValueError):
            return cls(params, lr=self.lr)

    @property
    def lr_effective(self) -> float:
        """The learning rate in use (lr, or lr / p once the LSR propensity p is known)."""
        return float(self.optimizer.param_groups[0]["lr"])

    def _set_propensity(self, p: float) -> None:
        self.lsr_propensity = p
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr / p

    def _require_model(self) -> TwoTowerESR:
        if self.model is None:
            raise RuntimeError("call reset() before act() or update()")
        return self.model

    # ------------------------------------------------------------------ acting

    def _logits(self, users: torch.Tensor) -> torch.Tensor:
        """``(B, |A|)`` with one model, ``(B, M, |A|)`` with experts."""
        logits = self._require_model()(users)
        return logits[:, 0] if self.n_experts == 1 else logits

    def _users(self, observation: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(observation, dtype=np.float32), device=self.device)

    def act(self, observation: np.ndarray) -> np.ndarray:
        """float32 logits ``(B, |A|)``, or ``(B, M, |A|)`` with M experts, for user features ``(B, d)``.

        A single observation ``(d,)`` gives one action ``(|A|,)`` / ``(M, |A|)``.
        """
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.ndim == 1
        users = self._users(obs[None] if single else obs)
        if self._keep_graph and not single and not self.stopped and torch.is_grad_enabled():
            graph = self._logits(users)
            z = graph.detach()
            # The scores' first pass over the catalog needs only the logits: it runs on a worker
            # thread while the caller steps the environment (when it is large enough to pay).
            mass = None
            if z.numel() >= _OVERLAP_MIN:
                mass = _worker().submit(catalog_mass, z if self.temperature == 1.0 else z / self.temperature)
            self._graph = (observation, graph, mass)
            logits = z.cpu().numpy()
        else:
            with torch.no_grad():
                logits = self._logits(users).cpu().numpy()
        action = np.ascontiguousarray(logits)
        if not self.model.logit_bound(users) <= LOGIT_BOUND / 2:  # else no logit can be out of bounds
            action = self._within_bounds(action)
        if self._probing and not single:
            action = action.copy()  # the logits' memory is the graph's, which the worker may be reading
            self._force_probe_rows(obs, action)
        return action[0] if single else action

    def _within_bounds(self, logits: np.ndarray) -> np.ndarray:
        """Logits the env accepts: finite and within +-``LOGIT_BOUND``.

        Beyond the bound, each expert's row is shifted so that its largest logit is 0 (the
        Plackett-Luce policy does not change) and floored at -``LOGIT_BOUND``, where an item's
        probability is exp(-1e6) relative to the best. Non-finite logits are a numerical overflow:
        training stops and the batch is served uniform logits.
        """
        low, high = logits.min(), logits.max()
        if -LOGIT_BOUND <= low and high <= LOGIT_BOUND:
            return logits
        if not (np.isfinite(low) and np.isfinite(high)):
            self._stop()
            return np.zeros_like(logits)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        return np.maximum(shifted, np.float32(-LOGIT_BOUND))

    def _stop(self) -> None:
        """Stop training on a non-finite value, as the paper's runs stop on a gradient overflow."""
        if not self.stopped:
            self.stopped = True
            self.overflow_step = self.steps + 1

    def _force_probe_rows(self, obs: np.ndarray, action: np.ndarray) -> None:
        """Give every repeated user in the batch its greedy candidate set, with certainty."""
        _, group, counts = np.unique(obs, axis=0, return_inverse=True, return_counts=True)
        group = group.reshape(-1)
        rows = np.flatnonzero(counts[group] > 1)
        self._probe_rows = None
        if rows.size == 0:
            return
        sets = greedy_candidates(action[rows], self.n_candidates, self.assignment)  # (P, K)
        forced = np.zeros((rows.size, self.n_items), dtype=np.float32)
        np.put_along_axis(forced, sets, np.float32(min(_PROBE_MARGIN * self.temperature, LOGIT_BOUND)), axis=-1)
        action[rows] = forced if self.n_experts == 1 else forced[:, None, :]
        self._probe_rows = (obs, rows, group[rows])

    # ------------------------------------------------------------------ learning

    def update(self, observation: np.ndarray, action: np.ndarray, reward: Any, info: Mapping[str, Any]) -> None:
        """One gradient step from a batch: observations ``(B, d)``, the vector env's public info.

        Reads ``info["candidates"]`` (B, K), ``info["ranking"]`` (B, L) and
        ``info["position_rewards"]`` (B, L); a single round's unbatched info also works. Rows
        the vector env did not play (its ``_ranking`` mask, e.g. the autoreset step after a
        truncation) are left out; a batch with none played is no step.
        """
        model = self._require_model()
        if self.stopped:
            return
        if "ranking" not in info:  # nothing was played (every sub-env was autoresetting)
            self._probe_rows = self._graph = None
            return
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.ndim == 1
        ranking = np.asarray(info["ranking"], dtype=np.int64)
        rewards = np.asarray(info["position_rewards"], dtype=np.float32)
        candidates = np.asarray(info["candidates"], dtype=np.int64)
        if single:
            obs, ranking, rewards, candidates = obs[None], ranking[None], rewards[None], candidates[None]
        played = info.get("_ranking")
        keep = None if played is None or single or np.all(played) else np.asarray(played, dtype=bool)
        if self._probe_rows is not None and self._probe_rows[0] is observation:
            probe_keep = self._record_probe(ranking, keep)
            keep = probe_keep if keep is None else keep & probe_keep
        self._probe_rows = None
        if keep is not None:
            if not keep.any():
                self._graph = None
                self.steps += 1
                return
            obs, ranking, rewards, candidates = obs[keep], ranking[keep], rewards[keep], candidates[keep]
        r = torch.as_tensor(rewards, device=self.device)
        if self.grpo:
            std = r.std(dim=0, unbiased=False) if r.shape[0] > 1 else torch.zeros_like(r[0])
            r = (r - r.mean(dim=0)) / (std + 1e-8) + self.grpo_constant
        graph, self._graph = self._graph, None
        mass = None
        if graph is not None and graph[0] is observation:
            logits, mass = graph[1], None if graph[2] is None else graph[2].result()
            if keep is not None:
                rows = torch.as_tensor(keep, device=self.device)
                logits, mass = logits[rows], None if mass is None else mass.rows(rows)
        else:
            logits = self._logits(self._users(obs))
        loss = self._loss(logits, torch.as_tensor(ranking, device=self.device), candidates, r, mass)
        self.optimizer.zero_grad()
        loss.backward()
        # One synchronising check covers the loss and every gradient (inf - inf is NaN too).
        total = loss.detach() + sum(p.grad.sum() for p in model.parameters())
        if not torch.isfinite(total):
            self._stop()
            self.optimizer.zero_grad()
            return
        self.optimizer.step()
        self.steps += 1

    def _loss(
        self,
        logits: torch.Tensor,
        ranking: torch.Tensor,
        candidates: np.ndarray,
        r: torch.Tensor,
        mass: CatalogMass | None = None,
    ) -> torch.Tensor:
        tau, asg = self.temperature, self._assignment_t
        if self.method in _VANILLA:
            sets = torch.as_tensor(candidates, device=self.device)
            score_fn = pl_log_prob if self.method == "v-pg" else pl_log_prob_swr
            score = score_fn(logits, sets, tau, asg, mass)
            return -(score * (r @ self._alpha_t)).mean()
        score_fn = ca_log_marginal if self.method == "ca-pg" else ca_log_marginal_swr
        score = score_fn(logits, ranking, self.n_candidates, tau, asg, mass)
        return -(score * r * self._alpha_t).sum(-1).mean()

    def _record_probe(self, ranking: np.ndarray, played: np.ndarray | None) -> np.ndarray:
        """Count LSR agreements between copies of a user; return the rows left for the gradient."""
        _, rows, group = self._probe_rows  # type: ignore[misc]
        if played is not None:
            rows, group = rows[played[rows]], group[played[rows]]
        same = np.triu(group[:, None] == group[None, :], 1)  # each pair of copies once
        agree = ranking[rows][:, None, :] == ranking[rows][None, :, :]  # (P, P, L)
        self._probe_counts += np.sum(agree & same[..., None], axis=(0, 1))
        self._probe_n += int(same.sum())
        if self._probe_n >= self.probe_pairs:
            rate = self._probe_counts / self._probe_n
            p = float(np.dot(self.alpha, rate) / self.alpha.sum())
            self._set_propensity(min(max(p, 1.0 / self.n_candidates), 1.0))
            self._probing = False
        keep = np.ones(ranking.shape[0], dtype=bool)
        keep[rows] = False
        return keep

    # ------------------------------------------------------------------ evaluation and persistence

    def greedy_candidate_sets(self, user_features: np.ndarray | None = None) -> np.ndarray:
        """The deterministic ESR's candidate set for every user: ``(n_users, K)`` int64.

        Each position takes its expert's highest-logit item not yet taken (core
        ``greedy_candidates``). ``user_features`` defaults to the env's ``user_features``.
        """
        features = self.env.user_features if user_features is None else user_features
        with torch.no_grad():
            logits = self._logits(self._users(features)).cpu().numpy()
        return greedy_candidates(logits, self.n_candidates, self.assignment)

    def greedy_policy(self) -> np.ndarray:
        return self.greedy_candidate_sets()

    def state_dict(self) -> dict[str, Any]:
        """The model, the optimiser state and the training counters (tensors and Python values)."""
        self._require_model()
        return {
            "method": self.method,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "steps": self.steps,
            "overflow_step": self.overflow_step,
            "lsr_propensity": self.lsr_propensity,
            "probing": self._probing,
            "probe_counts": self._probe_counts.tolist(),
            "probe_n": self._probe_n,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from what :meth:`state_dict` returned.

        Raises:
            ValueError: the state is another method's.
        """
        if state["method"] != self.method:
            raise ValueError(f"the state is of a {state['method']!r} learner, not {self.method!r}")
        if self.model is None:
            self.reset()
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps = int(state["steps"])
        self.overflow_step = state["overflow_step"]
        self.stopped = self.overflow_step is not None
        self.lsr_propensity = state["lsr_propensity"]
        self._probing = bool(state["probing"])
        self._probe_counts = np.asarray(state["probe_counts"], dtype=np.float64)
        self._probe_n = int(state["probe_n"])
        self._graph = self._probe_rows = None

    def save(self, path: str | Path) -> None:
        """Write :meth:`state_dict` to ``path``."""
        torch.save(self.state_dict(), path)

    def load(self, path: str | Path) -> None:
        """Restore what :meth:`save` wrote (``torch.load(..., weights_only=True)``).

        Raises:
            ValueError: the file holds another method's learner.
        """
        state = torch.load(path, map_location=self.device, weights_only=True)
        try:
            self.load_state_dict(state)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
