"""The Gaussian Mixture-of-Experts pool learner (Hron et al. 2021, Sec. 4, Eq. 8, App. B.3)."""

from __future__ import annotations

import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import twostage_gym  # noqa: F401  (registers the envs)
from twostage_gym.core.allocation import validate_pools

torch = pytest.importorskip("torch")

from agents.nominators.moe import (  # noqa: E402
    GaussianMoE,
    average_gates,
    evaluate_moe,
    fit_moe,
    learn_pools,
    moe_nll,
    score_items,
    train_moe,
)


def eq8_numpy(log_gates: np.ndarray, predictions: np.ndarray, rewards: np.ndarray, sigma2: float) -> float:
    """Eq. 8, negated, straight from the formula: -(1/B) sum_t log sum_n p exp(-(r - rhat)^2 / (2 sigma^2))."""
    p = np.exp(log_gates)
    return float(-np.mean(np.log(np.sum(p * np.exp(-((rewards[:, None] - predictions) ** 2) / (2 * sigma2)), axis=1))))


@pytest.mark.parametrize("sigma2", [0.01, 0.3, 1.0])
def test_likelihood_is_eq8(sigma2):
    rng = np.random.default_rng(0)
    B, N = 64, 7
    logits = rng.standard_normal((B, N))
    log_gates = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    predictions = rng.uniform(-0.2, 1.2, (B, N))
    rewards = rng.integers(0, 2, B).astype(float)
    ours = moe_nll(*(torch.as_tensor(v) for v in (log_gates, predictions, rewards)), sigma2)
    assert float(ours) == pytest.approx(eq8_numpy(log_gates, predictions, rewards, sigma2), rel=1e-12)


def test_likelihood_with_fixed_pools_is_each_items_own_squared_error():
    # Gates that are 0 outside the item's pool (log p = -inf): only the pool's expert counts.
    rng = np.random.default_rng(1)
    B, N, sigma2 = 50, 4, 0.5
    owner = rng.integers(0, N, B)
    log_gates = np.full((B, N), -np.inf)
    log_gates[np.arange(B), owner] = 0.0
    predictions, rewards = rng.standard_normal((B, N)), rng.standard_normal(B)
    ours = float(moe_nll(*(torch.as_tensor(v) for v in (log_gates, predictions, rewards)), sigma2))
    own = predictions[np.arange(B), owner]
    assert ours == pytest.approx(np.mean((rewards - own) ** 2) / (2 * sigma2), rel=1e-12)


def test_model_is_two_tower_experts_and_a_user_plus_item_gate():
    """App. B.3's architecture, checked against numpy on the model's own parameters."""
    A, d, N, s, e = 12, 9, 3, 4, 2
    model = GaussianMoE(A, d, N, s, e, seed=0).double()
    with torch.no_grad():  # the gate starts at zero; give it values to check
        model.gate_user.normal_(generator=torch.Generator().manual_seed(1))
        model.gate_item.normal_(generator=torch.Generator().manual_seed(2))
    rng = np.random.default_rng(3)
    x, a, r = rng.standard_normal((20, d)), rng.integers(0, A, 20), rng.integers(0, 2, 20).astype(float)
    S, W = model.feature_subsets.numpy(), model.user_maps.detach().numpy()
    E, G, V = (t.detach().numpy() for t in (model.item_embeddings, model.gate_user, model.gate_item))
    # rhat_n(x, a) = <W_n^T x[S_n], e_{n,a}>: the expert sees only its s features.
    expected = np.stack([np.einsum("bs,se,be->b", x[:, S[n]], W[n], E[a, n]) for n in range(N)], axis=1)
    logits = x @ G + V[a]
    expected_log_gates = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    log_gates, predictions = model(torch.as_tensor(x), torch.as_tensor(a))
    np.testing.assert_allclose(predictions.detach().numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(log_gates.detach().numpy(), expected_log_gates, rtol=1e-12)
    loss = moe_nll(log_gates, predictions, torch.as_tensor(r), 0.01)
    assert float(loss.detach()) == pytest.approx(eq8_numpy(expected_log_gates, expected, r, 0.01), rel=1e-10)
    # The catalog pass gives the same numbers for every item at once.
    gates, all_predictions = model.catalog(torch.as_tensor(x))
    np.testing.assert_allclose(all_predictions.detach().numpy()[np.arange(20), :, a], expected, rtol=1e-12)
    np.testing.assert_allclose(gates.detach().numpy()[np.arange(20), :, a], np.exp(expected_log_gates), rtol=1e-12)
    # Features outside an expert's subset change nothing it predicts.
    outside = np.setdiff1d(np.arange(d), S[0])
    x2 = x.copy()
    x2[:, outside] += 5.0
    np.testing.assert_allclose(
        model.expert_predictions(torch.as_tensor(x2), torch.as_tensor(a))[:, 0].detach().numpy(), expected[:, 0]
    )


def planted_instance(seed: int = 0) -> tuple[dict, np.ndarray, np.ndarray]:
    """Four experts, each seeing its own block of 4 features, and 40 items in four planted groups
    whose rewards depend only on the features of one expert: only that expert can predict them."""
    rng = np.random.default_rng(seed)
    N, A, d, s = 4, 40, 16, 4
    subsets = np.arange(d).reshape(N, s)
    planted = rng.permutation(A) % N
    theta = np.zeros((A, d))
    for n in range(N):
        rows = np.flatnonzero(planted == n)
        theta[np.ix_(rows, subsets[n])] = rng.standard_normal((rows.size, s))
    x = rng.standard_normal((20_000, d)).astype(np.float32)
    a = rng.integers(0, A, x.shape[0])
    r = (np.einsum("nd,nd->n", x, theta[a]) + 0.1 * rng.standard_normal(x.shape[0])).astype(np.float32)
    shape = {"n_items": A, "dim": d, "n_experts": N, "nominator_dim": s, "feature_subsets": subsets}
    return shape, planted, (x, a, r)


@pytest.mark.parametrize("seed", [0, 1])
def test_gating_recovers_a_planted_pool_allocation(seed):
    shape, planted, (x, a, r) = planted_instance(seed)
    model = GaussianMoE(embedding_dim=4, seed=seed, **shape)
    train_moe(model, x, a, r, steps=1500, batch_size=1024, optimizer="adam", sigma2=1.0, seed=seed)
    pools = learn_pools(model, x[:2000])
    owner = np.empty(shape["n_items"], dtype=np.int64)
    for n, pool in enumerate(pools):
        owner[pool] = n
    np.testing.assert_array_equal(owner, planted)  # every item (seeds 0-5 all recovered all 40)
    # The gating does the recovering: the planted expert's average gate is near 1 for every item
    # (at least 0.995 over seeds 0-5).
    weights = average_gates(model, x[:2000])
    assert weights[planted, np.arange(shape["n_items"])].min() > 0.95


def test_distilled_pools_are_valid_and_plug_into_the_envs():
    shape, _, (x, a, r) = planted_instance(0)
    model = GaussianMoE(embedding_dim=4, seed=0, **shape)
    train_moe(model, x[:4000], a[:4000], r[:4000], steps=100, batch_size=1024, sigma2=1.0)
    A, N = shape["n_items"], shape["n_experts"]
    pools = learn_pools(model, x[:500])
    assert json.loads(json.dumps(pools)) == pools  # plain lists of ints: a RunConfig kwarg
    assert [np.asarray(p).tolist() for p in validate_pools(pools, A, N)] == pools
    assert sorted(i for p in pools for i in p) == list(range(A))  # argmax: a partition
    wide = learn_pools(model, x[:500], rule="threshold", threshold=0.2)
    validate_pools(wide, A, N)
    assert all(set(p) <= set(w) for p, w in zip(pools, wide, strict=True))  # argmax owners always kept
    env = gym.make("TwoStage/Nominators-v0", n_items=A, n_nominators=N, dim=8, misspecification=2, pools=pools)
    env.reset(seed=0)
    assert [p.tolist() for p in env.unwrapped.pools] == pools
    assert env.action_space.nvec.tolist() == [len(p) for p in pools] + [N]
    _, _, _, _, info = env.step(env.action_space.sample())
    assert info["regret"] == info["nominator_regret"] + info["ranker_regret"]
    pytest.importorskip("pettingzoo")
    from twostage_gym.multiagent import nominators_v0

    par = nominators_v0.parallel_env(n_items=A, n_nominators=N, dim=8, misspecification=2, pools=wide)
    par.reset(seed=0)
    assert [p.tolist() for p in par.pools] == wide


def test_an_expert_the_gate_never_picks_still_gets_a_pool():
    model = GaussianMoE(n_items=10, dim=3, n_experts=4, nominator_dim=2, embedding_dim=2)
    with torch.no_grad():  # every item prefers expert 0, then 1, then 2, then 3
        model.gate_item.copy_(torch.tensor([3.0, 2.0, 1.0, 0.0]).expand(10, 4))
        model.gate_item[7, 2] = 2.5  # item 7 is expert 2's favourite
    x = np.zeros((5, 3))
    pools = learn_pools(model, x)
    assert all(pools) and sorted(i for p in pools for i in p) == list(range(10))
    assert pools[2] == [7] and len(pools[0]) == 7
    wide = learn_pools(model, x, rule="threshold", threshold=0.9)  # nothing reaches 0.9: argmax + fill
    assert all(wide) and 7 in wide[2] and 7 in wide[0]


def test_random_pool_baseline_keeps_its_pools():
    rng = np.random.default_rng(0)
    x, a, r = rng.standard_normal((300, 5)), rng.integers(0, 12, 300), rng.integers(0, 2, 300)
    fit = fit_moe(x, a, r, n_items=12, n_experts=3, nominator_dim=2, embedding_dim=2, gating="random", steps=5)
    assert fit.hyperparameters["optimizer"] == "rmsprop" and fit.hyperparameters["sigma2"] == 1.0  # App. B.3
    pools = fit.model.pools
    assert [len(p) for p in pools] == [4, 4, 4]  # App. B's random allocation
    assert learn_pools(fit.model, x) == pools  # one-hot gates distill to themselves
    # Hard-pool scoring with the model's own pools is its mixture mean.
    np.testing.assert_allclose(score_items(fit.model, x[:7], pools=pools), score_items(fit.model, x[:7]))
    learned = fit_moe(x, a, r, n_items=12, n_experts=3, nominator_dim=2, embedding_dim=2, steps=5)
    assert learned.hyperparameters["optimizer"] == "adam" and learned.hyperparameters["sigma2"] == 0.01
    assert learned.model.gating == "user+item" and fit.model.gating == "random"


def test_same_seed_same_model_and_save_load(tmp_path):
    rng = np.random.default_rng(0)
    x, a, r = rng.standard_normal((500, 6)), rng.integers(0, 10, 500), rng.integers(0, 2, 500)
    kwargs = {"n_items": 10, "n_experts": 3, "nominator_dim": 3, "embedding_dim": 2, "steps": 20, "batch_size": 64}
    one, two = fit_moe(x, a, r, seed=4, **kwargs), fit_moe(x, a, r, seed=4, **kwargs)
    assert one.losses == two.losses
    for p, q in zip(one.model.parameters(), two.model.parameters(), strict=True):
        assert torch.equal(p, q)
    assert fit_moe(x, a, r, seed=5, **kwargs).losses != one.losses
    path = tmp_path / "moe.pt"
    one.model.save(path)
    loaded = GaussianMoE.load(path)
    np.testing.assert_array_equal(score_items(loaded, x[:9]), score_items(one.model, x[:9]))


def test_evaluation_scores_the_top_k_with_precision_and_recall():
    model = GaussianMoE(n_items=6, dim=2, n_experts=2, nominator_dim=2, embedding_dim=1, pools=[[0, 1, 2], [3, 4, 5]])
    with torch.no_grad():
        model.user_maps.fill_(1.0)  # rhat = (x0 + x1) * e_a: items ranked by e_a for x0 + x1 > 0
        model.item_embeddings.copy_(torch.tensor([6.0, 5, 4, 3, 2, 1]).reshape(6, 1, 1).expand(6, 2, 1))
    x = np.ones((2, 2))
    labels = np.array([[1, 0, 1, 0, 0, 1], [0, 0, 0, 0, 0, 0]], dtype=bool)
    result = evaluate_moe(model, x, labels, k=2)  # top 2 = items 0, 1 for both users
    assert result == {"precision": pytest.approx((0.5 + 0) / 2), "recall": pytest.approx((1 / 3 + 0) / 2)}


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: GaussianMoE(n_items=3, dim=4, n_experts=4, nominator_dim=2, embedding_dim=2), "n_experts"),
        (lambda: GaussianMoE(n_items=5, dim=4, n_experts=2, nominator_dim=5, embedding_dim=2), "nominator_dim"),
        (lambda: GaussianMoE(n_items=5, dim=4, n_experts=2, nominator_dim=2, embedding_dim=0), "embedding_dim"),
        (
            lambda: GaussianMoE(n_items=5, dim=4, n_experts=2, nominator_dim=2, embedding_dim=2, pools=[[0, 1], [2]]),
            "pools must cover every item",
        ),
        (
            lambda: GaussianMoE(n_items=3, dim=4, n_experts=2, nominator_dim=2, embedding_dim=2, pools=[[0, 1, 2], []]),
            "pools\\[1\\] must be a non-empty",
        ),
        (
            lambda: GaussianMoE(
                n_items=5, dim=4, n_experts=2, nominator_dim=2, embedding_dim=2, pools=[[0, 1, 2, 3, 4]]
            ),
            "n_nominators=2",
        ),
    ],
)
def test_bad_model_arguments_name_the_argument(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_bad_training_input_names_the_argument():
    rng = np.random.default_rng(0)
    x, a, r = rng.standard_normal((40, 5)), rng.integers(0, 6, 40), rng.integers(0, 2, 40)
    fit = {"n_items": 6, "n_experts": 2, "nominator_dim": 2, "embedding_dim": 2, "steps": 1}
    cases = [
        ({"n_experts": 7}, "n_experts"),
        ({"sigma2": 0.0}, "sigma2"),
        ({"sigma2": -1.0}, "sigma2"),
        ({"lr": 0.0}, "lr"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"gating": "oracle"}, "gating"),
        ({"pools": [[0, 1, 2], [3, 4, 5]]}, "pools fix the gating"),
        ({"gating": "random", "pools": [[0, 1, 2], [3, 4]]}, "pools must cover every item"),
        ({"steps": 0}, "steps"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            fit_moe(x, a, r, **{**fit, **kwargs})
    for args, match in [
        ((x[:, :, None], a, r), "contexts must be a non-empty 2-D"),
        ((x, a[:-1], r), "items must have shape"),
        ((x, a, r[:, None]), "rewards must have shape"),
        ((x, a + 6, r), "items has ids outside"),
    ]:
        with pytest.raises(ValueError, match=match):
            fit_moe(*args, **fit)
    with pytest.raises(ValueError, match="sigma2"):
        moe_nll(torch.zeros(2, 2), torch.zeros(2, 2), torch.zeros(2), 0.0)
    model = GaussianMoE(n_items=6, dim=5, n_experts=2, nominator_dim=2, embedding_dim=2)
    with pytest.raises(ValueError, match="contexts must have d=5"):
        train_moe(model, x[:, :4], a, r, steps=1)
    with pytest.raises(ValueError, match="contexts must be a non-empty \\(users, d=5\\)"):
        learn_pools(model, x[:, :3])
    with pytest.raises(ValueError, match="rule"):
        learn_pools(model, x, rule="vote")
    with pytest.raises(ValueError, match="threshold"):
        learn_pools(model, x, rule="threshold")
    with pytest.raises(ValueError, match="threshold"):
        learn_pools(model, x, threshold=0.5)
    with pytest.raises(ValueError, match="labels must be a \\(users, n_items=6\\)"):
        evaluate_moe(model, x, np.zeros((40, 5), bool))
    with pytest.raises(ValueError, match="k must be"):
        evaluate_moe(model, x, np.zeros((40, 6), bool), k=7)


def test_torch_is_imported_only_by_the_moe_module():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import agents, agents.nominators, agents.bench.cli, twostage_gym.datasets.multilabel\n"
        "try:\n"
        "    import agents.nominators.moe\n"
        "except ImportError as err:\n"
        "    assert 'pip install' in str(err), err\n"
        "else:\n"
        "    raise AssertionError('agents.nominators.moe imported without torch')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_perf_case_reports_epoch_times_and_the_grid_estimate(capsys):
    from agents.bench.cli import main

    assert main(["perf", "--quick", "--json", "--case", "moe_training"]) == 0
    case = json.loads(capsys.readouterr().out)["cases"]["moe_training"]
    for size in ("|A|=100", "|A|=10000"):
        assert case[size]["step_s"] > 0 and case[size]["epoch_s"] > case[size]["step_s"]
    assert len(case["step_s"]) == 2 * 3 * 3  # N x d_e x gating
    # The full grid has 72 cells x 3 gatings x 3 seeds of 50,000 steps: far more than the reduced one.
    assert case["hron2021-fig5-full"] > 100 * case["hron2021-fig5"] > 0
