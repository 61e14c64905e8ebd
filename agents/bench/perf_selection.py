"""Throughput of the D-optimal design solver (Xu et al. 2021) for ``twostage-bench perf``.

Issue 22, section 5: Frank-Wolfe to eps = 0.01 at k in {4, 100, 1000} arms and d in {6, 50,
100} dimensions, with a target of 100 ms at k = 1000, d = 100, side by side with a general convex
solver on the same problem (cvxpy's ``log_det`` with Clarabel, an optional bench dependency) at
the same tolerance. Instances are standard normal features (seed 0). Where k < d the plain design
is undefined (log det M(pi) = -inf for every pi), so those cells solve the regularised design with
the prior A = I (Eq. 6's form), as the learners do at every request.

"Same tolerance": our solver stops when the certificate bounds the shortfall of log det by
eps sum_a pi(a) g_a (eps d without a prior); Clarabel is given that bound as its absolute duality
gap. Each side's design is then judged by our certificate, recomputed afresh
(:func:`agents.selection.design.design_gradient`), and the two log dets are printed.

Both solvers run with the BLAS limited to one thread (``threadpoolctl``, where installed): the
solver's products are d x d and k x d, too small for threads to pay, and on a shared two-core
machine a multi-threaded BLAS made the k = 1000, d = 100 solve 3-5 times slower (measured).

The sizes are module-level (:data:`SIZES`), so that a test can run the case at reduced sizes.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import numpy as np

from agents.bench.perf import register_case, time_call
from agents.selection.design import DEFAULT_EPS, d_optimal_design, design_gradient, log_det_information

__all__ = ["CVXPY_HINT", "SIZES", "TARGET_MS", "cvxpy_design", "solver_cell"]

TARGET_MS = 100.0
"""Issue 22: Frank-Wolfe to eps = 0.01 under 100 ms at k = 1000, d = 100."""
CVXPY_HINT = 'the side-by-side convex solver needs cvxpy: pip install "twostage-gym[bench]" (or pip install cvxpy)'

SIZES: dict[str, Any] = {"k": (4, 100, 1000), "d": (6, 50, 100), "target": (1000, 100), "cvxpy_max_d": 50}
"""The grid of the case (a test lowers it). cvxpy solves the cells with d <= ``cvxpy_max_d`` and
k d <= 5,000 (d <= 6 in quick mode): its log_det cone grows with d^2, and on two cores it took 21 s
at k = 100, d = 50 (ours: 7 ms); at d = 100 it runs for minutes."""


def _instance(k: int, d: int) -> tuple[np.ndarray, np.ndarray | None]:
    Phi = np.random.default_rng(0).standard_normal((k, d))
    return Phi, (np.eye(d) if k < d else None)


def _certificate(Phi: np.ndarray, pi: np.ndarray, prior: np.ndarray | None) -> float:
    """max_a g_a / sum_a pi(a) g_a - 1 at ``pi`` (0 at the optimum), computed afresh."""
    g = design_gradient(Phi, pi, prior)
    return float(g.max() / (pi @ g) - 1.0)


def cvxpy_design(Phi: np.ndarray, prior: np.ndarray | None, gap: float) -> tuple[np.ndarray, float]:
    """The design by cvxpy (``log_det``, Clarabel) with absolute duality gap ``gap``; (pi, seconds of ``solve``).

    Raises:
        ImportError: cvxpy is not installed (with the install hint).
    """
    try:
        import cvxpy as cp
    except ModuleNotFoundError as err:
        raise ImportError(CVXPY_HINT) from err
    k = Phi.shape[0]
    pi = cp.Variable(k, nonneg=True)
    M = Phi.T @ cp.diag(pi) @ Phi
    objective = cp.log_det(M + prior if prior is not None else M)
    problem = cp.Problem(cp.Maximize(objective), [cp.sum(pi) == 1])
    start = time.perf_counter()
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=gap, tol_gap_rel=1e-12)
    seconds = time.perf_counter() - start
    value = np.clip(np.asarray(pi.value, dtype=np.float64), 0.0, None)
    return value / value.sum(), seconds


def solver_cell(k: int, d: int, eps: float, repeats: int, with_cvxpy: bool) -> dict[str, Any]:
    """One (k, d) cell: our median ms, iterations and certificate; cvxpy's, when ``with_cvxpy``."""
    Phi, prior = _instance(k, d)
    result = d_optimal_design(Phi, prior=prior, eps=eps)
    ms = time_call(lambda: d_optimal_design(Phi, prior=prior, eps=eps), 1, repeats) * 1e3
    cell: dict[str, Any] = {
        "k": k,
        "d": d,
        "prior": prior is not None,
        "ms": ms,
        "iterations": result.iterations,
        "support": int((result.pi > 0).sum()),
        "certificate": _certificate(Phi, result.pi, prior),
        "log_det": result.log_det,
    }
    if with_cvxpy:
        pi, seconds = cvxpy_design(Phi, prior, eps * result.mean_gradient)
        cell["cvxpy"] = {
            "ms": seconds * 1e3,
            "certificate": _certificate(Phi, pi, prior),
            "log_det": log_det_information(Phi, pi, prior),
        }
    return cell


@register_case(
    "selection_design",
    "D-optimal design by Frank-Wolfe to eps = 0.01 (k arms x d dims; prior I where k < d) vs cvxpy log_det",
)
def _selection_design(quick: bool) -> dict[str, Any]:
    try:
        import cvxpy  # noqa: F401

        have_cvxpy = True
    except ModuleNotFoundError:
        have_cvxpy = False
    try:
        from threadpoolctl import threadpool_limits

        single_thread: Any = threadpool_limits(limits=1)
    except ImportError:
        single_thread = contextlib.nullcontext()
    with single_thread:
        return _measure(quick, have_cvxpy)


def _measure(quick: bool, have_cvxpy: bool) -> dict[str, Any]:
    repeats = 3 if quick else 9
    cells = []
    rows: list[dict[str, Any]] = []
    for k in SIZES["k"]:
        for d in SIZES["d"]:
            with_cvxpy = have_cvxpy and d <= (6 if quick else SIZES["cvxpy_max_d"]) and k * d <= 5_000
            cell = solver_cell(k, d, DEFAULT_EPS, repeats, with_cvxpy)
            cells.append(cell)
            label = f"k={k}, d={d}{' (prior I)' if cell['prior'] else ''}"
            row: dict[str, Any] = {"measure": f"{label}: Frank-Wolfe", "value": cell["ms"], "unit": "ms"}
            if (k, d) == tuple(SIZES["target"]):
                row.update(target=f"<= {TARGET_MS:g}", met=cell["ms"] <= TARGET_MS)
            rows.append(row)
            if "cvxpy" in cell:
                rows.append({"measure": f"{label}: cvxpy (Clarabel)", "value": cell["cvxpy"]["ms"], "unit": "ms"})
                rows.append(
                    {
                        "measure": f"{label}: log det, ours - cvxpy's",
                        "value": cell["log_det"] - cell["cvxpy"]["log_det"],
                        "unit": "nats",
                    }
                )
    if not have_cvxpy:
        rows.append({"measure": f"cvxpy not installed ({CVXPY_HINT})", "value": 0.0, "unit": "-"})
    return {"eps": DEFAULT_EPS, "target_ms": TARGET_MS, "cvxpy": have_cvxpy, "cells": cells, "rows": rows}
