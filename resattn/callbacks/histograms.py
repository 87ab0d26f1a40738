"""Per-epoch weight histograms in TensorBoard (the original study logged them every epoch)."""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger


class WeightHistograms(pl.Callback):
    """Adds a histogram of every weight tensor to each TensorBoard logger every ``every_n_epochs`` epochs."""

    def __init__(self, every_n_epochs: int = 1) -> None:
        self.every_n_epochs = every_n_epochs

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.every_n_epochs < 1 or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if not loggers or trainer.global_rank != 0:
            return
        for name, param in pl_module.named_parameters():
            if param.dim() < 2:  # kernels only; biases and BN affine parameters add little
                continue
            values = param.detach().float().cpu()
            for logger in loggers:
                logger.experiment.add_histogram(f"weights/{name}", values, global_step=trainer.current_epoch)
