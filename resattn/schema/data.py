"""Schemas of the ``data`` and ``augment`` groups (one per augmentation target)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional

from resattn.schema.rules import (
    SEED,
    Rule,
    choice,
    integer,
    is_num,
    number,
    pair,
    spec,
)

# ------------------------------------------------------------------------------------------------- data


@dataclass
class DataConfig:
    _target_: str = "resattn.data.CIFAR10DataModule"
    source: str = spec("auto", choice("auto", "npz", "torchvision", "synthetic", "imagefolder"))
    root: Optional[str] = None
    download: bool = False
    train_size: int = spec(30_000, integer(1))
    val_size: int = spec(5_000, integer(1))
    test_size: Optional[int] = spec(None, integer(1, nullable=True))
    val_source: str = spec("holdout", choice("holdout", "seed_overlap"))
    normalization: str = spec("pool", choice("pool", "seed"))
    batch_size: int = spec(128, integer(1))
    eval_batch_size: int = spec(500, integer(1))
    num_workers: int = spec(0, integer(0))
    pin_memory: bool = False
    persistent_workers: bool = False
    device_resident: Any = spec("auto", choice("auto", True, False))
    seed: int = spec(0, SEED)
    label_noise: float = spec(0.0, Rule(lambda v: 0 <= v <= 1, "a fraction in [0, 1]", is_num))
    synthetic_seed: int = spec(0, SEED)
    image_size: Optional[int] = spec(None, integer(1, nullable=True))  # imagefolder: resize to n x n (null: as they are)


# ---------------------------------------------------------------------------------------------- augment


@dataclass
class NoAugmentConfig:
    _target_: str = "resattn.data.NoAugment"


@dataclass
class KerasAugmentConfig:
    _target_: str = "resattn.data.KerasAugment"
    rotation: float = spec(20.0, number(ge=0, le=180))
    width_shift: float = spec(0.2, number(ge=0, lt=1))
    height_shift: float = spec(0.2, number(ge=0, lt=1))
    zoom: List[float] = spec(
        [0.8, 1.2], pair("a pair [lo, hi] of zoom factors with 0 < lo <= hi (1 = no zoom)", lambda lo, hi: 0 < lo <= hi)
    )
    horizontal_flip: bool = True
    interpolation: str = spec("bilinear", choice("bilinear", "nearest"))
    fill_mode: str = spec("nearest", choice("nearest", "constant", "reflect"))
    center: str = spec("keras_1_1", choice("keras_1_1", "geometric"))


@dataclass
class StandardAugmentConfig:
    _target_: str = "resattn.data.StandardAugment"
    padding: int = spec(4, integer(0))
    horizontal_flip: bool = True
