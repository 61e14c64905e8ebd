"""The topic-item learners' linear algebra against direct inverses: Sherman-Morrison, Woodbury, Eqs. 2-4."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import agents
import twostage_gym  # noqa: F401
from agents.common.linalg import bilinear_width_matrix, inverse_norms, sherman_morrison_update, woodbury_update
from agents.topic_item.base import rank_action
from agents.topic_item.heads import AdditiveGLM, BilinearGLM, LazyInverses, PerUserGLM, sigmoid
from twostage_gym.core import public_info

SMALL = {"n_users": 8, "n_items": 400, "n_topics": 10, "budget_per_slot": 30}


def test_woodbury_equals_the_direct_inverse_and_sequential_rank_one_updates():
    rng = np.random.default_rng(0)
    d = 12
    inv, gram = np.eye(d), np.eye(d)
    sequential = np.eye(d)[None].copy()
    for _ in range(60):
        X = rng.standard_normal((5, d))
        woodbury_update(inv, X)
        gram += X.T @ X
        sherman_morrison_update(sequential, np.zeros(5, dtype=np.int64), X)  # one index: 5 waves
    np.testing.assert_allclose(inv, np.linalg.inv(gram), rtol=0, atol=1e-12)
    np.testing.assert_allclose(sequential[0], inv, rtol=0, atol=1e-12)


def test_woodbury_row_blocks_change_nothing(monkeypatch: pytest.MonkeyPatch):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((5, 40))
    whole = np.eye(40)
    woodbury_update(whole, X)
    import agents.common.linalg as linalg

    monkeypatch.setattr(linalg, "_WOODBURY_BLOCK", 40 * 7)  # blocks of 7 rows, the last one short
    blocked = np.eye(40)
    woodbury_update(blocked, X)
    np.testing.assert_array_equal(blocked, whole)


def test_sherman_morrison_on_a_stack_with_repeated_indices():
    rng = np.random.default_rng(2)
    N, d = 4, 6
    stack = np.broadcast_to(np.eye(d), (N, d, d)).copy()
    grams = stack.copy()
    for _ in range(30):
        idx = rng.integers(0, N, 7)  # repeats within a call are the rule, not the exception
        X, w = rng.standard_normal((7, d)), rng.random(7)
        sherman_morrison_update(stack, idx, X, w)
        for i, x, wi in zip(idx, X, w, strict=True):
            grams[i] += wi * np.outer(x, x)
    np.testing.assert_allclose(stack, np.linalg.inv(grams), rtol=0, atol=1e-12)


def test_inverse_norms_and_the_bilinear_width_matrix_equal_their_formulas():
    rng = np.random.default_rng(3)
    d1, d2 = 3, 5
    A = rng.standard_normal((d1 * d2, d1 * d2))
    W_inv = np.linalg.inv(A @ A.T + np.eye(d1 * d2))
    z = rng.standard_normal(d2)
    X = rng.standard_normal((7, d1))
    K = bilinear_width_matrix(W_inv, z, d1)
    direct = np.array([np.kron(x, z) @ W_inv @ np.kron(x, z) for x in X])
    np.testing.assert_allclose(np.einsum("nd,de,ne->n", X, K, X), direct, rtol=1e-12)
    np.testing.assert_allclose(K, K.T, rtol=1e-12)
    np.testing.assert_allclose(inverse_norms(X, np.eye(d1)), np.linalg.norm(X, axis=1), rtol=1e-12)


def test_lazy_inverses_store_only_entities_with_data():
    rng = np.random.default_rng(4)
    lazy = LazyInverses(10**6, 4)
    grams = {}
    for _ in range(20):
        ids = rng.choice([3, 999_999, 12], size=3)
        C = rng.standard_normal((3, 4))
        lazy.add(ids, C)
        for i, c in zip(ids, C, strict=True):
            grams[i] = grams.get(i, np.eye(4)) + np.outer(c, c)
    assert lazy.used == len(grams) <= 3
    for i, gram in grams.items():
        np.testing.assert_allclose(lazy.matrix(i), np.linalg.inv(gram), rtol=0, atol=1e-12)
    C = rng.standard_normal((2, 4))
    expected = [np.sqrt(C[0] @ np.linalg.inv(grams[12]) @ C[0]), np.linalg.norm(C[1])]  # 5 never had data
    np.testing.assert_allclose(lazy.norms(np.array([12, 5]), C), expected, rtol=1e-12)


def test_glm_ucb_head_keeps_the_inverse_of_each_users_design():
    """Eq. 2 on the env: M_u^{-1} by Sherman-Morrison equals inv(D_u^T D_u + I), D_u the user's served (x, 1)."""
    env = gym.make("TwoStage/TopicItem-v0", hierarchy=False, **SMALL)
    agent = agents.make("glm-ucb", env)
    obs, _ = env.reset(seed=0)
    agent.reset(0)
    rows: dict[int, list[np.ndarray]] = {}
    x = np.concatenate([env.unwrapped.item_features, np.ones((400, 1), dtype=np.float32)], axis=1).astype(float)
    for _ in range(150):
        action = agent.act(obs)
        next_obs, reward, _, _, info = env.step(action)
        agent.update(obs, action, reward, public_info(info))
        rows.setdefault(int(info["user"]), []).extend(x[info["items"]])
        obs = next_obs
    head = agent.item_stage.head
    assert len(rows) == 8
    for user, D in rows.items():
        D = np.array(D)
        np.testing.assert_allclose(head.designs.matrix(user), np.linalg.inv(D.T @ D + np.eye(17)), rtol=0, atol=1e-10)
    # The UCB score is Eq. 2 with those matrices.
    user = int(env.unwrapped.split_observation(obs)["user"])
    C = x[:20]
    M_inv = np.linalg.inv(np.array(rows[user]).T @ np.array(rows[user]) + np.eye(17))
    expected = sigmoid(C @ head.theta[user]) + 0.1 * np.sqrt(np.einsum("nd,de,ne->n", C, M_inv, C))
    np.testing.assert_allclose(agent.item_stage.scores(user, None, np.arange(20)), expected, rtol=1e-10)


def test_bilinear_head_rank_one_updates_equal_the_direct_inverse():
    rng = np.random.default_rng(5)
    d1, d2 = 3, 4
    head = BilinearGLM(d1, d2, lr=1e-3, theta0=np.eye(d1, d2))
    W = np.eye(d1 * d2)
    for _ in range(40):
        X, z, y = rng.standard_normal((5, d1)), rng.standard_normal(d2), rng.integers(0, 2, 5).astype(float)
        head.learn(X, z, y)
        for x in X:
            W += np.outer(np.kron(x, z), np.kron(x, z))
    np.testing.assert_allclose(head.inv, np.linalg.inv(W), rtol=0, atol=1e-10)
    X, z = rng.standard_normal((6, d1)), rng.standard_normal(d2)
    mean, width = head.mean_width(X, z)
    W_inv = np.linalg.inv(W)
    np.testing.assert_allclose(width, [np.sqrt(np.kron(x, z) @ W_inv @ np.kron(x, z)) for x in X], rtol=1e-10)
    np.testing.assert_allclose(mean, sigmoid(X @ head.theta @ z + head.bias), rtol=1e-12)


def test_additive_head_is_eq_3():
    rng = np.random.default_rng(6)
    head = AdditiveGLM(n_users=3, n_arms=50, dim_x=4, dim_z=3, gamma=0.3, lr=1e-2)
    grams_x = {u: np.eye(4) for u in range(3)}
    grams_z = {i: np.eye(3) for i in range(50)}
    for _ in range(30):
        user, arms = int(rng.integers(3)), rng.choice(50, 5, replace=False)
        X, z, y = rng.standard_normal((5, 4)), rng.standard_normal(3), rng.integers(0, 2, 5).astype(float)
        head.learn(user, arms, X, z, y)
        grams_x[user] += X.T @ X
        for i in arms:
            grams_z[i] += np.outer(z, z)
    arms, X, z = np.arange(10), rng.standard_normal((10, 4)), rng.standard_normal(3)
    mean, width = head.mean_width(1, arms, X, z)
    inv_x = np.linalg.inv(grams_x[1])
    expected_width = [
        0.3 * np.sqrt(x @ inv_x @ x) + 0.7 * np.sqrt(z @ np.linalg.inv(grams_z[i]) @ z)
        for i, x in zip(arms, X, strict=True)
    ]
    np.testing.assert_allclose(width, expected_width, rtol=1e-10)
    np.testing.assert_allclose(mean, sigmoid(0.3 * X @ head.theta_x + 0.7 * z @ head.theta_z), rtol=1e-12)


def test_per_user_head_learns_a_users_clicks():
    """One user clicks on direction e_0 only: after training, theta_u ranks e_0 first and its width has shrunk."""
    rng = np.random.default_rng(7)
    head = PerUserGLM(n_users=2, dim=3, lr=0.5)
    for _ in range(200):
        C = np.eye(3)[rng.integers(0, 3, 4)]
        head.learn(0, C, (C[:, 0] == 1).astype(float))
    mean, width = head.mean_width(0, np.eye(3))
    assert mean[0] > 0.8 and mean[1] < 0.2 and mean[2] < 0.2
    assert np.all(width < 0.2)
    np.testing.assert_array_equal(head.theta[1], 0.0)  # the other user learned nothing
    np.testing.assert_allclose(head.mean_width(1, np.eye(3))[1], 1.0)


def test_rank_action_keeps_the_order_and_the_env_tie_rule():
    scores = np.array([0.5, 2.0, 0.5, np.nan, -1e300])
    ranks = rank_action(scores, 8)
    assert ranks.dtype == np.float32 and ranks.shape == (8,)
    assert list(np.argsort(-ranks, kind="stable")[:5]) == [1, 0, 2, 4, 3]  # ties to the lower row; NaN last
    assert ranks[5:].max() < ranks[:5].min()  # padding rows below every live row
    assert ranks.max() == 8.0 and ranks.min() == 1.0


def test_s_n_gblm_ucb_at_the_papers_64_dim_representations():
    """embedding_dim=64 gives a 4,096-dim design, kept by rank-one (Woodbury) updates; W W^{-1} v = v."""
    env = gym.make("TwoStage/TopicItem-v0", hierarchy=False, **SMALL)
    agent = agents.make("s-n-gblm-ucb", env, embedding_dim=64, hidden_dim=32, pretrain_clicks=500, train_steps=5)
    obs, _ = env.reset(seed=0)
    agent.reset(0)
    head = agent.item_stage.head
    assert head.inv.shape == (4096, 4096)
    phis = []
    learn = head.learn

    def recording(X, z, y):
        phis.extend(np.kron(x, z) for x in X)
        learn(X, z, y)

    head.learn = recording
    for _ in range(12):
        action = agent.act(obs)
        next_obs, reward, _, _, info = env.step(action)
        agent.update(obs, action, reward, public_info(info))
        obs = next_obs
    Phi = np.array(phis)
    assert Phi.shape == (60, 4096)
    v = np.random.default_rng(8).standard_normal(4096)
    u = head.inv @ v
    np.testing.assert_allclose(u + Phi.T @ (Phi @ u), v, rtol=0, atol=1e-8)  # (I + Phi^T Phi) W^{-1} v = v
