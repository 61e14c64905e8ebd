"""Pool and feature allocation for nominators (Hron et al. 2021, Appendix B).

Pools: the items are permuted at random and split into N pools of size
floor(|A|/N); the remainder is handed out one by one to the first nominators.

Feature subsets: the features are permuted and each nominator gets
s' = min(s, floor(d/N)) of them, in turn; the other s - s' are drawn uniformly
without replacement from the d - s' features the nominator does not yet hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from twostage_gym.core.checks import integer, number

__all__ = [
    "random_feature_subsets",
    "random_pools",
    "resolve_nominator_dim",
    "validate_feature_subsets",
    "validate_pools",
]


def random_pools(n_items: int, n_nominators: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Split ``n_items`` items into ``n_nominators`` disjoint pools as in Appendix B.

    Args:
        n_items: catalog size |A|.
        n_nominators: number of nominators N, at most ``n_items``.
        rng: the generator that draws the permutation.

    Returns:
        N sorted int64 arrays; the first ``n_items % N`` pools hold one extra item.
    """
    if not 1 <= n_nominators <= n_items:
        raise ValueError(f"n_nominators must be in [1, n_items={n_items}], got {n_nominators}")
    perm = rng.permutation(n_items)
    size, extra = divmod(n_items, n_nominators)
    # Pool n takes the n-th block of `size` items, then one of the `extra` leftover items.
    pools = [perm[n * size : (n + 1) * size] for n in range(n_nominators)]
    leftover = perm[n_nominators * size :]
    for n in range(extra):
        pools[n] = np.append(pools[n], leftover[n])
    return [np.sort(p).astype(np.int64) for p in pools]


def random_feature_subsets(dim: int, n_nominators: int, nominator_dim: int, rng: np.random.Generator) -> np.ndarray:
    """Draw each nominator's feature subset as in Appendix B.

    Args:
        dim: total number of features d.
        n_nominators: number of nominators N.
        nominator_dim: features per nominator s, in [1, d].
        rng: the generator that draws the permutation and the top-ups.

    Returns:
        An ``(N, s)`` int64 array; row n lists nominator n's features (each row sorted).
    """
    if not 1 <= nominator_dim <= dim:
        raise ValueError(f"nominator_dim must be in [1, dim={dim}], got {nominator_dim}")
    perm = rng.permutation(dim)
    base = min(nominator_dim, dim // n_nominators)
    subsets = np.empty((n_nominators, nominator_dim), dtype=np.int64)
    for n in range(n_nominators):
        own = perm[n * base : (n + 1) * base]
        rest = np.setdiff1d(np.arange(dim), own, assume_unique=True)
        top_up = rng.choice(rest, size=nominator_dim - base, replace=False)
        subsets[n] = np.sort(np.concatenate([own, top_up]))
    return subsets


def resolve_nominator_dim(dim: int, nominator_dim: int | None, misspecification: float | None) -> int:
    """Resolve the nominator feature dimension s from ``nominator_dim`` or ``misspecification``.

    ``misspecification`` is rho = d/s >= 1, so s = floor(d / rho). Neither given means s = d.
    """
    if nominator_dim is not None and misspecification is not None:
        raise ValueError("give at most one of nominator_dim and misspecification")
    if misspecification is not None:
        number("misspecification (rho = d/s)", misspecification, low=1.0)
        # The value as given (a numpy float32 divides in float32), so s is what it always was.
        s = int(np.floor(dim / misspecification))
        if s < 1:
            raise ValueError(f"misspecification={misspecification} leaves floor(dim/rho) = 0 features for dim={dim}")
        return s
    if nominator_dim is None:
        return int(dim)
    return integer("nominator_dim (s)", nominator_dim, 1, dim)


def _rows(name: str, value: Any, n_rows: int) -> list[Any]:
    """``value`` as a list of ``n_rows`` rows, or a ValueError naming ``name``.

    A string, a number or None is not a list of rows (``len`` or iteration would fail with a
    TypeError that names nothing, or, for a string, split it into characters).
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise ValueError(f"{name} must be a list of n_nominators={n_rows} lists, got {type(value).__name__} {value!r}")
    rows = list(value)
    if len(rows) != n_rows:
        raise ValueError(f"{name} must hold n_nominators={n_rows} lists, got {len(rows)}")
    for n, row in enumerate(rows):
        if isinstance(row, (str, bytes)) or not isinstance(row, (Sequence, np.ndarray)):
            raise ValueError(f"{name}[{n}] must be a list of integers, got {type(row).__name__} {row!r}")
    return rows


def validate_pools(pools: Sequence[Sequence[int]], n_items: int, n_nominators: int) -> list[np.ndarray]:
    """Check explicit pools: N non-empty pools of distinct in-range items covering the catalog.

    Returns:
        The pools as sorted int64 arrays.

    Raises:
        ValueError: naming the rule that ``pools`` breaks.
    """
    out = []
    for n, pool in enumerate(_rows("pools", pools, n_nominators)):
        try:
            arr = np.asarray(pool)
        except ValueError:  # a ragged nested list
            arr = np.empty(0)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"pools[{n}] must be a non-empty 1-D list of item ids, got {pool!r}")
        if arr.dtype.kind not in "iu":
            raise ValueError(f"pools[{n}] must hold integer item ids, got dtype {arr.dtype}")
        if arr.min() < 0 or arr.max() >= n_items:
            raise ValueError(f"pools[{n}] has item ids outside [0, n_items={n_items}): {pool!r}")
        if np.unique(arr).size != arr.size:
            raise ValueError(f"pools[{n}] lists an item twice: {pool!r}")
        out.append(np.sort(arr).astype(np.int64))
    missing = np.setdiff1d(np.arange(n_items), np.concatenate(out))
    if missing.size:
        raise ValueError(f"pools must cover every item; items {missing.tolist()} are in no pool")
    return out


def validate_feature_subsets(subsets: Sequence[Sequence[int]], dim: int, n_nominators: int) -> np.ndarray:
    """Check explicit feature subsets: N subsets of equal size s of distinct features in [0, dim).

    Returns:
        An ``(N, s)`` int64 array.

    Raises:
        ValueError: naming the rule that ``feature_subsets`` breaks.
    """
    rows = _rows("feature_subsets", subsets, n_nominators)
    sizes = {len(s) for s in rows}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(f"feature_subsets must be non-empty and all of one size s, got sizes {sorted(sizes)}")
    try:
        arr = np.asarray(rows)
    except ValueError:  # rows of one length holding nested lists of different lengths
        raise ValueError("feature_subsets must be N lists of s integer feature indices") from None
    if arr.ndim != 2:
        raise ValueError(f"feature_subsets must be N lists of s integer feature indices, got {arr.ndim - 1}-D rows")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"feature_subsets must hold integer feature indices, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= dim:
        raise ValueError(f"feature_subsets has indices outside [0, dim={dim})")
    ordered = np.sort(arr, axis=1)
    twice = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
    if twice.any():
        n = int(np.argmax(twice))
        raise ValueError(f"feature_subsets[{n}] lists a feature twice: {arr[n].tolist()}")
    return ordered.astype(np.int64)
