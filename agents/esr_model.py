"""The early-stage ranker's logit model: M two-tower experts (Kiyohara et al. 2026, Sec. 4.1).

Expert m scores item a for a user with features x by a dot product of two 10-dimensional
embeddings, q_m(x, a) = <mu_m(x), nu_m(a)>:

* user tower mu_m(x) = x W_m + b_m, a linear map of the user's features. The paper's code gives
  every user id its own embedding; here the learner sees only the observation (the features),
  and a linear tower generalises across users. The synthetic reward
  SoftPlus(<M_a a*, M_x x*>) + c is monotone in a function linear in x, so a linear tower can
  represent the optimal ranking of every user exactly.
* item tower nu_m(a) = V_m[a], a learned embedding table, as in the paper's code.

The M experts' parameters are stacked as ``(M, ...)`` tensors and scored with batched matrix
products, so there is no Python loop over experts. Initialisation: item embeddings
N(0, init_std^2) (the paper's code uses torch's ``nn.Embedding`` default N(0, 1)); user weights
N(0, 1/d), bias 0; all drawn from the ``torch.Generator`` passed in.
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
        self.item_embedding = nn.Parameter(items)

    def forward(self, users: torch.Tensor) -> torch.Tensor:
        """Logits q_m(x, a) for user features ``(B, d)``: ``(B, M, |A|)``.

        A transposed view of the ``(M, B, |A|)`` product: elementwise ops keep that memory
        order and run as fast as on a contiguous tensor, so no copy is made.
        """
        mu = torch.baddbmm(self.user_bias, users.expand(self.n_experts, -1, -1), self.user_weight)  # (M, B, h)
        logits = torch.bmm(mu, self.item_embedding.transpose(1, 2))  # (M, B, |A|)
        return logits.transpose(0, 1)
