"""Policy gradients for a Plackett-Luce early-stage ranker under a fixed late-stage ranker (Kiyohara et al. 2026).

The learners train the early-stage ranker (ESR) of ``TwoStage/EarlyStageRanker-v0``: each batch
of users gets logits from a two-tower model, the env samples each user's candidate set by Gumbel
top-K and lets its fixed late-stage ranker (LSR) choose the served items, and the learner makes
one gradient step from the batch's candidate sets, served items and position rewards. The methods
differ in the score they multiply by the reward:

| name | score | default lr |
|---|---|---|
| ``v-pg`` | exact Plackett-Luce ``log pi(A^K)`` of the candidate set | 1e-1 |
| ``v-pg-swr`` | the same, sampling-with-replacement approximation | 1e-1 |
| ``ca-pg`` | ``log P(a_l in A^K)`` of each served item (Eq. 8) | 1e-2 |
| ``ca-pg-swr`` | ``logsumexp_k log softmax_{m(k)}(a_l)`` (App. D.2) | 1e-2 |
| ``top1-pg`` | ``ca-pg-swr`` with one logit model (M = 1): ``log softmax(a_l)`` | 1e-2 |

This package does not import torch, so ``import agents`` works without it; building a learner
does, and raises an ``ImportError`` with the install hint when torch is missing.

Modules:

* :mod:`agents.early_stage.methods`: the method table above (torch-free).
* :mod:`agents.early_stage.model`: the two-tower logit model with M experts.
* :mod:`agents.early_stage.scores`: the four score functions, in torch.
* :mod:`agents.early_stage.learner`: :class:`~agents.early_stage.learner.ESRPolicyGradient`, the
  learner that runs all five methods.
"""

from __future__ import annotations

import gymnasium as gym

from agents.common.base import Agent
from agents.common.registry import register, register_family
from agents.early_stage.methods import DESCRIPTIONS, METHODS
from twostage_gym.envs.early_stage_ranker import EarlyStageRankerEnv

__all__ = ["FAMILY", "METHODS", "make_learner"]

FAMILY = "early-stage-ranker"
"""The registry family of these learners (``agents.names(FAMILY)``)."""

TORCH_HINT = 'the early-stage-ranker learners need torch: pip install "twostage-gym[torch]"'


def make_learner(
    env: gym.Env,
    method: str = "ca-pg",
    lr: float | None = None,
    batch_size: int = 128,
    embedding_dim: int = 10,
    init_std: float = 1.0,
    optimizer: str = "adagrad",
    adaptive_lr: float | str | None = None,
    probe_pairs: int | None = None,
    grpo: bool = False,
    grpo_constant: float | None = None,
    device: str = "cpu",
    num_threads: int | None = 1,
) -> Agent:
    """An early-stage-ranker policy-gradient learner (:class:`agents.early_stage.learner.ESRPolicyGradient`).

    Trained by ``agents.evaluate``, one gradient step per batch of ``batch_size`` users from the
    env's native vector env. Optimiser, adaptive learning rate, GRPO and overflow handling are
    described in :mod:`agents.early_stage.learner`.

    Args:
        env: a ``TwoStage/EarlyStageRanker`` env (possibly wrapped) with ``action_type="logits"``.
        method: one of ``v-pg``, ``v-pg-swr``, ``ca-pg``, ``ca-pg-swr``, ``top1-pg``.
        lr: learning rate (default 1e-1 for the V-PGs, 1e-2 for the CA-PGs, App. E).
        batch_size: users per gradient step (128, App. E).
        embedding_dim: size of the two towers' user and item embeddings (10, Sec. 4.1).
        init_std: standard deviation of the initial item embeddings (1, torch's embedding default).
        optimizer: ``"adagrad"`` (the paper's code), ``"sgd"`` or ``"adam"``.
        adaptive_lr: ``None``; the LSR's propensity p = E[pi_LSR(a)] in (0, 1], for a learning rate
            lr / p (Eq. 9); or ``"probe"`` to estimate p from users that appear twice in a batch.
        probe_pairs: pairs of repeated users the probe collects before fixing the learning rate
            (default 256); only with ``adaptive_lr="probe"``.
        grpo: standardise the rewards within each batch, per position, and add ``grpo_constant``.
        grpo_constant: the positivity constant c of the GRPO variant (App. E), >= 0 (default 1);
            only with ``grpo=True``.
        device: torch device of the model.
        num_threads: ``torch.set_num_threads`` at ``reset`` (process-wide); ``None`` leaves it.
            One thread by default: a second gains 10-20% on an idle 2-core machine, but when
            another process holds a core every small op waits on the thread barrier and a step
            becomes 10-30 times slower. Independently of this, for batches of 2^18 logits or
            more the learner starts its first pass over the catalog on one worker thread while
            the environment steps (``agents.early_stage.learner``, "Overlap with the environment").

    Raises:
        ImportError: torch is not installed.
        ValueError: an invalid argument, or an env that is not an early-stage-ranker env.
    """
    try:
        from agents.early_stage.learner import ESRPolicyGradient
    except ModuleNotFoundError as err:
        if err.name is not None and err.name.split(".")[0] == "torch":
            raise ImportError(TORCH_HINT) from err
        raise
    return ESRPolicyGradient(
        env,
        method=method,
        lr=lr,
        batch_size=batch_size,
        embedding_dim=embedding_dim,
        init_std=init_std,
        optimizer=optimizer,
        adaptive_lr=adaptive_lr,
        probe_pairs=probe_pairs,
        grpo=grpo,
        grpo_constant=grpo_constant,
        device=device,
        num_threads=num_threads,
    )


register_family(FAMILY, EarlyStageRankerEnv, package=__name__)
for _method in METHODS:
    register(_method, make_learner, family=FAMILY, description=DESCRIPTIONS[_method], method=_method)
