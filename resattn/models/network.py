"""Residual Attention Network assembled from a YAML layout (``conf/model/*.yaml``)."""

from __future__ import annotations

from functools import partial
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from resattn.models.attention import AttentionModule
from resattn.models.units import KerasSameConv2d, ResidualUnit


def _norm_layer(init: str):
    """Batch norm matching the initialisation convention (Keras: eps 1e-3, momentum 0.99)."""
    if init == "keras":
        return partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01)
    return nn.BatchNorm2d


def keras_init_(module: nn.Module) -> None:
    """Glorot-uniform kernels and zero biases for every conv and dense layer (Keras defaults)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ResidualAttentionNet(nn.Module):
    """Stem → layout of residual units and attention modules → head (pool, dropout, dense).

    Args:
        layout: list of blocks, each ``{type: unit, width: a, out: b, stride: s, repeat: n}`` (channel
            counts as multiples of ``width``) or ``{type: attention, skip: k, repeat: n}``; absent or null
            ``stride``/``repeat`` mean 1 (:class:`resattn.schema.model.BlockConfig`, checked by the validator).
        width: channels of the first convolution (32 in the original); every stage scales with it.
        stem_kernel: kernel size of the first convolution.
        stem_norm: BN → ReLU after the first convolution.
        num_classes: classifier outputs (logits; softmax lives in the loss).
        attention: ``arl`` | ``nal`` | ``none``.
        mask_activation: the soft mask's activation: ``mixed`` (sigmoid) | ``channel`` | ``spatial``.
        trunk_depth: residual units in each attention module's trunk.
        init: ``keras`` (Glorot uniform, zero bias, Keras BN) or ``torch`` (PyTorch defaults).
        head_norm: BN → ReLU before the average pool.
        dropout: dropout probability before the dense layer.
        pool_kernel, pool_stride: the head's average pooling (Keras ``valid`` padding).
        input_size, in_channels: input geometry (CIFAR-10: 32, 3).
    """

    def __init__(
        self,
        layout: Iterable[Mapping[str, Any]],
        width: int = 32,
        stem_kernel: int = 5,
        stem_norm: bool = True,
        num_classes: int = 10,
        attention: str = "arl",
        mask_activation: str = "mixed",
        trunk_depth: int = 1,
        init: str = "keras",
        head_norm: bool = False,
        dropout: float = 0.0,
        pool_kernel: int = 4,
        pool_stride: int = 1,
        input_size: int = 32,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        norm_layer = _norm_layer(init)

        stem: list[nn.Module] = [KerasSameConv2d(in_channels, width, stem_kernel)]
        if stem_norm:
            stem += [norm_layer(width), nn.ReLU()]
        stem.append(nn.MaxPool2d(2))
        self.stem = nn.Sequential(*stem)

        channels, size = width, input_size // 2
        blocks: list[nn.Module] = []
        for spec in layout:
            for _ in range(spec.get("repeat") or 1):
                if spec["type"] == "unit":
                    stride = spec.get("stride") or 1
                    out = spec["out"] * width
                    blocks.append(ResidualUnit(channels, spec["width"] * width, out, stride, norm_layer))
                    channels, size = out, -(-size // stride)
                else:
                    blocks.append(AttentionModule(channels, spec["skip"], size, attention, trunk_depth, norm_layer, mask_activation))
        self.blocks = nn.Sequential(*blocks)

        head: list[nn.Module] = []
        if head_norm:
            head += [norm_layer(channels), nn.ReLU()]
        head += [nn.AvgPool2d(pool_kernel, pool_stride), nn.Flatten()]
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        pooled = (size - pool_kernel) // pool_stride + 1
        self.features = channels * pooled * pooled
        self.head = nn.Sequential(*head)
        self.classifier = nn.Linear(self.features, num_classes)

        if init == "keras":
            keras_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.blocks(self.stem(x))))


def build_model(cfg: Mapping[str, Any]) -> nn.Module:
    """Instantiate ``cfg["model"]`` of a composed config or of a checkpoint's plain dict (a composed config's
    head options interpolate from ``cfg.regularization``)."""
    from hydra.utils import instantiate

    return instantiate(cfg["model"], _convert_="all")
