"""TwoStage/TreeRetrieval-v0: beam search through the env, Prop. 4.1 on counts, the oracle, bad input."""

from __future__ import annotations

from fractions import Fraction

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence

import twostage_gym  # noqa: F401  (registers the ids)
from twostage_gym.core.error_decomposition import two_stage_errors
from twostage_gym.core.tree import beam_search
from twostage_gym.envs.tree_retrieval_world import relevance

ENV_ID = "TwoStage/TreeRetrieval-v0"


def brute_force_beams(tree, node_scores: np.ndarray, k: int) -> list[list[int]]:
    """Sec. 3.2.1's beam search written plainly, one level at a time (the reference)."""
    beam, out = [0], []
    for _ in range(tree.n_levels):
        cand = []
        for v in beam:
            kids = [int(c) for c in tree.children[v] if c >= 0]
            cand.extend(kids if kids else [v])  # D(v) = {v} for a leaf
        # Sort by decreasing score; Python's sort is stable, so ties keep candidate order.
        beam = sorted(cand, key=lambda v: -float(node_scores[v]))[:k]
        out.append(beam)
    return out


def subtree_max(tree, item_values: np.ndarray) -> np.ndarray:
    """(n, n_nodes): the max of each row's item values over each node's subtree."""
    ordered = item_values[:, tree.item_order]
    return np.maximum.reduceat(ordered, tree.node_start, axis=1)


@pytest.mark.parametrize("integer_scores", [False, True])
def test_levelwise_descent_is_beam_search(integer_scores):
    """Node scores fed level by level give the beams of core.tree.beam_search and of the plain reference."""
    env = gym.make(ENV_ID, n_items=60, branches=3, beam=4)
    obs, _ = env.reset(seed=1)
    tree = env.unwrapped.tree
    rng = np.random.default_rng(0)
    for _ in range(5):
        # Integer scores make ties common: the tie rule must agree too.
        s = rng.integers(0, 3, tree.n_nodes) if integer_scores else rng.standard_normal(tree.n_nodes)
        s = s.astype(np.float32)
        for level in range(tree.n_levels):
            assert int(obs["level"]) == level
            nodes = obs["candidate_nodes"]
            np.testing.assert_array_equal(obs["mask"], (nodes >= 0).astype(np.int8))
            action = np.where(nodes >= 0, s[np.maximum(nodes, 0)], 123.0).astype(np.float32)  # padding ignored
            obs, _, _, _, info = env.step(action)
        assert info["query_complete"]
        ref = beam_search(tree, lambda x, nodes, s=s: s[nodes], np.zeros((1, 1)), 4)
        np.testing.assert_array_equal(info["beams"], np.stack(ref.levels, axis=1)[0])
        plain = brute_force_beams(tree, s, 4)
        assert [row[row >= 0].tolist() for row in info["beams"]] == plain
        np.testing.assert_array_equal(info["retrieved"], tree.leaf_item[plain[-1]])


def test_scores_mode_equals_levelwise():
    """One scores step and L levelwise steps with the same node scores retrieve the same beams."""
    lw = gym.make(ENV_ID, n_items=100, beam=5)
    sc = gym.make(ENV_ID, n_items=100, beam=5, mode="scores")
    obs_lw, _ = lw.reset(seed=2)
    obs_sc, _ = sc.reset(seed=2)
    tree = lw.unwrapped.tree
    assert sc.action_space.shape == (tree.n_nodes,)
    rng = np.random.default_rng(1)
    for _ in range(4):
        np.testing.assert_array_equal(obs_lw["context"], obs_sc["context"])  # the same query stream
        s = rng.standard_normal(tree.n_nodes).astype(np.float32)
        for _ in range(tree.n_levels):
            nodes = obs_lw["candidate_nodes"]
            obs_lw, r_lw, _, _, info_lw = lw.step(np.where(nodes >= 0, s[np.maximum(nodes, 0)], 0).astype(np.float32))
        obs_sc, r_sc, _, _, info_sc = sc.step(s)
        assert data_equivalence(info_lw, info_sc, exact=True) and r_lw == r_sc


def test_oracle_scorer_retrieves_the_argmax_target_at_tau_zero():
    """Scores = the max of q over each node's subtree: the argmax is always retrieved and served."""
    env = gym.make(ENV_ID, tau=0.0, mode="scores")
    obs, _ = env.reset(seed=3)
    world = env.unwrapped.world
    for _ in range(50):
        q = relevance(obs["context"][None], world.item_embeddings)
        obs, reward, _, _, info = env.step(subtree_max(world.tree, q)[0].astype(np.float32))
        assert info["retrieval_hit"] and info["ranker_hit"] and reward == 1.0
        assert info["target"] == info["optimal_item"] == int(q.argmax())
        assert info["regret"] == 0.0 and info["expected_reward"] == info["optimal_expected_reward"] == 1.0


def test_oracle_scorer_has_zero_regret_but_misses_sampled_targets():
    """tau > 0: the oracle pair serves the most likely item (zero regret) but y ~ softmax is often another."""
    env = gym.make(ENV_ID, mode="scores")
    obs, _ = env.reset(seed=4)
    world = env.unwrapped.world
    hits = []
    for _ in range(300):
        q = relevance(obs["context"][None], world.item_embeddings)
        obs, _, _, _, info = env.step(subtree_max(world.tree, q)[0].astype(np.float32))
        assert info["served"] == info["optimal_item"] and info["regret"] == 0.0
        hits.append(info["ranker_hit"])
    # P(y = argmax q) is 0.13-0.18 at the default tau = 0.03 (worlds 0-4, see TAU); 300 queries
    # give a standard error of about 0.02.
    assert 0.1 < np.mean(hits) < 0.3


def _run_counts(env: gym.Env, steps: int, scorer) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    obs, _ = env.reset(seed=5)
    retrieval, ranker, infos = [], [], []
    for _ in range(steps):
        obs, reward, _, _, info = env.step(scorer(obs))
        if info["query_complete"]:
            retrieval.append(info["retrieval_hit"])
            ranker.append(info["ranker_hit"])
            infos.append(info)
            assert reward == float(info["ranker_hit"])
        else:
            assert reward == 0.0
    return np.array(retrieval), np.array(ranker), infos


def test_prop_4_1_holds_exactly_on_counts():
    """P_err = P_retrieve + P_rank(K)(1 - P_retrieve), on the integer counts of a levelwise run."""
    env = gym.make(ENV_ID, n_items=256, beam=8, ranker_noise=0.3)
    rng = np.random.default_rng(0)

    def noisy_two_tower(obs):  # <x, mean embedding> plus noise: both stages err sometimes
        s = obs["candidate_features"] @ obs["context"] + 0.3 * rng.standard_normal(obs["mask"].shape)
        return s.astype(np.float32)

    retrieval, ranker, _ = _run_counts(env, 4 * 400, noisy_two_tower)
    n, n_r, n_h = retrieval.size, int(retrieval.sum()), int(ranker.sum())
    assert n == 400 and 0 < n_h < n_r < n  # both error terms are non-zero: the identity says something
    assert not (ranker & ~retrieval).any()  # the ranker serves from B(x)
    p_err, p_ret, p_rank = Fraction(n - n_h, n), Fraction(n - n_r, n), Fraction(n_r - n_h, n_r)
    assert p_err == p_ret + p_rank * (1 - p_ret)
    errors = two_stage_errors(retrieval, ranker)
    assert (errors.p_err, errors.p_retrieve, errors.p_rank) == (p_err, p_ret, p_rank) and errors.identity_holds()


def test_two_stage_errors_refuses_bad_counts():
    with pytest.raises(ValueError, match="ranker_hits"):
        two_stage_errors(np.array([False, True]), np.array([True, False]))
    with pytest.raises(ValueError, match="retrieval_hits"):
        two_stage_errors(np.array([0, 1]), np.array([False, False]))


def test_regret_decomposes_and_stays_in_range():
    env = gym.make(ENV_ID, mode="scores", n_items=300, beam=10, ranker_noise=0.5)
    env.reset(seed=6)
    env.action_space.seed(0)
    for _ in range(100):
        *_, info = env.step(env.action_space.sample())
        assert info["regret"] == info["nominator_regret"] + info["ranker_regret"]
        assert info["nominator_regret"] >= 0 and info["ranker_regret"] >= 0
        assert 0 <= info["expected_reward"] <= info["optimal_expected_reward"] <= 1
        assert info["recall@K"] == float(info["retrieval_hit"])
        assert info["retrieval_hit"] == (info["target"] in info["retrieved"])
        assert info["served"] in info["retrieved"] and len(set(info["retrieved"].tolist())) == 10


def test_queries_do_not_depend_on_actions_or_ranker_noise():
    """Common random numbers: contexts and targets are a function of the seed and the query index."""
    runs = []
    for noise, action_seed in ((0.0, 0), (2.0, 1)):
        env = gym.make(ENV_ID, mode="scores", ranker_noise=noise)
        obs, _ = env.reset(seed=7)
        env.action_space.seed(action_seed)
        seen = []
        for _ in range(30):
            context = obs["context"]
            obs, _, _, _, info = env.step(env.action_space.sample())
            seen.append((context, info["target"]))
        runs.append(seen)
    for (xa, ya), (xb, yb) in zip(*runs, strict=True):
        np.testing.assert_array_equal(xa, xb)
        assert ya == yb


def test_sample_dataset_is_seeded_and_apart_from_the_queries():
    env = gym.make(ENV_ID, mode="scores")
    obs, _ = env.reset(seed=8)
    x1, y1 = env.unwrapped.sample_dataset(500, seed=0)
    x2, y2 = env.unwrapped.sample_dataset(500, seed=0)
    x3, _ = env.unwrapped.sample_dataset(500, seed=1)
    assert x1.shape == (500, 16) and x1.dtype == np.float32 and y1.dtype == np.int64
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(x1, x3)
    queries = [obs["context"]]
    for _ in range(100):
        obs, *_ = env.step(env.action_space.sample())
        queries.append(obs["context"])
    assert not (np.asarray(queries)[:, None, :] == x1[None]).all(-1).any()  # no env query in the training data
    # The same distribution as the env's stream: the target is the argmax of q about as often
    # (0.13-0.18 by world, see TAU). 2,000 queries each: the difference's standard error is 0.011.
    world = env.unwrapped.world
    x, y = env.unwrapped.sample_dataset(2048, seed=3)
    share = float(np.mean(relevance(x, world.item_embeddings).argmax(1) == y))
    blocks = [world.query_block(123, j, 0.0) for j in range(2048 // world.config.block)]
    stream = float(np.mean(np.concatenate([(b["targets"] == b["optimal"]) for b in blocks])))
    assert 0.1 < share < 0.25 and abs(share - stream) < 0.05
    with pytest.raises(ValueError, match="n must be"):
        env.unwrapped.sample_dataset(0, seed=0)


def test_world_is_exposed_with_its_features():
    env = gym.make(ENV_ID, world_seed=3)
    world = env.unwrapped.world  # available before reset with world_seed
    tree = world.tree
    assert world.item_embeddings.shape == (1024, 16) and world.item_embeddings.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(world.item_embeddings, axis=1), 1.0)
    assert world.node_features.shape == (tree.n_nodes, 16) and world.context_dim == 16
    v = int(tree.level_nodes(2)[3])
    np.testing.assert_allclose(
        world.node_features[v], world.item_embeddings[tree.subtree_items(v)].mean(0), rtol=1e-6, atol=1e-6
    )
    obs, _ = env.reset(seed=11)
    assert env.unwrapped.world is world  # world_seed wins over the reset seed
    valid = obs["mask"] == 1
    np.testing.assert_array_equal(obs["candidate_features"][valid], world.node_features[obs["candidate_nodes"][valid]])
    assert (obs["candidate_features"][~valid] == 0).all()


def _twin(**kwargs):
    a, b = gym.make(ENV_ID, **kwargs), gym.make(ENV_ID, **kwargs)
    a.reset(seed=9)
    b.reset(seed=9)
    return a, b


def test_bad_actions_leave_the_state_unchanged():
    env, twin = _twin(n_items=64, beam=4)
    good = np.zeros(env.action_space.shape, dtype=np.float32)
    env.step(good)
    twin.step(good)
    nan = good.copy()
    nan[0] = np.nan  # slot 0 is always a real candidate
    for action, pattern in (
        (nan, "finite"),
        (np.zeros(5, dtype=np.float32), "shape"),
        (good.astype(np.float64), "dtype"),
        (np.full_like(good, 2e6), "outside"),
    ):
        with pytest.raises(ValueError, match=pattern):
            env.step(action)
    assert data_equivalence(env.step(good), twin.step(good), exact=True)


def test_callable_ranker_is_used_and_checked():
    def first(contexts, items):
        assert contexts.shape == (1, 16) and items.shape == (1, 6) and items.dtype == np.int64
        return items[:, 0]

    env = gym.make(ENV_ID, n_items=80, beam=6, mode="scores", ranker=first)
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(10):
        *_, info = env.step(env.action_space.sample())
        assert info["served"] == info["retrieved"][0]

    def outside(contexts, items):
        return np.full(items.shape[0], 10**6, dtype=np.int64)

    bad, twin = _twin(n_items=80, beam=6, mode="scores", ranker=outside)
    action = np.zeros(bad.action_space.shape, dtype=np.float32)
    with pytest.raises(ValueError, match="ranker served item"):
        bad.step(action)
    twin.unwrapped.config.ranker = first  # the twin serves; the refused step changed nothing in `bad`
    bad.unwrapped.config.ranker = first
    assert data_equivalence(bad.step(action), twin.step(action), exact=True)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"beam": 1024}, "beam"),
        ({"n_items": 1}, "n_items"),
        ({"branches": 1}, "branches"),
        ({"mode": "tree"}, "mode"),
        ({"ranker": "best"}, "ranker"),
        ({"ranker": 3}, "ranker"),
        ({"ranker": lambda x, a: a[:, 0], "ranker_noise": 0.1}, "ranker_noise"),
        ({"ranker_noise": -0.1}, "ranker_noise"),
        ({"tau": 1e-9}, "tau"),
        ({"tau": float("nan")}, "tau"),
        ({"tree_method": "kmeans"}, "tree_method"),
        ({"tree_method": "agglomerative"}, "tree_method"),
        ({"dim": 0}, "dim"),
        ({"data_dir": "/nonexistent/folder"}, "data_dir"),
        ({"n_items": 10**12}, "n_items"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, name):
    with pytest.raises(ValueError, match=name):
        gym.make(ENV_ID, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_envs": 0}, "num_envs"),
        ({"num_envs": 2, "max_episode_steps": 0}, "max_episode_steps"),
        ({"num_envs": 2**40, "n_items": 10**5}, "num_envs"),
        ({"num_envs": 2, "beam": 0}, "beam"),
    ],
)
def test_vector_env_arguments_are_refused_by_name(kwargs, name):
    with pytest.raises(ValueError, match=name):
        gym.make_vec(ENV_ID, vectorization_mode="vector_entry_point", **kwargs)


def test_kmeans_tree_with_world_seed():
    env = gym.make(ENV_ID, tree_method="kmeans", world_seed=0, n_items=200, mode="scores")
    env.reset(seed=0)
    assert env.action_space.shape == (env.unwrapped.tree.n_nodes,)
    *_, info = env.step(env.action_space.sample())
    assert info["query_complete"]


@pytest.mark.parametrize("mode", ["levelwise", "scores"])
def test_vector_env_with_shared_world_equals_sync(mode):
    kwargs = {"n_items": 128, "beam": 5, "mode": mode, "world_seed": 2, "ranker_noise": 0.2}
    native = gym.make_vec(ENV_ID, 3, vectorization_mode="vector_entry_point", max_episode_steps=7, **kwargs)
    sync = gym.make_vec(ENV_ID, 3, vectorization_mode="sync", max_episode_steps=7, **kwargs)
    assert native.unwrapped.tree is native.unwrapped.world.tree
    native.action_space.seed(0)
    assert data_equivalence(native.reset(seed=4), sync.reset(seed=4), exact=True)
    for _ in range(20):
        action = native.action_space.sample()
        assert data_equivalence(native.step(action), sync.step(action), exact=True)


def test_vector_env_state_resumes_exactly():
    kwargs = {"n_items": 100, "beam": 4, "ranker_noise": 0.2}
    env = gym.make_vec(ENV_ID, 2, vectorization_mode="vector_entry_point", max_episode_steps=9, **kwargs)
    env.reset(seed=3)
    env.action_space.seed(1)
    for _ in range(7):  # mid-descent
        env.step(env.action_space.sample())
    state = env.get_state()
    actions = [env.action_space.sample() for _ in range(12)]
    ahead = [env.step(a) for a in actions]
    fresh = gym.make_vec(ENV_ID, 2, vectorization_mode="vector_entry_point", max_episode_steps=9, **kwargs)
    fresh.set_state(state)
    assert data_equivalence([fresh.step(a) for a in actions], ahead, exact=True)


def test_truncation_mid_descent_and_unseeded_reset_start_the_next_query():
    env = gym.make(ENV_ID, n_items=64, beam=4, max_episode_steps=5)  # L = 3: the cut falls at level 2
    obs, _ = env.reset(seed=0)
    zeros = np.zeros(env.action_space.shape, dtype=np.float32)
    for t in range(5):
        obs, _, terminated, truncated, info = env.step(zeros)
        assert not terminated and truncated == (t == 4)
    assert int(info["query"]) == 1 and int(info["level"]) == 2 and int(obs["level"]) == 2
    obs, _ = env.reset()  # unseeded: the same world, the next query of the stream, from the root
    assert int(obs["level"]) == 0 and int(obs["mask"].sum()) == 4
    *_, info = env.step(zeros)
    assert int(info["query"]) == 2
    assert gym.spec(ENV_ID).max_episode_steps == 5000


def test_render_ansi_tells_the_descent():
    env = gym.make(ENV_ID, n_items=64, beam=4, render_mode="ansi")
    env.reset(seed=0)
    assert "no item served yet" in env.render()
    env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    assert "level 1 of 3" in env.render()
    env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    text = env.render()
    assert "retrieved" in text and "served item" in text and "regret" in text


@pytest.mark.parametrize("algo", ["PPO", "A2C"])
def test_stable_baselines3_takes_the_dict_spaces(algo):
    """The Dict observation needs SB3's MultiInputPolicy; its checker warns only about documented choices."""
    sb3 = pytest.importorskip("stable_baselines3")
    import warnings

    from stable_baselines3.common.env_checker import check_env

    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        check_env(gym.make(ENV_ID, n_items=64, beam=4), warn=True)
    expected = ("candidate_features has an unconventional shape", "symmetric and normalized", "infinity")
    assert [str(w.message) for w in records if not any(e in str(w.message) for e in expected)] == []
    env = gym.make(ENV_ID, n_items=64, beam=4, max_episode_steps=20)
    extra = {"batch_size": 16} if algo == "PPO" else {}
    model = getattr(sb3, algo)("MultiInputPolicy", env, n_steps=16, seed=0, device="cpu", **extra)
    model.learn(total_timesteps=32)
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action)
    env.step(action)
