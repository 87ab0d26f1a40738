"""Log the soft attention masks of fixed validation images to TensorBoard while training."""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger

from resattn.artifacts.attention_grids import render
from resattn.errors import ConfigError
from resattn.models.masks import mask_branches


class AttentionMaps(pl.Callback):
    """Every ``every_n_epochs`` validation epochs (0 = off), the grid of ``python -m resattn.attention_maps``
    for the first ``n`` validation images goes to TensorBoard as the image ``attention/maps``.

    Rank 0 only; the masks are read with forward hooks on an eager forward pass, in evaluation mode.
    """

    def __init__(self, every_n_epochs: int = 0, n: int = 8) -> None:
        self.every_n_epochs = int(every_n_epochs)
        self.n = int(n)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.every_n_epochs > 0 and not mask_branches(pl_module.net):
            raise ConfigError(
                f"callbacks.attention_maps.every_n_epochs={self.every_n_epochs} needs attention masks, "
                "but model.attention=none has none; set callbacks.attention_maps.every_n_epochs=0"
            )

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.every_n_epochs <= 0 or trainer.sanity_checking or not trainer.is_global_zero:
            return
        if (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        tensorboard = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        if tensorboard is None:
            return
        fig = render(
            pl_module,
            trainer.datamodule,
            "val",
            self.n,
            pl_module.class_names,
            title=f"epoch {trainer.current_epoch + 1}: soft attention masks of the first {self.n} validation images (true / predicted)",
        )
        tensorboard.experiment.add_figure("attention/maps", fig, global_step=trainer.global_step, close=True)
