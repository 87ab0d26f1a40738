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
    """The CIFAR-10 data module (``resattn/data/datamodule.py``), leak-free by default; the original's handling is
    ``data.val_source=original_overlap data.normalization=original`` (docs/original_study.md)."""

    _target_: str = "resattn.data.CIFAR10DataModule"
    # auto (root/cifar10.npz if present, else torchvision's cifar-10-batches-py/) | npz | torchvision | synthetic |
    # imagefolder (an ImageFolder tree root/<class>/<image>, see conf/data/imagefolder.yaml)
    source: str = spec("auto", choice("auto", "npz", "torchvision", "synthetic", "imagefolder"))
    # folder holding cifar10.npz or cifar-10-batches-py/ (default: $RESATTN_DATA_DIR, else <root_dir>/data)
    root: Optional[str] = "${paths.data_dir}"
    download: bool = False  # let torchvision download CIFAR-10 into root (needs internet)
    train_size: int = spec(30_000, integer(1))  # training pool = the first train_size of the 50,000 training images
    val_size: int = spec(5_000, integer(1))  # validation images
    test_size: Optional[int] = spec(None, integer(1, nullable=True))  # cap on the official 10,000 test images (null = all)
    # holdout: the last val_size of the 50,000, disjoint from the pool | original_overlap: the last val_size of the pool
    val_source: str = spec("holdout", choice("holdout", "original_overlap"))
    # pool: training-pool mean/std for every split | original: each split its own statistics (0-255, std + 1e-6)
    normalization: str = spec("pool", choice("pool", "original"))
    batch_size: int = spec(128, integer(1))  # per process; the last partial batch is dropped (floor(N / batch) steps)
    eval_batch_size: int = spec(500, integer(1))  # validation/test batch size (every image is evaluated)
    num_workers: int = spec(0, integer(0))  # DataLoader workers of the host-memory backend (0 = main process)
    pin_memory: bool = False  # pinned host memory for faster host-to-GPU copies (CUDA only)
    persistent_workers: bool = False  # keep DataLoader workers alive between epochs (num_workers > 0 only)
    # auto (true on CUDA) | true (whole uint8 set moved once to the training device) | false (DataLoader backend)
    device_resident: Any = spec("auto", choice("auto", True, False))
    seed: int = spec("${seed}", SEED)  # epoch order and per-batch augmentation draws derive from it
    # symmetric label noise: exactly round(p * train_size) pool labels replaced by a different class (from seed)
    label_noise: float = spec(0.0, Rule(lambda v: 0 <= v <= 1, "a fraction in [0, 1]", is_num))
    synthetic_seed: int = spec(0, SEED)  # seed of the generated dataset (source=synthetic only)
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
    # centre of rotation and zoom: keras_1_1 = pixel (H/2 + 0.5, W/2 + 0.5), exactly keras-preprocessing 1.1 (what
    # TF 2.0 ran) | geometric = the true centre ((H-1)/2, (W-1)/2)
    center: str = spec("keras_1_1", choice("keras_1_1", "geometric"))


@dataclass
class StandardAugmentConfig:
    _target_: str = "resattn.data.StandardAugment"
    padding: int = spec(4, integer(0))
    horizontal_flip: bool = True
