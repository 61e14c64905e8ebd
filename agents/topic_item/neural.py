"""The neural policies of the topic-item paper (Table 3, Sec. 4): N-GLM-UCB, N-Greedy, N-Dropout-UCB,
S-N-GALM-UCB and S-N-GBLM-UCB, one-stage and two-stage.

Each stage has a two-tower encoder (:mod:`agents.topic_item.encoders`, the NRMS stand-in) giving
arm representations x (items or topics) and a user representation z, and a policy on top:

| policy | predicted click | uncertainty | a round's cost |
|---|---|---|---|
| ``n-glm-ucb`` | rho(c^T theta_u), c = (x, 1) | ``||c||_{M_u^{-1}}`` | O(n d^2) |
| ``n-greedy`` | rho(x^T z + c0) (the towers) | none | O(n d) |
| ``n-dropout-ucb`` | mean of 5 MC-dropout rho(x^T z + c0) | their std | O(5 n h (a + d)) |
| ``s-n-galm-ucb`` | rho(g c^T theta_x + (1-g) theta_z^T z) | g ``|c|_{A_u^-1}`` + (1-g) ``|z|_{A_i^-1}`` | O(n d^2) |
| ``s-n-gblm-ucb`` | rho(x^T Theta z + b) | ``||vec(x z^T)||_{W^{-1}}`` | O(d^4 + n d^2) |

(n arms scored, d the representations' dimension, h the hidden width, a the arm inputs' size; c0
the towers' prior correction, :mod:`agents.topic_item.encoders`; for ``s-n-galm-ucb``
c = (x, <x, z>, 1) by default, see ``tower_score`` in :func:`agents.topic_item.make_neural`;
g = gamma.) Updates per round: O(m d^2) for the per-user and per-arm designs, O(m d^4) for
the bilinear W^{-1} (Woodbury, no inverse), one gradient step of the head's coefficients. The item
encoder is retrained every ``item_retrain_every`` rounds (100), the topic encoder every
``topic_retrain_every`` rounds (50); after each training the shared heads restart at the new
towers' prediction and the per-user heads are refitted (:meth:`NeuralStage.train`).
``pretrain_clicks`` logged records (``env.logged_clicks``, users outside the simulated set: the
paper's S_known) train both encoders once at ``reset``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents.topic_item.base import ArmTables, Stage, TopicItemAgent
from agents.topic_item.encoders import StageEncoder, to_array, to_tensor
from agents.topic_item.heads import AdditiveGLM, BilinearGLM, PerUserGLM, sigmoid
from twostage_gym.core.checks import boolean, check_memory, integer, number

__all__ = ["NEURAL_POLICIES", "NeuralAgent", "NeuralStage"]

NEURAL_POLICIES = ("n-glm-ucb", "n-greedy", "n-dropout-ucb", "s-n-galm-ucb", "s-n-gblm-ucb")
_UCB = ("n-glm-ucb", "n-dropout-ucb", "s-n-galm-ucb", "s-n-gblm-ucb")
_HEADS = ("n-glm-ucb", "s-n-galm-ucb", "s-n-gblm-ucb")

DEFAULT_BETA = 0.1  # Sec. 4
DEFAULT_LR = {"s-n-gblm-ucb": 1e-3}  # Sec. 4: 0.01, "for bilinear learning rate is 0.001"
DEFAULT_GLM_LR = 1e-2
DEFAULT_GAMMA = 0.5  # not given in the paper
DEFAULT_DROPOUT = 0.2  # Sec. 4
DEFAULT_MC_PASSES = 5  # Sec. 4
DEFAULT_TOPIC_RETRAIN = 50  # Sec. 4
DEFAULT_REFIT_STEPS = 50
MAX_BETA, MAX_LR, MAX_SIZE, MAX_STEPS, MAX_PASSES = 1e3, 10.0, 4096, 10**6, 1000
MAX_PRETRAIN = 10**7
MAX_THREADS = 2**12


def _refuse(name: str, value: object, policy: str, applies: str) -> None:
    if value is not None:
        raise ValueError(f"{name} applies to {applies} only; {policy!r} does not use it (got {name}={value!r})")


class NeuralStage(Stage):
    """One stage of a neural policy: its encoder, its head (if any), its retraining schedule."""

    def __init__(
        self,
        policy: str,
        encoder: StageEncoder,
        head: PerUserGLM | AdditiveGLM | BilinearGLM | None,
        beta: float,
        mc_passes: int,
        retrain_every: int,
        refit_steps: int,
        tower_score: bool = False,
    ) -> None:
        self.policy, self.encoder, self.head = policy, encoder, head
        self.tower_score = tower_score
        self.beta, self.mc_passes = beta, mc_passes
        self.retrain_every, self.refit_steps = retrain_every, refit_steps

    def _contexts(self, arms: np.ndarray, u: np.ndarray | None = None) -> np.ndarray:
        """The head's arm contexts: x (bilinear), or (x, 1) with the bias of Table 3's note, or
        (x, <x, u>, 1) with the towers' score for the additive head (see :class:`NeuralAgent`)."""
        x = self.encoder.arm_embeddings[arms]
        if self.policy == "s-n-gblm-ucb":
            return x
        parts = [x]
        if self.tower_score:
            parts.append((x @ u)[:, None])
        parts.append(np.ones((arms.size, 1)))
        return np.concatenate(parts, axis=1)

    def scores(self, user: int, z: np.ndarray, arms: np.ndarray) -> np.ndarray:
        enc = self.encoder
        ui = enc.user_input(user, z)
        if self.policy == "n-dropout-ucb":
            p = sigmoid(enc.mc_logits(arms, ui, self.mc_passes) + enc.offset)
            return p.mean(axis=0) + self.beta * p.std(axis=0)
        u = enc.user_embeddings(ui)
        if self.policy == "n-greedy":
            return sigmoid(enc.arm_embeddings[arms] @ u + enc.offset)
        X = self._contexts(arms, u)
        if self.policy == "n-glm-ucb":
            mean, width = self.head.mean_width(user, X)
        elif self.policy == "s-n-galm-ucb":
            mean, width = self.head.mean_width(user, arms, X, u)
        else:
            mean, width = self.head.mean_width(X, u)
        return mean + self.beta * width

    def learn(self, user: int, z: np.ndarray, arms: np.ndarray, clicks: np.ndarray) -> None:
        enc = self.encoder
        ui = enc.user_input(user, z)  # as at scoring: the history before this round's clicks
        if self.head is not None:
            u = enc.user_embeddings(ui)
            X = self._contexts(arms, u)
            if self.policy == "n-glm-ucb":
                self.head.learn(user, X, clicks)
            elif self.policy == "s-n-galm-ucb":
                self.head.learn(user, arms, X, u, clicks)
            else:
                self.head.learn(X, u, clicks)
        enc.add(user, ui, arms, clicks)

    def train(self) -> None:
        """Retrain the encoder, then bring the head to the new representations.

        Coefficients fitted to the old representations mean nothing on the new ones. The shared
        heads restart where they reproduce the new towers' calibrated prediction rho(<x, z> + c):
        Theta = I and b = c for the bilinear head; for the additive one, the weight 1 / gamma on
        the towers' score and c / gamma on the bias (with ``tower_score``; else 0 and c / gamma).
        The per-user heads of N-GLM-UCB are warm-started and refitted on each user's history
        (``refit_steps`` Adam steps). The designs are kept.
        """
        enc = self.encoder
        if not enc.train() or self.head is None:
            return
        if self.policy == "s-n-gblm-ucb":
            self.head.restart(bias=enc.offset)
        elif self.policy == "s-n-galm-ucb":
            theta_x = np.zeros(self.head.theta_x.size)
            if self.head.gamma > 0:
                theta_x[-1] = enc.offset / self.head.gamma
                if self.tower_score:
                    theta_x[-2] = 1.0 / self.head.gamma
            self.head.restart(theta_x)
        else:
            users, X, _, y = enc.history_contexts(simulated_only=True)
            C = np.concatenate([X, np.ones((len(X), 1))], axis=1)
            self.head.refit(users, C, y, self.refit_steps)

    def end_round(self, rounds: int) -> None:
        if rounds % self.retrain_every == 0:
            self.train()

    def state_dict(self) -> dict[str, Any]:
        """The encoder's state and the head's (tensors and Python values)."""
        return {
            "encoder": self.encoder.state_dict(),
            "head": None if self.head is None else to_tensor(self.head.state_dict()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from what :meth:`state_dict` returned."""
        if (state["head"] is None) != (self.head is None):
            raise ValueError("the state's head does not match this stage's")
        if self.head is not None:
            self.head.load_state_dict(to_array(state["head"]))
        self.encoder.load_state_dict(state["encoder"])


class NeuralAgent(TopicItemAgent):
    """A neural topic-item learner; the arguments are those of :func:`agents.topic_item.make_neural`."""

    def __init__(
        self,
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
    ) -> None:
        if policy not in NEURAL_POLICIES:
            raise ValueError(f"policy must be one of {NEURAL_POLICIES}, got {policy!r}")
        two_stage = boolean("two_stage", two_stage)
        super().__init__(env, policy, two_stage)
        name = self.name
        # A kwarg the policy does not use is refused rather than ignored.
        if policy == "n-greedy":
            _refuse("beta", beta, name, "the UCB policies")
        if policy not in _HEADS:
            _refuse("lr", lr, name, "the policies with a GLM head (n-glm-ucb, s-n-galm-ucb, s-n-gblm-ucb)")
        if policy != "n-glm-ucb":
            _refuse("refit_steps", refit_steps, name, "n-glm-ucb (the shared heads restart at the towers instead)")
        if policy != "s-n-galm-ucb":
            _refuse("gamma", gamma, name, "s-n-galm-ucb")
            _refuse("tower_score", tower_score, name, "s-n-galm-ucb")
        if policy != "n-dropout-ucb":
            _refuse("dropout", dropout, name, "n-dropout-ucb")
            _refuse("mc_passes", mc_passes, name, "n-dropout-ucb")
        if not two_stage:
            _refuse("topic_retrain_every", topic_retrain_every, name, "the two-stage ('2-') learners")
        self.beta = DEFAULT_BETA if beta is None else number("beta", beta, 0.0, MAX_BETA)
        default_lr = DEFAULT_LR.get(policy, DEFAULT_GLM_LR)
        self.lr = default_lr if lr is None else number("lr", lr, 0.0, MAX_LR, low_open=True)
        self.gamma = DEFAULT_GAMMA if gamma is None else number("gamma", gamma, 0.0, 1.0)
        self.tower_score = policy == "s-n-galm-ucb" if tower_score is None else boolean("tower_score", tower_score)
        self.dropout = (
            (DEFAULT_DROPOUT if policy == "n-dropout-ucb" else 0.0)
            if dropout is None
            else number("dropout", dropout, 0.0, 1.0, high_open=True)
        )
        self.mc_passes = DEFAULT_MC_PASSES if mc_passes is None else integer("mc_passes", mc_passes, 2, MAX_PASSES)
        self.embedding_dim = integer("embedding_dim", embedding_dim, 1, MAX_SIZE)
        self.hidden_dim = integer("hidden_dim", hidden_dim, 1, MAX_SIZE)
        self.item_retrain_every = integer("item_retrain_every", item_retrain_every, 1)
        self.topic_retrain_every = (
            DEFAULT_TOPIC_RETRAIN
            if topic_retrain_every is None
            else integer("topic_retrain_every", topic_retrain_every, 1)
        )
        self.train_steps = integer("train_steps", train_steps, 0, MAX_STEPS)
        self.batch_size = integer("batch_size", batch_size, 2, 2**16)
        self.encoder_lr = number("encoder_lr", encoder_lr, 0.0, 1.0, low_open=True)
        self.pretrain_clicks = integer("pretrain_clicks", pretrain_clicks, 0, MAX_PRETRAIN)
        self.refit_steps = (
            DEFAULT_REFIT_STEPS if refit_steps is None else integer("refit_steps", refit_steps, 0, MAX_STEPS)
        )
        try:
            self.device = torch.device(device)
            torch.empty(0, device=self.device)  # e.g. "cuda" on a CPU-only build fails here, not at reset
        except (RuntimeError, TypeError, AssertionError, ValueError) as err:
            raise ValueError(f"device {device!r} is not usable: {err}") from None
        self.num_threads = None if num_threads is None else integer("num_threads", num_threads, 1, MAX_THREADS)
        self._check_memory()

    def _check_memory(self) -> None:
        c, d, h = self.config, self.embedding_dim, self.hidden_dim
        arms = c.n_items + (c.n_topics if self.two_stage else 0)
        parts = {
            # Each stage's arm representations, the towers and the hidden layer of a batch.
            "encoders": 8 * arms * (d + h) + 16 * (c.item_dim + c.user_dim + 2) * h,
            "a minibatch and an MC-dropout pass": 8 * (self.batch_size + DEFAULT_MC_PASSES * c.n_rows) * h * 4,
        }
        if self.policy == "s-n-gblm-ucb":
            parts["the bilinear design W^-1"] = 8 * (d * d) ** 2 * (2 if self.two_stage else 1)
        if self.policy == "n-glm-ucb":
            parts["per-user designs"] = 8 * c.n_users * (d + 1) ** 2 * (2 if self.two_stage else 1)
        check_memory(
            {"embedding_dim": d, "hidden_dim": h, "n_items": c.n_items, "n_users": c.n_users},
            parts,
            owner="learner",
            advice="reduce embedding_dim or hidden_dim",
        )

    def make_stage(self, stage: str, tables: ArmTables, rng: np.random.Generator) -> Stage:
        c, d = self.config, self.embedding_dim
        encoder = StageEncoder(
            tables.inputs(stage),
            c.n_users,
            c.user_dim,
            self.hidden_dim,
            d,
            self.dropout,
            self.train_steps,
            self.batch_size,
            self.encoder_lr,
            rng,
            self.device,
        )
        n_arms = c.n_topics if stage == "topic" else c.n_items
        head: PerUserGLM | AdditiveGLM | BilinearGLM | None = None
        if self.policy == "n-glm-ucb":
            head = PerUserGLM(c.n_users, d + 1, self.lr)
        elif self.policy == "s-n-galm-ucb":
            head = AdditiveGLM(c.n_users, n_arms, d + 1 + self.tower_score, d, self.gamma, self.lr)
        elif self.policy == "s-n-gblm-ucb":
            head = BilinearGLM(d, d, self.lr, theta0=np.eye(d))
        retrain = self.topic_retrain_every if stage == "topic" else self.item_retrain_every
        return NeuralStage(
            self.policy, encoder, head, self.beta, self.mc_passes, retrain, self.refit_steps, self.tower_score
        )

    def reset(self, seed: int | None = None) -> None:
        """Fresh encoders and heads from ``seed``; pre-train on ``pretrain_clicks`` logged clicks."""
        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
        super().reset(seed)
        if self.pretrain_clicks:
            # The logged records' draw depends on the learner's seed only (and the world).
            log_seed = int(self.rng.integers(2**31))
            logged = self.env.logged_clicks(self.pretrain_clicks, seed=log_seed)
            stages = [(self.item_stage, logged["items"])]
            if self.topic_stage is not None:
                stages.append((self.topic_stage, self.tables.item_topics[logged["items"]]))
            features = logged["user_features"].astype(np.float64)
            for stage, arms in stages:
                stage.encoder.add_logged(features, logged["users"], arms, logged["clicks"])
                stage.train()

    # -- persistence ----------------------------------------------------------------------------
    def state_header(self) -> dict[str, Any]:
        header = super().state_header()
        header["sizes"].update(
            embedding_dim=self.embedding_dim, hidden_dim=self.hidden_dim, tower_score=self.tower_score
        )
        return header

    def state_dict(self) -> dict[str, Any]:
        """What the learner has learned and where it stands: both stages, the round count, the generator.

        Tensors and plain Python values only (``torch.load(..., weights_only=True)`` reads it back).
        The arm representations are not stored: they are recomputed from the towers at loading.
        """
        item_stage = self._require()
        topic = self.topic_stage
        return {
            **self.state_header(),
            "rounds": self.rounds,
            "rng": self.rng.bit_generator.state,
            "item_stage": item_stage.state_dict(),  # type: ignore[attr-defined]
            "topic_stage": None if topic is None else topic.state_dict(),  # type: ignore[attr-defined]
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from what :meth:`state_dict` returned; resets first if the learner was never reset.

        The hyperparameters that do not shape the state (``beta``, ``lr``, the schedules, ...)
        stay this learner's own.

        Raises:
            ValueError: the state is of another learner, or of this one at other sizes.
        """
        self.check_state(state)
        if self.item_stage is None:
            self.reset()
        self.item_stage.load_state_dict(state["item_stage"])  # type: ignore[union-attr]
        if self.topic_stage is not None:
            self.topic_stage.load_state_dict(state["topic_stage"])  # type: ignore[attr-defined]
        self.rounds = int(state["rounds"])
        self.rng.bit_generator.state = state["rng"]

    def save(self, path: str | Path) -> None:
        """Write :meth:`state_dict` to ``path`` (``torch.save``)."""
        torch.save(self.state_dict(), path)

    def load(self, path: str | Path) -> None:
        """Restore what :meth:`save` wrote (``torch.load(..., weights_only=True)``).

        Raises:
            ValueError: the file holds another learner's state, or this learner's at other sizes.
        """
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            self.load_state_dict(state)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
