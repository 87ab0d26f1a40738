"""Small helpers shared by the test modules: readers of a run directory's outputs, the config check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from resattn.config.compose import compose
from resattn.errors import ConfigError
from resattn.validation import check_config


def run_checkpoint(run_dir: Path, name: str = "last.ckpt") -> dict[str, Any]:
    """The whole checkpoint ``<run_dir>/checkpoints/<name>``, loaded on the CPU."""
    return torch.load(run_dir / "checkpoints" / name, map_location="cpu", weights_only=False)


def run_state(run_dir: Path, name: str = "last.ckpt") -> dict[str, torch.Tensor]:
    """The state dict of ``<run_dir>/checkpoints/<name>``."""
    return run_checkpoint(run_dir, name)["state_dict"]


def assert_same_weights(a: Path, b: Path) -> None:
    """The last checkpoints of runs ``a`` and ``b`` hold bit-for-bit equal weights (and the same keys)."""
    wa, wb = run_state(a), run_state(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def config_error(*overrides: str) -> str:
    """The one-line :class:`ConfigError` that composing ``debug=smoke`` with ``overrides`` and validating it raises
    (as ``train.py`` does before any work); fails the test if none is raised."""
    with pytest.raises(ConfigError) as info:
        check_config(compose("train", ["debug=smoke", *overrides]))
    return str(info.value)
