"""MovieLens ratings read from a folder the user gives (never downloaded), and a low-rank score model.

Two layouts are read, found by their file names in ``data_dir``:

* MovieLens-100K: ``u.data`` (tab-separated ``user item rating timestamp``) and ``u.item``
  (``|``-separated, Latin-1; 19 genre flags at the end of each line, in the order of ``u.genre``);
* MovieLens-1M: ``ratings.dat`` (``user::item::rating::timestamp``) and ``movies.dat``
  (``item::title::genre|genre...``, Latin-1).

The catalog is the movies with at least one rating; a movie's *topic* is its first genre (the
topic-item paper, Sec. 4: "We used the first genres provided in the dataset as our topics"), and
only genres that are some movie's first genre become topics, so every topic is non-empty. A rating
>= 4 is a positive (the paper's rule, after Zhou et al. 2018).

:func:`fit_low_rank` gives every (user, item) pair a score: a rank-r truncated SVD of the 0/1
matrix of positives (unrated pairs 0), the "PureSVD" recommender, with factors U S^1/2 and
V S^1/2 so that the score of (u, i) is the inner product of their rows. Its scores rank each user's
held-out positives high and carry the data's popularity and genre structure.

GroupLens does not allow redistributing these files: the project never copies them; tests read
``../shared/data/ml-100k`` when present and otherwise write a tiny file in the same format.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "GENRES_100K",
    "MIN_POSITIVE_RATING",
    "MovieLensRatings",
    "check_data_dir",
    "fit_low_rank",
    "load_movielens",
    "movielens_layout",
    "movielens_score_model",
    "positive_matrix",
]

GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
"""The genre flags of ``u.item``, in file order (``u.genre`` of MovieLens-100K)."""

MIN_POSITIVE_RATING = 4.0
"""A rating at or above this is a positive (a click)."""

_LAYOUTS = {"ml-100k": ("u.data", "u.item"), "ml-1m": ("ratings.dat", "movies.dat")}


@dataclass(frozen=True, eq=False)
class MovieLensRatings:
    """One MovieLens ratings file with its catalog, ids remapped to 0..n-1.

    Attributes:
        name: ``"ml-100k"`` or ``"ml-1m"``.
        users, items: int64 ``(n_ratings,)`` user and item indices.
        ratings: float32 ``(n_ratings,)`` ratings 1-5.
        timestamps: int64 ``(n_ratings,)`` seconds since the epoch.
        user_ids, item_ids: int64 the original ids of users 0..n_users-1 and items 0..n_items-1.
        item_titles: the titles of the items.
        item_topics: int64 ``(n_items,)`` each item's topic (its first genre).
        topic_names: the genre of each topic.
    """

    name: str
    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    item_titles: tuple[str, ...]
    item_topics: np.ndarray
    topic_names: tuple[str, ...]

    @property
    def n_users(self) -> int:
        return int(self.user_ids.size)

    @property
    def n_items(self) -> int:
        return int(self.item_ids.size)

    @property
    def n_topics(self) -> int:
        return len(self.topic_names)

    @property
    def n_ratings(self) -> int:
        return int(self.ratings.size)


def check_data_dir(data_dir: Any, name: str = "data_dir") -> Path:
    """Check that ``data_dir`` is a path (str or os.PathLike) to a folder with MovieLens files.

    Raises:
        ValueError: naming ``name``: not a path, not a folder, or neither layout's files in it.
    """
    if isinstance(data_dir, bool) or not isinstance(data_dir, (str, os.PathLike)):
        raise ValueError(f"{name} must be a path (str or os.PathLike), got {type(data_dir).__name__} {data_dir!r}")
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise ValueError(f"{name}={str(data_dir)!r} is not an existing folder")
    movielens_layout(path, name)
    return path


def movielens_layout(path: Path, name: str = "data_dir") -> str:
    """``"ml-100k"`` or ``"ml-1m"``: which pair of files ``path`` holds (100K first)."""
    for layout, files in _LAYOUTS.items():
        if all((path / f).is_file() for f in files):
            return layout
    wanted = " or ".join(" and ".join(files) for files in _LAYOUTS.values())
    raise ValueError(f"{name}={str(path)!r} holds no MovieLens ratings: expected {wanted} in that folder")


def load_movielens(data_dir: str | os.PathLike[str]) -> MovieLensRatings:
    """Read MovieLens-100K or -1M from ``data_dir`` (cached per folder while its files are unchanged).

    Raises:
        ValueError: naming ``data_dir`` when the folder or its files are missing, or the file
            whose content does not parse.
    """
    path = check_data_dir(data_dir).resolve()
    layout = movielens_layout(path)
    stamp = tuple((f, (path / f).stat().st_mtime_ns, (path / f).stat().st_size) for f in _LAYOUTS[layout])
    return _load(str(path), layout, stamp)


@functools.lru_cache(maxsize=4)
def _load(path: str, layout: str, stamp: tuple) -> MovieLensRatings:
    ratings_file, items_file = (Path(path) / f for f in _LAYOUTS[layout])
    table = _read_ratings(ratings_file, layout)
    movie_ids, titles, first_genres = _read_movies(items_file, layout)
    user_raw, item_raw = table[:, 0], table[:, 1]
    known = np.isin(item_raw, movie_ids)
    if not known.all():
        bad = int(item_raw[~known][0])
        raise ValueError(f"{ratings_file}: item {bad} is rated but not listed in {items_file.name}")
    user_ids, users = np.unique(user_raw, return_inverse=True)
    item_ids, items = np.unique(item_raw, return_inverse=True)  # the catalog: movies with a rating
    row = np.searchsorted(movie_ids, item_ids)
    genres = [first_genres[r] for r in row]
    topic_names = tuple(_topic_order(genres, layout))
    lookup = {g: t for t, g in enumerate(topic_names)}
    return MovieLensRatings(
        name=layout,
        users=users.astype(np.int64),
        items=items.astype(np.int64),
        ratings=table[:, 2].astype(np.float32),
        timestamps=table[:, 3].astype(np.int64),
        user_ids=user_ids.astype(np.int64),
        item_ids=item_ids.astype(np.int64),
        item_titles=tuple(titles[r] for r in row),
        item_topics=np.array([lookup[g] for g in genres], dtype=np.int64),
        topic_names=topic_names,
    )


def _topic_order(genres: list[str], layout: str) -> list[str]:
    present = set(genres)
    if layout == "ml-100k":
        return [g for g in GENRES_100K if g in present]
    return sorted(present)


def _read_ratings(file: Path, layout: str) -> np.ndarray:
    raw = file.read_bytes()
    if layout == "ml-1m":
        raw = raw.replace(b"::", b" ")
    tokens = raw.split()
    if not tokens or len(tokens) % 4:
        raise ValueError(f"{file}: expected 4 fields a line (user, item, rating, timestamp)")
    try:
        table = np.array(tokens).astype(np.int64).reshape(-1, 4)
    except ValueError as err:
        raise ValueError(f"{file}: a field is not an integer ({err})") from None
    if table[:, 2].min() < 1 or table[:, 2].max() > 5:
        raise ValueError(f"{file}: ratings must be in 1..5")
    return table


def _read_movies(file: Path, layout: str) -> tuple[np.ndarray, list[str], list[str]]:
    """Movie ids (sorted), titles and first genres, in the order of the ids."""
    lines = [line for line in file.read_text(encoding="latin-1").splitlines() if line.strip()]
    ids, titles, genres = [], [], []
    for n, line in enumerate(lines, 1):
        if layout == "ml-100k":
            fields = line.split("|")
            flags = fields[-len(GENRES_100K) :]
            if len(fields) < 2 + len(GENRES_100K) or any(f not in ("0", "1") for f in flags):
                raise ValueError(f"{file}, line {n}: expected id|title|...| and {len(GENRES_100K)} genre flags")
            first = next((GENRES_100K[k] for k, f in enumerate(flags) if f == "1"), GENRES_100K[0])
        else:
            fields = line.split("::")
            if len(fields) != 3:
                raise ValueError(f"{file}, line {n}: expected id::title::genres")
            first = fields[2].split("|")[0] or "(no genres listed)"
        try:
            ids.append(int(fields[0]))
        except ValueError:
            raise ValueError(f"{file}, line {n}: the movie id {fields[0]!r} is not an integer") from None
        titles.append(fields[1])
        genres.append(first)
    order = np.argsort(ids, kind="stable")
    movie_ids = np.asarray(ids, dtype=np.int64)[order]
    if (movie_ids[1:] == movie_ids[:-1]).any():
        raise ValueError(f"{file}: a movie id is listed twice")
    return movie_ids, [titles[k] for k in order], [genres[k] for k in order]


def positive_matrix(data: MovieLensRatings, min_rating: float = MIN_POSITIVE_RATING) -> np.ndarray:
    """float32 ``(n_users, n_items)``: 1 where the user rated the item >= ``min_rating``, else 0."""
    out = np.zeros((data.n_users, data.n_items), dtype=np.float32)
    keep = data.ratings >= min_rating
    out[data.users[keep], data.items[keep]] = 1.0
    return out


def fit_low_rank(matrix: np.ndarray, rank: int, seed: int = 0, n_iter: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Rank-``rank`` truncated SVD of ``matrix`` by randomised subspace iteration (Halko et al. 2011).

    Returns:
        float64 ``(n_rows, rank)`` and ``(n_cols, rank)`` factors, U S^1/2 and V S^1/2, whose
        row inner products are the rank-r approximation of ``matrix``. Deterministic for a seed.

    Raises:
        ValueError: ``rank`` above the smaller side of the matrix.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if not 1 <= rank <= min(m.shape):
        raise ValueError(f"rank must be in [1, {min(m.shape)}] for a {m.shape[0]} x {m.shape[1]} matrix, got {rank}")
    rng = np.random.default_rng(seed)
    width = min(rank + 10, min(m.shape))
    basis, _ = np.linalg.qr(m @ rng.standard_normal((m.shape[1], width)))
    for _ in range(n_iter):  # power iterations, re-orthonormalised each time for stability
        basis, _ = np.linalg.qr(m @ (m.T @ basis))
    u_small, s, vt = np.linalg.svd(basis.T @ m, full_matrices=False)
    root = np.sqrt(s[:rank])
    user = (basis @ u_small[:, :rank]) * root
    item = vt[:rank].T * root
    # SVD signs are arbitrary; fix them so that each item factor's largest entry is positive.
    sign = np.sign(item[np.abs(item).argmax(axis=0), np.arange(rank)])
    sign[sign == 0] = 1.0
    return user * sign, item * sign


def movielens_score_model(
    data_dir: str | os.PathLike[str], rank: int
) -> tuple[MovieLensRatings, np.ndarray, np.ndarray]:
    """The ratings of ``data_dir`` and a rank-``rank`` score model of them, cached per folder and rank.

    The factors of :func:`fit_low_rank` on :func:`positive_matrix` (seed 0), the item factors
    divided by the standard deviation of the scores over all user-item pairs, so that scores have
    unit scale whatever the data (as the synthetic worlds' do; a click model's slope then means the
    same on both).

    Returns:
        ``(ratings, user_factors, item_factors)``, the factors float64 ``(n_users, rank)`` and
        ``(n_items, rank)``; treat them as read-only (they are shared by every caller).

    Raises:
        ValueError: naming ``data_dir`` (see :func:`load_movielens`), or ``rank`` above
            min(n_users, n_items).
    """
    data = load_movielens(data_dir)
    return _score_model(data, int(rank))


@functools.lru_cache(maxsize=4)
def _score_model(data: MovieLensRatings, rank: int) -> tuple[MovieLensRatings, np.ndarray, np.ndarray]:
    user, item = fit_low_rank(positive_matrix(data), rank)
    # Mean and variance of u.v over all pairs in closed form, O((n_users + n_items) rank^2):
    # E[s] = mean(u).mean(v) and E[s^2] = trace(U^T U V^T V) / (n_users n_items).
    mean = float(user.mean(axis=0) @ item.mean(axis=0))
    second = float(np.sum((user.T @ user) * (item.T @ item))) / (data.n_users * data.n_items)
    std = float(np.sqrt(max(second - mean * mean, 0.0)))
    if std > 0:
        item = item / std
    user.flags.writeable = False
    item.flags.writeable = False
    return data, user, item
