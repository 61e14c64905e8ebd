"""One stage or two at the same budget: topic -> item neural bandits (the topic-item paper, Table 5).

Each round a user arrives and the recommender may compute B = 5 x 200 acquisition scores. A
one-stage learner scores B items drawn uniformly from the 10,000-item catalog and shows the top 5.
A two-stage learner ("2-") first scores the 50 topics; the env builds 5 topic groups
(DynaTopicRec) and the learner scores 190 candidates of each group, showing the best of each. We
run S-N-GALM-UCB both ways, next to random items and random topics-then-items, for the same
number of rounds and seeds, and print the cumulative CTR (the sum over rounds of clicks / 5, the
paper's metric).

A two-stage round is two env steps (topic phase, item phase), so the two-stage learners get
``steps = 2 * rounds``. Random topics cost clicks against random items (the paper's 2-Random <
Random): large topics click more and a random topic is usually small. Whether learned topics win
back more than that depends on how well the topic stage learns the users' topics from clicks.

    pip install "twostage-gym[torch]"
    python examples/topic_item.py --rounds 500 --seeds 2
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import agents
import twostage_gym  # noqa: F401

LEARNERS = ("random", "2-random", "s-n-galm-ucb", "2-s-n-galm-ucb")


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=500, help="recommendation rounds (users served)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds 0..seeds-1 (worlds, users, clicks)")
    parser.add_argument("--budget", type=int, default=200, help="acquisition scores per slot, b (B = 5 b)")
    args = parser.parse_args(argv)

    results: dict[str, list[float]] = {}
    print(f"cumulative CTR after {args.rounds} rounds, budget B = 5 x {args.budget}, seeds 0..{args.seeds - 1}")
    for name in LEARNERS:
        two_stage = name.startswith("2-")
        results[name] = []
        for seed in range(args.seeds):
            env = gym.make("TwoStage/TopicItem-v0", hierarchy=two_stage, budget_per_slot=args.budget)
            agent = agents.make(name, env)
            steps = 2 * args.rounds if two_stage else args.rounds
            record = agents.evaluate(agent, env, steps=steps, seed=seed)
            results[name].append(record["cumulative_reward"] / env.unwrapped.config.n_slots)
        ctr = np.array(results[name])
        print(f"  {name:15s} {ctr.mean():8.1f} +- {ctr.std():5.1f}   per seed {np.round(ctr, 1).tolist()}")
    return results


if __name__ == "__main__":
    main()
