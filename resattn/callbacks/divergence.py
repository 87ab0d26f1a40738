"""Stop a run whose loss or weights became NaN/inf, before a diverged state is saved over a good one."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from resattn.errors import EXIT_DIVERGED, ResattnError


class TrainingDiverged(ResattnError):
    """Loss or weights are no longer finite; the last good checkpoint is kept. Exit status 3."""

    exit_code = EXIT_DIVERGED


def _last_good_checkpoint(trainer: pl.Trainer) -> str:
    ckpt_cb = trainer.checkpoint_callback
    for attr in ("last_model_path", "best_model_path"):
        path = getattr(ckpt_cb, attr, "") if ckpt_cb is not None else ""
        if path and Path(path).is_file():
            return str(path)
    return "none (no checkpoint was saved before the divergence)"


class DivergenceGuard(pl.Callback):
    """Checks the epoch's mean train loss, the validation loss and the weights for NaN/inf.

    Checks run at validation end and train-epoch end -- before ``ModelCheckpoint`` (which Lightning always
    runs last) saves -- and whenever any checkpoint is about to be written, so ``last.ckpt`` keeps the last
    good state. Each check is one host sync; ``every_n_steps > 0`` adds a weights check every N steps
    (for runs that save mid-epoch or need to stop earlier). The module's per-step path is untouched.
    """

    def __init__(self, every_n_steps: int = 0) -> None:
        self.every_n_steps = int(every_n_steps)
        self._passed: tuple[int, int, bool] | None = None  # (epoch, step, with val loss) of the last passed check

    # --------------------------------------------------------------------------------------- checks
    @staticmethod
    def _named_tensors(pl_module: pl.LightningModule) -> list[tuple[str, torch.Tensor]]:
        named = list(pl_module.named_parameters()) + list(pl_module.named_buffers())
        return [(n, t.detach()) for n, t in named if t.is_floating_point() and t.numel()]

    def check(self, trainer: pl.Trainer, pl_module: pl.LightningModule, val_loss: bool = False) -> None:
        """Raise :class:`TrainingDiverged` if the epoch's train loss, val loss or any weight is not finite."""
        here = (trainer.current_epoch, trainer.global_step)
        if self._passed is not None and self._passed[:2] == here and (self._passed[2] or not val_loss):
            return  # nothing changed since the last check
        values: dict[str, torch.Tensor] = {}
        train_loss = getattr(pl_module, "train_loss", None)
        if train_loss is not None and getattr(train_loss, "update_count", 0) > 0:
            values["train/loss"] = train_loss.compute().detach().float().reshape(())
        if val_loss and "val/loss" in trainer.callback_metrics:
            values["val/loss"] = trainer.callback_metrics["val/loss"].detach().float().reshape(())
        tensors = self._named_tensors(pl_module)
        device = tensors[0][1].device if tensors else torch.device("cpu")
        flags = [torch.isfinite(t).all() for _, t in tensors]
        weights_ok = torch.stack(flags).all() if flags else torch.tensor(True, device=device)
        losses = [v.to(device) for v in values.values()]
        summary = torch.stack([weights_ok.float(), *losses]).tolist()  # the one host sync
        bad = {k: v for k, v in zip(values, summary[1:]) if not math.isfinite(v)}
        if summary[0] == 1.0 and not bad:
            self._passed = (*here, val_loss)
            return
        if summary[0] != 1.0:
            first = next(n for (n, _), ok in zip(tensors, flags) if not bool(ok))
            bad["weights"] = f"non-finite in {first}"
        self.fail(trainer, bad)

    def fail(self, trainer: pl.Trainer, bad: dict[str, Any]) -> None:
        found = ", ".join(f"{k}={v}" for k, v in bad.items())
        raise TrainingDiverged(
            f"training diverged at epoch {trainer.current_epoch} ({found}); last good checkpoint: "
            f"{_last_good_checkpoint(trainer)}; lower optimizer.lr or set trainer.gradient_clip_val "
            "(e.g. 1.0), then continue from that checkpoint (resume=<run dir>, or ckpt_path=<file> for a new run)"
        )

    # ---------------------------------------------------------------------------------------- hooks
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self.check(trainer, pl_module, val_loss=True)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check(trainer, pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.every_n_steps > 0 and trainer.global_step % self.every_n_steps == 0:
            self.check(trainer, pl_module)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn == "fit":
            self.check(trainer, pl_module)
