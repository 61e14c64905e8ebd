"""Pool and feature allocation for nominators (Hron et al. 2021, Appendix B).

Pools: the items are permuted at random and split into N pools of size
floor(|A|/N); the remainder is handed out one by one to the first nominators.

Feature subsets: the features are permuted and each nominator gets
s' = min(s, floor(d/N)) of them, in turn; the other s - s' are drawn uniformly
without replacement from the d - s' features the nominator does not yet hold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

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
        if not np.isfinite(misspecification) or misspecification < 1:
            raise ValueError(f"misspecification (rho = d/s) must be a finite number >= 1, got {misspecification}")
        s = int(np.floor(dim / misspecification))
        if s < 1:
            raise ValueError(f"misspecification={misspecification} leaves floor(dim/rho) = 0 features for dim={dim}")
        return s
    if nominator_dim is None:
        return dim
    if not isinstance(nominator_dim, (int, np.integer)) or not 1 <= nominator_dim <= dim:
        raise ValueError(f"nominator_dim (s) must be an integer in [1, dim={dim}], got {nominator_dim!r}")
    return int(nominator_dim)


def validate_pools(pools: Sequence[Sequence[int]], n_items: int, n_nominators: int) -> list[np.ndarray]:
    """Check explicit pools: N non-empty pools of distinct in-range items covering the catalog.

    Returns:
        The pools as sorted int64 arrays.

    Raises:
        ValueError: naming the rule that ``pools`` breaks.
    """
    if len(pools) != n_nominators:
        raise ValueError(f"pools must hold n_nominators={n_nominators} pools, got {len(pools)}")
    out = []
    for n, pool in enumerate(pools):
        arr = np.asarray(pool)
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
    if len(subsets) != n_nominators:
        raise ValueError(f"feature_subsets must hold n_nominators={n_nominators} subsets, got {len(subsets)}")
    sizes = {len(s) for s in subsets}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(f"feature_subsets must be non-empty and all of one size s, got sizes {sorted(sizes)}")
    arr = np.asarray(subsets)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"feature_subsets must hold integer feature indices, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= dim:
        raise ValueError(f"feature_subsets has indices outside [0, dim={dim})")
    for n, row in enumerate(arr):
        if np.unique(row).size != row.size:
            raise ValueError(f"feature_subsets[{n}] lists a feature twice: {row.tolist()}")
    return np.sort(arr, axis=1).astype(np.int64)
