"""Checkpoint the global RNG states so a resumed run draws the same random numbers (e.g. dropout masks)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch


class RNGStateCallback(pl.Callback):
    """Saves python/numpy/torch (CPU and CUDA) RNG states in every checkpoint and restores them on resume.

    Lightning restores model, optimizer, scheduler and loop state but not these generators; without them
    a resumed run's dropout masks differ from the uninterrupted run's.
    """

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        random.setstate(state_dict["python"])
        np.random.set_state(state_dict["numpy"])
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
