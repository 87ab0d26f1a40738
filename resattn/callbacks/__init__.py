"""Lightning callbacks and checkpoint plumbing used by the training app."""

from resattn.callbacks.checkpoint import AtomicCheckpointIO, RunCheckpoint
from resattn.callbacks.histograms import WeightHistograms
from resattn.callbacks.rng_state import RNGStateCallback

__all__ = ["AtomicCheckpointIO", "RNGStateCallback", "RunCheckpoint", "WeightHistograms"]
