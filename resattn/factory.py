"""Build objects from the composed config (one place, shared by train, eval, summary and benchmarks)."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn


def build_model(cfg: DictConfig) -> nn.Module:
    """Instantiate ``cfg.model`` (its head options interpolate from ``cfg.regularization``)."""
    return instantiate(cfg.model, _convert_="all")
