"""Residual Attention Network building blocks and the config-driven network."""

from resattn.models.attention import AttentionModule, SoftMaskBranch, combine
from resattn.models.network import ResidualAttentionNet, keras_init_
from resattn.models.units import KerasSameConv2d, ResidualUnit

__all__ = [
    "AttentionModule",
    "KerasSameConv2d",
    "ResidualAttentionNet",
    "ResidualUnit",
    "SoftMaskBranch",
    "combine",
    "keras_init_",
]
