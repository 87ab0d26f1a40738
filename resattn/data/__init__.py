"""CIFAR-10 data: sources, splits, normalisation, batched on-device augmentation, resumable loaders."""

from resattn.cifar import CLASS_NAMES, NUM_CLASSES
from resattn.data.augment import KerasAugment, NoAugment, StandardAugment
from resattn.data.datamodule import CIFAR10DataModule
from resattn.data.loader import EpochBatchSampler, EvalLoader, TrainLoader

__all__ = [
    "CIFAR10DataModule",
    "KerasAugment",
    "StandardAugment",
    "NoAugment",
    "TrainLoader",
    "EpochBatchSampler",
    "EvalLoader",
    "CLASS_NAMES",
    "NUM_CLASSES",
]
