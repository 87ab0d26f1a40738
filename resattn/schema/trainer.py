"""Schemas of the ``trainer`` group (the Lightning arguments our configs set) and the ``callbacks`` group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from resattn.schema.rules import (
    PRECISIONS,
    Rule,
    choice,
    fraction_or_count,
    integer,
    is_int,
    number,
    spec,
)
from resattn.training.metrics import LOGGED_METRICS

# ---------------------------------------------------------------------------------------------- trainer


@dataclass
class TrainerConfig:
    """The ``pytorch_lightning.Trainer`` arguments our configs set (``+trainer.<arg>=...`` adds any other)."""

    _target_: str = "pytorch_lightning.Trainer"
    default_root_dir: Optional[str] = "${paths.output_dir}"
    accelerator: str = "auto"
    strategy: Any = "auto"
    devices: Any = 1
    num_nodes: int = spec(1, integer(1))
    sync_batchnorm: bool = False
    # Not Trainer arguments (resattn.callbacks.ranks): seconds a DDP collective waits for the other ranks before the
    # run ends, once all ranks have started (gloo's own default is 30 min), and seconds they may take to start.
    ddp_timeout: float = spec(300.0, number(gt=0))
    ddp_start_timeout: float = spec(600.0, number(gt=0))
    precision: Any = spec(
        "auto",  # resattn.training.precision: bf16-mixed where bf16 is native (CUDA >= 8.0, AMX/AVX512-BF16 CPUs), else 32
        Rule(
            lambda v: str(v) in PRECISIONS,
            "one of " + ", ".join(PRECISIONS),
            lambda v: isinstance(v, (int, str)) and not isinstance(v, bool),
        ),
    )
    min_epochs: Optional[int] = spec(1, integer(0, nullable=True))
    # train.py: ${scale.max_epochs} (conf/train.yaml, the experiment's `epochs` at scale=full); eval.py only tests
    max_epochs: int = spec(1, Rule(lambda v: v >= 1 or v == -1, "an integer >= 1 (-1: no limit, with trainer.max_steps)", is_int))
    max_steps: int = spec(-1, integer(-1))
    check_val_every_n_epoch: Optional[int] = spec(1, integer(1, nullable=True))
    log_every_n_steps: Optional[int] = spec(50, integer(1, nullable=True))
    num_sanity_val_steps: Optional[int] = spec(2, integer(-1, nullable=True))
    enable_model_summary: bool = False  # resattn prints a Keras-style summary instead
    deterministic: Any = spec(False, Rule(lambda v: v in (True, False, "warn"), "true, false or warn", nullable=True))
    benchmark: Optional[bool] = None
    gradient_clip_val: Optional[float] = spec(None, number(ge=0, nullable=True))
    accumulate_grad_batches: int = spec(1, integer(1))
    # true = one batch of train/val/test (smoke check)
    fast_dev_run: Any = spec(False, Rule(lambda v: v >= 0, "true, false or a number of batches >= 1", lambda v: isinstance(v, (bool, int))))
    limit_train_batches: Any = spec(None, fraction_or_count())
    limit_val_batches: Any = spec(None, fraction_or_count())
    limit_test_batches: Any = spec(None, fraction_or_count())


# -------------------------------------------------------------------------------------------- callbacks

MONITOR = choice(*LOGGED_METRICS)
MODE = choice("min", "max")


@dataclass
class ModelCheckpointConfig:
    _target_: str = "resattn.callbacks.RunCheckpoint"
    dirpath: Optional[str] = "${paths.output_dir}/checkpoints"
    filename: Optional[str] = "epoch_{epoch:03d}"
    monitor: Optional[str] = spec("val/acc", choice(*LOGGED_METRICS, nullable=True))
    mode: str = spec("max", MODE)
    save_top_k: int = spec(1, integer(-1))
    save_last: Optional[bool] = True
    auto_insert_metric_name: bool = False
    every_n_train_steps: Optional[int] = spec(None, integer(0, nullable=True))


@dataclass
class EarlyStoppingConfig:
    _target_: str = "pytorch_lightning.callbacks.EarlyStopping"
    monitor: str = spec("val/acc", MONITOR)
    mode: str = spec("max", MODE)
    patience: int = spec("${rescale_patience:15}", integer(0))  # the study's (10 in its 3-stage run), fitted by a scale
    min_delta: float = spec(0.0, number(ge=0))


@dataclass
class DivergenceConfig:
    _target_: str = "resattn.callbacks.DivergenceGuard"
    every_n_steps: int = spec(0, integer(0))  # > 0: also check the weights every N steps (one host sync each)


@dataclass
class AttentionMapsConfig:
    _target_: str = "resattn.callbacks.AttentionMaps"
    every_n_epochs: int = spec(0, integer(0))  # 0 = off, 1 = every validation epoch
    n: int = spec(8, integer(1))  # the first n validation images


@dataclass
class EMAConfig:
    """Weight averaging, used when ``ema=true`` (:class:`resattn.callbacks.EMA`)."""

    _target_: str = "resattn.callbacks.EMA"
    decay: float = spec(0.999, number(gt=0, lt=1))
    warmup: bool = True
    update_every_n_steps: int = spec(1, integer(1))
    update_starting_at_step: Optional[int] = spec(None, integer(0, nullable=True))


@dataclass
class LearningRateMonitorConfig:
    _target_: str = "pytorch_lightning.callbacks.LearningRateMonitor"
    logging_interval: Optional[str] = spec("step", choice("step", "epoch", nullable=True))
    log_momentum: bool = False
    log_weight_decay: bool = False


@dataclass
class CallbacksConfig:
    """Lightning callbacks by name; null drops one, ``+callbacks.<name>._target_=...`` adds one."""

    model_checkpoint: Optional[ModelCheckpointConfig] = None
    early_stopping: Optional[EarlyStoppingConfig] = None
    divergence: Optional[DivergenceConfig] = None
    attention_maps: Optional[AttentionMapsConfig] = None
    ema: Optional[EMAConfig] = None
    lr_monitor: Optional[LearningRateMonitorConfig] = None
    timer: Optional[Any] = None
    rng_state: Optional[Any] = None
    weight_histograms: Optional[Any] = None
    plan: Optional[Any] = None
    progress_bar: Optional[Any] = None
    epoch_line: Optional[Any] = None
    graceful_stop: Optional[Any] = None
    rank_watch: Optional[Any] = None
