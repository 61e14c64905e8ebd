"""Environment families and the one place where every id is registered."""

from twostage_gym.envs.early_stage_ranker import EarlyStageRankerEnv, EarlyStageRankerVectorEnv
from twostage_gym.envs.nominators import NominatorsEnv, NominatorsVectorEnv
from twostage_gym.envs.recommender_selection import RecommenderSelectionEnv
from twostage_gym.envs.registration import ENV_IDS, register_envs
from twostage_gym.envs.topic_item import TopicItemEnv, TopicItemVectorEnv
from twostage_gym.envs.tree_retrieval import TreeRetrievalEnv, TreeRetrievalVectorEnv

__all__ = [
    "ENV_IDS",
    "EarlyStageRankerEnv",
    "EarlyStageRankerVectorEnv",
    "NominatorsEnv",
    "NominatorsVectorEnv",
    "RecommenderSelectionEnv",
    "TopicItemEnv",
    "TopicItemVectorEnv",
    "TreeRetrievalEnv",
    "TreeRetrievalVectorEnv",
    "register_envs",
]
