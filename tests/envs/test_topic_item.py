"""``TwoStage/TopicItem-v0`` (issue 20, sections 1, 2 and 5): the round, its identities, the variants,
common random numbers, bad input, the native vector env and a 10^6-item world.

Worlds are tiny (a few thousand items) unless a test says otherwise. The statistical checks use
z-scores against the exact variance, with a bound of 4 (a false alarm about once in 15,000 runs,
and every seed here is fixed, so a pass is reproducible).
"""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence

import twostage_gym  # noqa: F401
from twostage_gym.envs.topic_item import INFO_KEYS, TopicItemEnv, TopicItemVectorEnv

ID = "TwoStage/TopicItem-v0"
SMALL = {"n_items": 2000, "n_topics": 20, "n_users": 40, "budget_per_slot": 60}  # B = 300, 56 per group


def make(**kwargs) -> TopicItemEnv:
    return gym.make(ID, **{**SMALL, **kwargs})


def random_scores(env, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(env.action_space.shape).astype(np.float32)


def play_rounds(env, rounds: int, seed: int = 0, topic_policy=None, item_policy=None) -> list[dict]:
    """Item-phase infos of ``rounds`` rounds (random scores unless policies are given)."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    out = []
    while len(out) < rounds:
        view = env.unwrapped.split_observation(obs)
        if int(view["phase"]) == 0:
            a = topic_policy(env, view) if topic_policy else random_scores(env, rng)
        else:
            a = item_policy(env, view) if item_policy else random_scores(env, rng)
        obs, reward, _, _, info = env.step(a)
        if int(info["phase"]) == 1:
            out.append({**info, "reward": reward})
    return out


# -- the round ------------------------------------------------------------------------------


def test_a_round_is_two_steps_with_fixed_spaces():
    env = make()
    c = env.unwrapped.config
    assert c.budget == 300 and c.per_group == (300 - 20) // 5 == 56
    assert c.n_rows == max(20, 5 * 56) == 280
    assert env.action_space.shape == (280,) and env.action_space.dtype == np.float32
    assert env.observation_space.shape == (2 + 16 + 280 * (5 + 16),)
    obs, _ = env.reset(seed=1)
    view = env.unwrapped.split_observation(obs)
    assert int(view["phase"]) == 0 and env.unwrapped.phase == 0
    # Topic phase: row t is topic t, with its size and features; the other rows are padding.
    np.testing.assert_array_equal(view["mask"][:20], 1.0)
    np.testing.assert_array_equal(view["mask"][20:], 0.0)
    np.testing.assert_array_equal(view["id"][:20], np.arange(20))
    np.testing.assert_array_equal(view["group"][:20], -1.0)
    np.testing.assert_allclose(view["log_size"][:20], np.log(env.unwrapped.topic_sizes), rtol=1e-6)
    np.testing.assert_array_equal(view["features"][:20], env.unwrapped.topic_features)
    assert not view["table"][20:].any()
    assert int(view["user"]) == env.unwrapped.current_user
    np.testing.assert_array_equal(view["user_features"], env.unwrapped.user_features[env.unwrapped.current_user])

    obs, reward, terminated, truncated, info = env.step(random_scores(env, np.random.default_rng(0)))
    assert reward == 0.0 and not terminated and not truncated and int(info["phase"]) == 0
    view = env.unwrapped.split_observation(obs)
    assert int(view["phase"]) == 1
    live = view["mask"] == 1
    assert live.sum() == 5 * 56 == int(np.minimum(info["group_sizes"], 56).sum())
    items = view["id"][live].astype(np.int64)
    assert np.unique(items).size == items.size  # distinct candidates
    np.testing.assert_array_equal(view["topic"][live], env.unwrapped.item_topics[items])
    np.testing.assert_array_equal(view["features"][live], env.unwrapped.item_features[items])
    # Each candidate's group is the group of its topic; groups come in order.
    groups = view["group"][live].astype(np.int64)
    np.testing.assert_array_equal(groups, info["topic_groups"][env.unwrapped.item_topics[items]])
    assert (np.diff(groups) >= 0).all()
    assert list(info) == list(INFO_KEYS)
    assert int(info["scores_used"]) == 20 and (info["items"] == -1).all() and info["expected_reward"] == 0.0

    scores = random_scores(env, np.random.default_rng(1))
    obs, reward, _, _, info = env.step(scores)
    assert int(info["phase"]) == 1 and int(obs[0]) == 0  # the next round starts at its topic phase
    # The env served the argmax of each group's scores.
    for g in range(5):
        rows = np.flatnonzero(live & (view["group"] == g))
        best_row = rows[np.argmax(scores[rows])]
        assert info["items"][g] == int(view["id"][best_row])
    assert reward == info["clicks"].sum() and int(info["scores_used"]) == 20 + 280 <= 300


def test_topic_stage_runs_dyna_topic_rec_on_the_sorted_scores():
    env = make(min_group_size=300)
    env.reset(seed=2)
    sizes = env.unwrapped.topic_sizes
    scores = np.zeros(env.action_space.shape, dtype=np.float32)
    scores[:20] = np.arange(20, 0, -1)  # topic 0 best, then 1, 2, ...
    *_, info = env.step(scores)
    groups = info["topic_groups"]
    # Alg. 2 by hand: group i starts with topic i; groups holding <= p items take 5, 6, ... in turn.
    held = [int(sizes[i]) for i in range(5)]
    expect = {i: [i] for i in range(5)}
    nxt = 5
    while any(h <= 300 for h in held) and nxt < 20:
        for i in range(5):
            if held[i] <= 300 and nxt < 20:
                expect[i].append(nxt)
                held[i] += int(sizes[nxt])
                nxt += 1
    for i in range(5):
        assert np.flatnonzero(groups == i).tolist() == sorted(expect[i])
    np.testing.assert_array_equal(info["group_sizes"], held)
    assert all(h > 300 for h in held) or nxt == 20


# -- identities and oracle quantities -----------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [{}, {"hierarchy": False}, {"dynamic_topics": False}, {"budget_per_slot": None}, {"click_model": "bernoulli"}],
)
def test_regret_identities_every_step(variant):
    env = make(**variant)
    c = env.unwrapped.config
    rng = np.random.default_rng(3)
    env.reset(seed=3)
    steps_per_round = 2 if c.hierarchy else 1
    for _ in range(60 * steps_per_round):
        *_, info = env.step(random_scores(env, rng))
        assert info["regret"] == info["topic_regret"] + info["item_regret"]
        assert info["nominator_regret"] == info["topic_regret"] and info["ranker_regret"] == info["item_regret"]
        assert info["topic_regret"] >= 0 and info["item_regret"] >= 0
        assert abs(info["expected_reward"] - (info["optimal_expected_reward"] - info["regret"])) <= 1e-12
        if c.budget is not None:
            assert info["scores_used"] <= c.budget
        if int(info["phase"]) == 1:
            user = int(info["user"])
            assert info["optimal_expected_reward"] == env.unwrapped.optimal_expected_rewards[user]
            exp = env.unwrapped.expected_clicks([user], info["items"][None])[0]
            assert abs(info["expected_reward"] - exp.sum()) <= 1e-12
            assert info["reachable_expected_reward"] >= info["expected_reward"]


def test_an_oracle_one_stage_agent_without_budget_has_zero_regret():
    """No budget, one stage: every item is a candidate, so scoring by the true expected clicks is optimal."""
    env = make(hierarchy=False, budget_per_slot=None)
    env.reset(seed=4)
    u = env.unwrapped
    all_items = np.arange(u.config.n_items)
    for _ in range(30):
        scores = u.expected_clicks([u.current_user], all_items[None])[0].astype(np.float32)
        *_, info = env.step(scores)
        assert info["regret"] == 0.0 and info["topic_regret"] == 0.0 and info["best_item_reachable"]
        assert int(info["scores_used"]) == u.config.n_items


def test_mean_reward_matches_expected_reward():
    """The reward's mean is expected_reward: z-score of the sum of (reward - expected) over 3000 rounds."""
    for click_model in ("threshold", "bernoulli"):
        env = make(click_model=click_model, n_users=10)
        infos = play_rounds(env, 3000, seed=5)
        reward = np.array([i["reward"] for i in infos])
        expected = np.array([i["expected_reward"] for i in infos])
        u = env.unwrapped
        p = np.concatenate([u.expected_clicks([i["user"]], i["items"][None])[0] for i in infos])
        z = (reward - expected).sum() / np.sqrt((p * (1 - p)).sum())
        assert abs(z) < 4, (click_model, z, reward.mean(), expected.mean())


def test_positive_rate_and_flip_rate():
    env = make(n_users=40)  # 40 x 2000 pairs: the threshold is the exact quantile
    env.reset(seed=6)
    w = env.unwrapped.world
    assert w.n_positives.sum() == round(0.05 * 40 * 2000)
    # More pairs than the threshold sample (2^20): the rate is estimated, within a few 1e-4.
    big = make(n_users=600, positive_rate=0.02)
    big.reset(seed=6)
    assert abs(big.unwrapped.world.n_positives.mean() / 2000 - 0.02) < 0.002
    # Clicks are the labels flipped with probability 0.1 (standard error 0.0021 over 20,000 items).
    infos = play_rounds(env, 4000, seed=6)
    users = np.repeat([i["user"] for i in infos], 5)
    items = np.concatenate([i["items"] for i in infos])
    clicks = np.concatenate([i["clicks"] for i in infos])
    labels = w.click.labels(w.scores(users, items[:, None]))[:, 0]
    assert abs((clicks != labels).mean() - 0.1) < 0.0085


def test_best_item_reachable_and_reachable_reward():
    env = make(budget_per_slot=None, min_group_size=10**9)  # one group holds every topic: all items scored
    env.reset(seed=7)
    *_, info = env.step(random_scores(env, np.random.default_rng(0)))
    assert info["group_sizes"].sum() == 2000  # the first group took every remaining topic
    *_, info = env.step(random_scores(env, np.random.default_rng(1)))
    assert info["best_item_reachable"]
    # The best of each group: group 0 holds everything, the other 4 their single topic.
    assert info["reachable_expected_reward"] <= info["optimal_expected_reward"]


# -- the variants -----------------------------------------------------------------------------


def test_one_stage_variant():
    env = make(hierarchy=False)
    c = env.unwrapped.config
    assert c.n_rows == 300
    obs, _ = env.reset(seed=8)
    view = env.unwrapped.split_observation(obs)
    assert int(view["phase"]) == 1 and view["mask"].sum() == 300
    np.testing.assert_array_equal(view["group"], -1.0)
    scores = random_scores(env, np.random.default_rng(0))
    obs, reward, _, _, info = env.step(scores)
    assert int(info["phase"]) == 1 and int(obs[0]) == 1 and reward == info["clicks"].sum()  # a step is a round
    top = np.argsort(-scores, kind="stable")[:5]
    np.testing.assert_array_equal(info["items"], view["id"][top].astype(np.int64))
    assert (info["topic_groups"] == -1).all() and int(info["scores_used"]) == 300


def test_no_dynamic_topics_pads_each_top_topic_from_outside():
    env = make(dynamic_topics=False, n_items=600)  # topics of 4 to 119 items; a share of 56
    env.reset(seed=9)
    u = env.unwrapped
    scores = np.zeros(env.action_space.shape, dtype=np.float32)
    scores[:20] = -u.topic_sizes.astype(np.float32)  # smallest topics first: all need padding
    obs, _, _, _, info = env.step(scores)
    view = u.split_observation(obs)
    top = np.argsort(u.topic_sizes, kind="stable")[:5]
    for g, topic in enumerate(top):
        assert np.flatnonzero(info["topic_groups"] == g).tolist() == [topic]
        rows = (view["mask"] == 1) & (view["group"] == g)
        items = view["id"][rows].astype(np.int64)
        assert items.size == 56
        own = u.item_topics[items] == topic
        assert own.sum() == min(u.topic_sizes[topic], 56)
        assert not np.isin(u.item_topics[items[~own]], top).any()  # padding from outside the 5 topics
    all_items = view["id"][view["mask"] == 1]
    assert np.unique(all_items).size == all_items.size == 5 * 56


def test_no_budget_scores_every_item_of_the_groups():
    env = make(budget_per_slot=None)
    c = env.unwrapped.config
    assert c.budget is None and c.n_rows == 2000 and c.min_group_size == 2000 // 20
    env.reset(seed=10)
    *_, info = env.step(random_scores(env, np.random.default_rng(0)))
    n = int(info["group_sizes"].sum())
    *_, info = env.step(random_scores(env, np.random.default_rng(1)))
    assert int(info["scores_used"]) == 20 + n


def test_features_in_obs_false_carries_ids_only():
    env = make(features_in_obs=False)
    assert env.unwrapped.config.width == 5
    obs, _ = env.reset(seed=11)
    obs, *_ = env.step(random_scores(env, np.random.default_rng(0)))
    view = env.unwrapped.split_observation(obs)
    assert view["features"] is None
    ids = view["id"][view["mask"] == 1].astype(np.int64)
    assert env.unwrapped.item_features[ids].shape == (ids.size, 16)
    # Automatic: features while n_rows x item_dim <= 2^20, ids only above.
    assert make(budget_per_slot=None).unwrapped.config.features_in_obs
    wide = TopicItemEnv(n_items=70_000, n_users=2, budget_per_slot=None)
    assert not wide.config.features_in_obs and wide.config.width == 5


# -- knobs: the structure the paper's effects rest on ---------------------------------------------


def _pair_table(**kwargs):
    env = make(n_users=60, **kwargs)
    env.reset(seed=12)
    w = env.unwrapped.world
    c = env.unwrapped.config
    users = np.arange(c.n_users)
    scores = w.scores(users, np.broadcast_to(np.arange(c.n_items), (c.n_users, c.n_items)))
    return w, w.click.labels(scores), w.click.expected(scores)


def _top3_shares(w, labels):
    """Per user: the share of their positives in their own top-3 topics and in the population's top 3."""
    counts = np.stack([np.bincount(w.item_topics, weights=row, minlength=w.index.n_topics) for row in labels])
    own = np.sort(counts, axis=1)[:, -3:].sum(1)
    pop = counts[:, np.argsort(-counts.sum(0))[:3]].sum(1)
    total = counts.sum(1)
    keep = total > 0
    return (own[keep] / total[keep]).mean(), (pop[keep] / total[keep]).mean()


def test_topic_affinity_concentrates_each_users_positives():
    w, labels, _ = _pair_table()
    own, pop = _top3_shares(w, labels)
    assert own > 0.75 and own - pop > 0.2  # users differ in their favourite topics
    w, labels, _ = _pair_table(topic_affinity=0.0, size_popularity=0.0)
    own, pop = _top3_shares(w, labels)
    sizes_alone = np.sort(w.index.sizes)[-3:].sum() / w.index.n_items
    assert abs(own - sizes_alone) < 0.08 and own - pop < 0.06  # only what topic sizes give


def _random_topics_vs_random_items(w, expected):
    """Expected clicks per slot of a uniformly random item vs an item of uniformly random topic groups."""
    from twostage_gym.core.topics import dyna_topic_rec

    rng = np.random.default_rng(0)
    order = np.stack([rng.permutation(w.index.n_topics) for _ in range(400)])
    groups = dyna_topic_rec(order, w.index.sizes, 5, 60)
    by_topic = np.stack([expected[:, w.item_topics == t].sum(1) for t in range(w.index.n_topics)], 1)
    group_mean = np.stack(
        [(by_topic @ (groups == g).T) / ((groups == g) @ w.index.sizes) for g in range(5)]
    )  # (5, users, draws)
    return expected.mean(), group_mean.mean()


def test_size_popularity_makes_random_topics_worse_than_random_items():
    w, labels, expected = _pair_table()
    size_rate = np.corrcoef(np.log(w.index.sizes), [labels[:, w.item_topics == t].mean() for t in range(20)])[0, 1]
    one, two = _random_topics_vs_random_items(w, expected)
    assert size_rate > 0.4 and two < 0.93 * one  # Table 5: 2-random below random
    w, labels, expected = _pair_table(size_popularity=0.0)
    one, two = _random_topics_vs_random_items(w, expected)
    assert abs(two / one - 1) < 0.05


# -- common random numbers, seeding, pickling --------------------------------------------------------


def test_common_random_numbers_users_clicks_and_candidates():
    """Agents on one seed meet the same users and, when they pick the same topics, the same candidates."""
    a, b = make(), make()
    a.reset(seed=13)
    b.reset(seed=13)
    ra, rb = np.random.default_rng(1), np.random.default_rng(2)
    same_topics = np.linspace(1, -1, a.action_space.shape[0], dtype=np.float32)
    for rnd in range(6):
        assert a.unwrapped.current_user == b.unwrapped.current_user
        # Rounds 0-2: different topic scores; rounds 3-5: the same ones.
        ta = same_topics if rnd >= 3 else random_scores(a, ra)
        tb = same_topics if rnd >= 3 else random_scores(b, rb)
        oa, *_ = a.step(ta)
        ob, *_ = b.step(tb)
        np.testing.assert_array_equal(a.unwrapped.context_observation(oa), b.unwrapped.context_observation(ob))
        if rnd >= 3:
            np.testing.assert_array_equal(oa, ob)
        *_, ia = a.step(random_scores(a, ra))
        *_, ib = b.step(random_scores(b, rb))
        assert ia["user"] == ib["user"]
    # An unseeded reset keeps the world and continues the user stream; a seeded one restarts it.
    key = a.unwrapped.world.key
    a.reset()
    assert a.unwrapped.world.key == key
    first = a.unwrapped.context_observation(a.reset(seed=13)[0])
    np.testing.assert_array_equal(first, make().unwrapped.context_observation(make().reset(seed=13)[0]))


def test_world_seed_fixes_the_world_and_pickling_keeps_the_round():
    a, b = make(world_seed=5), make(world_seed=5)
    a.reset(seed=1)
    b.reset(seed=2)
    np.testing.assert_array_equal(a.unwrapped.item_features, b.unwrapped.item_features)
    assert a.unwrapped.world.key == 5
    a.step(random_scores(a, np.random.default_rng(0)))  # mid-round
    clone = pickle.loads(pickle.dumps(a))
    action = random_scores(a, np.random.default_rng(1))
    assert data_equivalence(a.step(action), clone.step(action), exact=True)


def test_logged_clicks_come_from_other_users():
    env = make()
    env.reset(seed=14)
    log = env.unwrapped.logged_clicks(20_000, seed=3)
    assert log["users"].shape == log["items"].shape == log["clicks"].shape == (20_000,)
    assert log["user_features"].shape == (1000, 16) and log["users"].max() == 999
    again = env.unwrapped.logged_clicks(20_000, seed=3)
    assert all(np.array_equal(log[k], again[k]) for k in log)
    other = env.unwrapped.logged_clicks(20_000, seed=4)
    assert not np.array_equal(log["clicks"], other["clicks"])
    # Uniform exposures click at about 0.9 * 5% + 0.1 * 95% = 0.14 (new users: a few points either way).
    assert abs(log["clicks"].mean() - 0.14) < 0.03
    assert set(np.unique(log["clicks"])) <= {0, 1}


# -- bad input -------------------------------------------------------------------------------


def test_acting_in_the_wrong_phase_is_refused_and_changes_nothing():
    env, twin = make(), make()
    env.reset(seed=15)
    twin.reset(seed=15)
    scores = random_scores(env, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"wrong phase.*phase 1.*phase 0"):
        env.step({"phase": 1, "scores": scores})
    for bad, pattern in [
        ({"phase": True, "scores": scores}, "phase"),
        ({"phase": 0.0, "scores": scores}, "phase"),
        ({"phase": 0}, "keys"),
        ({"phase": 0, "scores": scores.astype(np.float64)}, "dtype"),
    ]:
        with pytest.raises(ValueError, match=pattern):
            env.step(bad)
    assert data_equivalence(env.step({"phase": 0, "scores": scores}), twin.step(scores), exact=True)
    with pytest.raises(ValueError, match=r"wrong phase.*phase 0.*phase 1"):
        env.step({"phase": 0, "scores": scores})
    assert data_equivalence(env.step({"phase": 1, "scores": scores}), twin.step(scores), exact=True)


def test_bad_scores_in_the_item_phase_change_nothing():
    env, twin = make(), make()
    for e in (env, twin):
        e.reset(seed=16)
        e.step(random_scores(e, np.random.default_rng(0)))
    good = random_scores(env, np.random.default_rng(1))
    for index, value, pattern in [(0, np.nan, "finite"), (-1, np.inf, "finite"), (3, 2e6, "outside")]:
        bad = good.copy()
        bad[index] = value
        with pytest.raises(ValueError, match=pattern):
            env.step(bad)
    with pytest.raises(ValueError, match="shape"):
        env.step(good[:-1])
    with pytest.raises(ValueError, match="dtype"):
        env.step(good.astype(np.float64))
    assert data_equivalence(env.step(good), twin.step(good), exact=True)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_slots": 21}, "n_slots"),
        ({"budget_per_slot": 4}, "budget_per_slot"),  # B = 20 < n_topics + n_slots = 25
        ({"min_group_size": 0}, "min_group_size"),
        ({"min_group_size": -3}, "min_group_size"),
        ({"n_topics": 2001}, "n_topics"),  # more topics than items: one would be empty
        ({"dataset": "movielens"}, "data_dir"),
        ({"dataset": "movielens", "data_dir": "/nonexistent/ml-100k"}, "data_dir"),
        ({"data_dir": "/tmp"}, "data_dir"),
        ({"click_model": "bernoulli", "flip_prob": 0.1}, "flip_prob"),
        ({"hierarchy": False, "dynamic_topics": False}, "dynamic_topics"),
        ({"hierarchy": False, "min_group_size": 10}, "min_group_size"),
        ({"dynamic_topics": False, "min_group_size": 10}, "min_group_size"),
        ({"hierarchy": 1}, "hierarchy"),
        ({"features_in_obs": 0}, "features_in_obs"),
        ({"positive_rate": 1.0}, "positive_rate"),
        ({"topic_affinity": 1.5}, "topic_affinity"),
        ({"n_items": 2**24 + 1, "n_users": 1}, "n_items"),
    ],
)
def test_invalid_arguments_are_refused_at_make(kwargs, name):
    with pytest.raises(ValueError, match=name):
        gym.make(ID, **{**SMALL, **kwargs})


def test_an_empty_topic_is_refused():
    from twostage_gym.core.topics import TopicIndex

    with pytest.raises(ValueError, match="topic 1 holds no item"):
        TopicIndex(np.array([0, 0, 2]), 3)


# -- the native vector env ----------------------------------------------------------------------


def test_vector_env_equals_sync_across_cut_rounds():
    """max_episode_steps = 3 cuts every other round after its topic phase; the autoreset drops it."""
    kw = {**SMALL, "max_episode_steps": 3}
    native = gym.make_vec(ID, 3, vectorization_mode="vector_entry_point", **kw)
    sync = gym.make_vec(ID, 3, vectorization_mode="sync", **kw)
    assert data_equivalence(native.reset(seed=4), sync.reset(seed=4), exact=True)
    native.action_space.seed(0)
    cut = 0
    for _ in range(14):
        action = native.action_space.sample()
        out = native.step(action)
        assert data_equivalence(out, sync.step(action), exact=True)
        cut += int(out[3].any() and (out[4]["phase"] == 0).all())
    assert cut >= 2


def test_rows_in_different_phases_play_as_single_envs():
    """The batched round with sub-envs in different phases gives what each sub-env gives alone."""
    from gymnasium.utils import seeding

    from twostage_gym.envs.topic_item import _Rounds

    env = make()
    config = env.unwrapped.config
    rounds, cache = _Rounds(config, 2), {}
    singles = [make(), make()]
    for r, seed in enumerate((20, 21)):
        rounds.seed_row(r, seed, seeding.np_random(seed)[0], cache)
        singles[r].reset(seed=seed)
    rounds.start_rounds(np.arange(2))
    rng = np.random.default_rng(0)
    first = random_scores(env, rng)
    rounds.play(np.array([0]), first[None])  # row 0 moves to its item phase, row 1 stays
    singles[0].step(first)
    for _ in range(5):
        assert len(set(rounds.phases.tolist())) == 2
        scores = np.stack([random_scores(env, rng) for _ in range(2)])
        reward, info = rounds.play(np.arange(2), scores)
        obs = rounds.observations(np.arange(2))
        for r in range(2):
            o, rew, _, _, i = singles[r].step(scores[r])
            np.testing.assert_array_equal(obs[r], o)
            assert reward[r] == rew
            for key in INFO_KEYS:
                np.testing.assert_array_equal(info[key][r], i[key])


def test_vector_env_phase_rule_and_shared_world():
    env = TopicItemVectorEnv(num_envs=2, world_seed=3, **SMALL)
    env.reset(seed=0)
    scores = np.zeros((2, env.single_action_space.shape[0]), dtype=np.float32)
    with pytest.raises(ValueError, match="sub-env 1: acting in the wrong phase"):
        env.step({"phase": np.array([0, 1]), "scores": scores})
    env.step({"phase": np.array([0, 0]), "scores": scores})
    np.testing.assert_array_equal(env.phases, [1, 1])
    assert env.item_features.shape == (2000, 16)  # one world: the catalog is on the vector env
    assert env.logged_clicks(10, seed=0)["clicks"].shape == (10,)


# -- scale ------------------------------------------------------------------------------------


def test_a_million_items():
    """10^6 items (few users): the world is scanned in blocks, a step stays O(budget)."""
    env = gym.make(ID, n_items=10**6, n_users=3)
    env.reset(seed=0)
    u = env.unwrapped
    assert u.config.n_rows == 950 and u.topic_sizes.sum() == 10**6 and u.topic_sizes.min() >= 1
    # The precomputed optimum is the best of the catalog (checked for one user by brute force).
    everything = np.arange(10**6)[None]
    values = u.expected_clicks([0], everything)[0]
    assert abs(np.sort(values)[-5:].sum() - u.optimal_expected_rewards[0]) < 1e-12
    rng = np.random.default_rng(0)
    for _ in range(4):
        *_, info = env.step(random_scores(env, rng))
        assert info["scores_used"] <= 1000 and info["regret"] == info["topic_regret"] + info["item_regret"]
    assert int(info["phase"]) == 1 and info["topic_regret"] >= 0


def test_render_ansi_describes_both_stages():
    env = make(render_mode="ansi")
    env.reset(seed=0)
    assert "no item served" in env.render()
    env.step(random_scores(env, np.random.default_rng(0)))
    text = env.render()
    assert "topic stage" in text and "groups" in text
    env.step(random_scores(env, np.random.default_rng(1)))
    text = env.render()
    assert "served items" in text and "regret" in text and "topic" in text
