"""Lightning callbacks and checkpoint plumbing used by the training app."""

from resattn.callbacks.attention_logging import AttentionMaps
from resattn.callbacks.checkpoint import AtomicCheckpointIO, RunCheckpoint, remove_stale_temporaries
from resattn.callbacks.divergence import DivergenceGuard, TrainingDiverged
from resattn.callbacks.ema import EMA
from resattn.callbacks.epoch_line import EpochLine
from resattn.callbacks.histograms import WeightHistograms
from resattn.callbacks.plan import RunPlan
from resattn.callbacks.ranks import RankLost, RankWatch
from resattn.callbacks.rng_state import RNGStateCallback
from resattn.callbacks.signals import GracefulStop, RunInterrupted

__all__ = [
    "AtomicCheckpointIO",
    "AttentionMaps",
    "DivergenceGuard",
    "EMA",
    "EpochLine",
    "GracefulStop",
    "RNGStateCallback",
    "RunCheckpoint",
    "RankLost",
    "RankWatch",
    "RunPlan",
    "RunInterrupted",
    "TrainingDiverged",
    "WeightHistograms",
    "remove_stale_temporaries",
]
