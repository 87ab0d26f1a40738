"""One line per epoch (``epoch 3/8: train/loss 0.4370, val/acc 0.8670, best val/acc 0.8670; 2 s``) for consoles that are
not terminals: nohup and SLURM logs, where the progress bar leaves no readable trace. The run's log file
always gets it."""

from __future__ import annotations

import logging
import sys
import time

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_only

from resattn.artifacts.results import format_seconds, to_number
from resattn.cli.quiet import LOG_FILE_ONLY

log = logging.getLogger("resattn")


class EpochLine(Callback):
    """After each training epoch (its validation included), rank 0 logs the epoch, its ``metrics`` and its time;
    on the console only when stdout is not a terminal (there the progress bar shows the same).

    The module logs the epoch's ``train/loss`` after the callbacks' ``on_train_epoch_end``, so the line is written
    when the next epoch starts, or when training ends.

    Args:
        metrics: logged metric names shown when logged; with ``val/acc``, the best so far follows.
    """

    def __init__(self, metrics: tuple[str, ...] = ("train/loss", "val/loss", "val/acc")) -> None:
        self.metrics = tuple(metrics)
        self._start = time.perf_counter()
        self._ended: tuple[int, float] | None = None  # (epoch, its seconds), not yet logged

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush(trainer)
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._ended = (trainer.current_epoch, time.perf_counter() - self._start)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush(trainer)

    def _flush(self, trainer: pl.Trainer) -> None:
        if self._ended is not None:
            self._log(self.line(trainer, *self._ended))
            self._ended = None

    def line(self, trainer: pl.Trainer, epoch: int, seconds: float) -> str:
        found = trainer.callback_metrics
        parts = [f"{k} {to_number(found[k]):.4f}" for k in self.metrics if k in found]
        if "val/acc" in self.metrics and "val/acc_best" in found:
            parts.append(f"best val/acc {to_number(found['val/acc_best']):.4f}")
        total = f"/{trainer.max_epochs}" if trainer.max_epochs not in (None, -1) else ""
        return f"epoch {epoch + 1}{total}: {', '.join(parts) or 'no metrics logged yet'}; {format_seconds(seconds)}"

    @rank_zero_only
    def _log(self, line: str) -> None:
        log.info(line, extra=None if not sys.stdout.isatty() else LOG_FILE_ONLY)
