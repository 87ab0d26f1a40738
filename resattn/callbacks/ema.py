"""Exponential moving average of the weights: Lightning's ``EMAWeightAveraging``, fitted to this module."""

from __future__ import annotations

import itertools
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EMAWeightAveraging
from pytorch_lightning.trainer.states import TrainerFn

# Module buffers that are bookkeeping, not weights: they always hold the live module's value.
LIVE_BUFFERS = ("val_acc_best",)


def warmup_ema_avg_fn(decay: float) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """``AveragedModel`` update with TensorFlow's ``ExponentialMovingAverage(num_updates=n)`` warm-up: after ``n``
    updates the decay is ``min(decay, (1 + n) / (10 + n))``, so the random initial weights do not linger in the
    average (at a fixed 0.999 they would still weigh 0.999^n: 6 % after 2,800 steps)."""

    def avg_fn(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        n = num_averaged.to(torch.float64)  # a device tensor: no host sync
        rate = torch.clamp((1 + n) / (10 + n), max=decay).to(averaged.dtype) if averaged.is_floating_point() else decay
        return rate * averaged + (1 - rate) * current

    return avg_fn


class EMA(EMAWeightAveraging):
    """``ema=true``: after every optimizer step ``average = d * average + (1 - d) * weights``, ``d`` rising to ``decay``.

    Lightning's callback does the averaging (``torch.optim.swa_utils.AveragedModel`` with ``use_buffers=True``),
    swaps the averaged weights in for every validation (so ``val/acc``, the best checkpoint and early stopping
    judge the average), writes them as each checkpoint's ``state_dict`` (so the test after fitting and
    ``eval.py`` evaluate them) and keeps the live weights and the average's state in the checkpoint, so
    ``resume=`` continues both exactly.

    Batch norm: the running mean and variance are averaged like the weights (``use_buffers=True``, as timm's
    ``ModelEmaV3``), so the statistics evaluated with the averaged weights are the same moving average of the
    statistics the live network measured over the same steps; they are never those of the live network alone,
    which were measured with other weights.

    Changes to Lightning's behaviour, each needed here:

    * the average lives on the training device (Lightning creates it in ``setup``, before the module is moved,
      i.e. on the CPU: a device-to-host copy every step on a GPU);
    * testing after fitting (``trainer.test(ckpt_path=best)``) keeps the checkpoint's averaged weights
      (Lightning's ``on_load_checkpoint`` would load the live ones whenever an average exists);
    * :data:`LIVE_BUFFERS` (``val_acc_best``) are the live module's in checkpoints and after fitting, not
      their average;
    * until ``update_starting_at_step`` the average follows the live weights (Lightning would keep validating
      and checkpointing the initial weights until then).

    Args:
        decay: weight of the previous average at each update (0.999: a horizon of about 1000 updates).
        warmup: the decay after ``n`` updates is ``min(decay, (1 + n) / (10 + n))`` (:func:`warmup_ema_avg_fn`);
            false: ``decay`` from the first update (Lightning's ``get_ema_avg_fn``).
        update_every_n_steps: update after every n-th optimizer step.
        update_starting_at_step: first optimizer step (0-based) to average from; null = from the first.
    """

    def __init__(
        self, decay: float = 0.999, warmup: bool = True, update_every_n_steps: int = 1, update_starting_at_step: int | None = None
    ) -> None:
        super().__init__(
            use_buffers=True, decay=decay, update_every_n_steps=update_every_n_steps, update_starting_at_step=update_starting_at_step
        )
        if warmup:
            self._kwargs["avg_fn"] = warmup_ema_avg_fn(decay)  # passed on to AveragedModel in setup()
        self.decay, self.warmup = decay, warmup

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and self._device is None:
            self._device = trainer.strategy.root_device
        super().setup(trainer, pl_module, stage)  # its configure_model warning: resattn.cli.quiet.HARMLESS_WARNINGS

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any) -> None:
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        if self._latest_update_step == 0 and self._average_model is not None:  # no update yet: follow the live weights
            self._copy_current_to_average(pl_module)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        self._keep_live_buffers(pl_module)
        super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn == TrainerFn.FITTING:  # testing: the module already holds the averaged state_dict
            super().on_load_checkpoint(trainer, pl_module, checkpoint)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._keep_live_buffers(pl_module)
        super().on_train_end(trainer, pl_module)

    @torch.no_grad()
    def _keep_live_buffers(self, pl_module: pl.LightningModule) -> None:
        if self._average_model is None:
            return
        for name in LIVE_BUFFERS:
            if hasattr(pl_module, name):
                getattr(self._average_model.module, name).copy_(getattr(pl_module, name))

    @torch.no_grad()
    def _copy_current_to_average(self, pl_module: pl.LightningModule) -> None:
        assert self._average_model is not None
        average = itertools.chain(self._average_model.module.parameters(), self._average_model.module.buffers())
        for avg, live in zip(average, itertools.chain(pl_module.parameters(), pl_module.buffers())):
            avg.copy_(live)
