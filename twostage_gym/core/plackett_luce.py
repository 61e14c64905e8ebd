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

import functools
import itertools

import numpy as np

from twostage_gym.core.checks import choice

__all__ = [
    "ca_log_marginal",
    "ca_log_marginal_swr",
    "candidate_noise",
    "candidates_from_noise",
    "enumerate_rankings",
    "expert_assignment",
    "greedy_candidates",
    "greedy_without",
    "gumbel_noise",
    "gumbel_topk",
    "log1mexp",
    "logsumexp",
    "noise_buffer",
    "pl_log_prob",
    "pl_log_prob_swr",
    "position_weights",
]

POSITION_WEIGHTS = ("sum", "dcg")


def position_weights(kind: str, n_outputs: int) -> np.ndarray:
    """alpha_l for l = 1..L: ``"sum"`` gives 1, ``"dcg"`` gives 1 / log2(l + 1) (Sec. 2)."""
    if choice("position_weights", kind, POSITION_WEIGHTS) == "sum":
        return np.ones(n_outputs)
    return 1.0 / np.log2(np.arange(2, n_outputs + 2))


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
    """Sample an ordered candidate set from the Plackett-Luce ESR (App. D.3).

    Case 1 (``assignment is None``, ``logits`` ``(..., A)``): the Gumbel top-K trick, one
    Gumbel per item and a top-K selection, O(|A|) per row.
    Case 2 (``logits`` ``(..., M, A)``): position k takes an item of expert m(k) from the items
    not yet taken, by inverse-CDF sampling (:func:`candidates_from_noise` describes it).
    One Gumbel vector shared by the experts (App. D.3 as written) is not exact: the picks of
    later experts are biased by the noise that decided earlier picks, and the sample
    frequencies depart from the sequential Plackett-Luce probabilities (a chi-square test
    rejects them at |A| = 6, K = 3). A Gumbel vector per expert is exact but draws M |A|
    random numbers per row; the inverse-CDF walk draws 2K and makes one pass over the M |A|
    logits.

    This is :func:`candidates_from_noise` applied to :func:`candidate_noise` drawn from ``rng``.

    Returns:
        int64 ``(..., K)``: item ids in sampled order (distinct within a row).
    """
    if not 1 <= n_candidates <= logits.shape[-1]:
        raise ValueError(f"n_candidates (K={n_candidates}) must be in [1, {logits.shape[-1]}]")
    noise = candidate_noise(rng, logits.shape, n_candidates, assignment)
    return candidates_from_noise(logits, noise, n_candidates, temperature, assignment)


def candidate_noise(
    rng: np.random.Generator,
    logits_shape: tuple[int, ...],
    n_candidates: int,
    assignment: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The random numbers :func:`candidates_from_noise` turns into a candidate set.

    One model: a float32 standard exponential per item, ``logits_shape``. Experts: float64
    uniforms on [0, 1), ``(*logits_shape[:-2], K, 2)``: a try and a redraw per position (see
    :func:`candidates_from_noise`). ``out`` (of that shape and dtype) is filled in place, which
    lets a vector env draw each sub-env's row from its own stream.
    """
    if out is None:
        out = noise_buffer(logits_shape, n_candidates, assignment)
    if assignment is None:
        return rng.standard_exponential(dtype=np.float32, out=out)
    return rng.random(out=out)


def noise_buffer(logits_shape: tuple[int, ...], n_candidates: int, assignment: np.ndarray | None = None) -> np.ndarray:
    """An uninitialised array of the shape and dtype :func:`candidate_noise` fills."""
    if assignment is None:
        return np.empty(logits_shape, dtype=np.float32)
    return np.empty((*logits_shape[:-2], n_candidates, 2))


def candidates_from_noise(
    logits: np.ndarray,
    noise: np.ndarray,
    n_candidates: int,
    temperature: float = 1.0,
    assignment: np.ndarray | None = None,
) -> np.ndarray:
    """The candidate sets that :func:`candidate_noise`'s ``noise`` selects; ``(..., K)`` int64.

    One model: the Gumbel top-K, the K largest of logits / tau - log E. ``noise`` (float32) is
    overwritten with the perturbed logits. The noise is float32 (-log of a float32 exponential
    draw, about four times faster than numpy's float64 Gumbel sampler), so sampling
    probabilities are exact to about 1e-7.

    Experts: positions in turn, position k drawing from softmax(logits_{m(k)} / tau) over the
    items not yet taken, by inverse-CDF sampling at the uniforms ``noise[..., k, :]`` (the
    sequential Plackett-Luce policy of Sec. 3.2, exactly). One pass over the M |A| logits gives
    each expert's weights and their sums over about sqrt(|A|) blocks; each position's first try
    then costs operations on arrays of about sqrt(|A|), and a try that hits an item already taken
    is redrawn from a copy of that row's |A| weights. ``_sequential_sample`` gives the details.
    Probabilities are exact to float32 rounding (about 1e-7), and stay so when the items taken
    hold nearly all the mass (a float64 redraw from the logits covers float32 underflow).
    """
    if assignment is None:
        np.maximum(noise, np.finfo(np.float32).tiny, out=noise)
        np.log(noise, out=noise)
        np.negative(noise, out=noise)
        noise += logits if temperature == 1.0 else logits / temperature  # x / 1.0 is x exactly
        return _top_sorted(noise, n_candidates)
    return _sequential_sample(logits, noise, n_candidates, temperature, np.asarray(assignment))


_TINY_MASS = 1e-25
"""Below this remaining mass (relative to the expert's largest weight), float32 underflow could
matter: the position is drawn again in float64 from the logits."""

_UNSHIFTED = (-10.0, 60.0)
"""Where every expert's largest logit lies in this range, the weights are exp(z) without the shift
by the maximum (a pass over the catalog saved): sums of up to e^28 items stay below float32's
largest value, and everything down to _TINY_MASS * 1e-7 of the largest weight stays a normal float."""


def _sequential_sample(
    logits: np.ndarray, uniforms: np.ndarray, K: int, temperature: float, assignment: np.ndarray
) -> np.ndarray:
    """Case 2 of :func:`candidates_from_noise`: inverse-CDF sampling, positions in turn.

    One pass over the catalog gives the weights w = exp(z) per expert (float32; shifted by the
    maximum where needed, see ``_UNSHIFTED``) and their sums over about sqrt(|A|) blocks
    (:class:`_BlockMass`). Position k (expert m) first tries an item from expert m's whole
    distribution at the uniform ``u[k, 0]`` and keeps it unless it is already taken; otherwise it
    draws at ``u[k, 1]`` from the items not taken. Together these draw from the remaining items
    with the right probabilities: with q the taken mass, an item a not taken comes out with
    p(a) + q p(a) / (1 - q) = p(a) / (1 - q). The tries do not depend on earlier picks, so all
    positions' tries are one vectorised draw. Then each round redraws, in every row that still
    has one, the first position whose try is taken by an earlier position: the rounds number the
    most clashes in a row, not K, and every redraw sees the final picks before it.
    """
    batch, (M, A) = logits.shape[:-2], logits.shape[-2:]
    size, nb = _block_shape(A)
    R = int(np.prod(batch, dtype=np.int64))
    z = np.asarray(logits, dtype=np.float32).reshape(R, M, A)
    z = z if temperature == 1.0 else z / np.float32(temperature)
    top = z.max(axis=-1)
    unshifted = bool(np.all((top >= _UNSHIFTED[0]) & (top <= _UNSHIFTED[1])))
    shifted = z if unshifted else z - top[..., None]
    if size * nb == A:
        w = np.exp(shifted)
    else:  # items A.. are padding, with no mass
        w = np.zeros((R, M, size * nb), dtype=np.float32)
        np.exp(shifted, out=w[..., :A])
    largest = np.exp(top) if unshifted else np.ones_like(top)
    mass = _BlockMass(w.reshape(R, M, size, nb), A, largest)
    u = np.asarray(uniforms, dtype=np.float64).reshape(R, K, 2)
    out = mass.draw(np.arange(R)[:, None], assignment[None, :], u[..., 0])  # (R, K): every position's try
    first = np.flatnonzero(out[:, 0] < 0)  # position 1's try can only miss (float rounding)
    if first.size:
        out[first, 0] = mass.draw(first, np.full(first.size, assignment[0]), u[first, 0, 1], out[first, :0], z)
    rows, earlier = np.arange(R), np.tri(K, K, -1, dtype=bool)
    while rows.size:
        s = np.sort(out[rows], axis=1)
        rows = rows[(s[:, 1:] == s[:, :-1]).any(axis=1) | (s[:, 0] < 0)]  # a repeat or a missed try
        if rows.size:
            o = out[rows]
            k = np.argmax(((o[:, :, None] == o[:, None, :]) & earlier).any(axis=-1) | (o < 0), axis=-1)
            taken = np.where(np.arange(K - 1) < k[:, None], out[rows, : K - 1], out[rows, :1])  # padded by a repeat
            out[rows, k] = mass.draw(rows, assignment[k], u[rows, k, 1], taken, z)
    return out.reshape(*batch, K)


@functools.cache
def _block_shape(n_items: int) -> tuple[int, int]:
    """(items per block, blocks) for :class:`_BlockMass`: both about sqrt(|A|), exact when |A| factors so.

    Cached: the divisor search runs once per catalog size, not at every step.
    """
    root = int(np.ceil(np.sqrt(n_items)))
    for size in range(root, max(1, root // 2) - 1, -1):
        if n_items % size == 0:
            return size, n_items // size
    return root, -(-n_items // root)


@functools.cache
def _upper_ones(n: int) -> np.ndarray:
    """The (n, n) upper-triangular matrix of float32 ones: x @ it is the cumulative sum of x."""
    out = np.triu(np.ones((n, n), dtype=np.float32))
    out.flags.writeable = False
    return out


class _BlockMass:
    """Inverse-CDF draws from per-expert weights ``w`` ``(R, M, size, nb)``; item a is in block a mod nb.

    Interleaved blocks keep every reduction over the catalog on the contiguous axis. Block sums
    and prefix sums are float32 matrix products (one BLAS pass over the catalog; products with
    triangular ones matrices instead of short ``cumsum`` calls, which are several times slower),
    so draws are exact to float32 rounding, about 1e-7, as on the Gumbel path. ``largest``
    ``(R, M)`` is each expert's largest weight.
    """

    def __init__(self, w: np.ndarray, n_items: int, largest: np.ndarray) -> None:
        size, nb = w.shape[-2:]
        self.w, self.n_items, self.largest = w, n_items, largest
        self.ones = np.ones(size, dtype=np.float32)
        self.S = self.ones @ w  # (R, M, nb)
        self.cdf = self.S @ _upper_ones(nb)  # over the blocks, each expert's whole distribution
        self.before = self.cdf - self.S  # the mass in the blocks before each block

    def draw(
        self,
        rows: np.ndarray,
        experts: np.ndarray,
        u: np.ndarray,
        taken: np.ndarray | None = None,
        z: np.ndarray | None = None,
    ) -> np.ndarray:
        """Items at the uniforms ``u`` (``rows``, ``experts``, ``u`` of one shape): a block, then an item in it.

        Without ``taken``, from the whole distribution; a try whose target rounding put past the
        last item with mass comes back as a taken item would, -1, and is redrawn. With ``taken``
        ``(r, k)`` (1-D ``rows``), from the items not taken (a copy of these rows' weights with
        the taken items zeroed, re-summed); where the mass left is tiny, or rounding missed, the
        draw is redone in float64 from the logits ``z`` ``(R, M, A)``.
        """
        size, nb = self.w.shape[-2:]
        if taken is None:
            w, at, cdf, before = self.w, (rows, experts), self.cdf[rows, experts], self.before[rows, experts]
        else:
            w, at = self.w[rows, experts], (np.arange(rows.size),)  # (r, size, nb), a copy
            slot, block = np.divmod(taken, nb)
            w[at[0][:, None], slot, block] = 0.0
            S = self.ones @ w
            cdf = S @ _upper_ones(nb)
            before = cdf - S
        target = u * cdf[..., -1]
        b = np.minimum(np.count_nonzero(cdf <= target[..., None], axis=-1), nb - 1)
        offset = target - np.take_along_axis(before, b[..., None], axis=-1)[..., 0]  # the target within block b
        inner = w[(*at, slice(None), b)] @ _upper_ones(size)  # (..., size): the chosen block's cumulative weights
        j = np.count_nonzero(inner <= offset[..., None], axis=-1)
        item = j * nb + b
        missed = (j >= size) | (item >= self.n_items)
        if taken is None:
            return np.where(missed, -1, item)
        tiny = cdf[:, -1] < _TINY_MASS * self.largest[rows, experts]
        redo = np.flatnonzero(missed | tiny | (item[:, None] == taken).any(axis=-1))
        if redo.size:
            item[redo] = _exact_draw(z[rows[redo], experts[redo]], taken[redo], u[redo])
        return item


def _exact_draw(z: np.ndarray, taken: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw in float64 from softmax(z) ``(r, A)`` over the items not in ``taken``."""
    z = z.astype(np.float64)
    np.put_along_axis(z, taken, -np.inf, axis=-1)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    c = np.cumsum(p, axis=-1)
    idx = np.count_nonzero(c <= (u * c[:, -1])[:, None], axis=-1)
    return np.minimum(idx, z.shape[-1] - 1 - np.argmax(p[:, ::-1] > 0, axis=-1))


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
    shortlist = _top_sorted(logits, n_candidates)  # no expert needs to look deeper than its top K
    flat = shortlist.reshape(-1, *shortlist.shape[-2:])
    out = _greedy_walk(flat, np.zeros(flat.shape, dtype=bool), assignment, n_candidates)
    return out.reshape(*logits.shape[:-2], n_candidates)


def greedy_without(
    logits: np.ndarray, target: np.ndarray, n_positions: int, assignment: np.ndarray | None = None
) -> np.ndarray:
    """The greedy ranking's first ``n_positions`` items once ``target`` is removed, for each target.

    This is A-bar of Eq. 8 (App. D.1). ``logits`` ``(..., A)`` or ``(..., M, A)``, ``target``
    ``(..., L)``; returns ``(..., L, n_positions)``, equal to :func:`greedy_candidates` on the
    logits with the target set to -inf. Each expert's top ``n_positions + 1`` items suffice (at
    position k at most k - 1 picks and the target are gone), so after one top-k selection over
    the catalog the walk runs on those short lists. With one model the target's slot is cut out
    of the top list, without a walk.
    """
    J, A = n_positions, logits.shape[-1]
    target = np.asarray(target)
    top = _top_sorted(logits, min(J + 1, A))  # (..., D) or (..., M, D)
    if assignment is None:
        hit = top[..., None, :] == target[..., :, None]  # (..., L, D)
        pos = np.where(hit.any(axis=-1), np.argmax(hit, axis=-1), J)  # the target's slot (J if absent)
        j = np.arange(J)
        slot = j + (j >= pos[..., None])  # slots after the target shift by one
        return np.take_along_axis(np.broadcast_to(top[..., None, :], (*hit.shape[:-1], top.shape[-1])), slot, -1)
    L = target.shape[-1]
    short = np.broadcast_to(top[..., None, :, :], (*target.shape, *top.shape[-2:])).reshape(-1, *top.shape[-2:])
    gone = short == target.reshape(-1)[:, None, None]
    return _greedy_walk(short, gone, assignment, J).reshape(*target.shape[:-1], L, J)


def _greedy_walk(shortlist: np.ndarray, taken: np.ndarray, assignment: np.ndarray, n: int) -> np.ndarray:
    """Positions 1..n in turn: expert m(k) takes its first shortlisted item not taken. ``(R, M, D)`` -> ``(R, n)``."""
    rows = np.arange(shortlist.shape[0])
    out = np.empty((shortlist.shape[0], n), dtype=np.int64)
    for k, m in enumerate(np.asarray(assignment)[:n].tolist()):
        pick = shortlist[rows, m, np.argmax(~taken[:, m], axis=1)]
        out[:, k] = pick
        taken |= shortlist == pick[:, None, None]
    return out


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

    Accuracy: the approximation over-estimates. At Table 5's setting (|A| = 1000, logits
    N(0, 1), K = 10) its relative error over the true top-K items, against exact inclusion
    probabilities, is 3.1e-2 at tau = 1, 1.1e-1 at tau = 1/2 and 1.3e-1 at tau = 1/5, and it
    grows with K at tau = 1 as Table 5's does; Table 5 reports 2.3e-3, 4.2e-3 and 0.0. No error
    measure we tried (per-position or marginal, several aggregations, Monte-Carlo or exact truth)
    reproduces the table's sizes from its stated setup; ``tests/envs/test_plackett_luce.py``
    pins the measured sizes.
    """
    K = n_candidates
    target = np.asarray(target)
    z_all = logits / temperature
    zz, experts = _expert_view(z_all, assignment, K)
    # The greedy ranking without the target: its first k-1 entries are A-bar^{k-1} for every k.
    prefix = greedy_without(z_all, target[..., None], K - 1, assignment)[..., 0, :]
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
