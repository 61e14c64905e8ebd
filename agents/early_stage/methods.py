"""The five policy-gradient methods of Kiyohara et al. (2026): their names, default learning rates and
descriptions. Torch-free, so that the family registers without torch; the learner reads them too."""

from __future__ import annotations

__all__ = ["DEFAULT_LR", "DESCRIPTIONS", "METHODS"]

METHODS = ("v-pg", "v-pg-swr", "ca-pg", "ca-pg-swr", "top1-pg")

# App. E: chosen on the default setting and reused everywhere (batch size 128).
DEFAULT_LR = {"v-pg": 1e-1, "v-pg-swr": 1e-1, "ca-pg": 1e-2, "ca-pg-swr": 1e-2, "top1-pg": 1e-2}

DESCRIPTIONS = {
    "v-pg": "vanilla PG on the exact Plackett-Luce likelihood of the candidate set (Kiyohara et al. 2026)",
    "v-pg-swr": "vanilla PG, sampling-with-replacement score of the candidate set (Kiyohara et al. 2026)",
    "ca-pg": "credit-assigned PG on P(served item in candidate set), Eq. 8 (Kiyohara et al. 2026)",
    "ca-pg-swr": "credit-assigned PG, sampling-with-replacement marginal per expert (Kiyohara et al. 2026)",
    "top1-pg": "CA-PG-SwR with one logit model: log softmax of the served item (needs n_experts=1)",
}
