"""Residual Attention Network building blocks and the config-driven network."""

from resattn.models.attention import AttentionModule, SoftMaskBranch, combine
from resattn.models.builders import attention56, attention56_mini, attention56_mini_paper, attention92
from resattn.models.network import ResidualAttentionNet, keras_init_
from resattn.models.units import KerasSameConv2d, ResidualUnit

__all__ = [
    "AttentionModule",
    "KerasSameConv2d",
    "ResidualAttentionNet",
    "ResidualUnit",
    "attention56",
    "attention56_mini",
    "attention56_mini_paper",
    "attention92",
    "SoftMaskBranch",
    "combine",
    "keras_init_",
]
