"""Pre-activation bottleneck residual unit, as in the original Keras study (docs/original_study.md)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

NormLayer = Callable[[int], nn.Module]


class KerasSameConv2d(nn.Conv2d):
    """Conv2d with Keras ``padding='same'`` semantics, also for strided convolutions.

    Keras pads asymmetrically (extra row/column at the bottom/right) when the total padding is odd;
    PyTorch's symmetric padding would shift the sampling grid by one pixel for stride 2.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, bias=True)
        k = kernel_size
        if stride == 1:
            total = k - 1
            self.pad = (total // 2, total - total // 2) * 2
        else:
            self.pad = None  # depends on input size; computed in forward (static under torch.compile)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.pad
        if pad is None:
            k, s = self.kernel_size[0], self.stride[0]
            h, w = x.shape[-2], x.shape[-1]
            ph = max((-(-h // s) - 1) * s + k - h, 0)
            pw = max((-(-w // s) - 1) * s + k - w, 0)
            pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
        if any(pad):
            x = F.pad(x, pad)
        return super().forward(x)


class ResidualUnit(nn.Module):
    """``RU(x, width, out, stride)``: BN-ReLU-1x1(width) → BN-ReLU-3x3(width, stride) → BN-ReLU-1x1(out).

    The shortcut is *always* a 1x1 convolution to ``out`` with the same stride, even when shapes match,
    exactly as the original network (this is what its parameter count implies).
    """

    def __init__(self, in_channels: int, width: int, out_channels: int, stride: int, norm_layer: NormLayer) -> None:
        super().__init__()
        self.bn1 = norm_layer(in_channels)
        self.conv1 = KerasSameConv2d(in_channels, width, 1)
        self.bn2 = norm_layer(width)
        self.conv2 = KerasSameConv2d(width, width, 3, stride=stride)
        self.bn3 = norm_layer(width)
        self.conv3 = KerasSameConv2d(width, out_channels, 1)
        self.shortcut = KerasSameConv2d(in_channels, out_channels, 1, stride=stride)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + self.shortcut(x)
