"""Loaders for real data, read from a folder the user gives; nothing is ever downloaded.

MovieLens first (:mod:`twostage_gym.datasets.movielens`): ratings, the catalog with genres as
topics, and a low-rank score model that gives every (user, item) pair a score.
"""

from twostage_gym.datasets.movielens import (
    GENRES_100K,
    MIN_POSITIVE_RATING,
    MovieLensRatings,
    check_data_dir,
    fit_low_rank,
    load_movielens,
    movielens_score_model,
    positive_matrix,
)

__all__ = [
    "GENRES_100K",
    "MIN_POSITIVE_RATING",
    "MovieLensRatings",
    "check_data_dir",
    "fit_low_rank",
    "load_movielens",
    "movielens_score_model",
    "positive_matrix",
]
