"""Build objects from the composed config (one place, shared by train, eval, summary and benchmarks)."""

from __future__ import annotations

from typing import Any, Mapping

from hydra.utils import instantiate
from torch import nn


def build_model(cfg: Mapping[str, Any]) -> nn.Module:
    """Instantiate ``cfg["model"]`` of a composed config or of a checkpoint's plain dict (a composed config's
    head options interpolate from ``cfg.regularization``)."""
    return instantiate(cfg["model"], _convert_="all")
