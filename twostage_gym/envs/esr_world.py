"""The synthetic world of Kiyohara et al. (ICML 2026, Sec. 4.1) behind ``TwoStage/EarlyStageRanker-v0``.

The configuration (validated arguments), the world (embeddings, projections, per-item noise and
the per-user reference values, precomputed once), action checks, the user stream, and one batched
round of play. The env classes in :mod:`twostage_gym.envs.early_stage_ranker` compose these.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from twostage_gym.core import plackett_luce
from twostage_gym.core.checks import choice, index_dtype, nonnegative_int, number, positive_int, within_bound
from twostage_gym.core.late_stage import LateStageRanker, sum_last
from twostage_gym.core.plackett_luce import POSITION_WEIGHTS, expert_assignment, greedy_candidates
from twostage_gym.core.streams import UserStream
from twostage_gym.core.vector import check_vector_memory

__all__ = [
    "ACTION_TYPES",
    "LOGIT_BOUND",
    "EarlyStageRankerConfig",
    "EarlyStageRankerWorld",
    "check_candidates",
    "check_logits",
    "play_round",
    "round_info",
    "seed_user_streams",
    "world_key",
]

ACTION_TYPES = ("logits", "candidates")

LOGIT_BOUND = 1e6
"""Bound of the logits action space. Beyond 1e6 a float32 logit has no resolution left for the
Gumbel noise (its spacing there is 0.0625), and the bound keeps logits / esr_temperature finite."""

WORLD_STREAM = 0x57A6E
"""The world is drawn from ``np.random.default_rng([WORLD_STREAM, s])``, s the world seed or reset seed."""

ORACLE_STREAM = 0x0EAC1E
"""Monte-Carlo estimates of a world's optimal values use ``default_rng([ORACLE_STREAM, s])``."""

# float64 elements per chunk when a (users x items) block of q is computed.
_CHUNK_ELEMENTS = 4_000_000


class EarlyStageRankerConfig:
    """Validated constructor arguments shared by the single and the vector env."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        dim: int,
        n_candidates: int,
        n_outputs: int,
        position_weights: str,
        lsr: str,
        lsr_temperature: float,
        esr_temperature: float,
        n_experts: int,
        action_type: str,
        reward_scale: float,
        world_seed: int | None,
    ) -> None:
        self.n_users = positive_int("n_users", n_users)
        self.n_items = positive_int("n_items", n_items)
        self.dim = positive_int("dim", dim)
        self.n_candidates = positive_int("n_candidates", n_candidates)
        self.n_outputs = positive_int("n_outputs", n_outputs)
        self.n_experts = positive_int("n_experts", n_experts)
        if self.n_candidates > self.n_items:
            raise ValueError(f"n_candidates (K={n_candidates}) must not exceed n_items (|A|={n_items})")
        if self.n_outputs > self.n_candidates:
            raise ValueError(f"n_outputs (L={n_outputs}) must not exceed n_candidates (K={n_candidates})")
        if self.n_experts > self.n_candidates:
            raise ValueError(f"n_experts (M={n_experts}) must not exceed n_candidates (K={n_candidates})")
        self.action_type = choice("action_type", action_type, ACTION_TYPES)
        if action_type == "candidates" and self.n_experts != 1:
            raise ValueError("n_experts applies to action_type='logits' only; the candidates action names the set")
        self.position_weights = choice("position_weights", position_weights, POSITION_WEIGHTS)
        self.lsr = LateStageRanker(lsr, lsr_temperature)  # validates lsr and lsr_temperature
        # The range keeps logits / esr_temperature finite in float32 for every logit in the space.
        self.esr_temperature = number("esr_temperature", esr_temperature, 1e-6, 1e6)
        self.reward_scale = number("reward_scale", reward_scale, low=0.0, low_open=True)
        self.world_seed = None if world_seed is None else nonnegative_int("world_seed", world_seed)
        self.mc_exact = self.lsr.is_exact(self.n_candidates, self.n_outputs)
        # Before anything of size n_users or n_items is allocated (the world, the action space).
        self.check_memory()
        self.alpha = plackett_luce.position_weights(position_weights, self.n_outputs)
        self.assignment = None if self.n_experts == 1 else expert_assignment(self.n_candidates, self.n_experts)

    def memory_parts(self, num_envs: int = 1) -> dict[str, int]:
        """Estimated bytes of the largest arrays the env allocates, by what they hold.

        Args:
            num_envs: sub-envs of a vector env (1 for the single env). Without ``world_seed``
                each sub-env seeded on its own draws its own world, so worlds count num_envs times.
        """
        U, A, d, K, L, M = self.n_users, self.n_items, self.dim, self.n_candidates, self.n_outputs, self.n_experts
        worlds = 1 if self.world_seed is not None else num_envs
        # Per feature entry: float32 features, the float64 projection and the float64 temporaries
        # of drawing and projecting them (28 bytes at the peak).
        parts = {
            "user tables (features, projections, top-K and optimal sets, values)": worlds
            * (28 * U * d + 24 * U * K + 24 * U),
            "item tables (features, projections, noise levels)": worlds * (28 * A * d + 8 * A),
            # One block of users x items of q (at least one user's row, at most all users) and
            # its sorts, while the world's oracle tables are precomputed.
            "oracle precompute block": 48 * min(U * A, max(_CHUNK_ELEMENTS, A)),
            # Box bounds (float32 low and high, two bool masks) or MultiDiscrete's nvec.
            "action space": 10 * M * A if self.action_type == "logits" else 16 * K,
            # Per sub-env and step: the agent's logits, the sampling noise and the experts'
            # weights (float32), the candidates' projections (K x d float64) and the recall sort.
            "step working set": num_envs
            * ((16 * M * A + 4 * A if self.action_type == "logits" else 0) + 8 * K * d + 32 * K),
        }
        if self.lsr.kind == "noisy" and L > 1:
            parts["noisy-LSR expected reward"] = self.lsr.working_memory(K, L)
        return parts

    def check_memory(self, num_envs: int = 1) -> int:
        """Refuse sizes whose arrays exceed :data:`twostage_gym.core.checks.MEMORY_LIMIT_BYTES`.

        Raises:
            ValueError: naming the size arguments and giving the estimate.
        """
        sizes = {"n_users": self.n_users, "n_items": self.n_items, "dim": self.dim, "n_candidates": self.n_candidates}
        if self.lsr.kind == "noisy" and self.n_outputs > 1:
            sizes["n_outputs"] = self.n_outputs
        if self.n_experts > 1:
            sizes["n_experts"] = self.n_experts
        return check_vector_memory(sizes, self.memory_parts(num_envs), num_envs, self.world_seed)

    def action_space(self) -> spaces.Space:
        if self.action_type == "candidates":
            return spaces.MultiDiscrete(np.full(self.n_candidates, self.n_items, dtype=np.int64))
        shape = (self.n_items,) if self.n_experts == 1 else (self.n_experts, self.n_items)
        return spaces.Box(-LOGIT_BOUND, LOGIT_BOUND, shape, np.float32)

    def observation_space(self) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (self.dim,), np.float32)


class EarlyStageRankerWorld:
    """One synthetic world of Sec. 4.1 and what is precomputed about it for every user.

    Attributes:
        key: the seed it was drawn from.
        user_features: ``(n_users, dim)`` float32 x*, uniform on [-1, 1].
        item_features: ``(n_items, dim)`` float32 a*, uniform on [-1, 1].
        item_noise_std: ``(n_items,)`` float64 sigma_a, uniform on [0.5, 1.5].
        top_items, top_rewards: ``(n_users, K)`` each user's true top-K items and their q, best first.
        optimal_sets: ``(n_users, K)`` the best candidate set under the LSR (see
            :meth:`LateStageRanker.best_candidate_sets`).
        optimal_values: ``(n_users,)`` its expected ranking reward; ``optimal_stderr`` its Monte-Carlo
            standard error (0 where exact).
        ideal_values: ``(n_users,)`` sum_l alpha_l q_(l), the reward of showing the true top-L in order.
    """

    def __init__(self, config: EarlyStageRankerConfig, key: int) -> None:
        c = config
        self.key = int(key)
        rng = np.random.default_rng([WORLD_STREAM, self.key])
        # Features are published as float32; q is computed from exactly these values.
        self.user_features = rng.uniform(-1.0, 1.0, (c.n_users, c.dim)).astype(np.float32)
        self.item_features = rng.uniform(-1.0, 1.0, (c.n_items, c.dim)).astype(np.float32)
        m_x = rng.standard_normal((c.dim, c.dim))
        m_a = rng.standard_normal((c.dim, c.dim))
        m_x /= np.linalg.norm(m_x, axis=1, keepdims=True)
        m_a /= np.linalg.norm(m_a, axis=1, keepdims=True)
        self.item_noise_std = rng.uniform(0.5, 1.5, c.n_items)
        self.reward_scale = c.reward_scale
        # M x* and M a* (d_h = dim), with the reward scale folded into the user side. Written as
        # explicit accumulations so that every value is the same whatever the array sizes.
        self._user_proj = c.reward_scale * _project(self.user_features, m_x)  # (n_users, d_h)
        self._item_proj_t = np.ascontiguousarray(_project(self.item_features, m_a).T)  # (d_h, n_items)
        self._precompute(c)

    # -- the reward model ----------------------------------------------------------------------
    def q_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """q(x_u, a) for ``users`` (B,) and their ``items`` (B, K): float64 (B, K). O(B K d)."""
        up = self._user_proj[users]  # (B, d)
        ip = self._item_proj_t[:, items]  # (d, B, K)
        z = ip[0] * up[:, 0, None]
        for j in range(1, up.shape[1]):
            z += ip[j] * up[:, j, None]
        return np.logaddexp(0.0, z) + 1.0

    def q_matrix(self, users: np.ndarray) -> np.ndarray:
        """q(x_u, a) of every item for ``users`` (U,): float64 (U, n_items), same arithmetic as :meth:`q_pairs`."""
        up = self._user_proj[np.asarray(users)]
        z = up[:, 0, None] * self._item_proj_t[0]
        for j in range(1, up.shape[1]):
            z += up[:, j, None] * self._item_proj_t[j]
        return np.logaddexp(0.0, z) + 1.0

    def user_chunks(self, n_users: int) -> list[np.ndarray]:
        """Consecutive user blocks whose (users x items) q block fits the chunk budget."""
        size = max(1, _CHUNK_ELEMENTS // self._item_proj_t.shape[1])
        return [np.arange(lo, min(lo + size, n_users)) for lo in range(0, n_users, size)]

    def _precompute(self, c: EarlyStageRankerConfig) -> None:
        K, alpha = c.n_candidates, c.alpha
        oracle = np.random.default_rng([ORACLE_STREAM, self.key])
        self.top_items = np.empty((c.n_users, K), dtype=np.int64)
        self.top_rewards = np.empty((c.n_users, K))
        self.optimal_sets = np.empty((c.n_users, K), dtype=np.int64)
        self.optimal_values = np.empty(c.n_users)
        self.optimal_stderr = np.empty(c.n_users)
        for users in self.user_chunks(c.n_users):
            q = self.q_matrix(users)
            top = greedy_candidates(q, K)
            self.top_items[users] = top
            self.top_rewards[users] = np.take_along_axis(q, top, -1)
            sets, values, stderr = c.lsr.best_candidate_sets(q, K, alpha, rng=oracle)
            self.optimal_sets[users], self.optimal_values[users], self.optimal_stderr[users] = sets, values, stderr
        self.ideal_values = sum_last(alpha * self.top_rewards[:, : c.n_outputs])


def _project(features: np.ndarray, m: np.ndarray) -> np.ndarray:
    """features @ m.T as explicit float64 accumulations (deterministic, no BLAS blocking)."""
    f = features.astype(np.float64)
    out = f[:, 0, None] * m[:, 0]
    for j in range(1, f.shape[1]):
        out += f[:, j, None] * m[:, j]
    return out


def check_logits(action: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Validate an ESR logits action and return it as a float32 array.

    Raises:
        ValueError: wrong shape, a dtype other than float32, a NaN or infinite logit, or a
            logit outside [-LOGIT_BOUND, LOGIT_BOUND].
    """
    a = np.asarray(action)
    if a.shape != shape:
        raise ValueError(f"logits must have shape {shape} (one score per item), got {a.shape}")
    if a.dtype != np.float32:
        raise ValueError(f"logits must have dtype float32 (the action space's dtype), got dtype {a.dtype}")
    within_bound("logits", a, LOGIT_BOUND, "logit")
    return a


def check_candidates(action: Any, n_items: int, n_candidates: int) -> np.ndarray:
    """Validate a candidate-set action (K distinct item ids) and return it as int64.

    Raises:
        ValueError: wrong shape or dtype, an id outside the catalog, or a duplicate item.
    """
    a = np.asarray(action)
    if a.shape != (n_candidates,):
        raise ValueError(f"candidate set must have shape ({n_candidates},) = K item ids, got {a.shape}")
    index_dtype("candidate set", a)
    bad = (a < 0) | (a >= n_items)
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(f"item id {int(a[k])} at position {k} is outside the catalog (valid 0..{n_items - 1})")
    s = np.sort(a)
    dup = s[1:] == s[:-1]
    if dup.any():
        raise ValueError(f"duplicate item {int(s[1:][dup][0])} in the candidate set: the K items must be distinct")
    return a.astype(np.int64, copy=False)


def seed_user_streams(
    np_random: np.random.Generator, n_users: int
) -> tuple[Any, np.random.Generator, np.random.Generator]:
    """Independent user, sampling and oracle streams from an env's generator.

    Users never depend on what the agent does; the sampling stream (ESR sampling noise, LSR
    randomness, reward noise, in that order each round) is consumed by actions; the oracle
    stream only by Monte-Carlo diagnostics, so they never change what the agent experiences.
    """
    seeds = np_random.integers(0, 2**63 - 1, size=3)
    users, sample, oracle = (np.random.default_rng(int(s)) for s in seeds)
    return UserStream(users, n_users), sample, oracle


def world_key(config: EarlyStageRankerConfig, seed: int | None, np_random: np.random.Generator) -> int:
    if config.world_seed is not None:
        return config.world_seed
    if seed is not None:
        return int(seed)
    return int(np_random.integers(0, 2**63 - 1))


def play_round(
    config: EarlyStageRankerConfig,
    world: EarlyStageRankerWorld,
    users: np.ndarray,
    candidates: np.ndarray,
    lsr_noise: np.ndarray | None,
    normals: np.ndarray,
) -> dict[str, np.ndarray]:
    """Play a batch of rounds given the candidate sets and the random draws. Batched over rows.

    Returns the reward, the ranking, the position rewards, q of the candidates, the recall
    and the reference values (everything but ``expected_reward``).
    """
    K = config.n_candidates
    q_cand = world.q_pairs(users, candidates)  # (B, K)
    shown = config.lsr.rank(q_cand, config.n_outputs, noise=lsr_noise)
    ranking = np.take_along_axis(candidates, shown, 1)
    position_rewards = np.take_along_axis(q_cand, shown, 1) + world.item_noise_std[ranking] * normals
    # |candidates & top-K| per row: both sets hold K distinct items, so the count is the number of
    # equal neighbours in their sorted union. O(K log K) memory and time, where a (B, K, K)
    # comparison would need K^2 bytes per row (10 GB at K = 10^5).
    both = np.sort(np.concatenate([candidates, world.top_items[users]], axis=1), axis=1)
    hits = (both[:, 1:] == both[:, :-1]).sum(-1)
    return {
        "reward": sum_last(config.alpha * position_rewards),
        "q_cand": q_cand,
        "candidates": candidates,
        "ranking": ranking,
        "position_rewards": position_rewards,
        "user": users.astype(np.int64),
        "optimal_expected_reward": world.optimal_values[users],
        "recall": hits / K,
        "lsr_gap": world.ideal_values[users] - world.optimal_values[users],
    }


def round_info(out: dict[str, np.ndarray], expected: np.ndarray) -> dict[str, np.ndarray]:
    """The info keys, in documented order, from a played batch and its expected rewards."""
    optimal = out["optimal_expected_reward"]
    nominator_regret = optimal - expected
    ranker_regret = np.zeros_like(expected)
    return {
        "candidates": out["candidates"],
        "ranking": out["ranking"],
        "position_rewards": out["position_rewards"],
        "user": out["user"],
        "expected_reward": expected,
        "optimal_expected_reward": optimal,
        "regret": nominator_regret + ranker_regret,
        "nominator_regret": nominator_regret,
        "ranker_regret": ranker_regret,
        "recall": out["recall"],
        "lsr_gap": out["lsr_gap"],
    }
