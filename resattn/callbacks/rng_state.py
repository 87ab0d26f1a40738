"""Checkpoint the global RNG states so a resumed run draws the same random numbers (e.g. dropout masks)."""

from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist

from resattn.data.loader import mix_seed

log = logging.getLogger("resattn")

_RANK_TAG = 0x72616E6B  # "rank"


def capture() -> dict[str, Any]:
    """This process's python/numpy/torch (CPU and, once initialised, CUDA) RNG states."""
    state: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_process(seed: int) -> None:
    """Seed python, numpy and torch (all devices) in this process."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class RNGStateCallback(pl.Callback):
    """Saves every rank's python/numpy/torch RNG states in each checkpoint and restores them on resume.

    Lightning restores model, optimizer, scheduler and loop state but not these generators; without them
    a resumed run's dropout masks differ from the uninterrupted run's. Under DDP each rank first gets its
    own seed (``seed`` mixed with the rank: independent dropout noise per rank, as one large batch would
    have), the checkpoint holds the states of all ranks (gathered; ``{"ranks": [state of rank 0, ...]}``)
    and each rank restores its own.

    Args:
        seed: the run's seed (``${seed}``); ``None`` keeps the generators as ``seed_everything`` left them.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self.rank, self.world_size = 0, 1

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.rank, self.world_size = int(trainer.global_rank), int(trainer.world_size)
        if stage == "fit" and self.world_size > 1 and self.seed is not None:
            seed_process(mix_seed(_RANK_TAG, self.seed, self.rank))  # restored states (resume) override this

    def state_dict(self) -> dict[str, Any]:
        state = capture()
        if self.world_size > 1 and dist.is_available() and dist.is_initialized():
            states: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(states, state)  # every rank saves (Lightning dumps on all ranks)
            return {"ranks": states}
        return {"ranks": [state]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        states = state_dict.get("ranks", [state_dict])  # single-state checkpoints of earlier versions
        if len(states) != self.world_size:
            log.warning(
                "resuming with %d processes a checkpoint saved by %d: random streams (dropout) continue "
                "from rank %d's saved state, so they differ from the uninterrupted run",
                self.world_size,
                len(states),
                self.rank % len(states),
            )
        restore(states[self.rank % len(states)])
