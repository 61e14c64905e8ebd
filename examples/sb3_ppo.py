"""Stable-Baselines3 PPO on TwoStage/Nominators-v0, against the random agent.

PPO plays both stages with one MultiDiscrete action (each nominator's pick within its pool,
then the ranker's pick among the candidates) from the raw context. An unseeded reset keeps the
problem instance, so PPO learns one instance across episodes. We evaluate the trained policy
and the random agent on the same seed, hence the same stream of users, and compare regret per
round; the bandit learners of `agents` are shown for scale.

    pip install "twostage-gym[sb3]"
    python examples/sb3_ppo.py --timesteps 30000
"""

from __future__ import annotations

import argparse

import gymnasium as gym

import agents
import twostage_gym  # noqa: F401

ENV_KWARGS = {"n_items": 20, "dim": 5, "n_nominators": 2}


def regret_per_round(policy, env: gym.Env, steps: int, seed: int) -> float:
    """Mean regret per round of ``policy(obs) -> action`` over ``steps`` rounds."""
    obs, _ = env.reset(seed=seed)
    total = 0.0
    for _ in range(steps):
        obs, _, terminated, truncated, info = env.step(policy(obs))
        total += float(info["regret"])
        if terminated or truncated:
            obs, _ = env.reset()
    return total / steps


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, default=30_000, help="PPO training steps")
    parser.add_argument("--eval-steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import torch
        from stable_baselines3 import PPO
    except ImportError as err:
        raise SystemExit('this example needs stable-baselines3: pip install "twostage-gym[sb3]"') from err
    # PPO's MLP is tiny: on a CPU one thread is several times faster than contending threads.
    torch.set_num_threads(1)

    env = gym.make("TwoStage/Nominators-v0", **ENV_KWARGS)
    env.reset(seed=args.seed)  # fixes the instance PPO trains on
    model = PPO("MlpPolicy", env, n_steps=512, batch_size=128, learning_rate=1e-3, seed=args.seed, verbose=0)
    model.learn(total_timesteps=args.timesteps)

    eval_env = gym.make("TwoStage/Nominators-v0", **ENV_KWARGS)
    results = {
        "ppo": regret_per_round(lambda o: model.predict(o, deterministic=True)[0], eval_env, args.eval_steps, args.seed)
    }
    for name in ("random", "ucb+ucb"):
        record = agents.evaluate(agents.make(name, eval_env), eval_env, args.eval_steps, args.seed)
        results[name] = record["cumulative_regret"] / args.eval_steps
    print(f"regret per round over {args.eval_steps} rounds (seed {args.seed}, PPO trained {args.timesteps} steps)")
    for name, value in results.items():
        print(f"  {name:8s} {value:.3f}")
    return results


if __name__ == "__main__":
    main()
