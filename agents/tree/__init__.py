"""Tree retrievers trained for beam search, the brute-force reference, and harmonized rankers.

From Zhang, Liu, Lian, Chen, *Generalization Error Bounds for Two-stage Recommender Systems with
Tree Structure* (NeurIPS 2024), the learners of ``TwoStage/TreeRetrieval-v0``. A retriever scores
the nodes of the env's item tree, the env's beam search keeps the K best at every level
(Sec. 3.2.1), and a ranker serves one of the K retrieved items (Sec. 3.2.2).

| name | retriever |
|---|---|
| ``tree-linear`` | f(x, v) = <x, w_v>, one vector per node (Sec. 4.1.1), numpy |
| ``tree-mlp`` | f(x, v) = MLP((x; w_v)) (Sec. 4.1.1), torch |
| ``brute-force`` | <x, u_i> scored for every item, the exact top K: the reference a tree is measured against |

The retrievers are trained offline at ``reset(seed)`` on ``n_train`` examples of
``env.unwrapped.sample_dataset`` (a stream apart from the env's queries) and then act greedily;
``update`` does nothing. Tree retrievers minimise, by default, the softmax loss over the beam's
candidates at every level of the target's path (App. A, Eq. 13; ``loss="beam"``), or App. D's
sampled softmax (``loss="sampled"``, ``n_negatives`` 50-200 in the paper). They act in both env
modes: ``levelwise`` (the scores of the observation's candidate nodes) and ``scores`` (one score
per node). The brute-force retriever gives every node the largest score of its items, with which
the env's beam search returns exactly its top K.

Rankers are not env agents but the env's ``ranker=`` callable: :func:`fit_ranker` trains a
``"linear"`` (numpy) or ``"mlp"`` (torch) ranker as ``mode="ts"`` (all training examples) or
``mode="h-ts"`` (only those whose target the retriever retrieved: Sec. 4.2's harmonized training),
and ``ranker(contexts, items)`` serves the best-scored item of each row::

    ranker = fit_ranker(contexts, targets, n_items, kind="linear", mode="h-ts", retrieved=items)
    env = gym.make("TwoStage/TreeRetrieval-v0", ranker=ranker, world_seed=0)

:func:`fit_tree_retriever` and :func:`fit_brute_force` train the retrievers on any
:class:`~twostage_gym.core.tree.ItemTree` and data, without an env.

This package does not import torch; ``tree-mlp`` and ``kind="mlp"`` do when built, and raise an
``ImportError`` with the install hint when it is missing.

Modules:

* :mod:`agents.tree.scorers`: the linear (numpy, Adam) and MLP (torch) score models.
* :mod:`agents.tree.training`: the target's path, beam candidates, the losses, the minibatch loop.
* :mod:`agents.tree.retrievers`: :func:`fit_tree_retriever`, :func:`fit_brute_force`.
* :mod:`agents.tree.rankers`: :func:`fit_ranker`, :class:`Ranker`.
* :mod:`agents.tree.learners`: the env agents.
"""

from __future__ import annotations

from agents.common.registry import register, register_family
from agents.tree.learners import RetrieverAgent
from agents.tree.rankers import RANKER_KINDS, RANKER_MODES, Ranker, fit_ranker
from agents.tree.retrievers import BruteForceRetriever, TreeRetriever, fit_brute_force, fit_tree_retriever
from twostage_gym.envs.tree_retrieval import TreeRetrievalEnv, TreeRetrievalVectorEnv

__all__ = [
    "FAMILY",
    "RANKER_KINDS",
    "RANKER_MODES",
    "BruteForceRetriever",
    "Ranker",
    "RetrieverAgent",
    "TreeRetriever",
    "fit_brute_force",
    "fit_ranker",
    "fit_tree_retriever",
]

FAMILY = "tree"
"""The registry family of these learners (``agents.names(FAMILY)``)."""

register_family(FAMILY, (TreeRetrievalEnv, TreeRetrievalVectorEnv), package=__name__)
register(
    "tree-linear",
    RetrieverAgent,
    family=FAMILY,
    description="tree retriever f(x, v) = <x, w_v>, trained by the beam-candidate softmax along the path",
    scorer="linear",
)
register(
    "tree-mlp",
    RetrieverAgent,
    family=FAMILY,
    description="tree retriever f(x, v) = MLP((x; w_v)) (torch), trained as tree-linear",
    scorer="mlp",
)
register(
    "brute-force",
    RetrieverAgent,
    family=FAMILY,
    description="scores every item <x, u_i> (full softmax): the exact top K, the reference",
    scorer="brute-force",
)
