"""MovieLens side features: user demographics and movie genres, aligned with :func:`load_movielens`.

Recommender selection (Xu et al. 2021, Sec. 5) uses "the metadata of movies and users as the
contextual information", one-hot encoded. This module reads them from the same folder as the
ratings (never downloaded), in the order of the ratings' remapped ids:

* MovieLens-100K: ``u.user`` (``user|age|gender|occupation|zip``) and the 19 genre flags of
  ``u.item``; occupations are the sorted names found in ``u.user``;
* MovieLens-1M: ``users.dat`` (``user::gender::age::occupation::zip``, occupation a code 0-20)
  and the genres of ``movies.dat``.

User features: age (years; 1M's age-group code), gender (1 for ``M``), one-hot occupation.
Item features: one 0/1 column per genre. Both are raw here; the environment standardises them.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twostage_gym.datasets.movielens import GENRES_100K, MovieLensRatings, load_movielens, movielens_layout

__all__ = ["USER_FILES", "MovieLensSideFeatures", "movielens_side_features"]

USER_FILES = {"ml-100k": "u.user", "ml-1m": "users.dat"}
"""The user file of each layout (the ratings and movie files are :mod:`~twostage_gym.datasets.movielens`'s)."""


@dataclass(frozen=True, eq=False)
class MovieLensSideFeatures:
    """Side features of one MovieLens folder, rows in the order of its :class:`MovieLensRatings`.

    Attributes:
        ratings: the ratings they belong to.
        user_features: float64 ``(n_users, 2 + n_occupations)``: age, gender (1 = M), occupation one-hot.
        user_columns: the name of each user column.
        item_features: float64 ``(n_items, n_genres)``: 0/1 genre flags.
        item_columns: the genre of each item column.
    """

    ratings: MovieLensRatings
    user_features: np.ndarray
    user_columns: tuple[str, ...]
    item_features: np.ndarray
    item_columns: tuple[str, ...]


def movielens_side_features(data_dir: str | os.PathLike[str]) -> MovieLensSideFeatures:
    """Ratings and side features of ``data_dir`` (cached per folder while its files are unchanged).

    Raises:
        ValueError: naming ``data_dir`` when the folder, the ratings, movie or user file is missing,
            a file does not parse, or a rated user has no line in the user file.
    """
    data = load_movielens(data_dir)
    path = Path(data_dir).expanduser().resolve()
    layout = movielens_layout(path)
    user_file = path / USER_FILES[layout]
    if not user_file.is_file():
        raise ValueError(
            f"data_dir={str(data_dir)!r} holds no {USER_FILES[layout]}: recommender selection needs the user "
            "demographics beside the ratings"
        )
    stat = user_file.stat()
    return _side_features(data, str(path), layout, (stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=4)
def _side_features(data: MovieLensRatings, path: str, layout: str, stamp: tuple) -> MovieLensSideFeatures:
    user_features, user_columns = _read_users(Path(path) / USER_FILES[layout], layout, data.user_ids)
    items_file = Path(path) / ("u.item" if layout == "ml-100k" else "movies.dat")
    item_features, item_columns = _read_genres(items_file, layout, data.item_ids)
    for array in (user_features, item_features):
        array.flags.writeable = False
    return MovieLensSideFeatures(data, user_features, user_columns, item_features, item_columns)


def _read_users(file: Path, layout: str, user_ids: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    lines = [line for line in file.read_text(encoding="latin-1").splitlines() if line.strip()]
    ids, ages, genders, occupations = [], [], [], []
    for n, line in enumerate(lines, 1):
        fields = line.split("|") if layout == "ml-100k" else line.split("::")
        if len(fields) != 5:
            raise ValueError(f"{file}, line {n}: expected 5 fields (user, age, gender, occupation, zip)")
        if layout == "ml-100k":
            uid, age, gender, occupation = fields[0], fields[1], fields[2], fields[3]
        else:
            uid, gender, age, occupation = fields[0], fields[1], fields[2], fields[3]
        try:
            ids.append(int(uid))
            ages.append(float(age))
        except ValueError:
            raise ValueError(f"{file}, line {n}: the user id or age is not a number") from None
        if gender not in ("M", "F"):
            raise ValueError(f"{file}, line {n}: gender must be M or F, got {gender!r}")
        genders.append(1.0 if gender == "M" else 0.0)
        occupations.append(occupation)
    ids_arr = np.asarray(ids, dtype=np.int64)
    order = np.argsort(ids_arr, kind="stable")
    position = np.searchsorted(ids_arr[order], user_ids)
    position = np.minimum(position, ids_arr.size - 1)
    missing = ids_arr[order][position] != user_ids
    if missing.any():
        raise ValueError(f"{file}: user {int(user_ids[missing][0])} is rated but has no line here")
    rows = order[position]
    names = sorted(set(occupations), key=lambda s: (len(s), s) if layout == "ml-1m" else (0, s))
    lookup = {name: j for j, name in enumerate(names)}
    occupation_index = np.array([lookup[o] for o in occupations], dtype=np.int64)[rows]
    features = np.zeros((user_ids.size, 2 + len(names)))
    features[:, 0] = np.asarray(ages)[rows]
    features[:, 1] = np.asarray(genders)[rows]
    features[np.arange(user_ids.size), 2 + occupation_index] = 1.0
    prefix = "occupation=" if layout == "ml-100k" else "occupation_code="
    return features, ("age", "gender_m", *(prefix + name for name in names))


def _read_genres(file: Path, layout: str, item_ids: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    lines = [line for line in file.read_text(encoding="latin-1").splitlines() if line.strip()]
    ids: list[int] = []
    flags: list[list[str]] = []
    for line in lines:  # the format was checked when the ratings were loaded
        if layout == "ml-100k":
            fields = line.split("|")
            ids.append(int(fields[0]))
            flags.append([GENRES_100K[k] for k, f in enumerate(fields[-len(GENRES_100K) :]) if f == "1"])
        else:
            fields = line.split("::")
            ids.append(int(fields[0]))
            flags.append([g for g in fields[2].split("|") if g])
    columns = list(GENRES_100K) if layout == "ml-100k" else sorted({g for f in flags for g in f})
    lookup = {g: j for j, g in enumerate(columns)}
    genre_table = np.zeros((len(ids), len(columns)))
    for row, genres in enumerate(flags):  # once per file, a few thousand movies
        genre_table[row, [lookup[g] for g in genres]] = 1.0
    ids_arr = np.asarray(ids, dtype=np.int64)
    order = np.argsort(ids_arr, kind="stable")
    rows = order[np.searchsorted(ids_arr[order], item_ids)]
    return genre_table[rows], tuple(columns)
