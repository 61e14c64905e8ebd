"""The constructions of Proposition 2 (Hron et al. 2021, Sec. 3.2) and their closed-form limits.

Two nominator training objectives are compared (Eq. 4): 'training-on-all' (w = 1) and
'training-on-own' (w = 1{a in A_n}). Nominators see only the last two columns of the context.

Supervised part:

* Eq. 5: X = [[1, 0, -1], [0, 1, 0], [0, 0, 1]], A_1 = {a1}, A_2 = {a2, a3}. With all rewards
  revealed, nominator 2's ridge estimate converges to theta_2* = [r2, (r3 - r1)/2] ('all') or
  [r2, r3] ('own'). With r = [1/4, 1/2, 1], 'all' picks a2 and 'own' picks the optimal a3.
* Eq. 6: X = [[1, 0, 0, -1], [0, 1, 0, -1], [0, 0, 1, 0], [0, 0, 0, 1]], A_1 = {a1},
  A_2 = {a2, a3, a4}. The limits are [r3, (r4 - r2)/2] ('own') and [r3, (r4 - r2 - r1)/3]
  ('all'). With r = [3/4, 1, 1/6, 7/8], 'own' picks a3 and 'all' picks the optimal a2.

Bandit part: X of Eq. 6 with r = [3/4, 7/8, 1/6, 1] and theta* = X^{-1} r; contexts X_(j)
(all rows but the j-th zeroed) are drawn uniformly. 'Own' converges to theta_{2,2}* = 1/16 > 0
and misses a2 under X_(2); 'all' converges to theta_{2,2}* = -5/24 < 0 and misses a4 under
X_(4). A third nominator with A_3 = {a2} rescues 'own' (Prop2A); A_3 = {a4} rescues 'all'
(Prop2B).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "PROP2_BANDIT_MEANS",
    "PROP2_BANDIT_X",
    "PROP2_NOMINATOR_FEATURES",
    "SupervisedConstruction",
    "bandit_limits",
    "nominator_limit",
    "supervised_eq5",
    "supervised_eq6",
]

PROP2_BANDIT_X = np.array([[1.0, 0.0, 0.0, -1.0], [0.0, 1.0, 0.0, -1.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
"""X of Eq. 6; rows are items a_(1), ..., a_(4)."""

PROP2_BANDIT_MEANS = np.array([3 / 4, 7 / 8, 1 / 6, 1.0])
"""r_bar of the bandit part: item a_(j)'s mean reward under X_(j)."""

PROP2_NOMINATOR_FEATURES = np.array([2, 3])
"""The nominators' feature view in the bandit part: the last two columns of X."""


@dataclass(frozen=True)
class SupervisedConstruction:
    """One supervised construction of Proposition 2.

    Attributes:
        X: the single context, rows are items.
        mean_rewards: r_bar, the mean reward of each item.
        pool: the pool of nominator 2 (0-based item ids).
        limit_all: closed-form limit of nominator 2's estimate under 'training-on-all'.
        limit_own: closed-form limit under 'training-on-own'.
    """

    X: np.ndarray
    mean_rewards: np.ndarray
    pool: np.ndarray
    limit_all: np.ndarray
    limit_own: np.ndarray

    def pick(self, theta: np.ndarray) -> int:
        """Item nominator 2 proposes with estimate ``theta`` (argmax over its pool)."""
        scores = self.X[self.pool][:, -2:] @ theta
        return int(self.pool[np.argmax(scores)])

    @property
    def optimal_item(self) -> int:
        """The item with the highest mean reward."""
        return int(np.argmax(self.mean_rewards))


def nominator_limit(X: np.ndarray, mean_rewards: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least-squares limit (E[w x x^T])^{-1} E[w x r] over items drawn uniformly.

    Args:
        X: rows are items; only the last two columns are used (the nominators' view).
        mean_rewards: r_bar per item.
        weights: w_{n,a} per item (1 for 'all'; 1{a in A_n} for 'own').
    """
    Z = X[:, -2:]
    gram = (Z * weights[:, None]).T @ Z
    return np.linalg.solve(gram, (Z * weights[:, None]).T @ mean_rewards)


def supervised_eq5(mean_rewards: np.ndarray | None = None) -> SupervisedConstruction:
    """Eq. 5, with r_bar = [1/4, 1/2, 1] unless given; 'own' finds a3, 'all' does not."""
    r = np.array([1 / 4, 1 / 2, 1.0]) if mean_rewards is None else np.asarray(mean_rewards, float)
    X = np.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    return SupervisedConstruction(
        X=X,
        mean_rewards=r,
        pool=np.array([1, 2]),
        limit_all=np.array([r[1], (r[2] - r[0]) / 2]),
        limit_own=np.array([r[1], r[2]]),
    )


def supervised_eq6(mean_rewards: np.ndarray | None = None) -> SupervisedConstruction:
    """Eq. 6, with r_bar = [3/4, 1, 1/6, 7/8] unless given; 'all' finds a2, 'own' does not."""
    r = np.array([3 / 4, 1.0, 1 / 6, 7 / 8]) if mean_rewards is None else np.asarray(mean_rewards, float)
    return SupervisedConstruction(
        X=PROP2_BANDIT_X.copy(),
        mean_rewards=r,
        pool=np.array([1, 2, 3]),
        limit_all=np.array([r[2], (r[3] - r[1] - r[0]) / 3]),
        limit_own=np.array([r[2], (r[3] - r[1]) / 2]),
    )


def bandit_limits() -> dict[str, np.ndarray]:
    """Nominator 2's limits in the bandit part, where only optimal plays are observed.

    Under sublinear regret the data are (x_{a*}, r_bar_{a*}) with a* uniform (Lemma 2), so the
    limits are those of Eq. 6 with the bandit r_bar: theta_{2,2}* = 1/16 ('own') and -5/24 ('all').
    """
    c = supervised_eq6(PROP2_BANDIT_MEANS)
    return {"own": c.limit_own, "all": c.limit_all}
