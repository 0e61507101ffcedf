"""Multi-channel recall: one interface, one class per channel, channels configured in YAML."""

from recsys.recall.base import ChannelParams, RecallChannel, RecallContext
from recsys.recall.config import RecallConfig, config_from_dict, load_recall_config
from recsys.recall.data import DEFAULT_WEIGHTS, RecallData
from recsys.recall.embedding import IndexDimensionMismatch, build_index, check_dimension
from recsys.recall.engine import RecallEngine
from recsys.recall.filtering import ExclusionFilter
from recsys.recall.fusion import Candidate, candidate_features, fuse
from recsys.recall.registry import CHANNELS

__all__ = [
    "CHANNELS",
    "DEFAULT_WEIGHTS",
    "Candidate",
    "ChannelParams",
    "ExclusionFilter",
    "IndexDimensionMismatch",
    "RecallChannel",
    "RecallConfig",
    "RecallContext",
    "RecallData",
    "RecallEngine",
    "build_index",
    "candidate_features",
    "check_dimension",
    "config_from_dict",
    "fuse",
    "load_recall_config",
]
