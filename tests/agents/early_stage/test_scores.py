"""The torch score functions of the ESR policy gradients equal the numpy references of core.plackett_luce."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from agents.early_stage import scores as pg  # noqa: E402
from twostage_gym.core import plackett_luce as pl  # noqa: E402

CASES = [
    # (|A|, K, L, M, temperature)
    (12, 1, 1, 1, 1.0),
    (12, 4, 1, 1, 1.0),
    (12, 4, 3, 1, 0.7),
    (30, 10, 2, 1, 2.0),
    (12, 4, 3, 2, 1.0),
    (15, 6, 2, 3, 0.5),
    (30, 10, 5, 5, 1.0),
    (9, 5, 2, 2, 1.0),  # M does not divide K
]


def instance(n_items, K, L, M, seed):
    rng = np.random.default_rng(seed)
    B = 9
    shape = (B, n_items) if M == 1 else (B, M, n_items)
    logits = rng.normal(size=shape) * 2.0
    ranking = np.stack([rng.permutation(n_items)[:K] for _ in range(B)])
    target = np.stack([rng.permutation(n_items)[:L] for _ in range(B)])
    # Make some targets the most likely item, so that they sit inside their own greedy prefix.
    target[::2, 0] = np.argmax(logits if M == 1 else logits[:, 0], axis=-1)[::2]
    assignment = None if M == 1 else pl.expert_assignment(K, M)
    return logits, ranking, target, assignment


def torch_args(logits, assignment):
    return torch.as_tensor(logits, dtype=torch.float64), None if assignment is None else torch.as_tensor(assignment)


def per_target(logits, target):
    """The numpy references take one target per logits row: repeat the row for each of the L targets."""
    return np.ascontiguousarray(np.broadcast_to(logits[:, None], (logits.shape[0], target.shape[1], *logits.shape[1:])))


@pytest.mark.parametrize(("n_items", "K", "L", "M", "tau"), CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_scores_equal_numpy_reference(n_items, K, L, M, tau, seed):
    logits, ranking, target, assignment = instance(n_items, K, L, M, seed)
    z, asg = torch_args(logits, assignment)
    rank_t, target_t = torch.as_tensor(ranking), torch.as_tensor(target)
    np.testing.assert_allclose(
        pg.pl_log_prob(z, rank_t, tau, asg).numpy(), pl.pl_log_prob(logits, ranking, tau, assignment), atol=1e-10
    )
    np.testing.assert_allclose(
        pg.pl_log_prob_swr(z, rank_t, tau, asg).numpy(),
        pl.pl_log_prob_swr(logits, ranking, tau, assignment),
        atol=1e-10,
    )
    rows = per_target(logits, target)
    np.testing.assert_allclose(
        pg.ca_log_marginal(z, target_t, K, tau, asg).numpy(),
        pl.ca_log_marginal(rows, target, K, tau, assignment),
        atol=1e-10,
    )
    np.testing.assert_allclose(
        pg.ca_log_marginal_swr(z, target_t, K, tau, asg).numpy(),
        pl.ca_log_marginal_swr(rows, target, K, tau, assignment),
        atol=1e-10,
    )


@pytest.mark.parametrize(("n_items", "K", "L", "M", "tau"), CASES)
def test_greedy_prefix_is_greedy_ranking_without_target(n_items, K, L, M, tau):
    logits, _, target, assignment = instance(n_items, K, L, M, 3)
    z, asg = torch_args(logits, assignment)
    prefix = pg.greedy_prefix_without(z, torch.as_tensor(target), K, asg).numpy()
    for b in range(logits.shape[0]):
        for j in range(L):
            masked = logits[b].copy()
            masked[..., target[b, j]] = -np.inf
            expected = pl.greedy_candidates(masked, K, assignment)[: K - 1]
            np.testing.assert_array_equal(prefix[b, j], expected)


def reference_gradient(fn, z, *args):
    """Gradient of sum(fn(...)) with the one-pass catalog backward swapped for plain autograd."""
    original = pg._total_and_pick

    def plain(x, index, exclude=None, mass=None):
        assert mass is None
        kept = x if exclude is None else x.scatter(-1, exclude, -np.inf)
        return torch.logsumexp(kept, dim=-1), x.gather(-1, index)

    pg._total_and_pick = plain
    try:
        x = z.detach().clone().requires_grad_()
        fn(x, *args).sum().backward()
        return x.grad
    finally:
        pg._total_and_pick = original


def score_calls(n_items, K, L, M, tau, seed):
    """float64 logits of an instance and, for each of the four scores, (score function, its other arguments)."""
    logits, ranking, target, assignment = instance(n_items, K, L, M, seed)
    z, asg = torch_args(logits, assignment)
    rank_t, target_t = torch.as_tensor(ranking), torch.as_tensor(target)
    return z, [
        (pg.pl_log_prob, (rank_t, tau, asg)),
        (pg.pl_log_prob_swr, (rank_t, tau, asg)),
        (pg.ca_log_marginal, (target_t, K, tau, asg)),
        (pg.ca_log_marginal_swr, (target_t, K, tau, asg)),
    ]


@pytest.mark.parametrize(("n_items", "K", "L", "M", "tau"), CASES)
def test_gradients_equal_plain_autograd(n_items, K, L, M, tau):
    z, calls = score_calls(n_items, K, L, M, tau, 4)
    for fn, args in calls:
        x = z.detach().clone().requires_grad_()
        fn(x, *args).sum().backward()
        torch.testing.assert_close(x.grad, reference_gradient(fn, z, *args), atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize(("n_items", "K", "L", "M", "tau"), CASES)
def test_scores_with_catalog_mass_computed_ahead_are_the_same(n_items, K, L, M, tau):
    """``mass=catalog_mass(logits / tau)``, computed ahead as the learner does: same values and gradients."""
    z, calls = score_calls(n_items, K, L, M, tau, 6)
    for fn, args in calls:
        plain, ahead = z.detach().clone().requires_grad_(), z.detach().clone().requires_grad_()
        want = fn(plain, *args)
        got = fn(ahead, *args, mass=pg.catalog_mass(ahead.detach() / tau))
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
        want.sum().backward()
        got.sum().backward()
        torch.testing.assert_close(ahead.grad, plain.grad, atol=1e-12, rtol=1e-12)
    fn, args = calls[1]
    with pytest.raises(ValueError, match="mass was computed for logits of shape"):
        fn(z, *args, mass=pg.catalog_mass(z[:3]))


def test_catalog_backward_passes_gradcheck():
    z = torch.randn(4, 3, 9, dtype=torch.float64, requires_grad=True)
    index = torch.randint(0, 9, (4, 3, 5))
    exclude = torch.randint(0, 9, (4, 3, 4))
    assert torch.autograd.gradcheck(lambda x: pg._total_and_pick(x, index), (z,))
    assert torch.autograd.gradcheck(lambda x: pg._total_and_pick(x, index, exclude), (z,))


def test_log1mexp_is_stable_and_has_finite_gradient():
    x = torch.tensor([-1e-8, -0.5, -np.log(2.0), -1.0, -40.0, -np.inf], dtype=torch.float64, requires_grad=True)
    y = pg.log1mexp(x)
    np.testing.assert_allclose(y.detach().numpy(), pl.log1mexp(x.detach().numpy()), rtol=1e-12)
    y.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_top1_score_is_log_softmax_plus_log_k():
    logits, _, target, _ = instance(20, 5, 2, 1, 5)
    z = torch.as_tensor(logits)
    got = pg.ca_log_marginal_swr(z, torch.as_tensor(target), 5)
    expected = torch.log_softmax(z, -1).gather(-1, torch.as_tensor(target)) + np.log(5)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("M", [1, 2])
def test_peaked_logits_stay_exact_and_finite(M):
    """A logit gap of 60: the taken items hold all but e^-60 of the mass.

    Eq. 8's difference form A_k + log(1 - exp(B_k - A_k)) rounds to log 0 there.
    """
    rng = np.random.default_rng(6)
    n_items, K = 20, 5
    logits = rng.normal(size=(4, n_items) if M == 1 else (4, M, n_items))
    logits[..., :K] += 60.0 + np.arange(K)  # items 0..K-1 dominate, in a fixed order
    assignment = None if M == 1 else pl.expert_assignment(K, M)
    ranking = np.tile(np.arange(K)[::-1], (4, 1))
    target = np.tile(np.array([0, 1, 7]), (4, 1))  # two targets inside each other's prefix, one outside
    z, asg = torch_args(logits, assignment)
    np.testing.assert_allclose(
        pg.pl_log_prob(z, torch.as_tensor(ranking), 1.0, asg).numpy(),
        pl.pl_log_prob(logits, ranking, 1.0, assignment),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        pg.ca_log_marginal(z, torch.as_tensor(target), K, 1.0, asg).numpy(),
        pl.ca_log_marginal(per_target(logits, target), target, K, 1.0, assignment),
        rtol=1e-9,
        atol=1e-12,
    )
    for fn, args in (
        (pg.pl_log_prob, (torch.as_tensor(ranking), 1.0, asg)),
        (pg.ca_log_marginal, (torch.as_tensor(target), K, 1.0, asg)),
    ):
        x = z.float().requires_grad_()
        value = fn(x, *args)
        value.sum().backward()
        assert torch.isfinite(value).all() and torch.isfinite(x.grad).all()


def test_whole_catalog_candidate_set():
    """K = |A|: no item is left outside the candidate set, and the last pick has probability 1."""
    logits, ranking, target, _ = instance(6, 6, 2, 1, 7)
    z = torch.as_tensor(logits).requires_grad_()
    got = pg.pl_log_prob(z, torch.as_tensor(ranking))
    np.testing.assert_allclose(got.detach().numpy(), pl.pl_log_prob(logits, ranking), atol=1e-12)
    got.sum().backward()
    assert torch.isfinite(z.grad).all()
    np.testing.assert_allclose(
        pg.ca_log_marginal(z, torch.as_tensor(target), 6).detach().numpy(),
        pl.ca_log_marginal(per_target(logits, target), target, 6),
        atol=1e-12,
    )


@pytest.mark.parametrize("M", [1, 3])
def test_two_tower_logits_and_gradients_equal_plain_autograd(M):
    """The model's one-product forward and backward (``_TwoTowerLogits``) against the two-tower formula."""
    from agents.early_stage.model import TwoTowerESR

    generator = torch.Generator().manual_seed(M)
    model = TwoTowerESR(40, 6, M, 5, generator=generator).double()
    with torch.no_grad():
        model.user_bias.normal_(generator=generator)
    users = torch.randn(9, 6, dtype=torch.float64, generator=generator)
    logits = model(users)
    mu = torch.baddbmm(model.user_bias, users.expand(M, -1, -1), model.user_weight)  # (M, B, h)
    expected = torch.bmm(mu, model.item_embedding).transpose(0, 1)
    torch.testing.assert_close(logits, expected, rtol=1e-12, atol=1e-12)
    assert logits.is_contiguous()
    g = torch.randn(logits.shape, dtype=torch.float64, generator=generator)
    params = list(model.parameters())
    for got, want in zip(torch.autograd.grad(logits, params, g), torch.autograd.grad(expected, params, g), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("M", [1, 3])
def test_logit_bound_bounds_every_logit(M):
    """The learner skips its pass over the logits for the action bounds when this bound is below them."""
    from agents.early_stage.model import TwoTowerESR

    generator = torch.Generator().manual_seed(10 + M)
    model = TwoTowerESR(50, 6, M, 5, init_std=3.0, generator=generator)
    with torch.no_grad():
        model.user_bias.normal_(generator=generator)
    users = torch.randn(20, 6, generator=generator) * 4.0
    with torch.no_grad():
        largest = model(users).abs().max().item()
    bound = model.logit_bound(users)
    assert largest <= bound < 100 * largest
    with torch.no_grad():
        model.item_embedding[0, 0, 3] = float("nan")
    assert not model.logit_bound(users) <= 1e6


def test_suffix_logsumexp_matches_torch_on_both_paths():
    """The float64 cumulative-sum path, and the fallback for suffixes over 600 below the row maximum."""
    rng = np.random.default_rng(8)
    ordinary = rng.normal(size=(6, 3, 7)) * 3.0
    gapped = np.array([[0.0, -700.0, -701.5, -699.0], [2.0, 1.0, 3.0, -1.0]])
    for x in (ordinary, gapped):
        x = torch.as_tensor(x).requires_grad_()
        got = pg._suffix_logsumexp(x)
        want = torch.logcumsumexp(x.flip(-1), dim=-1).flip(-1)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        g = torch.as_tensor(rng.normal(size=x.shape))
        torch.testing.assert_close(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(want, x, g)[0])
        assert torch.autograd.gradcheck(pg._suffix_logsumexp, (x.detach().requires_grad_(),))
