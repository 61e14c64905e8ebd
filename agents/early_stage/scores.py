"""Score functions of the early-stage-ranker policy gradients, in torch (Kiyohara et al. 2026, App. B.2, D).

Each policy gradient is ``-mean_batch(score * reward_term)`` for one of four scores of a
Plackett-Luce (PL) early-stage ranker (ESR) with M logit models ("experts"), position k of the
candidate set being filled by expert m(k):

* V-PG (:func:`pl_log_prob`): the exact log-likelihood of the sampled ordered candidate set,
  log pi(A^K) = sum_k [z_{m(k)}(a_k) - log sum_{a not in A^(k-1)} exp z_{m(k)}(a)] (Eq. 4, App. B.2),
  times the ranking's reward sum_l alpha_l r_l.
* V-PG-SwR (:func:`pl_log_prob_swr`): the same with every softmax over all items (App. B.2).
* CA-PG (:func:`ca_log_marginal`): log P(a_l in A^K) for each served item a_l, by Eq. 8
  (App. D.1), times alpha_l r_l.
* CA-PG-SwR (:func:`ca_log_marginal_swr`): logsumexp_k (z_{m(k)}(a_l) - A_{m(k)}) (App. D.2),
  computed per expert in O(M L); TOP1-PG is its M = 1 case.

Here z = logit / tau and A_m = logsumexp_a z_m(a). The normaliser over the items not yet taken is
computed as a sum of the remaining mass (the logsumexp of the items never taken, combined with
that of the picks still to come), never as Eq. 8's difference A_k + log(1 - exp(B_k - A_k)), which
rounds to log 0 once the taken items hold all but a sliver of the mass.

These functions duplicate, on purpose, the numpy reference implementations in
:mod:`twostage_gym.core.plackett_luce`: the learners need autograd, the environment must not need
torch. ``tests/agents/early_stage/test_scores.py`` checks that both agree to ~1e-10 in float64, with one
model and with experts, and that the gradients equal plain autograd's.

Shapes: ``logits`` is ``(B, A)`` for one model or ``(B, M, A)`` for M experts (``assignment``,
the ``(K,)`` int64 tensor of m(k), is ``None`` for one model); ``ranking`` is ``(B, K)`` and the
served items ``target`` are ``(B, L)``. No Python loop runs over the batch or over experts; the
only loop is the K-step greedy walk of CA-PG with experts, on indices, without gradient. Every
score makes one differentiable pass over the catalog (:class:`_LogSumExpGather`); CA-PG adds the
search for its prefixes; the rest is O(M K L). Every score takes ``mass``, the first half of that
pass (:func:`catalog_mass` of z = logits / tau), when it was computed ahead.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from twostage_gym.core.plackett_luce import greedy_without

__all__ = [
    "CatalogMass",
    "ca_log_marginal",
    "ca_log_marginal_swr",
    "catalog_mass",
    "greedy_prefix_without",
    "log1mexp",
    "pl_log_prob",
    "pl_log_prob_swr",
]

_LOG2 = math.log(2.0)
_LOG2_E = 1.0 / _LOG2  # log2(e)
_LOW_MASS = 1e-20
"""A kept mass below this (relative to the row's largest logit) is recomputed with a closer shift:
float32 exps of the kept items then keep their full precision."""


class CatalogMass(NamedTuple):
    """The first pass of every score over the catalog: w = exp(z - top) and its sum.

    ``top`` ``(..., 1)`` is the row maximum of z, ``weights`` ``(..., A)`` are w (zero at excluded
    items) and ``total`` ``(..., 1)`` their sum. It depends on the logits alone, so a learner can
    compute it ahead with :func:`catalog_mass` (the ESR learner does so on a worker thread while
    the environment draws the candidate sets) and hand it to a score as ``mass=``.
    """

    top: torch.Tensor
    weights: torch.Tensor
    total: torch.Tensor

    def rows(self, keep: torch.Tensor) -> CatalogMass:
        """The batch rows selected by the boolean mask ``keep``."""
        return CatalogMass(*(t[keep] for t in self))


def catalog_mass(z: torch.Tensor, exclude: torch.Tensor | None = None) -> CatalogMass:
    """:class:`CatalogMass` of the logits z (no gradient), the items at ``exclude`` given no weight."""
    with torch.no_grad():
        top = z.amax(dim=-1, keepdim=True)
        w = _exp_in_place(torch.sub(z, top))
        if exclude is not None:
            w.scatter_(-1, exclude, 0.0)
        return CatalogMass(top, w, w.sum(dim=-1, keepdim=True))


class _LogSumExpGather(torch.autograd.Function):
    """``(logsumexp of z over the items not in exclude, z.gather(-1, index))``, with a one-pass backward.

    A score needs only these from the catalog-wide logits: a normaliser per expert and the logits
    of a few items. Autograd through ``torch.logsumexp`` and ``gather`` makes five passes over z
    in the backward (recompute exp(z - lse), scale, a zero tensor for the gather, scatter, add);
    here the forward keeps exp(z - max) and the backward is one scaling pass (in place) and a
    small scatter. The gradient is the same (softmax over the kept items times g_lse, plus
    g_picked at ``index``); ``tests/agents/early_stage/test_scores.py`` checks it against plain autograd
    and by ``gradcheck``.
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, index: torch.Tensor, exclude: torch.Tensor | None, mass: CatalogMass | None):
        top, e, total = _kept_mass(z, exclude, mass)
        ctx.save_for_backward(z, exclude, total, index)
        ctx.weights = e  # an intermediate, kept out of the saved-tensor version checks: the backward scales it
        return (torch.log(total) + top).squeeze(-1), z.gather(-1, index)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_total: torch.Tensor | None, g_picked: torch.Tensor | None):
        z, exclude, total, index = ctx.saved_tensors
        # The first backward scales e in place (the gradient is its only use: no new catalog-sized
        # buffer); a second one (``retain_graph``, ``gradcheck``) recomputes it from z.
        e = ctx.weights if ctx.weights is not None else _kept_mass(z, exclude, None).weights
        ctx.weights = None
        if g_total is None:
            grad = e.zero_()
        else:
            grad = e.mul_(torch.where(total > 0, g_total.unsqueeze(-1) / total, 0.0))
        if g_picked is not None:
            grad.scatter_add_(-1, index, g_picked)
        return grad, None, None, None


def _kept_mass(z: torch.Tensor, exclude: torch.Tensor | None, mass: CatalogMass | None) -> CatalogMass:
    """:class:`CatalogMass` of z over the items not in ``exclude``, from ``mass`` (consumed) when given.

    Shift by the row's maximum over all items and zero the excluded ones after the exp: one pass
    and no copy of z. If the excluded items held all but a sliver of the mass, what is left may
    underflow; those rows are redone shifted by the maximum of the kept items.
    """
    if mass is None:
        mass = catalog_mass(z, exclude)
    elif exclude is not None:
        mass.weights.scatter_(-1, exclude, 0.0)
        mass = mass._replace(total=mass.weights.sum(dim=-1, keepdim=True))
    top, e, total = mass
    low = total < _LOW_MASS
    if exclude is not None and bool(low.any()):
        kept = z.scatter(-1, exclude, -math.inf)
        top_kept = kept.amax(dim=-1, keepdim=True)
        top_kept = torch.where(torch.isfinite(top_kept), top_kept, torch.zeros_like(top_kept))
        top = torch.where(low, top_kept, top)
        e = torch.where(low, _exp_in_place(kept - top), e)
        total = e.sum(dim=-1, keepdim=True)
    return CatalogMass(top, e, total)


def _exp_in_place(x: torch.Tensor) -> torch.Tensor:
    """exp(x) as 2^(x log2 e), overwriting x (x <= 0, a shifted logit).

    On CPU, ``exp2`` costs about half of ``exp`` (ATen's vectorised exp is the larger share of
    a score's pass over the catalog). Rounding x log2 e adds a relative error of about
    |x| 6e-8 in float32, as large as the rounding already in a float32 logit of that size.
    """
    return x.mul_(_LOG2_E).exp2_()


def _total_and_pick(
    z: torch.Tensor, index: torch.Tensor, exclude: torch.Tensor | None = None, mass: CatalogMass | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """logsumexp over the catalog (minus ``exclude``) and the logits at ``index`` (same leading shape as z).

    ``mass``, :func:`catalog_mass` of this z computed ahead, saves the pass over the catalog; it
    is consumed (the excluded items are zeroed in place).
    """
    if mass is not None and mass.weights.shape != z.shape:
        raise ValueError(f"mass was computed for logits of shape {tuple(mass.weights.shape)}, not {tuple(z.shape)}")
    return _LogSumExpGather.apply(z, index, exclude, mass)


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x <= 0, stable at both ends (Maechler's switch at -log 2).

    Each branch is fed a safe dummy where it is not used, so that the unused branch cannot put
    a NaN into the gradient (``torch.where`` differentiates both).
    """
    near = x > -_LOG2
    a = torch.log(-torch.expm1(torch.where(near, x, -_LOG2)))
    b = torch.log1p(-torch.exp(torch.where(near, -_LOG2, x)))
    return torch.where(near, a, b)


def _scaled(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """z = logits / tau (skipping a full pass over the catalog when tau = 1)."""
    return logits if temperature == 1.0 else logits / temperature


def _per_position(values: torch.Tensor, assignment: torch.Tensor) -> torch.Tensor:
    """``values[..., m(k), k]`` for k = 1..K', from a ``(..., M, K')`` tensor: ``(..., K')``."""
    k = torch.arange(assignment.shape[0], device=values.device)
    return values[..., assignment, k]


def _suffix_logsumexp(x: torch.Tensor) -> torch.Tensor:
    """``out[..., j] = logsumexp(x[..., j:])``, by :class:`_SuffixLogSumExp`."""
    return x if x.shape[-1] == 0 else _SuffixLogSumExp.apply(x)


class _SuffixLogSumExp(torch.autograd.Function):
    """y_j = log sum_{i >= j} exp x_i along the last axis, for the short rows of the scores.

    ``torch.logcumsumexp`` costs about 30 ns an element forward and several times that in its
    backward on CPU, which made it a large share of a gradient step with experts. Here the
    forward is a cumulative sum of exp(x - c), c the row maximum, in float64, and the backward is
    dx_i = exp(x_i - c) sum_{j <= i} g_j exp(c - y_j). Both are exact while every suffix keeps a
    mass above 1e-280 relative to the row maximum (exponents then stay within float64 range);
    rows beyond that (logit gaps of over 600) fall back to ``torch.logcumsumexp`` and autograd.
    ``tests/agents/early_stage/test_scores.py`` checks both paths against ``torch.logcumsumexp``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        xd = x.double()
        c = xd.amax(dim=-1, keepdim=True)
        c = torch.where(torch.isfinite(c), c, torch.zeros_like(c))
        e = torch.exp(xd - c)
        suffix = e.flip(-1).cumsum(-1).flip(-1)
        ctx.fallback = bool((suffix < 1e-280).any())
        if ctx.fallback:
            ctx.save_for_backward(x)
            return torch.logcumsumexp(x.flip(-1), dim=-1).flip(-1)
        y = torch.log(suffix) + c
        ctx.save_for_backward(e, c, y)
        return y.to(x.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: torch.Tensor):
        if ctx.fallback:
            (x,) = ctx.saved_tensors
            with torch.enable_grad():
                x = x.detach().requires_grad_()
                y = torch.logcumsumexp(x.flip(-1), dim=-1).flip(-1)
                return torch.autograd.grad(y, x, g)[0]
        e, c, y = ctx.saved_tensors
        return (e * torch.cumsum(g.double() * torch.exp(c - y), dim=-1)).to(g.dtype)


def _expand_experts(index: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``(B, J)`` item ids as ``(B, M, J)``, one row per expert of ``z`` (B, M, A)."""
    return index[:, None, :].expand(-1, z.shape[-2], -1).contiguous()


def pl_log_prob(
    logits: torch.Tensor,
    ranking: torch.Tensor,
    temperature: float = 1.0,
    assignment: torch.Tensor | None = None,
    mass: CatalogMass | None = None,
) -> torch.Tensor:
    """Exact log pi(A^K) of an ordered sample without replacement, ``(B,)`` (the V-PG score).

    Position k's normaliser is logaddexp(T_{m(k)}, logsumexp_{j >= k} z_{m(k)}(a_j)), T the
    logsumexp over the items outside the candidate set: O(M |A|) once, then O(M K).
    """
    z = _scaled(logits, temperature)
    if assignment is None:
        outside, chosen = _total_and_pick(z, ranking, ranking, mass)  # (B,), (B, K)
        return (chosen - torch.logaddexp(outside[:, None], _suffix_logsumexp(chosen))).sum(-1)
    index = _expand_experts(ranking, z)
    outside, z_rank = _total_and_pick(z, index, index, mass)  # (B, M), (B, M, K): every expert's logit of every pick
    normaliser = torch.logaddexp(outside[:, assignment], _per_position(_suffix_logsumexp(z_rank), assignment))
    return (_per_position(z_rank, assignment) - normaliser).sum(-1)


def pl_log_prob_swr(
    logits: torch.Tensor,
    ranking: torch.Tensor,
    temperature: float = 1.0,
    assignment: torch.Tensor | None = None,
    mass: CatalogMass | None = None,
) -> torch.Tensor:
    """The sampling-with-replacement score, sum_k log softmax_{m(k)}(a_k) over all items, ``(B,)`` (V-PG-SwR)."""
    z = _scaled(logits, temperature)
    if assignment is None:
        total, chosen = _total_and_pick(z, ranking, mass=mass)
        return chosen.sum(-1) - ranking.shape[-1] * total
    total, z_rank = _total_and_pick(z, _expand_experts(ranking, z), mass=mass)
    return _per_position(z_rank, assignment).sum(-1) - total[:, assignment].sum(-1)


def ca_log_marginal_swr(
    logits: torch.Tensor,
    target: torch.Tensor,
    n_candidates: int,
    temperature: float = 1.0,
    assignment: torch.Tensor | None = None,
    mass: CatalogMass | None = None,
) -> torch.Tensor:
    """The CA-PG-SwR score logsumexp_k (z_{m(k)}(a) - A_{m(k)}), ``(B, L)`` (App. D.2).

    Positions of one expert share the term, so it is logsumexp_m (log n_m + z_m(a) - A_m), n_m
    the number of positions expert m fills: O(M L). With one model, log K + log softmax(a).
    """
    z = _scaled(logits, temperature)
    if assignment is None:
        total, t = _total_and_pick(z, target, mass=mass)
        return t - total[:, None] + math.log(n_candidates)
    counts = torch.bincount(assignment, minlength=z.shape[-2]).to(z.dtype)
    total, t = _total_and_pick(z, _expand_experts(target, z), mass=mass)  # (B, M), (B, M, L)
    return torch.logsumexp(t - total[..., None] + torch.log(counts)[:, None], dim=-2)


def greedy_prefix_without(
    logits: torch.Tensor, target: torch.Tensor, n_candidates: int, assignment: torch.Tensor | None = None
) -> torch.Tensor:
    """A-bar^{K-1} of Eq. 8 for every target: the greedy ranking's first K-1 items once the target is removed.

    The core function :func:`~twostage_gym.core.plackett_luce.greedy_without`, run in numpy on
    the detached logits: it needs no gradient, and numpy's float32 ``argmax`` passes are several
    times faster than torch's ``argmax`` or ``topk`` on CPU.

    Returns:
        int64 ``(B, L, K-1)``.
    """
    asg = None if assignment is None else assignment.cpu().numpy()
    z = logits.detach().cpu().numpy()
    prefix = greedy_without(z, target.cpu().numpy(), n_candidates - 1, asg)
    return torch.as_tensor(prefix, device=logits.device)


def ca_log_marginal(
    logits: torch.Tensor,
    target: torch.Tensor,
    n_candidates: int,
    temperature: float = 1.0,
    assignment: torch.Tensor | None = None,
    mass: CatalogMass | None = None,
) -> torch.Tensor:
    """log P(a_l in A^K) by Eq. 8 (App. D.1), ``(B, L)``: the CA-PG score.

    P(a picked at k) ~ exp(z_{m(k)}(a) - log sum_{a' not in A-bar^{k-1}} exp z_{m(k)}(a')) with the
    k-1 earlier picks replaced by A-bar^{k-1} (:func:`greedy_prefix_without`); then
    log P(a in A^K) = log1mexp(sum_k log1mexp(log P(a picked at k))).

    Each target has its own prefix. One pass over the catalog gives T_E, the logsumexp over the
    items outside the union E of all prefixes; the target's mass outside its own prefix is T_E
    plus the few items of E not in it. A P(a picked at k) that rounds to 1 is held just below
    it (one unit of the float precision), where the exact gradient through log1mexp is finite
    but its chain in log space would make 0 * inf; the score moves by less than that unit.
    """
    z = _scaled(logits, temperature)
    K = n_candidates
    B, L = target.shape
    prefix = greedy_prefix_without(z, target, K, assignment)  # (B, L, K-1)
    union = prefix.reshape(B, -1)  # E, with repeats: (B, J), J = L (K-1)
    with torch.no_grad():
        # Count each item of E once (its first occurrence), and only for targets whose prefix lacks it.
        first = ~torch.tril(union[:, :, None] == union[:, None, :], diagonal=-1).any(-1)  # (B, J)
        in_own = (union[:, None, :, None] == prefix[:, :, None, :]).any(-1)  # (B, L, J)
        extra = first[:, None, :] & ~in_own
    items = torch.cat([target, union], dim=-1)
    if assignment is None:
        outside, picked = _total_and_pick(z, items, union, mass)  # (B,), (B, L + J)
        t = picked[:, :L, None]  # (B, L, 1)
        picked_union = picked[:, None, L:]  # (B, 1, J)
        rest = torch.where(extra, picked_union, -math.inf)
        free = torch.logsumexp(torch.cat([outside[:, None, None].expand(B, L, 1), rest], dim=-1), dim=-1)
        prefix_logits = picked[:, L:].reshape(B, L, K - 1)
        free_k = free[..., None].expand(B, L, K)
        suffix = _suffix_logsumexp(prefix_logits)  # (B, L, K-1)
    else:
        M = z.shape[-2]
        outside, picked = _total_and_pick(z, _expand_experts(items, z), _expand_experts(union, z), mass)
        t = picked[:, assignment, :L].transpose(1, 2)  # (B, L, K): z_{m(k)}(a_l)
        rest = torch.where(extra[:, :, None, :], picked[:, None, :, L:], -math.inf)  # (B, L, M, J)
        head = outside[:, None, :, None].expand(B, L, M, 1)
        free = torch.logsumexp(torch.cat([head, rest], dim=-1), dim=-1)  # (B, L, M)
        prefix_logits = picked[..., L:].reshape(B, M, L, K - 1).transpose(1, 2)  # (B, L, M, K-1)
        free_k = free[..., assignment]  # (B, L, K)
        suffix = _per_position(_suffix_logsumexp(prefix_logits), assignment[: K - 1])  # (B, L, K-1)
    # Position k < K still has prefix items k.. to come; position K has only the free mass.
    normaliser = torch.cat([torch.logaddexp(free_k[..., : K - 1], suffix), free_k[..., K - 1 :]], dim=-1)
    log_p = t - normaliser
    below_one = -torch.finfo(z.dtype).eps
    log_not = log1mexp(torch.clamp(log_p, max=below_one)).sum(-1)
    return log1mexp(log_not)
