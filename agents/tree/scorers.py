"""Score models f(x, v) over an indexed set (tree nodes or items), trained with a softmax over candidates.

Zhang et al. (NeurIPS 2024), Sec. 4.1.1: the linear model f(x, v) = <x, w_v> with one learnable
vector w_v per node, and the MLP on the concatenation (x; w_v). The same models score items for the
brute-force retriever and for the rankers (Sec. 3.2.2), where v is an item.

Both train on batches of *candidate lists*: ``ids (n, c)`` row indices, ``valid (n, c)`` and
``target (n,)`` the column of the positive; the loss is the mean over rows of the softmax
cross-entropy of the target among the valid candidates (App. A, Eq. 13), summed over the lists
given to one :meth:`step` (one list per tree level). ``ids=None`` means every row of the table, a
full softmax, computed by a matrix product instead of a gather.

The linear model is numpy (its gradient is a scatter-add of ``g x`` into the rows scored, done
with ``bincount`` per feature) with a hand-written Adam, so that ``tree-linear`` runs without torch;
the MLP is torch (imported when one is built), seeded by a ``torch.Generator``.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

__all__ = ["TORCH_HINT", "LinearScorer", "MLPScorer", "SoftmaxList", "softmax_grad"]

TORCH_HINT = 'the MLP tree retriever and ranker need torch: pip install "twostage-gym[torch]"'

_CHUNK_ELEMENTS = 1 << 22  # gathered weights per chunk of rows (32 MiB of float64)

SoftmaxList = tuple[np.ndarray | None, np.ndarray | None, np.ndarray]
"""``(ids (n, c) or None for all rows, valid (n, c) or None for all valid, target (n,))``."""


def softmax_grad(scores: np.ndarray, valid: np.ndarray | None, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy of ``target`` among the valid columns, and its gradient in ``scores``.

    Returns:
        ``(loss, grad)`` with ``grad`` of the shape of ``scores`` (zero on invalid columns).
    """
    s = scores.astype(np.float64, copy=True)
    if valid is not None:
        s[~valid] = -np.inf
    s -= s.max(axis=1, keepdims=True)
    p = np.exp(s)
    total = p.sum(axis=1, keepdims=True)
    p /= total
    n = s.shape[0]
    rows = np.arange(n)
    loss = float(np.mean(np.log(total[:, 0]) - s[rows, target]))
    grad = p
    grad[rows, target] -= 1.0
    return loss, grad / n


class _Adam:
    """Adam (Kingma and Ba) on a list of numpy arrays, updated in place."""

    def __init__(self, params: list[np.ndarray], lr: float, betas: tuple[float, float] = (0.9, 0.999)) -> None:
        self.params, self.lr, self.betas, self.t = params, lr, betas, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads: list[np.ndarray]) -> None:
        self.t += 1
        b1, b2 = self.betas
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= self.lr * (m / (1 - b1**self.t)) / (np.sqrt(v / (1 - b2**self.t)) + 1e-8)


class LinearScorer:
    """f(x, v) = <x, w_v> (+ b_v with ``bias``), numpy, trained by Adam.

    Args:
        n_rows: the size of the table (nodes or items).
        dim: the dimension of x.
        rng: the generator of the initial w_v (normal, standard deviation ``init_scale``).
        lr: Adam's learning rate.
        weight_decay: the L2 penalty ``weight_decay * ||W||^2 / 2`` added to the loss.
        bias: a learnable offset b_v per row (the rankers' item popularity).
        init_scale: the initial weights' standard deviation.
    """

    def __init__(
        self,
        n_rows: int,
        dim: int,
        rng: np.random.Generator,
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        bias: bool = False,
        init_scale: float = 0.01,
    ) -> None:
        self.n_rows, self.dim, self.weight_decay = n_rows, dim, weight_decay
        self.weight = rng.normal(0.0, init_scale, (n_rows, dim))
        self.bias = np.zeros(n_rows) if bias else None
        params = [self.weight] if self.bias is None else [self.weight, self.bias]
        self._adam = _Adam(params, lr)

    def scores(self, x: np.ndarray, ids: np.ndarray | None = None) -> np.ndarray:
        """``(n, c)`` scores of the rows ``ids (n, c)`` (every row with ``ids=None``) for contexts ``x (n, d)``."""
        x = np.asarray(x, dtype=np.float64)
        if ids is None:
            out = x @ self.weight.T
            return out if self.bias is None else out + self.bias
        out = np.empty(ids.shape)
        # In row chunks, so that the gathered (rows, c, d) weights stay within _CHUNK_ELEMENTS.
        step = max(1, _CHUNK_ELEMENTS // max(1, ids.shape[1] * self.dim))
        for i in range(0, ids.shape[0], step):
            out[i : i + step] = np.einsum("ncd,nd->nc", self.weight[ids[i : i + step]], x[i : i + step])
        return out if self.bias is None else out + self.bias[ids]

    def step(self, x: np.ndarray, lists: list[SoftmaxList]) -> float:
        """One Adam step on the summed softmax losses of ``lists``; returns the loss before the step."""
        x = np.asarray(x, dtype=np.float64)
        grad_w = self.weight_decay * self.weight
        grad_b = None if self.bias is None else np.zeros(self.n_rows)
        total = 0.0
        for ids, valid, target in lists:
            loss, g = softmax_grad(self.scores(x, ids), valid, target)
            total += loss
            if ids is None:
                grad_w = grad_w + g.T @ x
                if grad_b is not None:
                    grad_b += g.sum(axis=0)
                continue
            flat_ids, flat_g = ids.ravel(), g.ravel()
            # Scatter-add of g * x into the rows scored: one bincount per feature (a loop over d, not
            # over rows), faster than np.add.at and without scipy.sparse, which the core install lacks;
            # per feature, so that no (n, c, d) temporary is built.
            grad_w = grad_w + np.stack(
                [
                    np.bincount(flat_ids, weights=(g * x[:, k, None]).ravel(), minlength=self.n_rows)
                    for k in range(self.dim)
                ],
                axis=1,
            )
            if grad_b is not None:
                grad_b += np.bincount(flat_ids, weights=flat_g, minlength=self.n_rows)
        grads = [grad_w] if grad_b is None else [grad_w, grad_b]
        self._adam.step(grads)
        return total + 0.5 * self.weight_decay * float(np.sum(self.weight**2))

    def state_dict(self) -> dict[str, np.ndarray]:
        """The learned arrays (copies)."""
        out = {"weight": self.weight.copy()}
        if self.bias is not None:
            out["bias"] = self.bias.copy()
        return out

    def load_state_dict(self, state: Any) -> None:
        """Load :meth:`state_dict`'s arrays (a dict or an ``NpzFile``) of the same shapes.

        Raises:
            ValueError: naming ``state``, for missing arrays or other shapes.
        """
        names = ["weight"] if self.bias is None else ["weight", "bias"]
        for name in names:
            if name not in state or np.shape(state[name]) != getattr(self, name).shape:
                raise ValueError(f"state must hold {name} of shape {getattr(self, name).shape} (the same sizes)")
        for name in names:
            getattr(self, name)[...] = state[name]


class MLPScorer:
    """f(x, v) = MLP((x; w_v)): a learnable w_v per row, concatenated to x, through ReLU layers to one score.

    Sec. 4.1.1's MLP (its layers have no biases so that sigma(0) = 0 holds for the bound; here they
    have, which trains better and changes nothing the suite measures). torch, seeded by a
    ``torch.Generator``; scores are returned as numpy.

    Args:
        n_rows: the size of the table.
        dim: the dimension of x.
        seed: the seed of the initial weights.
        hidden: the hidden layers' widths.
        embedding_dim: the dimension of w_v (``dim`` when None).
        lr: Adam's learning rate.
        weight_decay: Adam's L2 weight decay.
        bias: a learnable offset b_v per row.
        device: the torch device.
    """

    def __init__(
        self,
        n_rows: int,
        dim: int,
        seed: int,
        hidden: tuple[int, ...] = (64,),
        embedding_dim: int | None = None,
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        bias: bool = False,
        device: str = "cpu",
    ) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.n_rows, self.dim = n_rows, dim
        emb = dim if embedding_dim is None else embedding_dim
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        self.embedding = torch.nn.Parameter(0.1 * torch.randn(n_rows, emb, generator=gen))
        sizes = (dim + emb, *hidden, 1)
        layers: list[Any] = []
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            linear = torch.nn.Linear(a, b)
            bound = 1.0 / np.sqrt(a)
            with torch.no_grad():
                linear.weight.copy_((torch.rand(b, a, generator=gen) * 2 - 1) * bound)
                linear.bias.copy_((torch.rand(b, generator=gen) * 2 - 1) * bound)
            layers.append(linear)
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        self.mlp = torch.nn.Sequential(*layers).to(self.device)
        self.embedding.data = self.embedding.data.to(self.device)
        self.row_bias = torch.nn.Parameter(torch.zeros(n_rows, device=self.device)) if bias else None
        params = [self.embedding, *self.mlp.parameters()]
        if self.row_bias is not None:
            params.append(self.row_bias)
        self.optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)

    def _forward(self, x: Any, ids: Any) -> Any:
        torch = self.torch
        if ids is None:
            ids = torch.arange(self.n_rows, device=self.device).expand(x.shape[0], -1)
        w = self.embedding[ids]  # (n, c, e)
        inp = torch.cat([x[:, None, :].expand(-1, ids.shape[1], -1), w], dim=2)
        out = self.mlp(inp)[..., 0]
        return out if self.row_bias is None else out + self.row_bias[ids]

    def _tensor(self, a: np.ndarray | None, dtype: Any) -> Any:
        return None if a is None else self.torch.as_tensor(np.asarray(a), dtype=dtype, device=self.device)

    def scores(self, x: np.ndarray, ids: np.ndarray | None = None) -> np.ndarray:
        """``(n, c)`` scores (numpy float64) of the rows ``ids`` (every row with ``ids=None``)."""
        torch = self.torch
        x = np.asarray(x)
        width = self.n_rows if ids is None else ids.shape[1]
        step = max(1, _CHUNK_ELEMENTS // max(1, width * self.mlp[0].in_features))
        parts = []
        with torch.no_grad():
            for i in range(0, x.shape[0], step):  # row chunks bound the (rows, c, d + e) input
                chunk = None if ids is None else ids[i : i + step]
                out = self._forward(self._tensor(x[i : i + step], torch.float32), self._tensor(chunk, torch.int64))
                parts.append(out.cpu().numpy().astype(np.float64))
        return np.concatenate(parts) if parts else np.zeros((0, width))

    def step(self, x: np.ndarray, lists: list[SoftmaxList]) -> float:
        """One Adam step on the summed softmax losses of ``lists``; returns the loss before the step."""
        torch = self.torch
        xt = self._tensor(x, torch.float32)
        self.optimizer.zero_grad()
        total = torch.zeros((), device=self.device)
        for ids, valid, target in lists:
            s = self._forward(xt, self._tensor(ids, torch.int64))
            if valid is not None:
                s = s.masked_fill(~self._tensor(valid, torch.bool), float("-inf"))
            total = total + torch.nn.functional.cross_entropy(s, self._tensor(target, torch.int64))
        total.backward()
        self.optimizer.step()
        return float(total.detach())

    def state_dict(self) -> dict[str, Any]:
        """The learned tensors (``torch.save`` / ``torch.load(..., weights_only=True)``)."""
        out = {"embedding": self.embedding.detach().clone(), "mlp": self.mlp.state_dict()}
        if self.row_bias is not None:
            out["row_bias"] = self.row_bias.detach().clone()
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load :meth:`state_dict`'s tensors (same sizes); nothing changes unless every tensor fits.

        Raises:
            ValueError: naming ``state``, for missing tensors or other shapes.
        """
        mine = self.state_dict()
        try:
            fits = all(state[k].shape == mine[k].shape for k in mine if k != "mlp") and set(state) == set(mine)
            theirs, ours = state["mlp"], mine["mlp"]
            fits = fits and set(theirs) == set(ours) and all(theirs[k].shape == ours[k].shape for k in ours)
        except (KeyError, TypeError, AttributeError):
            fits = False
        if not fits:
            raise ValueError("state does not fit this MLP scorer (other sizes or another model)")
        with self.torch.no_grad():
            self.embedding.copy_(state["embedding"])
            if self.row_bias is not None:
                self.row_bias.copy_(state["row_bias"])
        self.mlp.load_state_dict(state["mlp"])
