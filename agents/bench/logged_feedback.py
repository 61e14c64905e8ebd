"""Logged bandit feedback with exact propensities, in Open Bandit Pipeline's dictionary layout.

``twostage-bench log --env ID --agent NAME --rounds N --out FILE.npz`` runs a learner online (it
acts and learns as in ``agents.evaluate``) and logs every round with the exact probability that
the logging policy took the logged action: the *propensity score* off-policy estimators (IPS, DR,
...) divide by. The file is a ``.npz`` that ``np.load(path, allow_pickle=False)`` reads;
:func:`load_logged_feedback` returns the dictionary Open Bandit Pipeline's estimators take
(``obp.dataset``'s ``bandit_feedback``): ``n_rounds``, ``n_actions``, ``context``,
``action_context``, ``action``, ``position``, ``reward``, ``pscore``, plus OBP's synthetic-data
keys ``expected_reward`` (the oracle q(x, a) of every action) and, where the learner gives it,
``pi_b`` (the whole logging distribution).

What an action and its propensity are, per family:

* Nominators (Hron et al. 2021): the action is the served item (``n_actions`` = |A|) and
  ``pscore`` its marginal probability under the learner's two-stage policy, summed over the
  nominations and ranker picks that serve it, from the learner's
  :meth:`~agents.common.base.Agent.action_probabilities` (``random``: 1/N x 1/|A_n| summed over
  the pools holding the item; the single-stage ``pg``: its softmax; UCB / Greedy systems:
  deterministic, one-hot). ``context`` is the round's item-feature matrix X_t flattened to
  |A| x d values, ``action_context`` the identity (items have no fixed features), as OBP's
  synthetic data has by default; ``pi_b`` is ``(n_rounds, |A|, 1)``.
* Early-stage ranker (Kiyohara et al. 2026): the action is the ordered candidate set the env
  sampled from the learner's logits by Plackett-Luce, ``(n_rounds, K)``, and ``pscore`` the
  exact probability of that candidate *set* (in any order: the late-stage ranker's ranking and
  the reward depend only on the set), by :func:`pl_set_log_prob`; ``pscore_ordered`` is that of
  the sampled order. ``context`` is the user's features, ``action_context`` the item features.
  The learner is batched: ``rounds`` must be a multiple of its ``batch_size``.
* Recommender selection (Xu et al. 2021): the action is the arm (recommender) served for the
  request (``n_actions`` = k) and ``pscore`` its probability from the learner's
  :meth:`~agents.common.base.Agent.action_probabilities` (``random``: 1/k; ``epsilon-greedy``:
  epsilon/k plus 1 - epsilon shared by the arms tied for the best mean; ``linucb`` and the
  stage-wise learners' greedy rounds: one-hot on the argmax, shared among ties; the stage-wise
  exploration rounds: the D-optimal design's, or uniform, probabilities). Thompson-sampling
  learners (``mab-ts``, ``lin-ts``, ``d-optimal-ts`` at its exploitation rounds) have no closed
  form and are refused. ``context`` is the request's k x d observation flattened,
  ``action_context`` the identity, ``pi_b`` ``(n_rounds, k, 1)``, and ``expected_reward`` the
  oracle's ``positive`` flags of the k proposals (the reward of serving each arm).

``position`` is 0 throughout (one decision per round). Extra keys: ``meta`` (what was run),
``candidates`` (not for selection) and the oracle ``round_expected_reward`` (the logged
action's expected reward, ``info["expected_reward"]``), for the early-stage ranker ``ranking``,
``position_reward`` and ``user``, and for selection ``user`` and ``proposals`` (each arm's item).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import agents
import twostage_gym
from agents.bench.config import BenchError, RunConfig, check_names, parse_kwargs, validate_configs
from agents.bench.records import prepare_dir
from agents.common.batched import BatchedAgent
from twostage_gym.core import public_info
from twostage_gym.core.checks import integer
from twostage_gym.core.plackett_luce import logsumexp, pl_log_prob

__all__ = [
    "FORMAT",
    "MAX_SET_CANDIDATES",
    "OBP_KEYS",
    "cmd_log",
    "configure_log",
    "ips_estimate",
    "load_logged_feedback",
    "log_feedback",
    "pl_set_log_prob",
    "save_logged_feedback",
]

FORMAT = 1
"""Version of the file layout; bump it when a key changes meaning."""

OBP_KEYS = ("n_rounds", "n_actions", "context", "action_context", "action", "position", "reward", "pscore")
"""The keys of Open Bandit Pipeline's ``bandit_feedback`` dictionary that every log holds."""

MAX_SET_CANDIDATES = 12
"""The largest K for which the candidate set's probability is computed: the sum runs over 2^K subsets."""

_FAMILIES = ("nominators", "early-stage-ranker", "selection")

_NOT_LOGGED = {
    "topic-item": "a round has two phases (topics, then items), so there is no single logged action yet",
    "tree": "the action is the retriever's node scores and the served item comes from a deterministic beam search "
    "and ranker, so there is no stochastic logging policy to give propensities for",
}
"""Why the other families are not logged, for the one-line refusal."""


# -- the Plackett-Luce probability of a candidate set --------------------------------------
def pl_set_log_prob(
    logits: np.ndarray, candidates: np.ndarray, temperature: float = 1.0, assignment: np.ndarray | None = None
) -> np.ndarray:
    """log P(the K positions of the Plackett-Luce ESR are filled by these K items, in any order).

    Position k draws from softmax(logit_{m(k)} / tau) over the items not taken yet (``assignment``
    is the k -> m(k) expert map, None for one model). The probability of the set S sums the
    ordered probabilities over its K! orders; a recursion over the subsets U of S in order of size
    shares their prefixes: P(U) = sum_{i in U} P(U - i) p_{|U|}(i | U - i), whose normaliser (the
    mass of the items outside U - i) is the logsumexp of the mass outside S and of the members
    outside U - i. Every term is positive (no inclusion-exclusion, so no cancellation), in log
    space, O(2^K K) per row, for K <= :data:`MAX_SET_CANDIDATES`.

    Args:
        logits: ``(B, A)``, or ``(B, M, A)`` with M experts.
        candidates: ``(B, K)`` int, distinct items per row.
        temperature: tau.
        assignment: the expert of each position, ``(K,)``, or None.

    Returns:
        ``(B,)`` float64 log-probabilities.
    """
    cand = np.asarray(candidates, dtype=np.int64)
    if cand.ndim != 2:
        raise ValueError(f"candidates must have shape (B, K), got {cand.shape}")
    n_rows, K = cand.shape
    if K > MAX_SET_CANDIDATES:
        raise ValueError(
            f"n_candidates (K={K}): the set's probability sums over 2^K subsets; K <= {MAX_SET_CANDIDATES} is supported"
        )
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    zz = z[:, None, :] if assignment is None else z  # (B, M', A)
    experts = np.zeros(K, dtype=np.int64) if assignment is None else np.asarray(assignment, dtype=np.int64)
    idx = np.broadcast_to(cand[:, None, :], (n_rows, zz.shape[1], K))
    members = np.take_along_axis(zz, idx, -1)  # (B, M', K): each expert's logits of the members
    outside = zz.copy()
    np.put_along_axis(outside, idx, -np.inf, -1)
    tail = logsumexp(outside)[:, experts]  # (B, K): mass outside S for the expert of each position
    member = members[:, experts, :]  # (B, K positions, K members)
    bits = ((np.arange(1 << K)[:, None] >> np.arange(K)) & 1).astype(bool)  # subset -> members
    size = bits.sum(axis=1)
    log_p = np.full((n_rows, 1 << K), -np.inf)
    log_p[:, 0] = 0.0
    rest = np.empty((n_rows, 1 << K))  # log mass available after a prefix, at the next position
    one = 1 << np.arange(K)
    for k in range(1, K + 1):  # K levels; everything within a level is one array operation
        pos = member[:, k - 1, :]  # (B, K): logits of the members at position k
        prefixes = np.flatnonzero(size == k - 1)
        free = np.where(~bits[prefixes][None], pos[:, None, :], -np.inf)  # (B, nP, K)
        rest[:, prefixes] = np.logaddexp(tail[:, k - 1, None], logsumexp(free))
        subsets = np.flatnonzero(size == k)
        prefix = subsets[:, None] ^ one[None, :]  # U - i, valid where i is in U
        term = log_p[:, prefix] + pos[:, None, :] - rest[:, prefix]  # (B, nU, K)
        log_p[:, subsets] = logsumexp(np.where(bits[subsets][None], term, -np.inf))
    return log_p[:, -1]


# -- logging -------------------------------------------------------------------------------
def _meta(env_id: str, env_kwargs: dict, agent: str, agent_kwargs: dict, seed: int, family: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": twostage_gym.__version__,
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "agent": agent,
        "agent_kwargs": agent_kwargs,
        "seed": int(seed),
        "family": family,
    }


def _log_nominators(env: gym.Env, agent: agents.Agent, rounds: int, seed: int) -> dict[str, Any]:
    """One env step per round; the served item's propensity from ``agent.action_probabilities``."""
    base = env.unwrapped
    n_items = base.n_items
    obs, _ = env.reset(seed=seed)
    agent.reset(seed)
    context = np.empty((rounds, obs.size), dtype=np.float32)
    action = np.empty(rounds, dtype=np.int64)
    reward = np.empty(rounds)
    pi_b = np.empty((rounds, n_items))
    expected = np.empty((rounds, n_items))
    round_expected = np.empty(rounds)
    candidates = np.empty((rounds, base.n_nominators), dtype=np.int64)
    for t in range(rounds):
        probs = agent.action_probabilities(obs)
        if probs is None:
            raise BenchError(
                f"agent {agent.name!r} does not give the probabilities of its actions (a PG stage in a two-stage "
                "system: the served item's marginal sums over every candidate set); log with one that does, "
                "e.g. 'random', 'pg' (n_nominators=1) or a UCB / Greedy system (deterministic)"
            )
        probs = np.asarray(probs, dtype=np.float64)
        context[t] = obs.ravel()
        expected[t] = base.expected_rewards(obs)
        act = agent.act(obs)
        next_obs, r, terminated, truncated, info = env.step(act)
        agent.update(obs, act, r, public_info(info))
        served = int(info["chosen_item"])
        if not probs[served] > 0.0:
            raise RuntimeError(f"{agent.name!r} served item {served}, to which its action_probabilities gave 0")
        action[t], reward[t], pi_b[t] = served, r, probs
        round_expected[t], candidates[t] = info["expected_reward"], info["candidates"]
        if terminated or truncated:
            next_obs, _ = env.reset()
        obs = next_obs
    return {
        "n_actions": n_items,
        "context": context,
        "action_context": np.eye(n_items, dtype=np.float32),
        "action": action,
        "reward": reward,
        "pscore": pi_b[np.arange(rounds), action],
        "pi_b": pi_b[:, :, None],
        "expected_reward": expected,
        "round_expected_reward": round_expected,
        "candidates": candidates,
    }


def _log_selection(env: gym.Env, agent: agents.Agent, rounds: int, seed: int) -> dict[str, Any]:
    """One env step per request; the served arm's propensity from ``agent.action_probabilities``."""
    k = int(env.action_space.n)
    obs, _ = env.reset(seed=seed)
    agent.reset(seed)
    context = np.empty((rounds, obs.size), dtype=np.float32)
    action = np.empty(rounds, dtype=np.int64)
    reward = np.empty(rounds)
    pi_b = np.empty((rounds, k))
    expected = np.empty((rounds, k))
    round_expected = np.empty(rounds)
    user = np.empty(rounds, dtype=np.int64)
    proposals = np.empty((rounds, k), dtype=np.int64)
    for t in range(rounds):
        probs = agent.action_probabilities(obs)
        if probs is None:
            raise BenchError(
                f"agent {agent.name!r} does not give the probabilities of its actions (Thompson sampling: the "
                "chance that a posterior draw ranks an arm first has no closed form); log with one that does, "
                "e.g. 'random', 'epsilon-greedy', 'linucb', 'd-optimal' or 'uniform-explore'"
            )
        probs = np.asarray(probs, dtype=np.float64)
        context[t] = obs.ravel()
        act = agent.act(obs)
        next_obs, r, terminated, truncated, info = env.step(act)
        agent.update(obs, act, r, public_info(info))
        arm = int(info["arm"])
        if not probs[arm] > 0.0:
            raise RuntimeError(f"{agent.name!r} served arm {arm}, to which its action_probabilities gave 0")
        action[t], reward[t], pi_b[t] = arm, r, probs
        expected[t] = np.asarray(info["positive"], dtype=np.float64)
        round_expected[t], user[t], proposals[t] = info["expected_reward"], info["user"], info["proposals"]
        if terminated or truncated:
            next_obs, _ = env.reset()
        obs = next_obs
    return {
        "n_actions": k,
        "context": context,
        "action_context": np.eye(k, dtype=np.float32),
        "action": action,
        "reward": reward,
        "pscore": pi_b[np.arange(rounds), action],
        "pi_b": pi_b[:, :, None],
        "expected_reward": expected,
        "round_expected_reward": round_expected,
        "user": user,
        "proposals": proposals,
    }


def _log_early_stage(env: gym.Env, agent: BatchedAgent, rounds: int, seed: int) -> dict[str, Any]:
    """Batches of users on the native vector env, as ``agents.evaluate`` runs a batched learner."""
    B = agent.batch_size
    if rounds % B:
        raise BenchError(
            f"--rounds {rounds}: agent {agent.name!r} acts on batches of batch_size={B} users; "
            f"give a multiple of {B} (or set batch_size in --agent-kwargs)"
        )
    config = env.unwrapped.config
    if config.action_type != "logits":
        raise BenchError(
            "the early-stage ranker's log holds the Plackett-Luce sampling of its logits: use action_type='logits'"
        )
    if config.n_candidates > MAX_SET_CANDIDATES:
        raise BenchError(
            f"n_candidates={config.n_candidates}: the candidate set's exact probability sums over 2^K subsets; "
            f"K <= {MAX_SET_CANDIDATES} is supported"
        )
    kwargs = dict(env.spec.kwargs)
    if kwargs.get("world_seed") is None:
        kwargs["world_seed"] = seed  # the world that env.reset(seed=seed) draws, as agents.evaluate does
    if env.spec.max_episode_steps is not None:
        kwargs["max_episode_steps"] = env.spec.max_episode_steps
    vec = gym.make_vec(env.spec.id, B, vectorization_mode="vector_entry_point", **kwargs)
    try:
        env.reset(seed=seed)
        obs, _ = vec.reset(seed=seed)
        agent.reset(seed)
        parts: dict[str, list[np.ndarray]] = {key: [] for key in _ESR_PARTS}
        for _ in range(rounds // B):
            logits = np.asarray(agent.act(obs))
            next_obs, r, terminated, truncated, info = vec.step(logits)
            agent.update(obs, logits, r, public_info(info))
            cand = info["candidates"]
            row = {
                "context": obs,
                "action": cand,
                "reward": r,
                "pscore_ordered": np.exp(
                    pl_log_prob(logits.astype(np.float64), cand, config.esr_temperature, config.assignment)
                ),
                "pscore": np.exp(pl_set_log_prob(logits, cand, config.esr_temperature, config.assignment)),
                "expected_reward": vec.expected_rewards(info["user"]),
                "round_expected_reward": info["expected_reward"],
                "ranking": info["ranking"],
                "position_reward": info["position_rewards"],
                "user": info["user"],
            }
            for key, value in row.items():
                parts[key].append(np.asarray(value))
            if np.any(terminated) or np.any(truncated):
                next_obs, _ = vec.reset()  # the sub-envs step in lockstep: all start a new episode
            obs = next_obs
        item_features = np.asarray(vec.item_features, dtype=np.float32)
    finally:
        vec.close()
    feedback = {key: np.concatenate(value) for key, value in parts.items()}
    feedback["candidates"] = feedback["action"]
    return {"n_actions": int(config.n_items), "action_context": item_features, **feedback}


_ESR_PARTS = (
    "context",
    "action",
    "reward",
    "pscore",
    "pscore_ordered",
    "expected_reward",
    "round_expected_reward",
    "ranking",
    "position_reward",
    "user",
)


def log_feedback(
    env_id: str,
    agent: str,
    rounds: int,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    agent_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``agent`` online on ``env_id`` for ``rounds`` rounds and return the logged feedback.

    The env is reset with ``seed`` and the agent after it with the same seed, as in
    ``agents.evaluate``; the agent learns from each round as it goes.

    Returns:
        The feedback dictionary (see the module docstring): :data:`OBP_KEYS` and the extra keys,
        ``meta`` a dict.

    Raises:
        agents.bench.config.BenchError: an unknown env or agent, kwargs they refuse, a family that
            cannot be logged, or a learner that does not give the probabilities of its actions.
    """
    integer("rounds", rounds, low=1)
    integer("seed", seed, low=0)
    env_kwargs, agent_kwargs = dict(env_kwargs or {}), dict(agent_kwargs or {})
    check_names([(env_id, agent)])
    family = agents.family_of(env_id)
    if family not in _FAMILIES:
        raise BenchError(
            f"log supports the {', '.join(_FAMILIES)} families; {env_id} is of the family {family} "
            f"({_NOT_LOGGED.get(family, 'not supported yet')})"
        )
    # The bench's check of a configuration: builds and resets the pair, refusing bad kwargs up front.
    validate_configs([RunConfig(env_id, agent, rounds, env_kwargs, agent_kwargs)])
    env = gym.make(env_id, **env_kwargs)
    learner = agents.make(agent, env, **agent_kwargs)
    try:
        if family == "nominators":
            feedback = _log_nominators(env, learner, rounds, seed)
        elif family == "selection":
            feedback = _log_selection(env, learner, rounds, seed)
        else:
            feedback = _log_early_stage(env, learner, rounds, seed)
    finally:
        env.close()
    return {
        "n_rounds": int(rounds),
        "position": np.zeros(rounds, dtype=np.int64),
        **feedback,
        "meta": _meta(env_id, env_kwargs, agent, agent_kwargs, seed, family),
    }


# -- files ---------------------------------------------------------------------------------
def save_logged_feedback(feedback: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``feedback`` to the ``.npz`` file ``path`` (compressed; replaced atomically).

    Arrays are stored as they are, ``n_rounds`` / ``n_actions`` as 0-d integer arrays and
    ``meta`` as a 0-d JSON string, so that ``np.load(path, allow_pickle=False)`` reads the file.

    Raises:
        agents.bench.config.BenchError: a path that does not end in ``.npz``, is a directory, or
            cannot be written.
    """
    out = Path(path)
    if out.suffix != ".npz":
        raise BenchError(f"--out {out}: name a .npz file (what np.load reads), e.g. {out.with_suffix('.npz')}")
    if out.is_dir():
        raise BenchError(f"cannot write the log to {out}: it is a directory")
    directory = prepare_dir(out.parent, "log directory")
    arrays = {key: np.asarray(value) for key, value in feedback.items() if key != "meta"}
    arrays["meta"] = np.asarray(json.dumps(feedback["meta"], sort_keys=True))
    handle, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez_compressed(file, **arrays)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's file is private; the log gets a normal file's mode
        os.replace(tmp, out)  # a reader never sees half a file
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise BenchError(f"cannot write the log {out}: {err.strerror or err}") from None
    return out


def load_logged_feedback(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a log written by ``twostage-bench log`` as Open Bandit Pipeline's ``bandit_feedback`` dict.

    ``n_rounds`` and ``n_actions`` come back as ints and ``meta`` as a dict; every other key is
    an array. The dict can be given to OBP's estimators as it is, e.g.
    ``obp.ope.InverseProbabilityWeighting().estimate_policy_value(reward=fb["reward"],
    action=fb["action"], position=fb["position"], pscore=fb["pscore"], action_dist=...)``.

    >>> import numpy as np, tempfile, os
    >>> from agents.bench.logged_feedback import log_feedback, save_logged_feedback, load_logged_feedback
    >>> fb = log_feedback("TwoStage/Nominators-v0", "random", rounds=20, env_kwargs={"n_items": 10, "dim": 3})
    >>> path = save_logged_feedback(fb, os.path.join(tempfile.mkdtemp(), "log.npz"))
    >>> loaded = load_logged_feedback(path)
    >>> loaded["n_rounds"], loaded["n_actions"], loaded["pscore"].shape
    (20, 10, (20,))
    """
    with np.load(path, allow_pickle=False) as data:
        feedback: dict[str, Any] = {key: data[key] for key in data.files}
    for key in ("n_rounds", "n_actions"):
        feedback[key] = int(feedback[key])
    feedback["meta"] = json.loads(str(feedback["meta"]))
    return feedback


# -- estimation ----------------------------------------------------------------------------
def ips_estimate(feedback: dict[str, Any], target_probs: np.ndarray, z: float = 1.96) -> tuple[float, float]:
    """The IPS estimate of a target policy's value and the half-width of its normal CI.

    V_IPS = mean_t pi_e(a_t | x_t) / pscore_t * r_t; the half-width is ``z`` times the standard
    error of that mean (``z`` = 1.96: a 95% interval).

    Args:
        feedback: a log with scalar actions (the Nominators and selection families).
        target_probs: ``(n_rounds,)`` pi_e(a_t | x_t) of the logged actions.
    """
    weights = np.asarray(target_probs, dtype=np.float64) / feedback["pscore"]
    terms = weights * feedback["reward"]
    return float(terms.mean()), float(z * terms.std(ddof=1) / np.sqrt(terms.size))


# -- the command ---------------------------------------------------------------------------
def configure_log(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``twostage-bench log``."""
    parser.add_argument("--env", required=True, metavar="ID", help="environment id")
    parser.add_argument("--agent", required=True, metavar="NAME", help="the logging policy: an agent name")
    parser.add_argument("--rounds", required=True, type=_positive_int, metavar="N", help="rounds to log")
    parser.add_argument("--out", required=True, metavar="FILE", help="the .npz file to write")
    parser.add_argument("--seed", type=_nonnegative_int, default=0, metavar="S", help="seed of the env and agent")
    parser.add_argument("--env-kwargs", metavar="JSON", help="JSON object of gym.make kwargs")
    parser.add_argument("--agent-kwargs", metavar="JSON", help="JSON object of agents.make kwargs")
    parser.add_argument("--json", action="store_true", help="print a machine-readable JSON summary on stdout")


def cmd_log(args: argparse.Namespace) -> int:
    """Run ``twostage-bench log``: write the log and print a summary."""
    out = Path(args.out)
    if out.suffix != ".npz":  # checked before the run, which may take a while
        raise BenchError(f"--out {out}: name a .npz file (what np.load reads), e.g. {out.with_suffix('.npz')}")
    if out.is_dir():
        raise BenchError(f"cannot write the log to {out}: it is a directory")
    feedback = log_feedback(
        args.env,
        args.agent,
        args.rounds,
        args.seed,
        parse_kwargs(args.env_kwargs, "--env-kwargs"),
        parse_kwargs(args.agent_kwargs, "--agent-kwargs"),
    )
    save_logged_feedback(feedback, out)
    summary = {
        "file": str(out),
        "n_rounds": feedback["n_rounds"],
        "n_actions": feedback["n_actions"],
        "mean_reward": float(np.mean(feedback["reward"])),
        "min_pscore": float(np.min(feedback["pscore"])),
        "keys": sorted(k for k in feedback if k != "meta"),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"logged {summary['n_rounds']} rounds of {args.agent} on {args.env} to {out} "
            f"(mean reward {summary['mean_reward']:.4f}, smallest pscore {summary['min_pscore']:.3g})"
        )
    return 0


def _positive_int(text: str) -> int:
    return _int_at_least(text, 1, "a positive integer")


def _nonnegative_int(text: str) -> int:
    return _int_at_least(text, 0, "a non-negative integer")


def _int_at_least(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value
