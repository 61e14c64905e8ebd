"""Throughput cases of the tree family (Zhang et al., NeurIPS 2024) for ``twostage-bench perf``.

Issue 21, section 5, on a synthetic catalog of clustered item embeddings (:func:`catalog`):

* ``tree_beam_search``: beam search over 10^6 items (B = 32, K = 100, d = 32, a batch of 128 queries)
  against brute force (score every item with one matrix product, then the top K by
  ``argpartition``) on the same machine: latency per query and the ratio (target: at least 20x).
  The node scorer is the centroid one, w_v = the mean embedding under v, so the numbers are those
  of a real search; its recall@K against the exact top K is reported.
* ``tree_vs_faiss``: the same search beside faiss's IVF index (``IndexIVFFlat``, inner product) with
  ``nprobe`` set so that it scores about as many items as the beam search scores nodes; recall@K
  against the exact top K and latency per query, side by side. faiss is imported when the case runs
  (``pip install "twostage-gym[bench]"``); without it the case reports ``skipped``.
* ``tree_build``: :func:`~twostage_gym.core.tree.build_tree` (balanced k-means, B = 32, d = 32) at 10^4,
  10^5 and 10^6 items (target: 10^6 in under two minutes on 2 cores).

Everything is float32 (the brute force's matrix product is BLAS ``sgemm``, its fastest form). The
sizes are module-level (:data:`SIZES`), so that a test can run the cases at reduced sizes.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from agents.bench.perf import register_case, time_call
from twostage_gym.core.tree import ItemTree, beam_search, build_tree

__all__ = ["FAISS_HINT", "SIZES", "brute_force_top_k", "catalog", "centroid_scorer", "recall_at_k"]

FAISS_HINT = 'the faiss comparison needs faiss-cpu: pip install "twostage-gym[bench]"'
SPEEDUP_TARGET = 20.0
BUILD_TARGET_S = 120.0

SIZES: dict[str, Any] = {
    "search_items": 1_000_000,
    "quick_search_items": 100_000,
    "dim": 32,
    "branches": 32,
    "beam": 100,
    "queries": 128,
    "build_items": (10_000, 100_000, 1_000_000),
    "quick_build_items": (10_000, 100_000),
}
"""The sizes of the cases (issue 21's); a test lowers them."""

_BRUTE_CHUNK = 16  # queries per matrix product: a (16, 10^6) float32 block is 64 MB


def catalog(n_items: int, dim: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit item embeddings around a three-level hierarchy of cluster centres, and queries near items.

    Returns:
        ``(items (n_items, dim), queries (n_queries, dim))``, float32; a query is a random item's
        embedding plus Gaussian noise.
    """
    rng = np.random.default_rng(seed)
    centres = np.zeros((1, dim))
    for n, spread in ((64, 1.0), (4096, 0.6), (min(n_items, 262_144), 0.35)):
        centres = centres[np.arange(n) % centres.shape[0]] + spread / np.sqrt(dim) * rng.standard_normal((n, dim))
    e = centres[rng.integers(0, centres.shape[0], n_items)] + 0.25 / np.sqrt(dim) * rng.standard_normal((n_items, dim))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    q = e[rng.integers(0, n_items, n_queries)] + 0.5 / np.sqrt(dim) * rng.standard_normal((n_queries, dim))
    return e.astype(np.float32), q.astype(np.float32)


def centroid_scorer(tree: ItemTree, items: np.ndarray) -> Any:
    """f(x, v) = <x, mean embedding under v>, float32: an untrained node scorer that a tree search can use."""
    cum = np.concatenate([np.zeros((1, items.shape[1])), np.cumsum(items[tree.item_order], axis=0, dtype=np.float64)])
    w = ((cum[tree.node_stop] - cum[tree.node_start]) / (tree.node_stop - tree.node_start)[:, None]).astype(np.float32)

    def score(x: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        return np.einsum("ncd,nd->nc", w[nodes], x)

    return score


def brute_force_top_k(items: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Score every item for every query and keep the top ``k`` (unordered): int64 ``(n, k)``."""
    out = np.empty((queries.shape[0], k), dtype=np.int64)
    for i in range(0, queries.shape[0], _BRUTE_CHUNK):
        scores = queries[i : i + _BRUTE_CHUNK] @ items.T
        out[i : i + _BRUTE_CHUNK] = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return out


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean over queries of |found ∩ exact| / k."""
    k = exact.shape[1]
    hits = (found[:, :, None] == exact[:, None, :]).any(axis=2).sum(axis=1)
    return float(np.mean(hits / k))


def _scored_per_query(tree: ItemTree, levels: tuple[np.ndarray, ...]) -> float:
    """Mean number of nodes scored per query by a beam search whose beams were ``levels``."""
    total = np.full(levels[0].shape[0], float((tree.children[0] >= 0).sum()))
    for beam in levels[:-1]:
        safe = np.maximum(beam, 0)
        per_node = np.where(tree.leaf_item[safe] >= 0, 1, (tree.children[safe] >= 0).sum(axis=2))
        total += (per_node * (beam >= 0)).sum(axis=1)
    return float(total.mean())


def _search_setup(quick: bool) -> dict[str, Any]:
    n = SIZES["quick_search_items" if quick else "search_items"]
    items, queries = catalog(n, SIZES["dim"], SIZES["queries"])
    start = time.perf_counter()
    tree = build_tree(items, SIZES["branches"], seed=0)
    build_s = time.perf_counter() - start
    score = centroid_scorer(tree, items)
    exact = brute_force_top_k(items, queries, SIZES["beam"])
    result = beam_search(tree, score, queries, SIZES["beam"])
    return {
        "n": n,
        "items": items,
        "queries": queries,
        "tree": tree,
        "score": score,
        "exact": exact,
        "build_s": build_s,
        "beam_recall": recall_at_k(result.items, exact),
        "scored": _scored_per_query(tree, result.levels),
    }


_SETUP: dict[bool, dict[str, Any]] = {}


def _setup(quick: bool) -> dict[str, Any]:
    # The two search cases share one catalog and tree (a 10^6-item build takes a minute).
    if quick not in _SETUP:
        _SETUP.clear()
        _SETUP[quick] = _search_setup(quick)
    return _SETUP[quick]


@register_case("tree_beam_search", "tree beam search (B = 32, K = 100, d = 32, 128 queries) vs brute force")
def _tree_beam_search(quick: bool) -> dict[str, Any]:
    s = _setup(quick)
    repeats = 3 if quick else 7
    k, nq = SIZES["beam"], SIZES["queries"]
    beam_s = time_call(lambda: beam_search(s["tree"], s["score"], s["queries"], k), 1, repeats)
    brute_s = time_call(lambda: brute_force_top_k(s["items"], s["queries"], k), 1, repeats)
    ratio = brute_s / beam_s
    return {
        "n_items": s["n"],
        "beam_ms_per_query": beam_s / nq * 1e3,
        "brute_force_ms_per_query": brute_s / nq * 1e3,
        "speedup": ratio,
        "target": SPEEDUP_TARGET,
        "met": ratio >= SPEEDUP_TARGET,
        "nodes_scored_per_query": s["scored"],
        "recall@K": s["beam_recall"],
        "rows": [
            {"measure": f"{s['n']:,} items: beam search", "value": beam_s / nq * 1e3, "unit": "ms/query"},
            {"measure": f"{s['n']:,} items: brute force", "value": brute_s / nq * 1e3, "unit": "ms/query"},
            {
                "measure": "brute force / beam search",
                "value": ratio,
                "unit": "x",
                "target": f">= {SPEEDUP_TARGET:g}",
                "met": ratio >= SPEEDUP_TARGET,
            },
            {"measure": "beam search: nodes scored", "value": s["scored"], "unit": "/query"},
            {"measure": "beam search: recall@K of the exact top K", "value": s["beam_recall"], "unit": ""},
        ],
    }


@register_case("tree_vs_faiss", "tree beam search beside faiss IVF at matched numbers of scored items")
def _tree_vs_faiss(quick: bool) -> dict[str, Any]:
    try:
        import faiss
    except ImportError:
        return {"skipped": FAISS_HINT, "rows": [{"measure": f"skipped: {FAISS_HINT}", "value": 0.0, "unit": ""}]}
    s = _setup(quick)
    n, dim, k, nq = s["n"], SIZES["dim"], SIZES["beam"], SIZES["queries"]
    faiss.omp_set_num_threads(1)  # the numpy search is single-threaded too (bar BLAS)
    nlist = int(max(1, round(np.sqrt(n))))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    start = time.perf_counter()
    index.train(s["items"])
    index.add(s["items"])
    faiss_build_s = time.perf_counter() - start
    # Scored per query: the nlist centroids plus nprobe lists of about n / nlist items each.
    nprobe = int(max(1, round((s["scored"] - nlist) / (n / nlist))))
    index.nprobe = nprobe
    found = index.search(s["queries"], k)[1]
    faiss_recall = recall_at_k(found, s["exact"])
    repeats = 3 if quick else 7
    faiss_s = time_call(lambda: index.search(s["queries"], k), 1, repeats)
    beam_s = time_call(lambda: beam_search(s["tree"], s["score"], s["queries"], k), 1, repeats)
    faiss_scored = nlist + nprobe * n / nlist
    rows = [
        {"measure": f"tree: recall@K ({s['scored']:,.0f} nodes scored)", "value": s["beam_recall"]},
        {"measure": f"faiss IVF{nlist}, nprobe {nprobe}: recall@K ({faiss_scored:,.0f} scored)", "value": faiss_recall},
        {"measure": "tree: search", "value": beam_s / nq * 1e3, "unit": "ms/query"},
        {"measure": "faiss IVF: search (1 thread)", "value": faiss_s / nq * 1e3, "unit": "ms/query"},
        {"measure": "tree: build (balanced k-means)", "value": s["build_s"], "unit": "s"},
        {"measure": "faiss IVF: train + add", "value": faiss_build_s, "unit": "s"},
    ]
    return {
        "n_items": n,
        "nlist": nlist,
        "nprobe": nprobe,
        "faiss_scored_per_query": faiss_scored,
        "tree_scored_per_query": s["scored"],
        "faiss_recall@K": faiss_recall,
        "tree_recall@K": s["beam_recall"],
        "faiss_ms_per_query": faiss_s / nq * 1e3,
        "tree_ms_per_query": beam_s / nq * 1e3,
        "faiss_build_s": faiss_build_s,
        "tree_build_s": s["build_s"],
        "rows": [{"unit": "", **row} for row in rows],
    }


@register_case("tree_build", "build_tree (balanced k-means, B = 32, d = 32) at 10^4, 10^5 and 10^6 items")
def _tree_build(quick: bool) -> dict[str, Any]:
    sizes = SIZES["quick_build_items" if quick else "build_items"]
    result: dict[str, Any] = {"seconds": {}, "rows": []}
    for n in sizes:
        items, _ = catalog(n, SIZES["dim"], 1)
        start = time.perf_counter()
        build_tree(items, SIZES["branches"], seed=0)
        seconds = time.perf_counter() - start
        result["seconds"][str(n)] = seconds
        row: dict[str, Any] = {"measure": f"{n:,} items", "value": seconds, "unit": "s"}
        if n == 1_000_000:
            row.update(target=f"< {BUILD_TARGET_S:g}", met=seconds < BUILD_TARGET_S)
        result["rows"].append(row)
    return result
