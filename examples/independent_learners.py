"""Independent learners in the PettingZoo nominators env (Hron et al. 2021, Sec. 3).

Every nominator (and the ranker, when it is an agent) runs its own linear UCB bandit on what it
alone observes: its pool under its feature view, or the candidate set. We compare them with
uniformly random nominators, first with the env's oracle ranker (only the nominators learn),
then with a UCB ranker agent (two phases per round: nominate, then serve).

    python examples/independent_learners.py --steps 2000 --seed 0
"""

import argparse

import numpy as np

from agents.nominators.independent import IndependentLearners
from twostage_gym.core import public_info
from twostage_gym.multiagent import nominators_v0

ENV_KWARGS = {"n_items": 100, "dim": 20, "n_nominators": 5, "nominator_dim": 10}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="rounds (users served) per run")
    parser.add_argument("--seed", type=int, default=0, help="seeds the instance, the contexts and the learners")
    return parser.parse_args()


def run(ranker: str, nominator: str, steps: int, seed: int) -> np.ndarray:
    """Cumulative (regret, nominator regret, ranker regret) after ``steps`` rounds."""
    env = nominators_v0.parallel_env(ranker=ranker, **ENV_KWARGS)
    learners = IndependentLearners(env, nominator=nominator, ranker="ucb")
    observations, _ = env.reset(seed=seed)
    learners.reset(seed)
    totals, rounds = np.zeros(3), 0
    while rounds < steps:
        actions = learners.act(observations)
        next_observations, rewards, _, truncations, infos = env.step(actions)
        # Learners never see the oracle keys; we read them for the scoreboard only.
        learners.update(observations, actions, rewards, {a: public_info(i) for a, i in infos.items()})
        info = infos["nominator_0"]
        if "regret" in info:  # a round ends here (every step, or every second step with a ranker agent)
            totals += (info["regret"], info["nominator_regret"], info["ranker_regret"])
            rounds += 1
        if any(truncations.values()):  # the horizon: same instance, learning goes on
            next_observations, _ = env.reset()
        observations = next_observations
    return totals


def main() -> None:
    args = parse_args()
    print(f"{'ranker':<12} {'nominators':<11} {'regret':>9} {'nominator':>10} {'ranker':>8}   ({args.steps} rounds)")
    for ranker, ranker_name in (("oracle", "env oracle"), ("agent", "UCB agent")):
        for nominator in ("ucb", "random"):
            regret, nominator_regret, ranker_regret = run(ranker, nominator, args.steps, args.seed)
            print(f"{ranker_name:<12} {nominator:<11} {regret:9.1f} {nominator_regret:10.1f} {ranker_regret:8.1f}")


if __name__ == "__main__":
    main()
