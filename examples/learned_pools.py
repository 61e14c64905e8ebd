"""Learning the nominators' item pools with a Gaussian Mixture-of-Experts (Hron et al. 2021, Sec. 4).

1. Generate multi-label data (twostage_gym.datasets.multilabel): users, 100 items in 10 clusters,
   power-law positive rates, c training examples per item, and test users with all their labels.
2. Train three models of N two-tower experts by the Gaussian MoE likelihood (Eq. 8): the paper's
   gate (user + item embeddings), a gate on item embeddings only, and fixed random pools (App. B).
   Compare precision@5 and recall@5 on the test users (Fig. 5).
3. Distill hard pools from the item gate (learn_pools) and plug them into TwoStage/Nominators-v0:
   ucb+ucb with the learned pools against random pools, regret and its stage split.

    python examples/learned_pools.py --steps 2000 --seeds 5
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import agents
import twostage_gym  # noqa: F401  (registers the envs)
from agents.nominators.moe import evaluate_moe, fit_moe, learn_pools
from twostage_gym.core.allocation import random_pools
from twostage_gym.datasets.multilabel import make_multilabel

N_EXPERTS = 10


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="gradient steps per model (50,000 in the paper)")
    parser.add_argument("--examples-per-item", type=int, default=500, help="c")
    parser.add_argument("--nominator-dim", type=int, default=100, help="s, features each expert sees")
    parser.add_argument("--embedding-dim", type=int, default=5, help="d_e")
    parser.add_argument("--seeds", type=int, default=5, help="bandit seeds")
    parser.add_argument("--bandit-steps", type=int, default=1000, help="T of the bandit comparison")
    args = parser.parse_args(argv)

    data = make_multilabel(examples_per_item=args.examples_per_item, n_test=10_000, seed=0)
    stats = data.summary()
    print(
        f"data: |A| = {data.n_items}, d = {data.dim}, c = {data.examples_per_item}; positive rate "
        f"{stats['positive_rate']:.3f}, {stats['empty_rows']:.1%} of test users with no positive\n"
    )
    print(f"{'model (N = 10)':<24} {'precision@5':>12} {'recall@5':>9}   distilled pools P@5 / R@5")
    scores, models = {}, {}
    for gating in ("user+item", "item", "random"):
        fit = fit_moe(
            data.train_contexts,
            data.train_items,
            data.train_rewards,
            data.n_items,
            n_experts=N_EXPERTS,
            nominator_dim=args.nominator_dim,
            embedding_dim=args.embedding_dim,
            gating=gating,
            steps=args.steps,
            seed=0,
        )
        models[gating] = fit.model
        scores[gating] = evaluate_moe(fit.model, data.test_contexts, data.test_labels, k=5)
        line = f"{gating:<24} {scores[gating]['precision']:12.3f} {scores[gating]['recall']:9.3f}"
        if gating != "random":
            pools = learn_pools(fit.model, data.train_contexts)
            hard = evaluate_moe(fit.model, data.test_contexts, data.test_labels, k=5, pools=pools)
            line += f"   {hard['precision']:.3f} / {hard['recall']:.3f}"
        print(line)

    # The item gate's pools, distilled: every item to the expert with its largest average gate.
    learned = learn_pools(models["item"], data.train_contexts)
    balanced = [p.tolist() for p in random_pools(data.n_items, N_EXPERTS, np.random.default_rng(0))]
    print(f"\nlearned pool sizes: {sorted(len(p) for p in learned)}")
    print(f"ucb+ucb on TwoStage/Nominators-v0 (misspecification 4), T = {args.bandit_steps}, {args.seeds} seeds")
    bandit = {}
    for arm, pools in (("learned pools", learned), ("random pools", balanced)):
        env = gym.make(
            "TwoStage/Nominators-v0", n_items=data.n_items, n_nominators=N_EXPERTS, misspecification=4, pools=pools
        )
        records = [
            agents.evaluate(agents.make("ucb+ucb", env), env, args.bandit_steps, seed) for seed in range(args.seeds)
        ]
        totals = {k: float(np.mean([r[k] for r in records])) for k in ("cumulative_regret", "nominator_regret")}
        totals["ranker_regret"] = float(np.mean([r["ranker_regret"] for r in records]))
        bandit[arm] = totals
        print(
            f"  {arm:<14} regret/T {totals['cumulative_regret'] / args.bandit_steps:.3f} "
            f"(nominators {totals['nominator_regret'] / totals['cumulative_regret']:.0%} of it)"
        )
    print(
        "\nItems of Nominators-v0 are exchangeable (fresh i.i.d. features every round, one theta*), so pools\n"
        "learned on other data can only matter through their sizes:\n"
        "see `twostage-bench reproduce hron2021-learned-pools`."
    )
    return {"scores": scores, "learned_pools": learned, "bandit": bandit}


if __name__ == "__main__":
    main()
