"""Plackett-Luce candidate sampling and its probabilities (Kiyohara et al. 2026, Sec. 3.2, App. B.2, D).

An early-stage ranker (ESR) with M logit models ("experts") fills positions k = 1..K of the
candidate set; position k is filled by expert m(k) from the items not yet taken, with
probability softmax(logit_{m(k)} / tau) over the remaining items. With M = 1 this is the
ordinary Plackett-Luce (PL) policy.

Shapes: ``logits`` is ``(..., A)`` for one expert or ``(..., M, A)`` for M experts, with any
leading batch shape; rankings and targets index items along the last axis. Temperature is
applied here (``logit / tau``), so callers pass raw scores.

Everything is numpy; the torch learners in ``agents`` mirror the differentiable parts and are
tested against these functions.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = [
    "ca_log_marginal",
    "ca_log_marginal_swr",
    "enumerate_rankings",
    "expert_assignment",
    "greedy_candidates",
    "gumbel_noise",
    "gumbel_topk",
    "log1mexp",
    "logsumexp",
    "pl_log_prob",
    "pl_log_prob_swr",
    "position_weights",
]

POSITION_WEIGHTS = ("sum", "dcg")


def position_weights(kind: str, n_outputs: int) -> np.ndarray:
    """alpha_l for l = 1..L: ``"sum"`` gives 1, ``"dcg"`` gives 1 / log2(l + 1) (Sec. 2)."""
    if kind == "sum":
        return np.ones(n_outputs)
    if kind == "dcg":
        return 1.0 / np.log2(np.arange(2, n_outputs + 2))
    raise ValueError(f"position_weights must be one of {POSITION_WEIGHTS}, got {kind!r}")


def expert_assignment(n_candidates: int, n_experts: int) -> np.ndarray:
    """The k -> m(k) map of Sec. 3.2: contiguous blocks, e.g. K = 10, M = 5 gives 0,0,1,1,...,4,4.

    When M does not divide K the first K mod M experts fill one position more.
    """
    if not 1 <= n_experts <= n_candidates:
        raise ValueError(f"n_experts (M={n_experts}) must be in [1, n_candidates (K={n_candidates})]")
    size, extra = divmod(n_candidates, n_experts)
    return np.repeat(np.arange(n_experts), [size + (m < extra) for m in range(n_experts)])


def logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """log sum exp along ``axis``, stable; -inf for an all -inf slice."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.sum(np.exp(x - m), axis=axis)) + np.squeeze(m, axis=axis)


def log1mexp(x: np.ndarray) -> np.ndarray:
    """log(1 - exp(x)) for x <= 0, stable at both ends (Maechler's switch at -log 2)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > -np.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


def _per_position_logits(logits: np.ndarray, assignment: np.ndarray | None, n_positions: int) -> np.ndarray:
    """``(..., K, A)``: the logits that fill each position k (expert m(k)'s, or the single model's)."""
    if assignment is None:
        return np.broadcast_to(logits[..., None, :], (*logits.shape[:-1], n_positions, logits.shape[-1]))
    return logits[..., assignment, :]


def gumbel_topk(
    logits: np.ndarray,
    n_candidates: int,
    rng: np.random.Generator,
    temperature: float = 1.0,
    assignment: np.ndarray | None = None,
) -> np.ndarray:
    """Sample an ordered candidate set by the Gumbel top-K trick (App. D.3).

    Case 1 (``assignment is None``, ``logits`` ``(..., A)``): one Gumbel per item and one
    ``argpartition``, O(|A|) per row; the K winners are then sorted (O(K log K)).
    Case 2 (``logits`` ``(..., M, A)``): position k takes the best remaining item of expert
    m(k) under that expert's perturbed logits. Each expert gets its own Gumbel vector: with one
    vector shared by all experts (App. D.3 as written) the picks of later experts are biased by
    the noise that decided earlier picks, and the sample frequencies depart from the sequential
    Plackett-Luce probabilities (a chi-square test rejects them at |A| = 6, K = 3); with a vector
    per expert the Gumbel top-k property holds for each expert given the items already taken,
    so the sample is exact. Each expert's own top-K is found with one ``argpartition`` over all
    experts; the K sequential picks then run on those short lists, never on the catalog.

    The noise is float32 (-log of a float32 exponential draw, about four times faster than
    numpy's float64 Gumbel sampler), so sampling probabilities are exact to about 1e-7.

    Returns:
        int64 ``(..., K)``: item ids in sampled order (distinct within a row).
    """
    A = logits.shape[-1]
    if not 1 <= n_candidates <= A:
        raise ValueError(f"n_candidates (K={n_candidates}) must be in [1, {A}]")
    if assignment is None:
        perturbed = logits / temperature + gumbel_noise(logits.shape, rng)
        return _top_sorted(perturbed, n_candidates)
    batch = logits.shape[:-2]
    perturbed = logits / temperature + gumbel_noise(logits.shape, rng)  # (..., M, A), a vector per expert
    shortlist = _top_sorted(perturbed, n_candidates)  # (..., M, K): each expert's best K, best first
    flat = shortlist.reshape(-1, shortlist.shape[-2], n_candidates)
    rows = np.arange(flat.shape[0])
    out = np.empty((flat.shape[0], n_candidates), dtype=np.int64)
    # taken[r, m, j]: expert m's j-th choice in row r is already in the candidate set.
    taken = np.zeros(flat.shape, dtype=bool)
    for k, m in enumerate(assignment):
        j = np.argmax(~taken[:, m], axis=1)  # the expert's best item not taken yet
        pick = flat[rows, m, j]
        out[:, k] = pick
        taken |= flat == pick[:, None, None]
    return out.reshape(*batch, n_candidates)


def gumbel_noise(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Standard Gumbel draws, float32: -log E with E ~ Exp(1) (kept above the float32 minimum)."""
    e = rng.standard_exponential(shape, dtype=np.float32)
    return -np.log(np.maximum(e, np.finfo(np.float32).tiny))


_ARGMAX_TOP_K = 16
"""Up to this k, :func:`_top_sorted` takes k argmax passes: each is a fast SIMD scan, several times
cheaper than one ``argpartition`` over the same rows; beyond it, one partition wins."""


def _top_sorted(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest entries along the last axis, largest first."""
    # Picked entries are overwritten with -inf, so rows that already hold -inf take the partition.
    if k <= _ARGMAX_TOP_K and not np.isneginf(values).any():
        work = values.astype(np.result_type(values.dtype, np.float32), copy=True).reshape(-1, values.shape[-1])
        rows = np.arange(work.shape[0])
        out = np.empty((work.shape[0], k), dtype=np.int64)
        for j in range(k):  # k passes over the rows, each vectorised over every row
            out[:, j] = work.argmax(axis=1)
            work[rows, out[:, j]] = -np.inf
        return out.reshape(*values.shape[:-1], k)
    part = np.argpartition(-values, k - 1, axis=-1)[..., :k]
    order = np.argsort(-np.take_along_axis(values, part, -1), axis=-1, kind="stable")
    return np.take_along_axis(part, order, -1).astype(np.int64)


def greedy_candidates(logits: np.ndarray, n_candidates: int, assignment: np.ndarray | None = None) -> np.ndarray:
    """The deterministic ESR: each position takes its expert's highest-logit remaining item."""
    if assignment is None:
        return _top_sorted(logits, n_candidates)
    shortlist = _top_sorted(logits, n_candidates)
    batch = logits.shape[:-2]
    flat = shortlist.reshape(-1, shortlist.shape[-2], n_candidates)
    rows = np.arange(flat.shape[0])
    out = np.empty((flat.shape[0], n_candidates), dtype=np.int64)
    taken = np.zeros(flat.shape, dtype=bool)
    for k, m in enumerate(assignment):
        pick = flat[rows, m, np.argmax(~taken[:, m], axis=1)]
        out[:, k] = pick
        taken |= flat == pick[:, None, None]
    return out.reshape(*batch, n_candidates)


def _expert_view(z: np.ndarray, assignment: np.ndarray | None, n_positions: int) -> tuple[np.ndarray, np.ndarray]:
    """``(..., M', A)`` logits (M' = 1 for a single model) and the expert index of each position."""
    if assignment is None:
        return z[..., None, :], np.zeros(n_positions, dtype=np.int64)
    return z, np.asarray(assignment)


def _remaining_normalisers(zz: np.ndarray, items: np.ndarray, experts: np.ndarray) -> np.ndarray:
    """log sum over the items not yet removed, for each position k: ``(..., K)``.

    ``items`` (..., J) are removed one per position, in order (position k has removed items[:k]);
    every other item is never removed. The normaliser of position k is
    logaddexp(T_{m(k)}, logsumexp_{j >= k} z_{m(k)}(items_j)), T the logsumexp over the items
    outside ``items``: a sum of the remaining mass, never a difference, so it stays exact
    when the removed items hold all but a sliver of it (a logit gap of 40 made the former
    total-minus-prefix form, log(1 - exp(B_k - A_k)), round to log 0).
    """
    K = experts.shape[0]
    idx = np.broadcast_to(items[..., None, :], (*zz.shape[:-1], items.shape[-1]))
    picked = np.take_along_axis(zz, idx, -1)  # (..., M', J)
    masked = zz.copy()
    np.put_along_axis(masked, idx, -np.inf, -1)
    tail = logsumexp(masked)  # (..., M')
    # suffix[..., j] = logsumexp(picked[..., j:]), padded with -inf (nothing left) up to K.
    pad = max(K - picked.shape[-1], 0)
    padded = np.concatenate([picked, np.full((*picked.shape[:-1], pad), -np.inf)], axis=-1)
    suffix = np.logaddexp.accumulate(padded[..., ::-1], axis=-1)[..., ::-1]
    return np.logaddexp(tail[..., experts], suffix[..., experts, np.arange(K)])


def pl_log_prob(
    logits: np.ndarray, ranking: np.ndarray, temperature: float = 1.0, assignment: np.ndarray | None = None
) -> np.ndarray:
    """Exact log-likelihood of an ordered sample without replacement (the V-PG score, App. B.2).

    log pi(A^K) = sum_k [logit_{m(k)}(a_k) - log sum_{a not in A^(k-1)} exp logit_{m(k)}(a)],
    the remaining-items normaliser being the logsumexp of the never-picked items combined with
    that of the picks from k on (see ``_remaining_normalisers``). O(|A| M + K M).
    """
    K = ranking.shape[-1]
    zz, experts = _expert_view(logits / temperature, assignment, K)
    ranking = np.asarray(ranking)
    picked = np.take_along_axis(zz, np.broadcast_to(ranking[..., None, :], (*zz.shape[:-1], K)), -1)
    chosen = picked[..., experts, np.arange(K)]
    return np.sum(chosen - _remaining_normalisers(zz, ranking, experts), axis=-1)


def pl_log_prob_swr(
    logits: np.ndarray, ranking: np.ndarray, temperature: float = 1.0, assignment: np.ndarray | None = None
) -> np.ndarray:
    """The sampling-with-replacement score (V-PG-SwR, App. B.2): sum_k log softmax_{m(k)}(a_k) over all items."""
    K = ranking.shape[-1]
    z = _per_position_logits(logits / temperature, assignment, K)
    chosen = np.take_along_axis(z, ranking[..., :, None], -1)[..., 0]
    return np.sum(chosen - logsumexp(z), axis=-1)


def ca_log_marginal(
    logits: np.ndarray,
    target: np.ndarray,
    n_candidates: int,
    temperature: float = 1.0,
    assignment: np.ndarray | None = None,
) -> np.ndarray:
    """log P(a in A^K), the CA-PG score, by the approximation of App. D.1 (Eq. 8).

    P(a picked at k) ~ exp(logit_k(a) - log sum_{a' not in A-bar^{k-1}} exp logit_k(a')), where
    the k-1 earlier picks are replaced by the most probable set without ``a`` (the greedy ranking
    with ``a`` removed); then log P(a in A^K) = log1p(-exp(sum_k log1p(-P(a picked at k)))).
    The normaliser is computed as a sum of the remaining mass (Eq. 8's A_k + log1p(-exp(B_k - A_k))
    is the same quantity, but loses all precision when the prefix holds almost all the mass).
    """
    K = n_candidates
    target = np.asarray(target)
    z_all = logits / temperature
    zz, experts = _expert_view(z_all, assignment, K)
    # The greedy ranking without the target: its first k-1 entries are A-bar^{k-1} for every k.
    masked = z_all.copy()
    if assignment is None:
        np.put_along_axis(masked, target[..., None], -np.inf, -1)
    else:
        np.put_along_axis(
            masked, np.broadcast_to(target[..., None, None], (*target.shape, z_all.shape[-2], 1)), -np.inf, -1
        )
    if K > 1:
        prefix = greedy_candidates(masked, K - 1, None if assignment is None else assignment[: K - 1])
    else:
        prefix = np.zeros((*target.shape, 0), dtype=np.int64)
    target_logit = np.take_along_axis(zz, np.broadcast_to(target[..., None, None], (*zz.shape[:-1], 1)), -1)[..., 0]
    log_p_k = target_logit[..., experts] - _remaining_normalisers(zz, prefix, experts)
    log_not = np.sum(log1mexp(np.minimum(log_p_k, 0.0)), axis=-1)
    return log1mexp(log_not)


def ca_log_marginal_swr(
    logits: np.ndarray,
    target: np.ndarray,
    n_candidates: int,
    temperature: float = 1.0,
    assignment: np.ndarray | None = None,
) -> np.ndarray:
    """The CA-PG-SwR score (App. D.2): logsumexp_k (logit_{m(k)}(a) - A_{m(k)}).

    With one model it is log K + log softmax(a): TOP1-PG's gradient, as the constant drops out.
    """
    z = _per_position_logits(logits / temperature, assignment, n_candidates)
    target = np.asarray(target)
    t = np.take_along_axis(z, np.broadcast_to(target[..., None, None], (*z.shape[:-1], 1)), -1)[..., 0]
    return logsumexp(t - logsumexp(z))


def enumerate_rankings(n_items: int, n_candidates: int) -> np.ndarray:
    """Every ordered K-tuple of distinct items, ``(n_items! / (n_items - K)!, K)``; for tiny exact checks."""
    return np.array(list(itertools.permutations(range(n_items), n_candidates)), dtype=np.int64)
