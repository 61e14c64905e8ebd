"""Learning the item pools with a Gaussian Mixture-of-Experts (Hron et al. 2021, Sec. 4, Eq. 8, App. B.3).

Each nominator is an *expert*; a *gating network* gives every (user, item) pair a distribution
over the N experts, a soft pool allocation. The model is trained offline on triples
(x_t, a_t, r_t) by maximising the Gaussian MoE likelihood of Eq. 8,

    (1/B) sum_t log sum_n p_{n,t} exp(-(r_t - rhat_{n,t})^2 / (2 sigma^2)),

on minibatches of B = 4,096 (the normalising constant -log(2 pi sigma^2)/2 of each Gaussian is
the same for every expert and is left out, as in Eq. 8). Then :func:`learn_pools` distills hard
pools from the gating, ready for ``gym.make("TwoStage/Nominators-v0", pools=...)``.

The architecture is App. B.3's:

* **Experts** are two-tower models: expert n has a learned d_e-dimensional embedding
  e_{n,a} of every item, and maps the user's s features it sees (its feature subset S_n, drawn
  as in App. B by :func:`twostage_gym.core.allocation.random_feature_subsets`, so each
  nominator has its own view, as in the bandit experiments) to R^{d_e} by a learned matrix W_n:
  rhat_n(x, a) = <W_n^T x[S_n], e_{n,a}>.
* **Gating** (``gating="user+item"``, the paper's): log p_n(x, a) = u_n(x) + v_{n,a} - log Z, a
  learned linear user embedding u(x) = x G (of the full context: the gate is the provisional
  allocator, not a latency-bound nominator) plus a learned item embedding v_a, normalised by a
  softmax over the N experts. Both start at zero (uniform gates); the experts' different views
  and initial embeddings break the symmetry.
* **The item-only gate** (``gating="item"``): log p_n(a) = v_{n,a} - log Z, the same gate without
  the user embedding, which the paper names as a way to distill pools ("restricting the gating
  network only to the item features", Sec. 4, option 1). Its hyperparameters are not in the
  paper; they were chosen much as App. B.3 chose the others: at |A| = 100, N = 10, c = 500, on
  data seed 0 (the Fig. 5 claims evaluate on seeds 1-3), among Adam and RMSProp with sigma^2 in
  {0.01, 1} at lr 0.01, for (s, d_e) = (100, 5) and (50, 10): Adam and sigma^2 = 1, whose
  distilled pools also kept the gate's precision (with sigma^2 = 0.01 they lost it). On the binary
  labels of :mod:`twostage_gym.datasets.multilabel` the paper's gate with sigma^2 = 0.01 lands in a
  poor optimum: with so small a variance an exact 0 for the ~89% negatives is worth more
  likelihood than a good regression, so about half of the gate weight goes to experts that
  predict ~0 for every item, and the mixture mean ranks items little better than popularity
  (measured at s = 100, d_e = 5, c = 500, data seed 1, 2,000 steps: two experts held 49% of the
  weight with predictions 0.00 +- 0.10; P@5 0.44, against 0.42 for ranking by popularity, 0.63 for
  the item gate and 0.60 for random pools). See ``twostage-bench reproduce hron2021-fig5``.
* **The random-pool baseline** (``gating="random"``) is the same model with the gating replaced
  by a fixed pool allocation (App. B's :func:`~twostage_gym.core.allocation.random_pools`, or
  pools given): p_n(x, a) = 1{a in A_n} / |{m: a in A_m}|. With disjoint pools the likelihood is
  then the squared error of each item's own expert ('training-on-own'), scaled by 1/(2 sigma^2).

App. B.3's sweep chose Adam and sigma^2 = 0.01 for the MoE, RMSProp and sigma^2 = 1 for the
random-pool model, a learning rate of 0.01 for both (:data:`HYPERPARAMETERS`, the defaults of
:func:`fit_moe`), 50,000 steps, batches of 4,096 and no early stopping.

A model scores item a for user x by its mixture mean sum_n p_n(x, a) rhat_n(x, a) (the gating as
a permanent part of the nominator stage, the paper's option 2(ii)); :func:`evaluate_moe` takes the
top K items and reports precision@K and recall@K (:mod:`twostage_gym.core.metrics`). Passing
``pools`` scores with hard pools instead, so a distilled allocation can be evaluated with the
trained experts.

Every random draw (initial parameters, minibatch order) comes from a ``torch.Generator`` seeded
by ``seed``, and feature subsets from a numpy Generator on the same seed: the same seed gives the
same model on the same machine and thread count. Importing this module needs torch (``pip install
"twostage-gym[torch]"``); ``import agents.nominators`` does not import it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

try:
    import torch
    from torch import nn
except ModuleNotFoundError as _err:  # pragma: no cover - exercised only without torch
    if _err.name is not None and _err.name.split(".")[0] == "torch":
        raise ImportError('agents.nominators.moe needs torch: pip install "twostage-gym[torch]"') from _err
    raise

from twostage_gym.core.allocation import random_feature_subsets, random_pools, validate_feature_subsets, validate_pools
from twostage_gym.core.checks import check_memory, choice, integer, number, positive_int
from twostage_gym.core.metrics import precision_at_k, recall_at_k, top_k_items
from twostage_gym.datasets.multilabel import check_training_data

__all__ = [
    "GATINGS",
    "HYPERPARAMETERS",
    "OPTIMIZERS",
    "GaussianMoE",
    "MoEFit",
    "average_gates",
    "evaluate_moe",
    "fit_moe",
    "learn_pools",
    "moe_nll",
    "score_items",
    "train_moe",
]

GATINGS = ("user+item", "item", "random")
"""The gatings of :func:`fit_moe`: the paper's learned gate on user and item embeddings, a learned
gate on item embeddings only (the paper's option for distilling pools), and fixed random pools."""
OPTIMIZERS = ("adam", "rmsprop")
HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    "user+item": {"optimizer": "adam", "lr": 0.01, "sigma2": 0.01},
    "item": {"optimizer": "adam", "lr": 0.01, "sigma2": 1.0},
    "random": {"optimizer": "rmsprop", "lr": 0.01, "sigma2": 1.0},
}
"""Default optimizer, learning rate and likelihood variance per gating. ``"user+item"`` and
``"random"`` are App. B.3's selections (the paper's MoE with d_e = 50 needed sigma^2 = 1 against
overfitting); ``"item"`` is not in the paper and was chosen here the same way (see the module
docstring, "The item-only gate")."""

PAPER_BATCH_SIZE = 4096
_SCORE_CELLS = 2**22  # users x experts x items computed at a time when scoring a catalog


def _seed_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


class GaussianMoE(nn.Module):
    """N two-tower experts over |A| items, with a learned gating or a fixed pool allocation.

    Args:
        n_items: |A|.
        dim: d, the size of a user context.
        n_experts: N, at most |A|.
        nominator_dim: s, the features each expert sees, in [1, d].
        embedding_dim: d_e, the size of the experts' item embeddings.
        pools: None for a learned gating; else N lists of item ids (validated by
            :func:`~twostage_gym.core.allocation.validate_pools`: non-empty, covering every
            item, possibly overlapping) that fix the gating.
        feature_subsets: ``(N, s)`` feature indices per expert, or None to draw them as in App. B.
        seed: seeds the feature subsets (numpy) and the initial parameters (torch).
        init_std: standard deviation of the initial item embeddings.
        user_gating: whether a learned gate has its user embedding (``"user+item"``, the paper's)
            or only item embeddings (``"item"``); ignored when ``pools`` fix the gating.

    Raises:
        ValueError: naming the invalid argument (e.g. ``n_experts`` above ``n_items``).
    """

    def __init__(
        self,
        n_items: int,
        dim: int,
        n_experts: int,
        nominator_dim: int,
        embedding_dim: int,
        pools: Sequence[Sequence[int]] | None = None,
        feature_subsets: Sequence[Sequence[int]] | np.ndarray | None = None,
        seed: int = 0,
        init_std: float = 0.1,
        user_gating: bool = True,
    ) -> None:
        super().__init__()
        self.n_items = positive_int("n_items", n_items)
        self.dim = positive_int("dim", dim)
        self.n_experts = positive_int("n_experts (N)", n_experts)
        if self.n_experts > self.n_items:
            raise ValueError(f"n_experts (N={n_experts}) must not exceed n_items (|A|={n_items})")
        self.embedding_dim = positive_int("embedding_dim (d_e)", embedding_dim)
        init_std = number("init_std", init_std, low=0.0)
        seed = integer("seed", seed, low=0)
        if feature_subsets is None:
            s = integer("nominator_dim (s)", nominator_dim, 1, self.dim)
            subsets = random_feature_subsets(self.dim, self.n_experts, s, np.random.default_rng(seed))
        else:
            subsets = validate_feature_subsets(feature_subsets, self.dim, self.n_experts)
            if subsets.shape[1] != nominator_dim:
                raise ValueError(
                    f"feature_subsets hold {subsets.shape[1]} features each, but nominator_dim={nominator_dim}"
                )
        self.nominator_dim = int(subsets.shape[1])
        N, s, e, A = self.n_experts, self.nominator_dim, self.embedding_dim, self.n_items
        check_memory(
            {"n_items": A, "dim": self.dim, "n_experts": N, "embedding_dim": e},
            {"parameters and their optimizer state": 16 * (N * s * e + N * A * e + self.dim * N + A * N)},
            "reduce n_items, n_experts or embedding_dim",
            owner="model",
        )
        self.register_buffer("feature_subsets", torch.as_tensor(subsets, dtype=torch.int64))
        # Where W_n's rows go in a dense (d, N, e) map: one (B, d) @ (d, N e) product embeds a
        # batch for all experts at once, several times faster than gathering each expert's
        # (B, s) view and far faster than a batched product per expert.
        self.register_buffer("_expert_of_row", torch.arange(N)[:, None].expand(N, s).contiguous())
        g = _seed_generator(seed)
        self.user_maps = nn.Parameter(torch.randn((N, s, e), generator=g) / math.sqrt(s))
        # (|A|, N, e): an item's embeddings for all experts are one contiguous row, gathered at once.
        self.item_embeddings = nn.Parameter(torch.randn((A, N, e), generator=g) * init_std)
        if not isinstance(user_gating, (bool, np.bool_)):
            raise ValueError(f"user_gating must be a bool, got {type(user_gating).__name__} {user_gating!r}")
        self.user_gating = bool(user_gating) and pools is None
        self.gating = "random" if pools is not None else "user+item" if self.user_gating else "item"
        """One of :data:`GATINGS`."""
        if pools is None:
            self.gate_item = nn.Parameter(torch.zeros((A, N)))
            if self.user_gating:
                self.gate_user = nn.Parameter(torch.zeros((self.dim, N)))
            self.pools: list[list[int]] | None = None
        else:
            checked = validate_pools(pools, A, N)
            member = np.zeros((A, N))
            for n, pool in enumerate(checked):  # N pools: a loop over experts, not items
                member[pool, n] = 1.0
            # Uniform over the pools that hold the item: log(1/k) inside, -inf outside.
            with np.errstate(divide="ignore"):
                log_gates = np.log(member / member.sum(axis=1, keepdims=True))
            self.register_buffer("fixed_log_gates", torch.as_tensor(log_gates, dtype=torch.float32))
            self.pools = [p.tolist() for p in checked]

    # -- the model -----------------------------------------------------------------------------
    def dense_user_maps(self) -> torch.Tensor:
        """The experts' user maps as one ``(d, N, e)`` tensor: W_n in the rows S_n, zero elsewhere."""
        dense = torch.zeros(
            (self.dim, self.n_experts, self.embedding_dim), dtype=self.user_maps.dtype, device=self.user_maps.device
        )
        return dense.index_put((self.feature_subsets, self._expert_of_row), self.user_maps)

    def user_embeddings(self, contexts: torch.Tensor) -> torch.Tensor:
        """W_n^T x[S_n] for every expert: ``(B, d)`` -> ``(B, N, e)``."""
        maps = self.dense_user_maps().reshape(self.dim, -1)
        return (contexts @ maps).reshape(contexts.shape[0], self.n_experts, self.embedding_dim)

    def expert_predictions(self, contexts: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """rhat_n(x_t, a_t) for every expert: ``(B, d)``, ``(B,)`` -> ``(B, N)``."""
        return (self.user_embeddings(contexts) * self.item_embeddings[items]).sum(dim=2)

    def log_gates(self, contexts: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """log p_n(x_t, a_t): ``(B, d)``, ``(B,)`` -> ``(B, N)``."""
        if self.gating == "random":
            return self.fixed_log_gates[items]
        logits = self.gate_item[items]
        if self.user_gating:
            logits = logits + contexts @ self.gate_user
        return torch.log_softmax(logits, dim=1)

    def forward(self, contexts: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The log gates and the expert predictions of a batch, each ``(B, N)``."""
        return self.log_gates(contexts, items), self.expert_predictions(contexts, items)

    def catalog(self, contexts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gates and predictions for every item: ``(m, d)`` -> two ``(m, N, |A|)`` tensors."""
        users = self.user_embeddings(contexts).transpose(0, 1)  # (N, m, e)
        predictions = torch.bmm(users, self.item_embeddings.permute(1, 2, 0)).transpose(0, 1)  # (m, N, |A|)
        if self.gating == "random":
            gates = self.fixed_log_gates.T.exp().expand(contexts.shape[0], -1, -1)
        elif self.user_gating:
            logits = (contexts @ self.gate_user)[:, :, None] + self.gate_item.T[None]
            gates = torch.softmax(logits, dim=1)
        else:
            gates = torch.softmax(self.gate_item.T, dim=0).expand(contexts.shape[0], -1, -1)
        return gates, predictions

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this model's shape (for :meth:`save`)."""
        return {
            "n_items": self.n_items,
            "dim": self.dim,
            "n_experts": self.n_experts,
            "nominator_dim": self.nominator_dim,
            "embedding_dim": self.embedding_dim,
            "pools": self.pools,
            "feature_subsets": self.feature_subsets.tolist(),
            "user_gating": self.user_gating,
        }

    def save(self, path: str | Path) -> None:
        """Write the configuration and parameters (plain values and tensors: ``weights_only`` loads them)."""
        torch.save({"config": self.config(), "state": self.state_dict()}, Path(path))

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> GaussianMoE:
        """Rebuild a model that :meth:`save` wrote (``torch.load(..., weights_only=True)``)."""
        saved = torch.load(Path(path), map_location=device, weights_only=True)
        model = cls(**saved["config"])
        model.load_state_dict(saved["state"])
        return model.to(device)


def moe_nll(log_gates: torch.Tensor, predictions: torch.Tensor, rewards: torch.Tensor, sigma2: float) -> torch.Tensor:
    """The negative of Eq. 8: -(1/B) sum_t log sum_n p_{n,t} exp(-(r_t - rhat_{n,t})^2 / (2 sigma^2)).

    Computed as a log-sum-exp over experts, so an expert with p = 0 (log p = -inf, a fixed
    pool that does not hold the item) contributes exactly nothing and tiny exponentials do not
    underflow to log(0).

    Args:
        log_gates: ``(B, N)`` log p_{n,t}.
        predictions: ``(B, N)`` rhat_{n,t}.
        rewards: ``(B,)`` r_t.
        sigma2: the likelihood variance sigma^2 > 0.

    Raises:
        ValueError: ``sigma2`` not a finite number > 0.
    """
    sigma2 = number("sigma2", sigma2, 0.0, low_open=True)
    log_lik = torch.logsumexp(log_gates - (rewards[:, None] - predictions) ** 2 / (2.0 * sigma2), dim=1)
    return -log_lik.mean()


def _optimizer(name: str, params: Any, lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.RMSprop(params, lr=lr)


def train_moe(
    model: GaussianMoE,
    contexts: np.ndarray,
    items: np.ndarray,
    rewards: np.ndarray,
    steps: int,
    batch_size: int = PAPER_BATCH_SIZE,
    optimizer: str = "adam",
    lr: float = 0.01,
    sigma2: float = 0.01,
    seed: int = 0,
    device: str | torch.device = "cpu",
    log_every: int = 0,
    num_threads: int | None = 1,
) -> list[float]:
    """Train ``model`` by minibatch gradient descent on the negative Eq. 8 likelihood.

    Minibatches go through a fresh random permutation of the training set each epoch (the last
    batch of an epoch may be smaller); a batch size above the training set uses all of it.

    Args:
        model: the model to train in place.
        contexts: ``(n, d)`` user contexts.
        items: ``(n,)`` item ids.
        rewards: ``(n,)`` rewards.
        steps: gradient steps.
        batch_size: examples per step (4,096 in the paper).
        optimizer: ``"adam"`` or ``"rmsprop"``.
        lr: learning rate (> 0).
        sigma2: likelihood variance sigma^2 (> 0).
        seed: seeds the minibatch order.
        device: where to train.
        log_every: record the loss every ``log_every`` steps (0: only the last).
        num_threads: torch threads while training (restored afterwards); None leaves torch's
            setting. One by default: the models are small, and on a shared 2-core machine a
            second thread mostly waits for the other process (measured 10-30 times slower
            steps when another process held a core).

    Returns:
        The recorded minibatch losses.

    Raises:
        ValueError: naming the invalid argument, or training data of the wrong shape.
    """
    x, a, r = check_training_data(contexts, items, rewards, model.n_items, model.dim)
    steps = positive_int("steps", steps)
    batch_size = positive_int("batch_size", batch_size)
    optimizer = choice("optimizer", optimizer, OPTIMIZERS)
    lr = number("lr", lr, 0.0, low_open=True)
    sigma2 = number("sigma2", sigma2, 0.0, low_open=True)
    seed = integer("seed", seed, low=0)
    log_every = integer("log_every", log_every, low=0)
    threads = None if num_threads is None else integer("num_threads", num_threads, 1, 4096)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _train(model, x, a, r, steps, batch_size, optimizer, lr, sigma2, seed, device, log_every)
    finally:
        torch.set_num_threads(before)


def _train(
    model: GaussianMoE,
    x: np.ndarray,
    a: np.ndarray,
    r: np.ndarray,
    steps: int,
    batch_size: int,
    optimizer: str,
    lr: float,
    sigma2: float,
    seed: int,
    device: str | torch.device,
    log_every: int,
) -> list[float]:
    model.to(device)
    x_t, a_t, r_t = (torch.as_tensor(v, device=device) for v in (x, a, r))
    n = x_t.shape[0]
    batch = min(batch_size, n)
    generator = _seed_generator(seed + 1)  # apart from the model's initial draws on `seed`
    opt = _optimizer(optimizer, model.parameters(), lr)
    losses: list[float] = []
    order, cursor = torch.randperm(n, generator=generator), 0
    for step in range(1, steps + 1):
        if cursor >= n:
            order, cursor = torch.randperm(n, generator=generator), 0
        idx = order[cursor : cursor + batch].to(device)
        cursor += batch
        log_gates, predictions = model(x_t[idx], a_t[idx])
        loss = moe_nll(log_gates, predictions, r_t[idx], sigma2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (log_every and step % log_every == 0) or step == steps:
            losses.append(float(loss.detach()))
    return losses


def _chunks(model: GaussianMoE, contexts: np.ndarray) -> Any:
    """``contexts`` as float32 tensors of at most ``_SCORE_CELLS / (N |A|)`` rows."""
    rows = max(1, _SCORE_CELLS // (model.n_experts * model.n_items))
    device = model.item_embeddings.device
    for start in range(0, contexts.shape[0], rows):  # blocks of users bound the (m, N, |A|) tensors
        yield torch.as_tensor(contexts[start : start + rows], dtype=torch.float32, device=device)


def _contexts(model: GaussianMoE, contexts: np.ndarray) -> np.ndarray:
    contexts = np.asarray(contexts)
    if contexts.ndim != 2 or contexts.shape[1] != model.dim or contexts.shape[0] == 0:
        raise ValueError(f"contexts must be a non-empty (users, d={model.dim}) array, got shape {contexts.shape}")
    if contexts.dtype.kind not in "iuf" or not np.isfinite(contexts).all():
        raise ValueError(f"contexts must hold finite real numbers, got dtype {contexts.dtype}")
    return contexts


@torch.no_grad()
def score_items(model: GaussianMoE, contexts: np.ndarray, pools: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """Every item's score for every user: the mixture mean sum_n p_n(x, a) rhat_n(x, a).

    Args:
        model: a trained model.
        contexts: ``(m, d)`` users.
        pools: None scores with the model's own gating; N pools (validated) score with hard
            pools instead: the mean prediction of the experts whose pool holds the item.

    Returns:
        ``(m, |A|)`` float32.
    """
    contexts = _contexts(model, contexts)
    hard = None
    if pools is not None:
        checked = validate_pools(pools, model.n_items, model.n_experts)
        member = np.zeros((model.n_experts, model.n_items), dtype=np.float32)
        for n, pool in enumerate(checked):
            member[n, pool] = 1.0
        hard = torch.as_tensor(member / member.sum(axis=0, keepdims=True), device=model.item_embeddings.device)
    out = []
    for chunk in _chunks(model, contexts):
        gates, predictions = model.catalog(chunk)
        weights = gates if hard is None else hard[None]
        out.append((weights * predictions).sum(dim=1).cpu().numpy())
    return np.concatenate(out)


@torch.no_grad()
def average_gates(model: GaussianMoE, contexts: np.ndarray) -> np.ndarray:
    """The per-item average gating weight of each expert over the users ``contexts``: ``(N, |A|)``."""
    contexts = _contexts(model, contexts)
    total = torch.zeros((model.n_experts, model.n_items), dtype=torch.float64)
    for chunk in _chunks(model, contexts):
        gates, _ = model.catalog(chunk)
        total += gates.sum(dim=0).double().cpu()
    return (total / contexts.shape[0]).numpy()


def learn_pools(
    model: GaussianMoE, contexts: np.ndarray, rule: str = "argmax", threshold: float | None = None
) -> list[list[int]]:
    """Distill hard pools from a trained gating (the paper's option 1, Sec. 4).

    Each item's average gating weight per expert is taken over the users ``contexts`` (e.g. the
    training contexts). Then:

    * ``rule="argmax"``: item a goes to the expert with the largest average weight (disjoint pools);
    * ``rule="threshold"``: item a goes to every expert whose average weight is at least
      ``threshold``, and always to its argmax expert (so every item is covered; pools may overlap).

    An expert left with no item takes the item it weights most among the items of pools that
    have more than one, moved out of that pool (experts served in order of their largest weight),
    so that all N pools are non-empty and the allocation stays a partition under ``"argmax"``.

    Returns:
        N sorted lists of Python ints, checked by
        :func:`~twostage_gym.core.allocation.validate_pools` (non-empty, covering every item):
        JSON-serialisable, ready for ``gym.make("TwoStage/Nominators-v0", pools=...)`` with
        ``n_items=|A|`` and ``n_nominators=N``.

    Raises:
        ValueError: naming ``rule``, ``threshold`` or ``contexts``.
    """
    rule = choice("rule", rule, ("argmax", "threshold"))
    if rule == "threshold":
        if threshold is None:
            raise ValueError("rule='threshold' needs a threshold in (0, 1]")
        threshold = number("threshold", threshold, 0.0, 1.0, low_open=True)
    elif threshold is not None:
        raise ValueError("threshold is only used with rule='threshold'")
    weights = average_gates(model, contexts)  # (N, |A|)
    member = np.zeros(weights.shape, dtype=bool)
    member[weights.argmax(axis=0), np.arange(model.n_items)] = True
    if rule == "threshold":
        member |= weights >= threshold
    # Empty experts (a loop over experts, at most N - 1 passes). Under "threshold" pools may
    # overlap, so an empty expert simply also takes its favourite item; under "argmax" it takes
    # its favourite among the items whose pool keeps another item, so the pools stay a partition.
    empty = np.flatnonzero(~member.any(axis=1))
    for n in empty[np.argsort(-weights[empty].max(axis=1), kind="stable")]:
        if rule == "argmax":
            pool_size = member.sum(axis=1)[member.argmax(axis=0)]  # size of each item's (only) pool
            item = int(np.argmax(np.where(pool_size > 1, weights[n], -np.inf)))
            member[:, item] = False
        else:
            item = int(np.argmax(weights[n]))
        member[n, item] = True
    pools = validate_pools([np.flatnonzero(row) for row in member], model.n_items, model.n_experts)
    return [p.tolist() for p in pools]


def evaluate_moe(
    model: GaussianMoE,
    contexts: np.ndarray,
    labels: np.ndarray,
    k: int = 5,
    pools: Sequence[Sequence[int]] | None = None,
) -> dict[str, float]:
    """Mean precision@K and recall@K of the model's top-K items over the test rows.

    Rows with no positive label score 0 in both, as in Fig. 5 (they stay in the mean).

    Args:
        model: a trained model.
        contexts: ``(m, d)`` test users.
        labels: ``(m, |A|)`` their labels.
        k: K (5 in the paper).
        pools: score with hard pools instead of the model's gating (see :func:`score_items`).

    Returns:
        ``{"precision": ..., "recall": ...}``.

    Raises:
        ValueError: naming ``contexts``, ``labels`` or ``k``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[1] != model.n_items or labels.shape[0] != np.shape(contexts)[0]:
        raise ValueError(
            f"labels must be a (users, n_items={model.n_items}) array with a row per context, got shape {labels.shape}"
        )
    top = top_k_items(score_items(model, contexts, pools), k)
    return {"precision": float(precision_at_k(top, labels).mean()), "recall": float(recall_at_k(top, labels).mean())}


@dataclass
class MoEFit:
    """A trained model and how it was trained (:func:`fit_moe`).

    Attributes:
        model: the trained :class:`GaussianMoE`.
        losses: minibatch losses recorded during training.
        hyperparameters: the optimizer, lr, sigma2, batch size and steps used.
        wall_time_s: training time in seconds.
    """

    model: GaussianMoE
    losses: list[float]
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    wall_time_s: float = 0.0


def fit_moe(
    contexts: np.ndarray,
    items: np.ndarray,
    rewards: np.ndarray,
    n_items: int,
    n_experts: int = 10,
    nominator_dim: int = 50,
    embedding_dim: int = 10,
    gating: str = "user+item",
    pools: Sequence[Sequence[int]] | None = None,
    steps: int = 2000,
    batch_size: int = PAPER_BATCH_SIZE,
    optimizer: str | None = None,
    lr: float | None = None,
    sigma2: float | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    log_every: int = 0,
    num_threads: int | None = 1,
) -> MoEFit:
    """Build a :class:`GaussianMoE` and train it on (x_t, a_t, r_t) triples.

    Args:
        contexts, items, rewards: the training triples (e.g. ``MultiLabelData.train_*``).
        n_items: |A|.
        n_experts: N (10 or 20 in Fig. 5).
        nominator_dim: s, the features each expert sees (Fig. 5's x-axis).
        embedding_dim: d_e (5, 10 or 50 in Fig. 5).
        gating: ``"user+item"`` (the paper's MoE: log p_n = user embedding + item embedding),
            ``"item"`` (a learned gate on item embeddings only) or ``"random"`` (fixed pools:
            App. B's random allocation drawn from ``seed``, or ``pools`` when given).
        pools: the fixed pools of a ``"random"``-gating model; only with ``gating="random"``.
        steps: gradient steps (50,000 in the paper; 2,000 by default here).
        batch_size: 4,096 (App. B.3).
        optimizer, lr, sigma2: default to :data:`HYPERPARAMETERS` of the gating.
        seed: seeds the feature subsets, the random pools, the initial parameters and the
            minibatch order.
        device: torch device.
        log_every: record the loss every ``log_every`` steps.
        num_threads: torch threads while training (see :func:`train_moe`).

    Raises:
        ValueError: naming the invalid argument (``n_experts`` > ``n_items``, ``sigma2`` <= 0,
            training data of the wrong shape, ...).
    """
    gating = choice("gating", gating, GATINGS)
    n_items = positive_int("n_items", n_items)
    n_experts = positive_int("n_experts (N)", n_experts)
    if n_experts > n_items:
        raise ValueError(f"n_experts (N={n_experts}) must not exceed n_items (|A|={n_items})")
    seed = integer("seed", seed, low=0)
    x, a, r = check_training_data(contexts, items, rewards, n_items)
    if pools is not None and gating != "random":
        raise ValueError("pools fix the gating: give them with gating='random'")
    if gating == "random" and pools is None:
        # Drawn from their own stream: the feature subsets use default_rng(seed).
        pools = random_pools(n_items, n_experts, np.random.default_rng([seed, 1]))
    paper = HYPERPARAMETERS[gating]
    hyper = {
        "optimizer": paper["optimizer"] if optimizer is None else optimizer,
        "lr": paper["lr"] if lr is None else lr,
        "sigma2": paper["sigma2"] if sigma2 is None else sigma2,
        "batch_size": batch_size,
        "steps": steps,
    }
    shape = (n_items, x.shape[1], n_experts, nominator_dim, embedding_dim)
    model = GaussianMoE(*shape, pools=pools, seed=seed, user_gating=gating != "item")
    start = time.perf_counter()
    losses = train_moe(model, x, a, r, seed=seed, device=device, log_every=log_every, num_threads=num_threads, **hyper)
    return MoEFit(model, losses, hyper, time.perf_counter() - start)
