"""The early-stage ranker's logit model: M two-tower experts (Kiyohara et al. 2026, Sec. 4.1).

Expert m scores item a for a user with features x by a dot product of two 10-dimensional
embeddings, q_m(x, a) = <mu_m(x), nu_m(a)>:

* user tower mu_m(x) = x W_m + b_m, a linear map of the user's features. The paper's code gives
  every user id its own embedding; here the learner sees only the observation (the features),
  and a linear tower generalises across users. The synthetic reward
  SoftPlus(<M_a a*, M_x x*>) + c is monotone in a function linear in x, so a linear tower can
  represent the optimal ranking of every user exactly.
* item tower nu_m(a) = V_m[:, a], a learned embedding table, as in the paper's code (stored
  ``(M, h, |A|)``, so that the catalog is the contiguous axis of every product).

The M experts' parameters are stacked as ``(M, ...)`` tensors, so there is no Python loop over
experts. The logits are scored as [x, 1] P with P_m = [W_m; b_m] V_m, the ``(d + 1, |A|)``
user-to-item map of each expert: one matrix product over the catalog for all experts in the
forward pass and one in the backward pass (:class:`_TwoTowerLogits`), where the two-tower
order (embed the users, then multiply by V) needs one forward and two backward products.
Initialisation: item embeddings N(0, init_std^2) (the paper's code uses torch's
``nn.Embedding`` default N(0, 1)); user weights N(0, 1/d), bias 0; all drawn from the
``torch.Generator`` passed in.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TwoTowerESR"]


class TwoTowerESR(nn.Module):
    """M two-tower logit models over a catalog of ``n_items`` items.

    Args:
        n_items: |A|.
        user_dim: d, the size of the user features.
        n_experts: M.
        embedding_dim: size of the user and item embeddings (10 in the paper).
        init_std: standard deviation of the initial item embeddings.
        generator: the source of the initial parameters.
        device: where the parameters live.
    """

    def __init__(
        self,
        n_items: int,
        user_dim: int,
        n_experts: int = 1,
        embedding_dim: int = 10,
        init_std: float = 1.0,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        self.n_items, self.user_dim, self.n_experts = n_items, user_dim, n_experts
        M, h = n_experts, embedding_dim
        kw = {"device": device, "dtype": torch.float32}
        weight = torch.randn((M, user_dim, h), generator=generator, **kw) / user_dim**0.5
        items = torch.randn((M, n_items, h), generator=generator, **kw) * init_std
        self.user_weight = nn.Parameter(weight)
        self.user_bias = nn.Parameter(torch.zeros((M, 1, h), **kw))
        # Stored item-major, (M, h, |A|): the catalog axis is contiguous in every product.
        self.item_embedding = nn.Parameter(items.transpose(1, 2).contiguous())

    def forward(self, users: torch.Tensor) -> torch.Tensor:
        """Logits q_m(x, a) for user features ``(B, d)``: ``(B, M, |A|)``, contiguous."""
        return _TwoTowerLogits.apply(*self._factors(users), self.item_embedding)

    def logit_bound(self, users: torch.Tensor) -> float:
        """A bound on every |logit| of these users, found without computing the logits.

        |[x, 1] [W_m; b_m] nu_m(a)| <= ||[x, 1]|| ||[W_m; b_m]||_F ||nu_m(a)||: O(B d + M h |A|)
        instead of a pass over the ``(B, M, |A|)`` logits. NaN or inf when a parameter is not finite.
        """
        with torch.no_grad():
            rows, weight = self._factors(users)
            items = self.item_embedding.square().sum(dim=1).amax(dim=1).sqrt()  # (M,): the longest item vector
            experts = torch.linalg.vector_norm(weight, dim=(1, 2)) * items
            return float(torch.linalg.vector_norm(rows, dim=1).max() * experts.max())

    def _factors(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[x, 1] ``(B, d + 1)`` and [W_m; b_m] ``(M, d + 1, h)``."""
        ones = torch.ones((users.shape[0], 1), dtype=users.dtype, device=users.device)
        return torch.cat([users, ones], dim=1), torch.cat([self.user_weight, self.user_bias], dim=1)


class _TwoTowerLogits(torch.autograd.Function):
    """logits[b, m, a] = users[b] @ weight[m] @ items[m, :, a]: ``(B, M, A)``.

    Inputs: users ``(B, k)``, weight ``(M, k, h)``, items ``(M, h, A)``.

    Forward: P = weight @ items ``(M, k, A)``, then one ``(B, k) @ (k, M A)`` product. Backward:
    gP = users^T @ g, one ``(k, B) @ (B, M A)`` product, then the small products
    gP @ items^T and weight^T @ gP. No gradient flows to ``users`` (the observations).
    ``tests/agents/early_stage/test_scores.py`` checks value and gradients against plain autograd.
    """

    @staticmethod
    def forward(ctx, users: torch.Tensor, weight: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        M, k, _ = weight.shape
        P = torch.bmm(weight, items)  # (M, k, A)
        ctx.save_for_backward(users, weight, items)
        return (users @ P.transpose(0, 1).reshape(k, -1)).view(users.shape[0], M, -1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: torch.Tensor):
        users, weight, items = ctx.saved_tensors
        M, k, _ = weight.shape
        gP = (users.T @ g.reshape(g.shape[0], -1)).view(k, M, -1).transpose(0, 1)  # (M, k, A)
        return None, torch.bmm(gP, items.transpose(1, 2)), torch.bmm(weight.transpose(1, 2), gP)
