"""Attention module of the Residual Attention Network (Wang et al. 2017), as the original study built it."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from resattn.errors import ConfigError
from resattn.models.units import KerasSameConv2d, NormLayer, ResidualUnit

AttentionType = Literal["arl", "nal", "none"]
SPATIAL_EPS = 1e-5  # keeps the standardisation finite on a constant map


class MaskActivation(nn.Module):
    """The soft mask's activation, the three choices of the paper (§3.3, f1-f3), no parameters.

    ``mixed``: sigmoid at every channel and position; ``channel``: L2 normalisation across the channels
    at each position; ``spatial``: each channel's map standardised over its positions, then a sigmoid.
    """

    def __init__(self, kind: str = "mixed") -> None:
        super().__init__()
        self.kind = kind

    def extra_repr(self) -> str:
        return self.kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "channel":
            return F.normalize(x, p=2.0, dim=1)
        if self.kind == "spatial":
            mean = x.mean(dim=(2, 3), keepdim=True)
            std = x.std(dim=(2, 3), keepdim=True, unbiased=False)
            return torch.sigmoid((x - mean) / (std + SPATIAL_EPS))
        return torch.sigmoid(x)


def combine(mask: torch.Tensor, trunk: torch.Tensor, attention: str) -> torch.Tensor:
    """Combine soft mask ``M`` and trunk ``T``: ARL ``(1 + M)·T``, NAL ``M·T``."""
    if attention == "arl":
        return (1.0 + mask) * trunk
    if attention == "nal":
        return mask * trunk
    raise ConfigError(f"model.attention={attention!r} has no mask; allowed with a mask: arl, nal")


class SoftMaskBranch(nn.Module):
    """Bottom-up/top-down hourglass producing the soft mask ``M`` at the input resolution.

    ``levels`` extra down/up levels follow the first pooling (``skip - 1`` in the original, and only
    when the pooled size is divisible by 4, see docs/original_study.md).
    """

    def __init__(self, channels: int, levels: int, unit, activation: str = "mixed") -> None:
        super().__init__()
        self.levels = levels
        self.entry = unit()
        self.skips = nn.ModuleList(unit() for _ in range(levels))
        self.downs = nn.ModuleList(unit() for _ in range(levels))
        self.ups = nn.ModuleList(unit() for _ in range(levels))
        self.exit = unit()
        self.mask_conv1 = KerasSameConv2d(channels, channels, 1)
        self.mask_conv2 = KerasSameConv2d(channels, channels, 1)
        self.activation = MaskActivation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.entry(F.max_pool2d(x, 2))
        saved: list[torch.Tensor] = []
        for skip_unit, down_unit in zip(self.skips, self.downs):
            saved.append(skip_unit(m))
            m = down_unit(F.max_pool2d(m, 2))
        for up_unit, skip in zip(self.ups, reversed(saved)):
            m = F.interpolate(up_unit(m), scale_factor=2.0, mode="nearest") + skip
        m = F.interpolate(self.exit(m), scale_factor=2.0, mode="nearest")
        return self.activation(self.mask_conv2(self.mask_conv1(m)))


class AttentionModule(nn.Module):
    """``AM(x, skip)``: pre unit → trunk ∥ soft mask → combine → post unit; every unit is ``RU(·, C, C)``.

    Args:
        channels: input/output channels ``C``.
        skip: the original's ``skip`` argument (number of mask resolution levels).
        input_size: spatial size of the input (needed for the divisible-by-4 rule).
        attention: ``arl`` ((1+M)·T), ``nal`` (M·T) or ``none`` (trunk only, no mask branch).
        trunk_depth: residual units in the trunk (1 = what the original effectively trained, 2 = the paper).
        mask_activation: ``mixed`` (sigmoid) | ``channel`` | ``spatial`` (see :class:`MaskActivation`).
    """

    def __init__(
        self,
        channels: int,
        skip: int,
        input_size: int,
        attention: str,
        trunk_depth: int,
        norm_layer: NormLayer,
        mask_activation: str = "mixed",
    ) -> None:
        super().__init__()

        def unit() -> ResidualUnit:
            return ResidualUnit(channels, channels, channels, 1, norm_layer)

        self.attention = attention
        self.pre = unit()
        self.trunk = nn.Sequential(*(unit() for _ in range(trunk_depth)))
        pooled = input_size // 2
        levels = skip - 1 if pooled % 4 == 0 else 0
        self.mask = SoftMaskBranch(channels, levels, unit, mask_activation) if attention != "none" else None
        self.post = unit()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        trunk = self.trunk(x)
        out = trunk if self.mask is None else combine(self.mask(x), trunk, self.attention)
        return self.post(out)
