"""Choosing among recommenders with a D-optimal experiment design (Xu et al., KDD 2021).

Four candidate recommenders (popularity, item-CF, user-CF, matrix factorisation) each propose a
movie for every request; the learner chooses whose proposal the user sees. First the design: for
random arm features with k >= d, the Frank-Wolfe solver's design meets the Kiefer-Wolfowitz
identity max_a phi_a^T M(pi)^{-1} phi_a = d; for one request's 4 arms (fewer than the feature
dimension) only the design with a prior is defined. Then the stage-wise learner that explores
from that design plays the semi-synthetic protocol beside uniform exploration, LinUCB and random,
and we print the cumulative recall per epoch (the paper's Fig. 3 metric).

    python examples/recommender_selection.py --epochs 6 --seeds 2
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import agents
import twostage_gym  # noqa: F401
from agents.selection.design import d_optimal_design
from agents.selection.features import FeatureMap
from agents.selection.staged import design_probabilities

LEARNERS = ("d-optimal", "uniform-explore", "linucb", "random")


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6, help="epochs: every user served once per epoch")
    parser.add_argument("--seeds", type=int, default=2, help="seeds 0..seeds-1 (world, split, request order)")
    parser.add_argument("--users", type=int, default=150, help="users of the synthetic world")
    args = parser.parse_args(argv)

    # 1. The design on random features: Kiefer-Wolfowitz at the optimum.
    Phi = np.random.default_rng(0).standard_normal((200, 10))
    design = d_optimal_design(Phi, eps=1e-3)
    print(f"design over k = 200 arms in d = 10: max_a g_a = {design.max_gradient:.3f} (d = 10), "
          f"{int((design.pi > 0).sum())} arms in the support, {design.iterations} Frank-Wolfe iterations")  # fmt: skip

    # 2. One request of the env: 4 arms, so the design needs a prior (here the ridge, A = I).
    env = gym.make("TwoStage/RecommenderSelection-v0", n_users=args.users, n_items=2 * args.users, n_epochs=args.epochs)
    obs, _ = env.reset(seed=0)
    features = FeatureMap(env)
    pi = design_probabilities(features(obs), np.eye(features.dim), eps=1e-3)
    names = env.unwrapped.recommenders
    shares = ", ".join(f"{n} {p:.2f}" for n, p in zip(names, pi, strict=True))
    print(f"exploration design for the first request: {shares}")

    # 3. The learners, one episode per seed; cumulative recall per epoch (the env's oracle 'recall').
    recall: dict[str, np.ndarray] = {}
    for name in LEARNERS:
        curves = []
        for seed in range(args.seeds):
            env = gym.make(
                "TwoStage/RecommenderSelection-v0", n_users=args.users, n_items=2 * args.users, n_epochs=args.epochs
            )
            agent = agents.make(name, env)
            obs, _ = env.reset(seed=seed)
            agent.reset(seed)
            curve, terminated, t = [], False, 0
            while not terminated:
                action = agent.act(obs)
                next_obs, reward, terminated, _, info = env.step(action)
                agent.update(obs, action, reward, {})  # the learners need no info
                obs, t = next_obs, t + 1
                if t % env.unwrapped.steps_per_epoch == 0:
                    curve.append(float(info["recall"]))
            curves.append(curve)
        recall[name] = np.mean(curves, axis=0)
    print(f"cumulative recall per epoch, mean over seeds 0..{args.seeds - 1}:")
    for name, curve in recall.items():
        print(f"  {name:16s} " + " ".join(f"{x:.4f}" for x in curve))
    return {"design": design, "request_design": pi, "recall": recall}


if __name__ == "__main__":
    main()
