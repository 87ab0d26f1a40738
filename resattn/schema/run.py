"""Schemas of the ``scale`` group and of the top level of ``train.py`` and ``eval.py``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from resattn.schema.rules import (
    PROBABILITY,
    SEED,
    Rule,
    choice,
    integer,
    spec,
)

# Test-time augmentation modes (resattn.training.tta implements each); named here so that checking a config needs no torch.
TTA_MODES = ("none", "flip", "flip_translate")

# ---------------------------------------------------------------------------------------- scale, top level


@dataclass
class ScaleConfig:
    """A run's size (``resattn.config.scale``): ``model.width`` and ``trainer.max_epochs`` refer to it; epoch counts
    written as ``${rescale:...}`` follow ``trainer.max_epochs / reference_epochs``."""

    name: str = "full"
    width: Optional[int] = spec(None, integer(1, nullable=True))  # the model width a scale sets (null: the experiment's)
    max_epochs: int = spec("${epochs}", integer(1))  # the run's length unless trainer.max_epochs is set
    reference_epochs: Optional[int] = spec("${trainer.max_epochs}", integer(-1, nullable=True))  # ratio 1: as configured
    default_epochs: Optional[int] = spec(None, integer(1, nullable=True))
    epochs_by_task: Dict[str, int] = field(default_factory=dict)
    default_width: Optional[int] = spec(None, integer(1, nullable=True))
    width_by_task: Dict[str, int] = field(default_factory=dict)
    min_patience: Optional[int] = spec(None, integer(1, nullable=True))


def _compile_backend(value: Any) -> bool:
    if value == "inductor":  # torch.compile's default, always registered: known without importing torch
        return True
    import torch

    return value in torch.compiler.list_backends(exclude_tags=())


@dataclass
class CompileConfig:
    backend: str = spec("inductor", Rule(_compile_backend, "a torch.compile backend (torch.compiler.list_backends()), e.g. inductor"))
    mode: Optional[str] = spec(None, choice("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs", nullable=True))
    fullgraph: bool = True


@dataclass
class EvalConfig:
    """``eval.py``'s top level; the groups are typed by their own schemas."""

    data: Any = None
    trainer: Any = None
    paths: Any = None
    task_name: str = "eval"
    ckpt_path: Optional[str] = None
    seed: int = spec(42, SEED)
    tta: str = spec("none", choice(*TTA_MODES))  # test-time augmentation of validation and test (resattn.training.tta)


@dataclass
class TrainConfig(EvalConfig):
    """``train.py``'s top level: eval's keys and the training groups and switches."""

    augment: Any = None
    model: Any = None
    regularization: Any = None
    optimizer: Any = None
    scheduler: Any = None
    callbacks: Any = None
    logger: Any = None
    scale: Any = None
    task_name: str = "train"
    epochs: int = spec(60, integer(1))  # the experiment's length: its epoch counts are written for it (resattn.config.scale)
    resume: Optional[str] = None
    optimized_metric: Optional[str] = None
    channels_last: Any = spec("auto", choice("auto", True, False))
    compile: bool = False
    compile_options: CompileConfig = field(default_factory=CompileConfig)
    label_smoothing: float = spec(0.0, PROBABILITY)
    ema: bool = False  # average the weights with callbacks.ema (resattn.callbacks.EMA)
    val_tta: Optional[str] = spec(None, choice(*TTA_MODES, nullable=True))  # validation's tta while fitting; null: tta's
    test: bool = True
    model_summary: str = spec("short", choice("short", "full"))  # full: the layer table on the console too
