"""Schemas of the ``optimizer`` and ``scheduler`` groups: one per target, listing the arguments it takes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from resattn.schema.rules import (
    choice,
    integer,
    number,
    pair,
    spec,
)
from resattn.training.metrics import LOGGED_METRICS

# -------------------------------------------------------------------------------------------- optimizer

BETAS = pair("two numbers in [0, 1), e.g. [0.9, 0.999]", lambda a, b: 0 <= a < 1 and 0 <= b < 1)


@dataclass
class AdamConfig:
    """``optimizer=adam``: Adam with Keras/TF2 defaults (eps 1e-7), as the study's Adam runs (docs/original_study.md)."""

    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    lr: float = spec(1e-4, number(gt=0))
    betas: List[float] = spec([0.9, 0.999], BETAS)
    eps: float = spec(1e-7, number(ge=0))
    weight_decay: float = spec(0.0, number(ge=0))


@dataclass
class AdamWConfig(AdamConfig):
    """``optimizer=adamw``: decoupled weight decay (PyTorch's lr and eps)."""

    _target_: str = "torch.optim.AdamW"
    lr: float = spec(1e-3, number(gt=0))
    eps: float = spec(1e-8, number(ge=0))
    weight_decay: float = spec(0.05, number(ge=0))


@dataclass
class SGDConfig:
    """``optimizer=sgd``: SGD with Nesterov momentum, as the study's 56mini-SGD-Base (docs/original_study.md); weight_decay is
    decoupled from ``regularization.l2`` (the Keras-style loss penalty)."""

    _target_: str = "torch.optim.SGD"
    _partial_: bool = True
    lr: float = spec(1e-4, number(gt=0))
    momentum: float = spec(0.9, number(ge=0, lt=1))
    dampening: float = spec(0.0, number(ge=0, lt=1))
    nesterov: bool = True
    weight_decay: float = spec(0.0, number(ge=0))


# -------------------------------------------------------------------------------------------- scheduler

STEPS = integer(1, nullable=True)


@dataclass
class CosineAnnealingConfig:
    _target_: str = "torch.optim.lr_scheduler.CosineAnnealingLR"
    _partial_: bool = True
    T_max: Optional[int] = spec(None, STEPS)  # null = trainer.estimated_stepping_batches
    eta_min: float = spec(0.0, number(ge=0))


@dataclass
class OneCycleConfig:
    """One-cycle policy peaking at ``optimizer.lr``."""

    _target_: str = "torch.optim.lr_scheduler.OneCycleLR"
    _partial_: bool = True
    max_lr: float = spec("${optimizer.lr}", number(gt=0))
    total_steps: Optional[int] = spec(None, STEPS)  # null = trainer.estimated_stepping_batches
    pct_start: float = spec(0.25, number(gt=0, lt=1))
    anneal_strategy: str = spec("linear", choice("cos", "linear"))
    div_factor: float = spec(20.0, number(gt=0))
    final_div_factor: float = spec(200.0, number(gt=0))


@dataclass
class PiecewiseConstantConfig:
    _target_: str = "resattn.training.schedulers.PiecewiseConstantLR"
    _partial_: bool = True
    milestones: List[int] = field(default_factory=list)
    factors: List[float] = field(default_factory=list)


@dataclass
class PlateauConfig:
    """The study passed factor 0.1, patience 5 (its step schedule silently overrode it; here it acts)."""

    _target_: str = "torch.optim.lr_scheduler.ReduceLROnPlateau"
    _partial_: bool = True
    mode: str = spec("max", choice("min", "max"))
    factor: float = spec(0.1, number(gt=0, lt=1))
    patience: int = spec("${rescale_patience:5}", integer(0))  # epochs of the experiment's length (resattn.config.scale)


@dataclass
class SchedulerConfig:
    """Lightning's scheduler entry: ``scheduler`` (a partial of the scheduler class, null = constant lr)."""

    scheduler: Optional[Any] = None
    interval: str = spec("epoch", choice("step", "epoch"))
    frequency: int = spec(1, integer(1))
    monitor: Optional[str] = spec(None, choice(*LOGGED_METRICS, nullable=True))


@dataclass
class CosineSchedulerConfig(SchedulerConfig):
    scheduler: Optional[CosineAnnealingConfig] = field(default_factory=CosineAnnealingConfig)
    interval: str = spec("step", choice("step", "epoch"))


@dataclass
class OneCycleSchedulerConfig(SchedulerConfig):
    scheduler: Optional[OneCycleConfig] = field(default_factory=OneCycleConfig)
    interval: str = spec("step", choice("step", "epoch"))


@dataclass
class PiecewiseSchedulerConfig(SchedulerConfig):
    scheduler: Optional[PiecewiseConstantConfig] = field(default_factory=PiecewiseConstantConfig)


@dataclass
class PlateauSchedulerConfig(SchedulerConfig):
    scheduler: Optional[PlateauConfig] = field(default_factory=PlateauConfig)
    monitor: Optional[str] = spec("val/acc", choice(*LOGGED_METRICS, nullable=True))
