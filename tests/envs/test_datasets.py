"""The MovieLens loader and score model (``twostage_gym.datasets``) and ``TopicItem-v0`` on MovieLens.

Tiny files in both formats are written by the tests; the real MovieLens-100K is read from
``../shared/data/ml-100k`` when it is there (it may not be copied into the project) and those tests
skip otherwise.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import twostage_gym  # noqa: F401
from twostage_gym.datasets import (
    GENRES_100K,
    fit_low_rank,
    load_movielens,
    movielens_score_model,
    positive_matrix,
)

ML100K = Path(__file__).resolve().parents[3] / "shared" / "data" / "ml-100k"
needs_ml100k = pytest.mark.skipif(not (ML100K / "u.data").is_file(), reason=f"MovieLens-100K not found at {ML100K}")

GENRES = ["Action", "Comedy", "Drama", "Horror"]


def _ratings(n_users: int = 40, n_items: int = 30, seed: int = 0) -> np.ndarray:
    """(user, item, rating, timestamp) rows with 1-based ids; every item rated at least once."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, n_users + 1):
        for i in rng.choice(n_items, 12, replace=False) + 1:
            rows.append((u, i, int(rng.integers(1, 6)), 880000000 + len(rows)))
    for i in range(1, n_items + 1):  # every movie has a rating
        rows.append((1 + (i % n_users), i, 5, 890000000 + i))
    seen, out = set(), []
    for r in rows:
        if (r[0], r[1]) not in seen:
            seen.add((r[0], r[1]))
            out.append(r)
    return np.array(out)


def _first_genre(i: int) -> str:
    return GENRES[i % len(GENRES)]


def write_ml100k(folder: Path, n_users: int = 40, n_items: int = 30) -> np.ndarray:
    """u.data and u.item in the 100K format; item 31 is listed but never rated."""
    table = _ratings(n_users, n_items)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in table))
    lines = []
    for i in range(1, n_items + 2):
        flags = ["0"] * len(GENRES_100K)
        flags[GENRES_100K.index(_first_genre(i))] = "1"
        flags[GENRES_100K.index("War")] = "1"  # a second genre, later in the file's order
        title = "Café Noir (1995)" if i == 1 else f"Movie {i} (1990)"
        lines.append("|".join([str(i), title, "01-Jan-1995", "", "http://x", *flags]))
    (folder / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return table


def write_ml1m(folder: Path, n_users: int = 40, n_items: int = 30) -> np.ndarray:
    table = _ratings(n_users, n_items, seed=1)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_text("".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in table))
    lines = [f"{i}::Movie {i} (1990)::{_first_genre(i)}|War" for i in range(1, n_items + 1)]
    (folder / "movies.dat").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return table


@pytest.mark.parametrize("writer", [write_ml100k, write_ml1m])
def test_loader_reads_both_formats(tmp_path, writer):
    table = writer(tmp_path / "ml")
    data = load_movielens(tmp_path / "ml")
    assert data.name == ("ml-100k" if writer is write_ml100k else "ml-1m")
    assert data.n_ratings == len(table) and data.n_users == 40 and data.n_items == 30  # rated movies only
    np.testing.assert_array_equal(data.user_ids[data.users], table[:, 0])
    np.testing.assert_array_equal(data.item_ids[data.items], table[:, 1])
    np.testing.assert_array_equal(data.ratings, table[:, 2])
    # The topic is the first genre (never the later "War"); topics are the genres that occur.
    names = [data.topic_names[t] for t in data.item_topics]
    assert names == [_first_genre(int(i)) for i in data.item_ids]
    assert sorted(data.topic_names) == sorted(GENRES) and np.bincount(data.item_topics).min() > 0
    if writer is write_ml100k:
        assert data.item_titles[0] == "Café Noir (1995)"
    m = positive_matrix(data)
    assert m.sum() == (table[:, 2] >= 4).sum()


def test_loader_refuses_missing_or_broken_files(tmp_path):
    with pytest.raises(ValueError, match=r"data_dir.*not an existing folder"):
        load_movielens(tmp_path / "absent")
    with pytest.raises(ValueError, match="no MovieLens ratings"):
        load_movielens(tmp_path)
    with pytest.raises(ValueError, match="data_dir must be a path"):
        load_movielens(3)
    write_ml100k(tmp_path / "bad")
    (tmp_path / "bad" / "u.data").write_text("1\t2\t3\n")
    with pytest.raises(ValueError, match="4 fields"):
        load_movielens(tmp_path / "bad")
    (tmp_path / "bad" / "u.data").write_text("1\t99\t3\t5\n")
    with pytest.raises(ValueError, match="item 99 is rated but not listed"):
        load_movielens(tmp_path / "bad")


def test_fit_low_rank_recovers_a_low_rank_matrix_deterministically():
    rng = np.random.default_rng(0)
    m = rng.standard_normal((50, 3)) @ rng.standard_normal((3, 40))
    u, v = fit_low_rank(m, 3)
    np.testing.assert_allclose(u @ v.T, m, atol=1e-9)
    u2, v2 = fit_low_rank(m, 3)
    np.testing.assert_array_equal(u, u2)
    np.testing.assert_array_equal(v, v2)
    with pytest.raises(ValueError, match="rank"):
        fit_low_rank(m, 41)


def test_score_model_has_unit_scale(tmp_path):
    write_ml100k(tmp_path / "ml")
    data, user, item = movielens_score_model(tmp_path / "ml", 4)
    assert data.n_users == 40 and user.shape == (40, 4) and item.shape == (30, 4)
    assert abs((user @ item.T).std() - 1.0) < 1e-9
    assert movielens_score_model(tmp_path / "ml", 4)[1] is user  # cached


def test_topic_item_on_tiny_movielens(tmp_path):
    write_ml1m(tmp_path / "ml")
    kw = {"dataset": "movielens", "data_dir": str(tmp_path / "ml"), "n_users": 25, "n_slots": 3}
    kw |= {"latent_dim": 4, "budget_per_slot": 5}  # 4 topics; B = 15, 3 candidates per group
    env = gym.make("TwoStage/TopicItem-v0", **kw)
    env.reset(seed=0)
    u = env.unwrapped
    assert u.config.n_items == 30 and u.config.n_topics == 4 and u.config.n_rows == 9
    assert u.world.n_positives.sum() == round(0.05 * 25 * 30)
    rng = np.random.default_rng(0)
    for _ in range(20):
        *_, info = env.step(rng.standard_normal(env.action_space.shape).astype(np.float32))
        assert info["regret"] == info["topic_regret"] + info["item_regret"] and info["scores_used"] <= 15
    # The logged history: real ratings of the 15 users not simulated, a click where rating >= 4.
    data = u.config.data
    log = u.logged_clicks(50, seed=1)
    outside = np.setdiff1d(np.arange(40), u.world.dataset_users)
    assert outside.size == 15 and log["user_features"].shape[0] <= 15
    pairs = {(int(a), int(b)): float(r) for a, b, r in zip(data.users, data.items, data.ratings, strict=True)}
    users_of = np.unique(data.users[np.isin(data.users, outside)])
    for k in range(50):
        rating = pairs[(int(users_of[log["users"][k]]), int(log["items"][k]))]
        assert log["clicks"][k] == (rating >= 4)
    with pytest.raises(ValueError, match="n: the data holds"):
        u.logged_clicks(10**6)


@pytest.mark.parametrize(
    ("extra", "name"),
    [({"n_users": 40}, "n_users"), ({"n_items": 10}, "n_items"), ({"topic_affinity": 0.5}, "topic_affinity")],
)
def test_movielens_arguments(tmp_path, extra, name):
    write_ml100k(tmp_path / "ml")
    kw = {"dataset": "movielens", "data_dir": str(tmp_path / "ml"), "n_slots": 3, "latent_dim": 4}
    with pytest.raises(ValueError, match=name):
        gym.make("TwoStage/TopicItem-v0", **kw, **extra)


@needs_ml100k
def test_real_movielens_100k():
    data = load_movielens(ML100K)
    assert (data.n_users, data.n_items, data.n_ratings, data.n_topics) == (943, 1682, 100_000, 19)
    assert int((data.ratings >= 4).sum()) == 55_375
    env = gym.make("TwoStage/TopicItem-v0", dataset="movielens", data_dir=str(ML100K))
    env.reset(seed=0)
    u = env.unwrapped
    assert u.config.n_rows == max(19, 5 * ((1000 - 19) // 5)) == 980
    assert abs(u.world.n_positives.mean() / 1682 - 0.05) < 1e-3
    # The three most clicked genres of the score model are large ones (Drama, Action, Comedy).
    w, n = u.world, u.config.n_users
    labels = w.click.labels(w.scores(np.arange(n), np.broadcast_to(np.arange(1682), (n, 1682))))
    per_topic = np.bincount(np.broadcast_to(u.item_topics, labels.shape)[labels], minlength=19)
    top3 = {data.topic_names[t] for t in np.argsort(-per_topic)[:3]}
    assert top3 == {"Drama", "Action", "Comedy"} and min(u.topic_sizes[np.argsort(-per_topic)[:3]]) >= 250
    rng = np.random.default_rng(0)
    for _ in range(10):
        *_, info = env.step(rng.standard_normal(env.action_space.shape).astype(np.float32))
        assert info["regret"] == info["topic_regret"] + info["item_regret"] and info["scores_used"] <= 1000
