"""Shared parts of two-stage systems: allocation, contexts, reward models, late-stage rankers and metrics.

Everything here is pure numpy. Functions that draw random numbers take a
``numpy.random.Generator`` argument; none of them keeps global state.
"""

from twostage_gym.core.allocation import (
    random_feature_subsets,
    random_pools,
    resolve_nominator_dim,
    validate_feature_subsets,
    validate_pools,
)
from twostage_gym.core.clicks import CLICK_MODELS, ClickModel
from twostage_gym.core.contexts import GaussianContexts, Prop2Contexts
from twostage_gym.core.late_stage import LSR_KINDS, LateStageRanker, dinkelbach_sets
from twostage_gym.core.metrics import (
    ORACLE_INFO_KEYS,
    log_checkpoints,
    precision_at_k,
    public_info,
    recall_at_k,
    round_summary,
    stage_regret,
    top_k_items,
)
from twostage_gym.core.rewards import LinearReward, unit_sphere
from twostage_gym.core.streams import UserStream, round_generator
from twostage_gym.core.topics import TopicIndex, dyna_topic_rec, power_law_sizes, sort_topics, top_topic_groups
from twostage_gym.core.tree import ItemTree, beam_search, build_tree

__all__ = [
    "CLICK_MODELS",
    "LSR_KINDS",
    "ORACLE_INFO_KEYS",
    "ClickModel",
    "GaussianContexts",
    "ItemTree",
    "LateStageRanker",
    "LinearReward",
    "Prop2Contexts",
    "TopicIndex",
    "UserStream",
    "beam_search",
    "build_tree",
    "dinkelbach_sets",
    "dyna_topic_rec",
    "log_checkpoints",
    "power_law_sizes",
    "precision_at_k",
    "public_info",
    "random_feature_subsets",
    "random_pools",
    "recall_at_k",
    "resolve_nominator_dim",
    "round_generator",
    "round_summary",
    "sort_topics",
    "stage_regret",
    "top_k_items",
    "top_topic_groups",
    "unit_sphere",
    "validate_feature_subsets",
    "validate_pools",
]
