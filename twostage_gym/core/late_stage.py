"""Fixed late-stage rankers (LSR) of Kiyohara et al. 2026 (Sec. 4.1, App. E).

The LSR receives a candidate set of K items from the early-stage ranker (ESR) and shows L of
them in order. It is the *oracle* Plackett-Luce policy on the true expected rewards q:

    pi_LSR(a_l | x, A^K) = exp(q(x, a_l) / tau) / sum_{a' in A^K minus a_{1:l-1}} exp(q(x, a') / tau),

with four alignments (App. E): ``"optimal"`` (tau -> +0, implemented as the exact sort by q),
``"anti-optimal"`` (tau -> -0, the exact reverse sort), ``"uniform"`` (|tau| -> inf, a uniformly
random ordered L-subset) and ``"noisy"`` (tau = ``temperature``, 1 by default, sampled with the
Gumbel top-K trick of :mod:`twostage_gym.core.plackett_luce`).

Everything works on a batch of candidate sets: ``q`` has shape ``(..., K)``, the true expected
reward of each candidate, and results index the candidate columns. The expected ranking reward
of a candidate set is sum_l alpha_l E[q(a_l)] (Sec. 2); it is exact for L = 1 with every kind
and for any L with the three deterministic-or-uniform kinds. For ``"noisy"`` with L > 1 it is
computed exactly by a dynamic programme over the *unordered* sets of the first l picks (there
are sum_{i<L} C(K, i) of them, far fewer than the K!/(K-L)! ordered prefixes: 386 instead of
30240 at K = 10, L = 5) while that number is at most :data:`EXACT_STATE_LIMIT`, and estimated by
Monte-Carlo with a standard error beyond (:meth:`LateStageRanker.is_exact` says which).

Reductions are written as elementwise adds (``sum_last``, left to right over the short candidate
axis; a pairwise tree over the long axis of partial sets), so a row's result does not depend on
how many rows are computed together: an environment and its native vector version give
bit-identical diagnostics.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np

from twostage_gym.core.checks import choice, number
from twostage_gym.core.plackett_luce import greedy_candidates, gumbel_noise

__all__ = [
    "EXACT_STATE_LIMIT",
    "LSR_KINDS",
    "MC_SAMPLES",
    "LateStageRanker",
    "dinkelbach_sets",
    "sum_last",
]

LSR_KINDS = ("optimal", "noisy", "uniform", "anti-optimal")

EXACT_STATE_LIMIT = 20_000
"""Largest number of partial candidate sets (sum_{i<L} C(K, i)) the exact noisy-LSR computation visits."""

MC_SAMPLES = 1000
"""Default number of sampled rankings per candidate set for the Monte-Carlo estimate."""

# Memory budget (float64 elements) of one chunk of the subset dynamic programme / MC estimate.
_CHUNK_ELEMENTS = 4_000_000


def sum_last(x: np.ndarray) -> np.ndarray:
    """Sum over a short last axis, left to right, as elementwise adds.

    Each row's result is the same whatever else is in the batch (a numpy reduction may order
    the additions differently for different shapes), so batched and single computations agree
    bit for bit.
    """
    acc = x[..., 0].copy()
    for k in range(1, x.shape[-1]):
        acc += x[..., k]
    return acc


def _sum_rows(x: np.ndarray) -> np.ndarray:
    """Sum over a long last axis as a pairwise tree of elementwise adds (batch-size independent, O(log n) passes)."""
    while x.shape[-1] > 1:
        if x.shape[-1] % 2:
            x = np.concatenate([x, np.zeros((*x.shape[:-1], 1))], axis=-1)
        x = x[..., 0::2] + x[..., 1::2]
    return x[..., 0]


@dataclass(frozen=True)
class _Level:
    """All unordered sets S of i candidates (the first i picks), i = 0..L-1, of a K-candidate set.

    ``comp`` (n_i, K - i): the candidates not in S, ascending (so ``comp[:, 0]`` is the best one
    when q is sorted in descending order); ``parents`` / ``removed`` (n_i, i): for each member j
    of S, the index of S minus j in the previous level and j itself; ``members`` (n_i, i).
    """

    members: np.ndarray
    comp: np.ndarray
    parents: np.ndarray
    removed: np.ndarray


@functools.lru_cache(maxsize=32)
def _lattice(n_candidates: int, n_outputs: int) -> tuple[_Level, ...]:
    K = n_candidates
    levels: list[_Level] = []
    prev_index: dict[tuple[int, ...], int] = {}
    for i in range(n_outputs):
        subsets = list(itertools.combinations(range(K), i))
        index = {s: n for n, s in enumerate(subsets)}
        members = np.array(subsets, dtype=np.int64).reshape(len(subsets), i)
        comp = np.array([[k for k in range(K) if k not in s] for s in subsets], dtype=np.int64)
        parents = np.array(
            [[prev_index[s[:p] + s[p + 1 :]] for p in range(i)] for s in subsets], dtype=np.int64
        ).reshape(len(subsets), i)
        levels.append(_Level(members, comp, parents, members.copy()))
        prev_index = index
    return tuple(levels)


def _n_states(n_candidates: int, n_outputs: int, cap: int | None = None) -> int:
    """sum_{i<L} C(K, i), or the first partial sum above ``cap``.

    The cap matters: at K = L = 10^5 the full sum has ~30,000 digits and takes many minutes to
    compute, while every caller only needs to know whether it exceeds :data:`EXACT_STATE_LIMIT`.
    """
    total, c = 0, 1  # c = C(K, i), updated exactly in integers
    for i in range(n_outputs):
        total += c
        if cap is not None and total > cap:
            break
        c = c * (n_candidates - i) // (i + 1)
    return total


class LateStageRanker:
    """A fixed late-stage ranker: the oracle Plackett-Luce policy at one of four alignments.

    Args:
        kind: one of :data:`LSR_KINDS`.
        temperature: tau_LSR of the ``"noisy"`` kind; ignored by the other kinds. The paper uses
            1.0 and reports the best candidate ranked first with probability about 0.6 on
            average; in the default EarlyStageRanker-v0 world it is 0.56 for random candidate
            sets of 10 and 0.26 for the true top-10.

    Example:
        >>> import numpy as np
        >>> lsr = LateStageRanker("noisy")
        >>> value, stderr = lsr.expected_reward(np.array([[10.0, 1.0], [10.0, 2.0]]), np.ones(1))
        >>> bool(value[0] > value[1])  # a worse second candidate steals less of the top slot
        True
    """

    def __init__(self, kind: str = "optimal", temperature: float = 1.0) -> None:
        self.kind = choice("lsr", kind, LSR_KINDS)
        self.temperature = number("lsr_temperature", temperature, low=0.0, low_open=True)

    def __repr__(self) -> str:
        return f"LateStageRanker({self.kind!r}, temperature={self.temperature})"

    @property
    def stochastic(self) -> bool:
        """Whether :meth:`rank` draws random numbers (``"noisy"`` and ``"uniform"``)."""
        return self.kind in ("noisy", "uniform")

    def is_exact(self, n_candidates: int, n_outputs: int) -> bool:
        """Whether :meth:`expected_reward` is exact (else a Monte-Carlo estimate) for this K and L."""
        if self.kind != "noisy" or n_outputs == 1:
            return True
        return _n_states(n_candidates, n_outputs, EXACT_STATE_LIMIT) <= EXACT_STATE_LIMIT

    def closed_form(self, n_outputs: int) -> bool:
        """Whether :meth:`expected_reward` is a closed form (no subset programme, no sampling)."""
        return self.kind != "noisy" or n_outputs == 1

    def working_memory(self, n_candidates: int, n_outputs: int) -> int:
        """Estimated bytes :meth:`expected_reward` needs at once for K candidates and L outputs.

        Zero where it is a closed form. The exact subset programme keeps its lattice (cached, and
        built from Python lists: about 80 bytes per entry) and float64 blocks over it; the
        Monte-Carlo estimate handles at least one candidate set's ``MC_SAMPLES`` rankings at a
        time (float32 Gumbel noise, float64 perturbed scores, int64 sort indices).
        """
        K, L = n_candidates, n_outputs
        if self.closed_form(L):
            return 0
        if self.is_exact(K, L):
            lattice = _n_states(K, L) * K  # at most EXACT_STATE_LIMIT * K entries
            return 80 * lattice + 32 * max(_CHUNK_ELEMENTS, lattice)
        return 24 * max(_CHUNK_ELEMENTS, MC_SAMPLES * K)

    # -- sampling ----------------------------------------------------------------------------
    def draw_noise(self, n_rows: int, n_candidates: int, rng: np.random.Generator) -> np.ndarray | None:
        """The random numbers :meth:`rank` consumes for ``n_rows`` candidate sets (None if deterministic).

        ``"noisy"``: standard Gumbel, float32, as :func:`~twostage_gym.core.plackett_luce.gumbel_topk`
        draws them; ``"uniform"``: uniform [0, 1) float64 sort keys.
        """
        if self.kind == "noisy":
            return gumbel_noise((n_rows, n_candidates), rng)
        if self.kind == "uniform":
            return rng.random((n_rows, n_candidates))
        return None

    def rank(
        self,
        q: np.ndarray,
        n_outputs: int,
        rng: np.random.Generator | None = None,
        *,
        noise: np.ndarray | None = None,
    ) -> np.ndarray:
        """Rank each candidate set: int64 ``(..., L)`` column indices into ``q``'s last axis.

        Args:
            q: ``(..., K)`` true expected rewards of the candidates.
            n_outputs: L, at most K.
            rng: the generator to draw from (stochastic kinds), or
            noise: draws from :meth:`draw_noise` made earlier (a vector env draws them per
                sub-env); ``rank(q, L, rng)`` equals ``rank(q, L, noise=draw_noise(B, K, rng))``.

        ``"noisy"`` is the Gumbel top-L of q / tau, i.e. exactly
        ``gumbel_topk(q, L, rng, temperature=tau)``; ``"uniform"`` the top-L of uniform keys.
        """
        q = np.asarray(q, dtype=np.float64)
        K = q.shape[-1]
        if not 1 <= n_outputs <= K:
            raise ValueError(f"n_outputs (L={n_outputs}) must be in [1, n_candidates (K={K})]")
        if self.kind == "optimal":
            return greedy_candidates(q, n_outputs)
        if self.kind == "anti-optimal":
            return greedy_candidates(-q, n_outputs)
        if noise is None:
            if rng is None:
                raise ValueError(f"the {self.kind!r} LSR needs rng or noise")
            flat = self.draw_noise(int(np.prod(q.shape[:-1], dtype=np.int64)), K, rng)
            noise = flat.reshape(q.shape)
        if self.kind == "uniform":
            return greedy_candidates(noise, n_outputs)
        return greedy_candidates(q / self.temperature + noise, n_outputs)

    # -- exact position marginals ----------------------------------------------------------------
    def position_marginals(self, q: np.ndarray, n_outputs: int) -> np.ndarray:
        """``(..., L, K)``: P(candidate k is shown at position l), exact.

        For ``"noisy"`` with L > 1 this runs the subset programme and needs
        sum_{i<L} C(K, i) <= :data:`EXACT_STATE_LIMIT`.
        """
        q = np.asarray(q, dtype=np.float64)
        batch, K = q.shape[:-1], q.shape[-1]
        L = n_outputs
        if not 1 <= L <= K:
            raise ValueError(f"n_outputs (L={L}) must be in [1, n_candidates (K={K})]")
        if self.kind == "uniform":
            return np.full((*batch, L, K), 1.0 / K)
        q2 = q.reshape(-1, K)
        order = np.argsort(-q2, axis=-1, kind="stable")  # column of the l-th best candidate
        qs = np.take_along_axis(q2, order, -1)
        if self.kind in ("optimal", "anti-optimal"):
            sorted_marg = np.zeros((q2.shape[0], L, K))
            pos = np.arange(L) if self.kind == "optimal" else K - 1 - np.arange(L)
            sorted_marg[:, np.arange(L), pos] = 1.0
        else:
            if not self.is_exact(K, L):
                raise ValueError(
                    f"exact marginals of the noisy LSR need sum_(i<L) C(K, i) <= {EXACT_STATE_LIMIT}, "
                    f"got more than that at K={K}, L={L}"
                )
            sorted_marg = self._noisy_sorted(qs, np.ones(L), marginals=True)[1]
        out = np.empty_like(sorted_marg)
        np.put_along_axis(out, np.broadcast_to(order[:, None, :], out.shape), sorted_marg, -1)
        return out.reshape(*batch, L, K)

    # -- expected ranking reward -----------------------------------------------------------------
    def expected_reward(
        self,
        q: np.ndarray,
        weights: np.ndarray,
        rng: np.random.Generator | None = None,
        n_samples: int = MC_SAMPLES,
    ) -> tuple[np.ndarray, np.ndarray]:
        """sum_l alpha_l E[q(a_l)] of each candidate set under this LSR, and its standard error.

        Args:
            q: ``(..., K)`` true expected rewards of the candidates (any order: the result is a
                function of the set; q is sorted first, so equal sets give bit-equal values).
            weights: ``(L,)`` position weights alpha_l.
            rng: needed only for the Monte-Carlo estimate (``not is_exact(K, L)``).
            n_samples: rankings sampled per candidate set by that estimate.

        Returns:
            float64 ``(...)`` values and standard errors (zero where exact). The noisy L = 1
            value is softmax(q / tau) . q; the uniform value is sum(alpha) * mean(q).
        """
        q = np.asarray(q, dtype=np.float64)
        weights = np.asarray(weights, dtype=np.float64)
        batch, K = q.shape[:-1], q.shape[-1]
        L = weights.shape[0]
        if not 1 <= L <= K:
            raise ValueError(f"n_outputs (L={L}) must be in [1, n_candidates (K={K})]")
        qs = -np.sort(-q.reshape(-1, K), axis=-1)  # canonical order: best first
        stderr = np.zeros(qs.shape[0])
        if self.kind == "optimal":
            value = sum_last(weights * qs[:, :L])
        elif self.kind == "anti-optimal":
            value = sum_last(weights * qs[:, ::-1][:, :L])
        elif self.kind == "uniform":
            value = sum_last(weights) * (sum_last(qs) / K)
        elif L == 1:
            w = np.exp((qs - qs[:, :1]) / self.temperature)  # the best candidate has weight 1
            value = weights[0] * (sum_last(w * qs) / sum_last(w))
        elif self.is_exact(K, L):
            value = self._noisy_sorted(qs, weights)[0]
        else:
            if rng is None:
                raise ValueError(
                    f"the noisy LSR at K={K}, L={L} has no exact expected reward; pass rng for a Monte-Carlo estimate"
                )
            value, stderr = self._monte_carlo(qs, weights, rng, n_samples)
        return value.reshape(batch), stderr.reshape(batch)

    def _noisy_sorted(
        self, qs: np.ndarray, weights: np.ndarray, marginals: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Exact noisy-LSR value (and position marginals) for best-first sorted ``qs`` (B, K).

        p(S) is the probability that the first |S| picks are the set S (in some order). The pick
        after S is j with probability w_j / sum_{k not in S} w_k, where weights are taken relative
        to the best remaining candidate (so the denominator is >= 1 and nothing underflows to 0/0):
            E[q(a_{i+1})] = sum_{|S|=i} p(S) * sum_{k not in S} w_k q_k / sum_{k not in S} w_k,
            p(T) = sum_{j in T} p(T minus j) * w_j / sum_{k not in T minus j} w_k.
        """
        B, K = qs.shape
        L = weights.shape[0]
        levels = _lattice(K, L)
        width = max(lev.comp.size for lev in levels)
        chunk = max(1, _CHUNK_ELEMENTS // max(width, 1))
        value = np.zeros(B)
        marg = np.zeros((B, L, K)) if marginals else None
        tau = self.temperature
        for lo in range(0, B, chunk):
            q = qs[lo : lo + chunk]
            p = np.ones((q.shape[0], 1))
            for i, lev in enumerate(levels):
                qc = q[:, lev.comp]  # (b, n_i, K - i)
                ref = qc[..., 0]  # the best candidate not yet shown
                wc = np.exp((qc - ref[..., None]) / tau)
                den = sum_last(wc)
                value[lo : lo + chunk] += weights[i] * _sum_rows(p * (sum_last(wc * qc) / den))
                if marg is not None:
                    contrib = (p / den)[..., None] * wc  # P(first i = S and pick comp[c] next)
                    onehot = np.zeros((*lev.comp.shape, K))
                    np.put_along_axis(onehot, lev.comp[..., None], 1.0, -1)
                    marg[lo : lo + chunk, i] = np.einsum("bsc,sck->bk", contrib, onehot)
                if i + 1 < L:
                    nxt = levels[i + 1]
                    step = np.exp((q[:, nxt.removed] - ref[:, nxt.parents]) / tau) / den[:, nxt.parents]
                    p = sum_last(p[:, nxt.parents] * step)
        return value, marg

    def _monte_carlo(
        self, qs: np.ndarray, weights: np.ndarray, rng: np.random.Generator, n_samples: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard error of sum_l alpha_l q(a_l) over ``n_samples`` sampled rankings per row."""
        if n_samples < 2:
            raise ValueError(f"n_samples must be >= 2 for a standard error, got {n_samples}")
        B, K = qs.shape
        L = weights.shape[0]
        chunk = max(1, _CHUNK_ELEMENTS // (n_samples * K))
        mean, se = np.empty(B), np.empty(B)
        for lo in range(0, B, chunk):
            q = qs[lo : lo + chunk]
            noise = gumbel_noise((q.shape[0], n_samples, K), rng)
            top = greedy_candidates(q[:, None, :] / self.temperature + noise, L)  # (b, n, L)
            shown = np.take_along_axis(np.broadcast_to(q[:, None, :], (*top.shape[:2], K)), top, -1)
            total = sum_last(weights * shown)  # (b, n)
            mean[lo : lo + chunk] = total.mean(axis=-1)
            se[lo : lo + chunk] = total.std(axis=-1, ddof=1) / np.sqrt(n_samples)
        return mean, se

    # -- the best candidate set under this LSR ---------------------------------------------------------
    def best_candidate_sets(
        self,
        q_all: np.ndarray,
        n_candidates: int,
        weights: np.ndarray,
        rng: np.random.Generator | None = None,
        n_samples: int = MC_SAMPLES,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The best K-set of each row of ``q_all`` (U, |A|) under this LSR, its value and standard error.

        - ``"optimal"``, ``"uniform"``, ``"anti-optimal"``: the true top-K. The value is a sum of
          alpha-weighted order statistics of the set (the l-th best for ``"optimal"``, the l-th
          worst for ``"anti-optimal"``) or its mean (``"uniform"``), each of which the top-K
          maximises: its j-th best item is at least as good as any other set's j-th best.
        - ``"noisy"``, L = 1: maximise sum_S w q / sum_S w, w = exp(q / tau), over |S| = K. The
          top-K is not optimal in general ({10, 1} beats {10, 2} at tau = 1: a weak runner-up
          takes the top slot less often), so it is solved exactly by Dinkelbach iteration
          (:func:`dinkelbach_sets`), started from the top-K.
        - ``"noisy"``, L > 1: an approximation, stated as such. The candidates are the sets
          S_j = top-j plus the K - j worst items, j = L..K (S_K is the top-K), each evaluated
          exactly (or by Monte-Carlo beyond :data:`EXACT_STATE_LIMIT`). The family comes from
          L = 1, where the optimum is a top-K of w (q - lambda*), a function of q that first
          decreases then increases, i.e. a top interval plus a bottom interval of q (weak fillers
          rarely take a slot from the good items). The value of S_j was unimodal in j on every
          instance checked, so j is found by ascent from L (one evaluation per step, per user,
          until the value stops increasing); the top-K is kept unless beaten strictly. The result
          matched a brute-force search on every random small instance in the tests, but it is
          not proved optimal: a set can occasionally beat it (a negative regret in the environment).

        Returns:
            int64 ``(U, K)`` sets (best candidate first), float64 ``(U,)`` values and standard errors.
        """
        q_all = np.asarray(q_all, dtype=np.float64)
        weights = np.asarray(weights, dtype=np.float64)
        L, K = weights.shape[0], n_candidates
        top = greedy_candidates(q_all, K)

        def value(sets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return self.expected_reward(np.take_along_axis(q_all, sets, -1), weights, rng, n_samples)

        if self.kind != "noisy" or (L == K and np.all(weights == weights[0])):
            # (L = K with equal weights: every candidate is shown, the value is alpha * sum(q).)
            return (top, *value(top))
        # The top-K first: another set replaces it only if strictly better (so ties keep regret 0).
        sets = top.copy()
        best, best_se = value(top)
        if L == 1:
            alt = dinkelbach_sets(q_all, K, self.temperature)
            v, se = value(alt)
            better = v > best
            sets = np.where(better[:, None], alt, sets)
            best, best_se = np.where(better, v, best), np.where(better, se, best_se)
        else:
            bottom = greedy_candidates(-q_all, K - 1)  # worst first
            rows = np.arange(q_all.shape[0])
            prev = np.full(rows.size, -np.inf)
            for j in range(L, K):  # ascent over j, dropping users whose value stopped increasing
                cand = np.concatenate([top[rows, :j], bottom[rows, : K - j]], axis=-1)
                v, se = self.expected_reward(np.take_along_axis(q_all[rows], cand, -1), weights, rng, n_samples)
                better = v > best[rows]
                sets[rows[better]], best[rows[better]], best_se[rows[better]] = cand[better], v[better], se[better]
                rising = v > prev
                rows, prev = rows[rising], v[rising]
                if rows.size == 0:
                    break
        # Best candidate (by q) first, like the top-K sets.
        order = np.argsort(-np.take_along_axis(q_all, sets, -1), axis=-1, kind="stable")
        return np.take_along_axis(sets, order, -1), best, best_se


def dinkelbach_sets(q: np.ndarray, n_candidates: int, temperature: float = 1.0, max_iter: int = 100) -> np.ndarray:
    """argmax over |S| = K of sum_S w q / sum_S w with w = exp(q / tau), per row of ``q`` (U, |A|).

    This is the noisy LSR's expected reward at L = 1. Dinkelbach's method for fractional
    objectives: with lambda the ratio of the current set, the next set is the top-K of
    w * (q - lambda) (it maximises sum_S w (q - lambda), which is >= 0, and > 0 exactly when a
    set with a larger ratio exists); lambda strictly increases, so the iteration stops at the
    optimum after finitely many sets. Vectorised over rows; weights are taken relative to each
    row's maximum (the ratio is scale-free), so they never overflow.

    Returns:
        int64 ``(U, K)``: each row's best set, best candidate (by q) first.
    """
    q = np.asarray(q, dtype=np.float64)
    w = np.exp((q - q.max(axis=-1, keepdims=True)) / temperature)

    def ratio(rows: np.ndarray, sets: np.ndarray) -> np.ndarray:
        ws = np.take_along_axis(w[rows], sets, -1)
        return sum_last(ws * np.take_along_axis(q[rows], sets, -1)) / sum_last(ws)

    all_rows = np.arange(q.shape[0])
    sets = greedy_candidates(q, n_candidates)
    lam = ratio(all_rows, sets)
    active = all_rows
    for _ in range(max_iter):
        if active.size == 0:
            break
        new = greedy_candidates(w[active] * (q[active] - lam[active, None]), n_candidates)
        new_lam = ratio(active, new)
        better = new_lam > lam[active]
        sets[active[better]] = new[better]
        lam[active[better]] = new_lam[better]
        active = active[better]
    # Best candidate first, like the top-K sets.
    order = np.argsort(-np.take_along_axis(q, sets, -1), axis=-1, kind="stable")
    return np.take_along_axis(sets, order, -1)
