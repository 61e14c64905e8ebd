"""Quickstart: a two-stage recommender as a Gymnasium environment.

Five nominators each propose one item from their own pool; the ranker serves one of the five
candidates. The agent below plays both stages at random; `info` tells how much of the regret
each stage caused (Hron et al. 2021, Eq. 1).

    python examples/quickstart.py --steps 1000
"""

from __future__ import annotations

import argparse

import gymnasium as gym

import twostage_gym  # noqa: F401  (registers the TwoStage/... ids)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    env = gym.make("TwoStage/Nominators-v0", render_mode="ansi")
    obs, info = env.reset(seed=args.seed)
    env.action_space.seed(args.seed)
    print(f"context: {obs.shape[0]} items x {obs.shape[1]} features; action space {env.action_space}")

    totals = {"regret": 0.0, "nominator_regret": 0.0, "ranker_regret": 0.0}
    for t in range(1, args.steps + 1):
        action = env.action_space.sample()  # [nomination of each nominator within its pool, ranker pick]
        obs, _, terminated, truncated, info = env.step(action)
        for key in totals:
            totals[key] += float(info[key])
        if (terminated or truncated) and t < args.steps:  # after the last round, keep it to render
            obs, info = env.reset()
    print(env.render(), end="")  # the last round played
    print(
        f"after {args.steps} rounds: cumulative regret {totals['regret']:.1f} = "
        f"nominators {totals['nominator_regret']:.1f} + ranker {totals['ranker_regret']:.1f}"
    )
    return totals


if __name__ == "__main__":
    main()
