"""All ``register()`` calls of the suite. Importing ``twostage_gym`` runs :func:`register_envs`."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

__all__ = ["ENV_IDS", "register_envs"]

_PROP2 = {
    "n_items": 4,
    "dim": 4,
    "n_nominators": 3,
    "feature_subsets": [[2, 3], [2, 3], [2, 3]],
    "context_model": "prop2",
    "reward_noise": "bernoulli",
}

_SPECS: dict[str, dict[str, Any]] = {
    "TwoStage/Nominators-v0": {
        "entry_point": "twostage_gym.envs.nominators:NominatorsEnv",
        "vector_entry_point": "twostage_gym.envs.nominators:NominatorsVectorEnv",
        "max_episode_steps": 1000,
        "kwargs": {},
    },
    "TwoStage/Nominators-Prop2A-v0": {
        "entry_point": "twostage_gym.envs.nominators:NominatorsEnv",
        "vector_entry_point": "twostage_gym.envs.nominators:NominatorsVectorEnv",
        "max_episode_steps": 5000,
        "kwargs": {**_PROP2, "pools": [[0], [1, 2, 3], [1]]},
    },
    "TwoStage/Nominators-Prop2B-v0": {
        "entry_point": "twostage_gym.envs.nominators:NominatorsEnv",
        "vector_entry_point": "twostage_gym.envs.nominators:NominatorsVectorEnv",
        "max_episode_steps": 5000,
        "kwargs": {**_PROP2, "pools": [[0], [1, 2, 3], [3]]},
    },
    "TwoStage/EarlyStageRanker-v0": {
        "entry_point": "twostage_gym.envs.early_stage_ranker:EarlyStageRankerEnv",
        "vector_entry_point": "twostage_gym.envs.early_stage_ranker:EarlyStageRankerVectorEnv",
        "max_episode_steps": 1000,
        "kwargs": {},
    },
    # Two steps (topic phase, item phase) a round: 4000 steps are the paper's 2000 iterations.
    "TwoStage/TopicItem-v0": {
        "entry_point": "twostage_gym.envs.topic_item:TopicItemEnv",
        "vector_entry_point": "twostage_gym.envs.topic_item:TopicItemVectorEnv",
        "max_episode_steps": 4000,
        "kwargs": {},
    },
    # Levelwise: one step per tree level; 5000 steps are 1000 queries at the defaults (L = 5).
    "TwoStage/TreeRetrieval-v0": {
        "entry_point": "twostage_gym.envs.tree_retrieval:TreeRetrievalEnv",
        "vector_entry_point": "twostage_gym.envs.tree_retrieval:TreeRetrievalVectorEnv",
        "max_episode_steps": 5000,
        "kwargs": {},
    },
    # The env terminates after n_epochs epochs itself; 18,860 is MovieLens-100K's 943 users x 20 epochs.
    "TwoStage/RecommenderSelection-v0": {
        "entry_point": "twostage_gym.envs.recommender_selection:RecommenderSelectionEnv",
        "max_episode_steps": 18_860,
        "kwargs": {},
    },
}

ENV_IDS: tuple[str, ...] = tuple(_SPECS)
"""Every environment id the suite registers."""


def register_envs() -> None:
    """Register every id with gymnasium (idempotent)."""
    for env_id, spec in _SPECS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, **spec)
