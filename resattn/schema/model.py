"""Schemas of the ``model`` group (with its typed ``layout`` entries) and the ``regularization`` group."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from resattn.schema.rules import (
    PROBABILITY,
    choice,
    integer,
    number,
    spec,
)

# ------------------------------------------------------------------------------------------------ model

BLOCK_KEYS = {"unit": ({"width", "out"}, {"stride", "repeat"}), "attention": ({"skip"}, {"repeat"})}


@dataclass
class BlockConfig:
    """One ``model.layout`` entry: ``{type: unit, width, out[, stride, repeat]}`` or ``{type: attention, skip[, repeat]}``
    (channel counts are multiples of ``model.width``; unset keys are null)."""

    type: str = spec("unit", choice(*BLOCK_KEYS))
    width: Optional[int] = spec(None, integer(1, nullable=True))
    out: Optional[int] = spec(None, integer(1, nullable=True))
    stride: Optional[int] = spec(None, integer(1, nullable=True))
    skip: Optional[int] = spec(None, integer(1, nullable=True))
    repeat: Optional[int] = spec(None, integer(1, nullable=True))


@dataclass
class ModelConfig:
    _target_: str = "resattn.models.ResidualAttentionNet"
    width: int = spec(32, integer(1))  # channels of the first conv; every stage scales with it
    stem_kernel: int = spec(5, integer(1))
    stem_norm: bool = True  # conv -> BN -> ReLU -> maxpool
    num_classes: int = spec(10, integer(2))
    attention: str = spec("arl", choice("arl", "nal", "none"))  # arl ((1+M)*T) | nal (M*T) | none (trunk only)
    # soft mask: mixed (sigmoid) | channel (L2 over channels) | spatial (standardise, sigmoid)
    mask_activation: str = spec("mixed", choice("mixed", "channel", "spatial"))
    trunk_depth: int = spec(1, integer(1))  # 1 = what the original effectively trained, 2 = the paper
    init: str = spec("keras", choice("keras", "torch"))  # keras (Glorot uniform, Keras BN) | torch (PyTorch defaults)
    head_norm: bool = "${regularization.head_norm}"  # type: ignore[assignment]  # the regularization group owns it
    dropout: float = spec("${regularization.dropout}", PROBABILITY)
    pool_kernel: int = spec(4, integer(1))
    pool_stride: int = spec(1, integer(1))
    input_size: int = spec(32, integer(1))
    in_channels: int = spec(3, integer(1))
    layout: List[BlockConfig] = field(default_factory=list)


@dataclass
class RegularizationConfig:
    head_norm: bool = False
    dropout: float = spec(0.0, PROBABILITY)
    l2: float = spec(0.0, number(ge=0))
    l2_scope: str = spec("head", choice("head", "all"))
