"""Tree retrieval with beam search: a trained tree retriever against brute force, and a trained ranker.

Zhang et al. (NeurIPS 2024), Sec. 3.2: the items are the leaves of a tree built by balanced
k-means; a retriever scores the nodes, and beam search keeps the K best at every level, so it
scores about K * B nodes per level instead of every item. This script

1. trains ``tree-linear`` (node vectors w_v, f(x, v) = <x, w_v>) and the ``brute-force`` reference
   (one vector per item, every item scored) on the env's supervised data, and plays both on
   ``TwoStage/TreeRetrieval-v0`` with the oracle ranker: recall@K (the target in the beam) and the
   two-stage hit rate;
2. trains a linear ranker on all data (TS) and on the examples the retriever retrieves (H-TS), and
   serves with each as the env's ``ranker=``.

Run: ``python examples/tree_beam_search.py --queries 300``.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import agents
import twostage_gym  # noqa: F401  (registers the environments)
from agents.tree import fit_ranker


def play(agent: agents.Agent, env: gym.Env, queries: int) -> dict[str, float]:
    """Serve ``queries`` queries (scores mode: one step each); the mean recall@K and hit rate."""
    obs, _ = env.reset(seed=0)
    hits, served = [], []
    for _ in range(queries):
        obs, _, _, _, info = env.step(agent.act(obs))
        hits.append(info["retrieval_hit"])
        served.append(info["ranker_hit"])
    return {"recall@K": float(np.mean(hits)), "precision@1": float(np.mean(served))}


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=300, help="queries served per retriever")
    parser.add_argument("--n-train", type=int, default=10_000, help="training examples")
    args = parser.parse_args(argv)

    world = {"n_items": 1024, "branches": 4, "beam": 20, "world_seed": 0, "mode": "scores"}
    env = gym.make("TwoStage/TreeRetrieval-v0", **world)
    results: dict[str, dict[str, float]] = {}
    print(f"{'retriever':<12} {'recall@20':>9} {'precision@1':>12}   (oracle ranker, {args.queries} queries)")
    for name in ("tree-linear", "brute-force"):
        agent = agents.make(name, env, n_train=args.n_train)
        env.reset(seed=0)
        agent.reset(0)
        results[name] = play(agent, env, args.queries)
        print(f"{name:<12} {results[name]['recall@K']:>9.3f} {results[name]['precision@1']:>12.3f}")
    tree = env.unwrapped.tree
    print(f"the tree: {tree.n_items} items, B = {tree.branches}, {tree.n_levels} levels; beam search scores at "
          f"most {4 + 20 * 4 * (tree.n_levels - 1)} nodes a query, brute force {tree.n_items} items")  # fmt: skip

    # Rankers: TS on every example, H-TS on those whose target the retriever retrieves.
    contexts, targets = env.unwrapped.sample_dataset(args.n_train, seed=1)
    retriever = agents.make("tree-linear", env, n_train=args.n_train)
    retriever.reset(0)
    retrieved = retriever.model.retrieve(contexts.astype(np.float64), 20).items
    rankers = {
        "TS": fit_ranker(contexts, targets, tree.n_items, mode="ts"),
        "H-TS": fit_ranker(contexts, targets, tree.n_items, mode="h-ts", retrieved=retrieved),
    }
    print(f"\n{'ranker':<12} {'examples':>9} {'precision@1':>12}   (tree-linear retriever)")
    for label, ranker in rankers.items():
        served_env = gym.make("TwoStage/TreeRetrieval-v0", ranker=ranker, **world)
        # The same world (world_seed=0): the retriever trained on one env serves on the other.
        results[label] = play(retriever, served_env, args.queries)
        print(f"{label:<12} {ranker.n_train:>9,} {results[label]['precision@1']:>12.3f}")
    return results


if __name__ == "__main__":
    main()
