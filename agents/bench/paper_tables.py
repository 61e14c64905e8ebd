"""Published numbers the reproductions are printed beside (facts from the papers, not our runs)."""

from __future__ import annotations

__all__ = ["KIYOHARA2026_TABLE2", "KIYOHARA2026_TABLE3"]

# Kiyohara et al. 2026, Table 2: policy value of the deterministic ESR (mean over 10 seeds) at
# 50K -> 500K gradient steps; single logit model, L = 1. Columns: K in {5, 10, 20} with the
# optimal LSR, then the LSR alignment at K = 10 (the 'opt.' column repeats K = 10).
KIYOHARA2026_TABLE2: dict[str, dict[str, tuple[float, float]]] = {
    "v-pg": {
        "K=5": (7.09, 7.22), "K=10": (7.16, 7.17), "K=20": (6.86, 6.86),
        "optimal": (7.16, 7.17), "noisy": (7.25, 7.25), "uniform": (3.27, 3.28), "anti-optimal": (1.07, 1.07),
    },
    "v-pg-swr": {
        "K=5": (7.68, 8.33), "K=10": (7.80, 8.54), "K=20": (7.88, 8.74),
        "optimal": (7.80, 8.54), "noisy": (7.86, 8.55), "uniform": (3.80, 6.39), "anti-optimal": (1.05, 1.08),
    },
    "ca-pg": {
        "K=5": (7.39, 8.19), "K=10": (7.99, 8.44), "K=20": (8.39, 8.70),
        "optimal": (7.99, 8.44), "noisy": (8.14, 8.42), "uniform": (5.64, 6.73), "anti-optimal": (1.00, 1.00),
    },
    "ca-pg-swr": {
        "K=5": (7.37, 8.11), "K=10": (7.94, 8.40), "K=20": (8.33, 8.62),
        "optimal": (7.94, 8.40), "noisy": (8.11, 8.41), "uniform": (5.79, 6.90), "anti-optimal": (1.00, 1.00),
    },
}  # fmt: skip

# Kiyohara et al. 2026, Table 3: policy value at 500K gradient steps (or at the overflow point),
# K = 10, optimal LSR. Columns: (L, M) for L in {1, 5} outputs and M in {1, 5} experts.
KIYOHARA2026_TABLE3: dict[str, dict[str, float]] = {
    "v-pg": {"L=1,M=1": 7.17, "L=1,M=5": 7.63, "L=5,M=1": 25.0, "L=5,M=5": 26.5},
    "v-pg-swr": {"L=1,M=1": 8.54, "L=1,M=5": 8.58, "L=5,M=1": 38.1, "L=5,M=5": 37.2},
    "ca-pg": {"L=1,M=1": 8.44, "L=1,M=5": 8.88, "L=5,M=1": 36.2, "L=5,M=5": 37.2},
    "ca-pg-swr": {"L=1,M=1": 8.40, "L=1,M=5": 8.82, "L=5,M=1": 36.3, "L=5,M=5": 37.6},
}
