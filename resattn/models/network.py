"""Residual Attention Network assembled from a YAML layout (``conf/model/*.yaml``)."""

from __future__ import annotations

from functools import partial
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from resattn.errors import ConfigError
from resattn.models.attention import AttentionModule
from resattn.models.units import KerasSameConv2d, ResidualUnit

INITS = ("keras", "torch")
BLOCK_TYPES = ("unit", "attention")


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


_BLOCK_KEYS = {"unit": ({"width", "out"}, {"stride", "repeat"}), "attention": ({"skip"}, {"repeat"})}


def _check_block(index: int, spec: Mapping[str, Any]) -> str:
    """Validate one ``model.layout`` entry; returns its type."""
    where = f"model.layout[{index}]"
    kind = spec.get("type")
    if kind not in _BLOCK_KEYS:
        raise ConfigError(f"{where}.type={kind!r} is not supported; allowed: {', '.join(BLOCK_TYPES)}")
    required, optional = _BLOCK_KEYS[kind]
    keys = set(spec) - {"type"}
    if missing := required - keys:
        raise ConfigError(f"{where} ({kind}) lacks {', '.join(sorted(missing))}; a {kind} needs {', '.join(sorted(required))}")
    if unknown := keys - required - optional:
        raise ConfigError(f"{where} ({kind}) has unknown keys {', '.join(sorted(unknown))}; "
                          f"allowed: {', '.join(sorted(required | optional))}")
    for key in keys:
        value = spec[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{where}.{key}={value!r} must be an integer >= 1")
    return kind


class ResidualAttentionNet(nn.Module):
    """Stem → layout of residual units and attention modules → head (pool, dropout, dense).

    Args:
        layout: list of blocks, each ``{type: unit, width: a, out: b, stride: s, repeat: n}`` (channel
            counts as multiples of ``width``) or ``{type: attention, skip: k, repeat: n}``.
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
        if init not in INITS:
            raise ConfigError(f"model.init={init!r} is not supported; allowed: {', '.join(INITS)}")
        if width < 1:
            raise ConfigError(f"model.width={width} must be >= 1")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"regularization.dropout={dropout} must be in [0, 1)")
        norm_layer = _norm_layer(init)

        stem: list[nn.Module] = [KerasSameConv2d(in_channels, width, stem_kernel)]
        if stem_norm:
            stem += [norm_layer(width), nn.ReLU()]
        stem.append(nn.MaxPool2d(2))
        self.stem = nn.Sequential(*stem)

        channels, size = width, input_size // 2
        blocks: list[nn.Module] = []
        for index, spec in enumerate(layout):
            kind = _check_block(index, spec)
            for _ in range(int(spec.get("repeat", 1))):
                if kind == "unit":
                    stride = int(spec.get("stride", 1))
                    out = int(spec["out"]) * width
                    blocks.append(ResidualUnit(channels, int(spec["width"]) * width, out, stride, norm_layer))
                    channels, size = out, -(-size // stride)
                elif kind == "attention":
                    blocks.append(
                        AttentionModule(channels, int(spec["skip"]), size, attention, trunk_depth, norm_layer,
                                        mask_activation)
                    )
        self.blocks = nn.Sequential(*blocks)

        head: list[nn.Module] = []
        if head_norm:
            head += [norm_layer(channels), nn.ReLU()]
        if pool_kernel > size:
            raise ConfigError(f"model.pool_kernel={pool_kernel} is larger than the final {size}x{size} feature map")
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
