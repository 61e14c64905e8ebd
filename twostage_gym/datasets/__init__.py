"""Loaders for real data, read from a folder the user gives; nothing is ever downloaded.

MovieLens first (:mod:`twostage_gym.datasets.movielens`): ratings, the catalog with genres as
topics, and a low-rank score model that gives every (user, item) pair a score. Beside the loaders,
:mod:`twostage_gym.datasets.multilabel` generates the synthetic multi-label data that stands in
for AmazonCat-13K in Hron et al.'s pool learning (their Sec. 4, Fig. 5).
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
from twostage_gym.datasets.multilabel import (
    PAPER_POSITIVE_RATE,
    MultiLabelData,
    check_training_data,
    make_multilabel,
    power_law_rates,
)

__all__ = [
    "GENRES_100K",
    "MIN_POSITIVE_RATING",
    "PAPER_POSITIVE_RATE",
    "MovieLensRatings",
    "MultiLabelData",
    "check_data_dir",
    "check_training_data",
    "fit_low_rank",
    "load_movielens",
    "make_multilabel",
    "movielens_score_model",
    "positive_matrix",
    "power_law_rates",
]
