"""The ``plan:`` line: the run's length and wall-time estimate, from its first timed training steps."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_only

from resattn.training.tta import FORWARDS

log = logging.getLogger("resattn")

# A CPU run at scale=full whose estimate exceeds this suggests scale=cpu.
SUGGEST_CPU_SCALE_ABOVE_S = 3600.0
CPU_SCALE_TARGET_S = 1800.0  # scale=cpu's promise: at most 30 minutes on 2 cores (with native bf16: docs/results.md)
# Evaluating an image costs about a third of training on it (forward only).
EVAL_COST_RATIO = 1 / 3


def format_duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


class RunPlan(Callback):
    """After ``warmup_steps`` + ``measure_steps`` training steps, print once (rank 0)::

        plan: 60 epochs x 234 steps, about 8.4 h on cpu (1.92 s/step over steps 6-25, validation included); precision 32 (auto: ...)

    Args:
        scale: the run's ``scale.name``; a CPU run at ``full`` that would take over an hour suggests ``scale=cpu``.
        warmup_steps: first steps left out of the timing (allocator warm-up, lazy initialisation).
        measure_steps: steps timed.
        tta: the run's test-time augmentation (``tta``): validation costs its number of forwards per image.
        val_tta: validation's own test-time augmentation when it differs (``val_tta``); None: ``tta``.
    """

    def __init__(
        self, scale: str = "full", warmup_steps: int = 5, measure_steps: int = 20, tta: str = "none", val_tta: str | None = None
    ) -> None:
        self.scale = scale
        self.tta = val_tta or tta
        self.warmup_steps = warmup_steps
        self.measure_steps = measure_steps
        self._seen = 0
        self._start: float | None = None
        self._first_step = 0
        self.line: str | None = None
        # The precision the run uses and why (resattn.training.precision), set by resattn.training.fit; appended to the line.
        self.precision: str | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._first_step = trainer.global_step  # > 0 when resumed

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self.line is not None or trainer.sanity_checking:
            return
        self._seen += 1
        if self._seen == self.warmup_steps:
            self._start = time.perf_counter()
        elif self._start is not None and self._seen == self.warmup_steps + self.measure_steps:
            self.line = self.plan(trainer, (time.perf_counter() - self._start) / self.measure_steps)
            self._print(trainer, self.line)

    def plan(self, trainer: pl.Trainer, step_s: float) -> str:
        steps_per_epoch = int(trainer.num_training_batches)
        total_steps = int(trainer.estimated_stepping_batches)
        remaining_steps = max(total_steps - self._first_step, 0)
        epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else -(-total_steps // max(steps_per_epoch, 1))
        datamodule = getattr(trainer, "datamodule", None)
        train_images = steps_per_epoch * int(getattr(datamodule, "batch_size", 0) or 0)
        val_images = int(getattr(datamodule, "val_size", 0) or 0)
        eval_cost = EVAL_COST_RATIO * FORWARDS.get(self.tta, 1)
        eval_share = eval_cost * val_images / train_images if train_images and trainer.limit_val_batches else 0.0
        seconds = remaining_steps * step_s * (1 + eval_share)
        device = trainer.strategy.root_device.type
        line = (
            f"plan: {epochs} epochs x {steps_per_epoch} steps, about {format_duration(seconds)} on {device} "
            f"({step_s:.2f} s/step over steps {self.warmup_steps + 1}-{self.warmup_steps + self.measure_steps}"
            f"{', validation included' if eval_share else ''})"
        )
        if remaining_steps < total_steps:
            line += f"; resumed: {remaining_steps} of {total_steps} steps left"
        if device == "cpu" and self.scale == "full" and seconds > SUGGEST_CPU_SCALE_ABOVE_S:
            line += "; on a CPU try scale=cpu (at most 30 min on 2 cores)"
        if device == "cpu" and self.scale == "cpu" and seconds > CPU_SCALE_TARGET_S:
            line += "; over scale=cpu's 30-minute target on this machine"
        if self.precision:
            line += f"; {self.precision}"
        return line

    @rank_zero_only
    def _print(self, trainer: pl.Trainer, line: str) -> None:
        log.info(line)
