"""The tree family's env agents: trained retrievers that act in ``levelwise`` and ``scores`` modes.

A retriever is trained offline in :meth:`~RetrieverAgent.reset` on the env's supervised data
(``env.unwrapped.sample_dataset(n_train, seed)``, a stream apart from the env's queries), then acts
greedily: in ``levelwise`` mode it scores the candidate nodes of the observation (padding slots
get 0, which the env ignores), in ``scores`` mode every node of the tree at once. ``update`` does
nothing: the paper's retrievers are trained offline, not from the env's rewards.
"""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from typing import Any

import gymnasium as gym
import numpy as np

from agents.common.base import Agent, agent_rng
from agents.tree.retrievers import check_device, check_hidden, fit_brute_force, fit_tree_retriever
from agents.tree.training import LOSSES
from twostage_gym.core.checks import choice, integer, number
from twostage_gym.envs.tree_retrieval_world import SCORE_BOUND

__all__ = ["RetrieverAgent"]

SCORE_LIMIT = SCORE_BOUND
"""The bound of the env's score actions; a score beyond it is an error here, never clipped."""


class RetrieverAgent(Agent):
    """A tree retriever (``tree-linear``, ``tree-mlp``) or the brute-force reference, as an env agent.

    Args:
        env: a ``TwoStage/TreeRetrieval`` env (possibly wrapped); its world is read at ``reset``.
        scorer: ``"linear"``, ``"mlp"`` or ``"brute-force"`` (set by the registered name).
        n_train: supervised examples drawn at ``reset``, 1..10^7 (10,000).
        epochs: passes over them, 1..10,000 (3).
        batch_size: minibatch size, 1..65,536 (256).
        lr: Adam's learning rate, in (0, 10] (1e-2).
        weight_decay: L2 penalty, in [0, 10] (0).
        loss: ``"beam"`` (softmax over the beam's candidates along the target's path, Eq. 13) or
            ``"sampled"`` (App. D's sampled softmax); tree retrievers only.
        n_negatives: negatives per level of the sampled loss, 1..100,000 (100); tree retrievers only.
        train_beam: K of the beam-aware loss, 1..N (the env's ``beam`` when None); tree retrievers only.
        hidden: the MLP's hidden widths ((64,)); ``tree-mlp`` only.
        device: the MLP's torch device ("cpu"); ``tree-mlp`` only.
        num_threads: ``torch.set_num_threads`` at ``reset`` (process-wide), 1..1024 (1: the models are
            small, and a second thread mostly waits on a shared core); ``tree-mlp`` only.

    Raises:
        ValueError: naming the argument, or an argument the learner does not use.
    """

    def __init__(
        self,
        env: gym.Env,
        scorer: str = "linear",
        n_train: int = 10_000,
        epochs: int = 3,
        batch_size: int = 256,
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        loss: str | None = None,
        n_negatives: int | None = None,
        train_beam: int | None = None,
        hidden: tuple[int, ...] | None = None,
        device: str | None = None,
        num_threads: int | None = None,
    ) -> None:
        self.env = env
        self.scorer = choice("scorer", scorer, ("linear", "mlp", "brute-force"))
        self.n_train = integer("n_train", n_train, 1, 10_000_000)
        self.epochs = integer("epochs", epochs, 1, 10_000)
        self.batch_size = integer("batch_size", batch_size, 1, 65_536)
        self.lr = number("lr", lr, 0.0, 10.0, low_open=True)
        self.weight_decay = number("weight_decay", weight_decay, 0.0, 10.0)
        tree_only = {"loss": loss, "n_negatives": n_negatives, "train_beam": train_beam}
        mlp_only = {"hidden": hidden, "device": device, "num_threads": num_threads}
        unused = {**(tree_only if self.scorer == "brute-force" else {}), **(mlp_only if self.scorer != "mlp" else {})}
        for name, value in unused.items():
            if value is not None:
                raise ValueError(f"{name} is not an argument of the {self.scorer} retriever (it does not use it)")
        self.loss = choice("loss", "beam" if loss is None else loss, LOSSES)
        self.n_negatives = integer("n_negatives", 100 if n_negatives is None else n_negatives, 1, 100_000)
        n_items = int(env.unwrapped.config.n_items)
        self.train_beam = None if train_beam is None else integer("train_beam", train_beam, 1, n_items)
        if self.scorer == "mlp":
            self.hidden = (64,) if hidden is None else check_hidden(hidden)
            self.device = check_device(device)
            self.num_threads = integer("num_threads", 1 if num_threads is None else num_threads, 1, 1024)
        self.model: Any = None

    def reset(self, seed: int | None = None) -> None:
        """Train on ``n_train`` fresh examples of the env's world (call after the env's ``reset``)."""
        base = self.env.unwrapped
        world = base.world
        data_seed = int(agent_rng(seed).integers(0, 2**31 - 1))
        contexts, targets = base.sample_dataset(self.n_train, data_seed)
        common = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "seed": data_seed}
        common["weight_decay"] = self.weight_decay
        if self.scorer == "brute-force":
            self.model = fit_brute_force(contexts, targets, world.tree.n_items, tree=world.tree, **common)
        else:
            extra = {}
            if self.scorer == "mlp":
                import torch

                torch.set_num_threads(self.num_threads)
                extra = {"hidden": self.hidden, "device": self.device}
            beam = _env_beam(base)
            self.model = fit_tree_retriever(
                world.tree,
                contexts,
                targets,
                scorer=self.scorer,
                loss=self.loss,
                beam=beam if self.train_beam is None else self.train_beam,
                n_negatives=self.n_negatives,
                **common,
                **extra,
            )

    def act(self, observation: Any) -> np.ndarray:
        """Scores of the candidate nodes (``levelwise``) or of every node (``scores``), float32."""
        if self.model is None:
            raise ValueError("act before reset: the retriever is trained at reset(seed)")
        x = np.asarray(observation["context"], dtype=np.float64)[None]
        if "candidate_nodes" in observation:
            nodes = np.asarray(observation["candidate_nodes"], dtype=np.int64)[None]
            valid = nodes >= 0
            scores = np.where(valid, self.model.scores(x, np.where(valid, nodes, 0)), 0.0)[0]
        else:
            scores = self.model.node_scores(x)[0]
        if np.abs(scores).max(initial=0.0) > SCORE_LIMIT:
            raise ValueError(f"scores beyond the env's bound {SCORE_LIMIT:g}: the model diverged (lower lr)")
        return scores.astype(np.float32)

    def update(self, observation: Any, action: Any, reward: float, info: Mapping[str, Any]) -> None:
        """Nothing: the retriever was trained offline at ``reset``."""

    def save(self, path: str | PathLike[str]) -> None:
        """Save the trained model: ``torch.save`` for ``tree-mlp``, ``numpy.savez`` otherwise (no pickles)."""
        if self.model is None:
            raise ValueError("save before reset: there is no trained model yet")
        state = self.model.scorer.state_dict()
        if self.scorer == "mlp":
            import torch

            torch.save(state, path)
        else:
            with open(path, "wb") as handle:
                np.savez(handle, **state)

    def load(self, path: str | PathLike[str]) -> None:
        """Load a model saved by :meth:`save` of a learner of the same name and sizes (after ``reset``).

        Raises:
            ValueError: before ``reset``, or a state of other sizes.
        """
        if self.model is None:
            raise ValueError("load after reset: reset builds the model the state is loaded into")
        if self.scorer == "mlp":
            import torch

            self.model.scorer.load_state_dict(torch.load(path, weights_only=True))
        else:
            with np.load(path, allow_pickle=False) as data:
                self.model.scorer.load_state_dict(data)


def _env_beam(base: Any) -> int:
    """The env's beam K (its config's ``beam``)."""
    config = getattr(base, "config", None)
    if config is not None and hasattr(config, "beam"):
        return int(config.beam)
    return int(base.beam)
