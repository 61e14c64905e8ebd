"""The two-stage error decomposition of Zhang et al. (NeurIPS 2024), Prop. 4.1, on counts.

P_err = P_retrieve + P_rank(K) (1 - P_retrieve), with P_err = P(h(x) != y), P_retrieve =
P(y not in B(x)) and P_rank(K) = P(h(x) != y | y in B(x)). On the counts of a run the identity is
exact: with n queries, R retrieval hits and H served hits, (n - H) / n = (n - R) / n +
((R - H) / R)(R / n). The probabilities here are :class:`fractions.Fraction`, so a test can check
it without rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = ["TwoStageErrors", "two_stage_errors"]


@dataclass(frozen=True)
class TwoStageErrors:
    """The counts of a run and its error probabilities (exact fractions).

    Attributes:
        queries: n, the completed queries.
        retrieval_hits: R, queries whose target was retrieved (y in B(x)).
        ranker_hits: H, queries whose served item was the target (h(x) = y).
        p_err: (n - H) / n, the two-stage error.
        p_retrieve: (n - R) / n, the retrieval error.
        p_rank: (R - H) / R, the ranker's error given a retrieved target (None when R = 0).
    """

    queries: int
    retrieval_hits: int
    ranker_hits: int
    p_err: Fraction
    p_retrieve: Fraction
    p_rank: Fraction | None

    def identity_holds(self) -> bool:
        """Whether P_err = P_retrieve + P_rank(K) (1 - P_retrieve) holds exactly (Prop. 4.1)."""
        if self.p_rank is None:  # no target retrieved: nothing can be served right
            return self.p_err == self.p_retrieve == 1
        return self.p_err == self.p_retrieve + self.p_rank * (1 - self.p_retrieve)


def two_stage_errors(retrieval_hits: np.ndarray, ranker_hits: np.ndarray) -> TwoStageErrors:
    """Count a run's ``retrieval_hit`` and ``ranker_hit`` flags into Prop. 4.1's probabilities.

    Args:
        retrieval_hits: ``(n,)`` bools, y in B(x) for each completed query.
        ranker_hits: ``(n,)`` bools, served = y for each completed query.

    Raises:
        ValueError: naming the argument, for arrays that are not 1-D bools of one length, no
            queries, or a ranker hit without a retrieval hit (the ranker serves from B(x)).
    """
    r = np.asarray(retrieval_hits)
    h = np.asarray(ranker_hits)
    for name, a in (("retrieval_hits", r), ("ranker_hits", h)):
        if a.ndim != 1 or a.dtype != bool:
            raise ValueError(f"{name} must be a 1-D bool array, got shape {a.shape} dtype {a.dtype}")
    if r.shape != h.shape or r.size == 0:
        raise ValueError(
            f"retrieval_hits and ranker_hits must be non-empty and of one length, got {r.size} and {h.size}"
        )
    if (h & ~r).any():
        raise ValueError("ranker_hits: a served target that was not retrieved (the ranker serves from B(x))")
    n, n_r, n_h = int(r.size), int(r.sum()), int(h.sum())
    return TwoStageErrors(
        queries=n,
        retrieval_hits=n_r,
        ranker_hits=n_h,
        p_err=Fraction(n - n_h, n),
        p_retrieve=Fraction(n - n_r, n),
        p_rank=Fraction(n_r - n_h, n_r) if n_r else None,
    )
