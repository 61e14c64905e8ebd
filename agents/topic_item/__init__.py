"""Topic -> item neural contextual bandits: GLM-UCB ... S-N-GBLM-UCB and their two-stage ``2-`` versions.

From *Two-Stage Neural Contextual Bandits for Adaptive Personalised Recommendations*, the
learners of ``TwoStage/TopicItem-v0``. Each round a user arrives; a two-stage learner scores the
topics, the env groups them (DynaTopicRec) and samples candidates within the budget, the learner
scores the candidates and the env serves the best of each group; a one-stage learner scores B
items drawn from the whole catalog and the env serves the top m. The policies are those
of Table 3, acquisition scores rho(prediction) + beta * uncertainty (Eq. 1), beta = 0.1:

| name | policy |
|---|---|
| ``random`` | uniformly random items |
| ``glm-ucb`` | GLM-UCB (Eq. 2): theta_u per user on the fixed item features, M_u = D_u^T D_u + I |
| ``n-glm-ucb`` | GLM-UCB on the item encoder's representations |
| ``n-greedy`` | the two-tower model's predicted click, no exploration |
| ``n-dropout-ucb`` | mean + beta std of 5 MC-dropout predictions (rate 0.2) |
| ``s-n-galm-ucb`` | shared additive GLM on the item and user representations (Eq. 3, gamma) |
| ``s-n-gblm-ucb`` | shared bilinear GLM on vec(x z^T), W_0 = I, rank-one updates (Eq. 4) |

Each has a two-stage version ``2-<name>`` (Sec. 4.1): the same kind of policy for the topics
(on topic features or the topic encoder's representations) and for the items; ``2-random``
draws topics uniformly, then items. One-stage learners need ``hierarchy=False``
(``gym.make("TwoStage/TopicItem-v0", hierarchy=False)``), two-stage ones the default env;
``agents.make`` refuses the other pairing. A two-stage round is **two env steps** (topic phase,
item phase), so ``agents.evaluate(agent, env, steps=2 * rounds)`` plays ``rounds`` rounds, and
the paper's 2,000 iterations are 4,000 steps (the env's ``max_episode_steps``).

The encoders are a two-tower model over the observable features, a stand-in for NRMS (which
encodes news titles the env does not have): see :mod:`agents.topic_item.encoders`. Item encoders
are retrained every 100 rounds, topic encoders every 50, GLM heads take a gradient step every
round (learning rate 1e-2, bilinear 1e-3) and, after each retraining, restart at the new towers'
prediction (shared heads) or are refitted (N-GLM-UCB's per-user heads); both encoders
are pre-trained at ``reset`` on ``pretrain_clicks`` logged clicks (``env.logged_clicks``, the
paper's S_known). The paper's sizes are 64-dim representations; the defaults here are 16-dim
(``embedding_dim``), so that a run of every learner stays fast on two cores; ``embedding_dim=64``
gives S-N-GBLM-UCB its 4,096-dim design: W^{-1} is 128 MiB and a round's rank-one (Woodbury)
update about 35 ms with a single-threaded BLAS (measured; several times more when a
multi-threaded BLAS competes with other work for two cores); at the default 16 dims a whole update,
retrainings included, averages about 1 ms a round.

The neural learners checkpoint: ``state_dict()`` / ``load_state_dict(state)`` and ``save(path)`` /
``load(path)`` (``torch.load(..., weights_only=True)``; load after ``reset``), so that a learner
loaded into a fresh one made with the same arguments continues with the same actions; a state of
another learner, or of other sizes (``embedding_dim``, the world's), is refused with ``ValueError``.

This package does not import torch; building a neural learner does, and raises an
``ImportError`` with the install hint when torch is missing. ``random`` and ``glm-ucb`` are numpy.

Modules:

* :mod:`agents.topic_item.base`: the round loop (:class:`~agents.topic_item.base.TopicItemAgent`),
  the static arm tables, the random learners.
* :mod:`agents.topic_item.glm`: GLM-UCB on the fixed features.
* :mod:`agents.topic_item.heads`: the GLM heads of Eqs. 2-4 (numpy, Sherman-Morrison / Woodbury
  updates from :mod:`agents.common.linalg`).
* :mod:`agents.topic_item.encoders`: the two-tower encoder (torch).
* :mod:`agents.topic_item.neural`: the neural policies (torch).
"""

from __future__ import annotations

import gymnasium as gym

from agents.common.base import Agent
from agents.common.registry import register, register_family
from agents.topic_item.base import RandomAgent
from agents.topic_item.glm import GLMUCBAgent
from twostage_gym.envs.topic_item import TopicItemEnv

__all__ = ["FAMILY", "NEURAL_POLICIES", "make_neural"]

FAMILY = "topic-item"
"""The registry family of these learners (``agents.names(FAMILY)``)."""

NEURAL_POLICIES = ("n-glm-ucb", "n-greedy", "n-dropout-ucb", "s-n-galm-ucb", "s-n-gblm-ucb")
"""The neural policies, in Table 3's order (kept equal to :data:`agents.topic_item.neural.NEURAL_POLICIES`)."""

TORCH_HINT = 'the neural topic-item learners need torch: pip install "twostage-gym[torch]"'


def make_neural(
    env: gym.Env,
    policy: str = "s-n-galm-ucb",
    two_stage: bool = False,
    beta: float | None = None,
    lr: float | None = None,
    gamma: float | None = None,
    tower_score: bool | None = None,
    dropout: float | None = None,
    mc_passes: int | None = None,
    embedding_dim: int = 16,
    hidden_dim: int = 64,
    item_retrain_every: int = 100,
    topic_retrain_every: int | None = None,
    train_steps: int = 100,
    batch_size: int = 128,
    encoder_lr: float = 1e-3,
    pretrain_clicks: int = 10_000,
    refit_steps: int | None = None,
    device: str = "cpu",
    num_threads: int | None = 1,
) -> Agent:
    """A neural topic-item learner (:class:`agents.topic_item.neural.NeuralAgent`).

    An argument a policy does not use is refused (``ValueError`` naming it), e.g. ``gamma`` for
    anything but ``s-n-galm-ucb``.

    Args:
        env: a ``TwoStage/TopicItem`` env (possibly wrapped), reset before the learner's ``reset``:
            ``hierarchy=False`` for a one-stage policy, True (the default) for a ``2-`` one.
        policy: one of ``n-glm-ucb``, ``n-greedy``, ``n-dropout-ucb``, ``s-n-galm-ucb``, ``s-n-gblm-ucb``.
        two_stage: the ``2-`` version (set by the registered name).
        beta: the UCB weight, in [0, 1000] (0.1, Sec. 4); not for ``n-greedy``.
        lr: the GLM head's learning rate, in (0, 10] (1e-2; 1e-3 for ``s-n-gblm-ucb``, Sec. 4);
            only for the policies with a head (``n-glm-ucb``, ``s-n-galm-ucb``, ``s-n-gblm-ucb``).
        gamma: the item side's weight in Eq. 3, in [0, 1] (0.5; not given in the paper);
            ``s-n-galm-ucb`` only.
        tower_score: whether the additive head's item context includes the towers' score <x, z>
            (True): Eq. 3's mean rho(gamma x^T theta_x + (1 - gamma) theta_z^T z) alone ranks every
            user's items alike (no user-item term), so by default x is augmented with <x, z> as
            with the bias; False is Eq. 3 as printed. ``s-n-galm-ucb`` only.
        dropout: the towers' dropout rate in [0, 1) (0.2, Sec. 4); ``n-dropout-ucb`` only.
        mc_passes: MC-dropout passes per round, 2..1000 (5, Sec. 4); ``n-dropout-ucb`` only.
        embedding_dim: the representations' dimension (16; the paper's is 64, which gives
            ``s-n-gblm-ucb`` a 4,096-dim design), 1..4096.
        hidden_dim: the towers' hidden width (64), 1..4096.
        item_retrain_every: rounds between two trainings of the item encoder (100, Sec. 4).
        topic_retrain_every: rounds between two trainings of the topic encoder (50, Sec. 4);
            two-stage learners only.
        train_steps: Adam steps per training (100), 0..10^6.
        batch_size: a training minibatch, half positives and half negatives (Sec. 4's 1:1
            negative sampling), 2..65536 (128).
        encoder_lr: the encoders' Adam learning rate, in (0, 1] (1e-3).
        pretrain_clicks: logged records (``env.logged_clicks``) the encoders are trained on at
            ``reset`` (10,000; 0 for none), 0..10^7.
        refit_steps: Adam steps refitting the head on the history after each training (50),
            0..10^6; only for the policies with a head.
        device: torch device of the encoders' training (inference runs in numpy).
        num_threads: ``torch.set_num_threads`` at ``reset`` (process-wide); None leaves it. One by
            default: the models are small, and a second thread mostly waits on a shared core.

    Raises:
        ImportError: torch is not installed.
        ValueError: an invalid argument, an argument the policy does not use, or the wrong
            ``hierarchy`` for the learner.
    """
    try:
        from agents.topic_item.neural import NeuralAgent
    except ModuleNotFoundError as err:
        if err.name is not None and err.name.split(".")[0] == "torch":
            raise ImportError(TORCH_HINT) from err
        raise
    return NeuralAgent(
        env,
        policy=policy,
        two_stage=two_stage,
        beta=beta,
        lr=lr,
        gamma=gamma,
        tower_score=tower_score,
        dropout=dropout,
        mc_passes=mc_passes,
        embedding_dim=embedding_dim,
        hidden_dim=hidden_dim,
        item_retrain_every=item_retrain_every,
        topic_retrain_every=topic_retrain_every,
        train_steps=train_steps,
        batch_size=batch_size,
        encoder_lr=encoder_lr,
        pretrain_clicks=pretrain_clicks,
        refit_steps=refit_steps,
        device=device,
        num_threads=num_threads,
    )


_DESCRIPTIONS = {
    "random": "uniformly random items among the candidates",
    "glm-ucb": "GLM-UCB (Eq. 2): per-user theta_u on the fixed item features",
    "n-glm-ucb": "GLM-UCB on the item encoder's representations (neural-linear)",
    "n-greedy": "the two-tower model's predicted click, greedily",
    "n-dropout-ucb": "UCB from 5 MC-dropout passes of the two-tower model",
    "s-n-galm-ucb": "shared additive GLM-UCB on item and user representations (Eq. 3)",
    "s-n-gblm-ucb": "shared bilinear GLM-UCB on vec(x z^T) (Eq. 4)",
}

register_family(FAMILY, TopicItemEnv, package=__name__)
# Table 3's order, each one-stage (hierarchy=False) then two-stage (the default env).
for _two_stage in (False, True):
    _prefix, _where = ("2-", "two-stage: topics then items; ") if _two_stage else ("", "one-stage (hierarchy=False): ")
    register(f"{_prefix}random", RandomAgent, family=FAMILY, description=_where + _DESCRIPTIONS["random"],
             two_stage=_two_stage)  # fmt: skip
    register(f"{_prefix}glm-ucb", GLMUCBAgent, family=FAMILY, description=_where + _DESCRIPTIONS["glm-ucb"],
             two_stage=_two_stage)  # fmt: skip
    for _policy in NEURAL_POLICIES:
        register(
            f"{_prefix}{_policy}",
            make_neural,
            family=FAMILY,
            description=_where + _DESCRIPTIONS[_policy],
            policy=_policy,
            two_stage=_two_stage,
        )
