"""Exact checks of Kiyohara et al. (2026), Theorems 3.1 and 3.3, on tiny instances by enumeration.

One context, a tabular Plackett-Luce ESR (the parameters are the |A| logits), L = 1, and every
ordered candidate set enumerated. The LSR's choice probabilities given a set come from
``LateStageRanker.position_marginals`` (exact). Expectations are sums over (candidate set,
served item) pairs, so the identities hold to rounding. CA-PG uses the *exact* marginal
P(a in A^K) (a sum over the enumerated sets), for which Theorem 3.1 is an identity; Eq. 8 is
an approximation of it.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from agents.early_stage.scores import pl_log_prob  # noqa: E402
from twostage_gym.core.late_stage import LateStageRanker  # noqa: E402
from twostage_gym.core.plackett_luce import enumerate_rankings  # noqa: E402

LSRS = ("optimal", "noisy", "uniform", "anti-optimal")


class Tiny:
    """Every ordered candidate set of a |A|-item catalog and the LSR's choice among its K items."""

    def __init__(self, q: np.ndarray, n_candidates: int, lsr: str) -> None:
        self.q = torch.as_tensor(q, dtype=torch.float64)
        n_items = len(q)
        self.sets = torch.as_tensor(enumerate_rankings(n_items, n_candidates))  # (T, K)
        marginals = LateStageRanker(lsr).position_marginals(q[self.sets.numpy()], 1)[:, 0, :]  # (T, K)
        # lsr[t, a] = pi_LSR(a | set t); member[t, a] = 1{a in set t}.
        self.lsr = torch.zeros(len(self.sets), n_items, dtype=torch.float64).scatter_(
            1, self.sets, torch.as_tensor(marginals)
        )
        self.member = torch.zeros_like(self.lsr).scatter_(1, self.sets, 1.0)

    def log_probs(self, theta: torch.Tensor) -> torch.Tensor:
        """log pi_ESR(ordered set) of every enumerated set, by the V-PG score function."""
        return pl_log_prob(theta.expand(len(self.sets), -1), self.sets)

    def marginal(self, theta: torch.Tensor) -> torch.Tensor:
        """The exact P(a in A^K) of every item."""
        return torch.exp(self.log_probs(theta)) @ self.member

    def value(self, theta: torch.Tensor) -> torch.Tensor:
        """V = E[r] = sum_sets pi(set) sum_a pi_LSR(a | set) q(a)."""
        return torch.exp(self.log_probs(theta)) @ (self.lsr @ self.q)

    def weights(self, theta: torch.Tensor) -> torch.Tensor:
        """pi^(l)(a) q(a): the probability that a is served times its reward (no gradient)."""
        with torch.no_grad():
            return (torch.exp(self.log_probs(theta)) @ self.lsr) * self.q

    # -- expected gradients ------------------------------------------------------------------------
    def v_pg(self, theta: torch.Tensor) -> torch.Tensor:
        """E[grad log pi(A^K) r] (Eq. 4), by the score function."""
        theta = theta.clone().requires_grad_()
        logp = self.log_probs(theta)
        with torch.no_grad():
            coef = torch.exp(logp) * (self.lsr @ self.q)
        return torch.autograd.grad((coef * logp).sum(), theta)[0]

    def ca_pg(self, theta: torch.Tensor) -> torch.Tensor:
        """E[grad log P(a_l in A^K) r_l] (Eq. 5) with the exact marginal."""
        theta = theta.clone().requires_grad_()
        return torch.autograd.grad((self.weights(theta) * torch.log(self.marginal(theta))).sum(), theta)[0]

    def residual(self, theta: torch.Tensor) -> torch.Tensor:
        """grad C(pi) of Theorem 3.1."""
        theta = theta.clone().requires_grad_()
        logp = self.log_probs(theta)
        log_marg = torch.log(torch.exp(logp) @ self.member)
        with torch.no_grad():
            cond = torch.exp(logp)[:, None] * self.member / torch.exp(log_marg)  # pi(set | S(a))
            served = (cond * self.lsr).sum(0)  # pi^(l)(a | S(a))
            # (spade) = pi_LSR(a | set) / pi^(l)(a | S(a)); items never served carry no weight.
            safe = torch.where(served > 0, served, 1.0)
            coef = torch.where(served > 0, cond * self.lsr / safe, 0.0) * self.weights(theta)
        # grad log pi(set | S(a)) = grad log pi(set) - grad log P(a in A^K)
        return torch.autograd.grad((coef * (logp[:, None] - log_marg[None, :])).sum(), theta)[0]

    # -- per-sample variances ----------------------------------------------------------------------
    def variances(self, theta: torch.Tensor) -> tuple[float, float]:
        """Trace of the covariance of one sample's V-PG and CA-PG gradient (reward r = q(a))."""
        jac_set = torch.autograd.functional.jacobian(self.log_probs, theta)  # (T, |A|)
        jac_item = torch.autograd.functional.jacobian(lambda t: torch.log(self.marginal(t)), theta)  # (|A|, |A|)
        joint = torch.exp(self.log_probs(theta))[:, None] * self.lsr  # P(set, served item)
        q, q2 = self.q, self.q**2
        mean_v = (joint @ q) @ jac_set
        var_v = (joint @ q2) @ (jac_set**2).sum(1) - mean_v @ mean_v
        mean_ca = (joint.sum(0) * q) @ jac_item
        var_ca = (joint.sum(0) * q2) @ (jac_item**2).sum(1) - mean_ca @ mean_ca
        return float(var_v), float(var_ca)


@pytest.mark.parametrize("lsr", LSRS)
@pytest.mark.parametrize("n_candidates", [2, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_theorem_3_1_vpg_is_capg_plus_residual(lsr, n_candidates, seed):
    rng = np.random.default_rng(seed)
    tiny = Tiny(rng.uniform(1.0, 5.0, 6), n_candidates, lsr)
    theta = torch.as_tensor(rng.normal(size=6))
    v_pg, ca_pg, residual = tiny.v_pg(theta), tiny.ca_pg(theta), tiny.residual(theta)
    # The score-function V-PG is the true gradient of the policy value ...
    leaf = theta.clone().requires_grad_()
    exact = torch.autograd.grad(tiny.value(leaf), leaf)[0]
    torch.testing.assert_close(v_pg, exact, atol=1e-12, rtol=0)
    # ... and V-PG = CA-PG + grad C(pi).
    torch.testing.assert_close(v_pg, ca_pg + residual, atol=1e-12, rtol=0)
    assert torch.linalg.norm(residual) > 1e-3 or lsr == "uniform"
    if lsr == "uniform":
        # pi_LSR(a | set) = 1/K whatever the set: the residual vanishes and CA-PG is unbiased.
        torch.testing.assert_close(residual, torch.zeros_like(residual), atol=1e-12, rtol=0)


@pytest.mark.parametrize("n_items", [6, 8])
@pytest.mark.parametrize("seed", [0, 1])
def test_vpg_variance_exceeds_capg_and_gap_grows_with_k(n_items, seed):
    rng = np.random.default_rng(seed)
    q = rng.uniform(1.0, 5.0, n_items)
    theta = torch.as_tensor(rng.normal(size=n_items))
    gaps = []
    for K in (1, 2, 3):
        var_v, var_ca = Tiny(q, K, "optimal").variances(theta)
        gaps.append(var_v - var_ca)
        if K > 1:
            assert var_v > 1.5 * var_ca
    # K = 1: a candidate set is one item, so both gradients coincide.
    assert abs(gaps[0]) < 1e-9
    assert 0 < gaps[1] < gaps[2]


def ascend_ca_pg(tiny: Tiny, theta: torch.Tensor, steps: int = 600, lr: float = 1.0) -> np.ndarray:
    """Exact expected CA-PG gradient ascent; returns the final P(a in A^K)."""
    for _ in range(steps):
        theta = theta + lr * tiny.ca_pg(theta)
    with torch.no_grad():
        return tiny.marginal(theta).numpy()


def optimally_partitioned(marginal: np.ndarray, q: np.ndarray, K: int) -> bool:
    """Definition 3.2: every true top-K item is likelier to be retrieved than every other item."""
    order = np.argsort(-q)
    return bool(marginal[order[:K]].min() > marginal[order[K:]].max())


Q = np.array([1.3, 4.0, 2.2, 3.1, 1.7, 2.6])  # q > 0, as Theorem 3.3 assumes


@pytest.mark.parametrize("lsr", LSRS)
@pytest.mark.parametrize("n_candidates", [2, 3])
def test_theorem_3_3_capg_partitions_unless_lsr_is_anti_optimal(lsr, n_candidates):
    marginal = ascend_ca_pg(Tiny(Q, n_candidates, lsr), torch.zeros(len(Q), dtype=torch.float64))
    assert optimally_partitioned(marginal, Q, n_candidates) == (lsr != "anti-optimal")


@pytest.mark.parametrize("lsr", LSRS)
def test_theorem_3_3_from_a_reversed_start(lsr):
    """K = 2, the ESR starting with the worst items likeliest: CA-PG reorders it, except under the anti-optimal LSR."""
    tiny = Tiny(Q, 2, lsr)
    theta = torch.as_tensor(-np.argsort(np.argsort(Q)), dtype=torch.float64)
    with torch.no_grad():
        assert not optimally_partitioned(tiny.marginal(theta).numpy(), Q, 2)
    marginal = ascend_ca_pg(tiny, theta, steps=1000)
    assert optimally_partitioned(marginal, Q, 2) == (lsr != "anti-optimal")
