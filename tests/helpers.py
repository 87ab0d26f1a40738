"""Small readers of a run directory's outputs, shared by the test modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def run_checkpoint(run_dir: Path, name: str = "last.ckpt") -> dict[str, Any]:
    """The whole checkpoint ``<run_dir>/checkpoints/<name>``, loaded on the CPU."""
    return torch.load(run_dir / "checkpoints" / name, map_location="cpu", weights_only=False)


def run_state(run_dir: Path, name: str = "last.ckpt") -> dict[str, torch.Tensor]:
    """The state dict of ``<run_dir>/checkpoints/<name>``."""
    return run_checkpoint(run_dir, name)["state_dict"]
