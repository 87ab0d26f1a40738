"""LightningModule: the training/evaluation step around a Residual Attention Network."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import Optimizer
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from resattn.cifar import CLASS_NAMES
from resattn.training import running_metrics
from resattn.training.speed import channels_last_enabled
from resattn.training.tta import tta_logits

log = logging.getLogger("resattn")

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
# (optimizer, the run's optimizer steps when needed) -> Lightning's ``lr_scheduler`` dict, or None (constant lr)
SchedulerFactory = Callable[[Optimizer, Callable[[], int]], "dict[str, Any] | None"]


def class_names(num_classes: int) -> list[str]:
    return list(CLASS_NAMES) if num_classes == len(CLASS_NAMES) else [f"class_{i}" for i in range(num_classes)]


@dataclass(frozen=True)
class LossSettings:
    """The training loss: cross-entropy with ``label_smoothing`` plus Keras-semantics L2 ``l2 * sum(W**2)`` on
    the classifier's kernel (``l2_scope="head"``) or on every conv/linear kernel (``"all"``)."""

    l2: float = 0.0
    l2_scope: str = "head"
    label_smoothing: float = 0.0


@dataclass(frozen=True)
class SpeedSettings:
    """How the network runs: memory format (``channels_last``: true, false or ``"auto"``, decided against the
    device and the training ``batch_size``) and ``compile`` (``torch.compile`` arguments; None: eager)."""

    channels_last: bool | str = False
    batch_size: int = 0
    compile: Mapping[str, Any] | None = None


class ResAttnModule(pl.LightningModule):
    """Cross-entropy classifier with Keras-semantics L2, torchmetrics accuracy and test-time diagnostics.

    The module receives its parts; :func:`resattn.training.build.module_from_config` builds them from a run's config
    and records that config in the module's hyperparameters (so in every checkpoint:
    :func:`resattn.training.checkpoint_files.run_config_of`).

    Args:
        net: the network; its ``classifier`` (a linear layer) gives the number of classes.
        optimizer: ``params -> Optimizer`` (e.g. ``instantiate(cfg.optimizer)``, a partial).
        scheduler: ``(optimizer, total_steps) -> lr_scheduler dict or None``; None: constant learning rate.
        loss: the training loss (:class:`LossSettings`).
        tta: test-time augmentation of test, prediction and (unless ``val_tta`` is set) validation
            (:mod:`resattn.training.tta`).
        val_tta: validation's test-time augmentation while fitting, when it differs from ``tta`` (e.g. a cheaper
            one: validation runs every epoch, the test once); None: ``tta``.
        speed: memory format and compile (:class:`SpeedSettings`).
        preprocessing: what using the model needs besides its weights (training normalisation mean/std, class
            names, input size, data protocol; :meth:`CIFAR10DataModule.describe_preprocessing`). Taken from the
            data module when fitting starts and stored in every checkpoint's hyperparameters.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        loss: LossSettings = LossSettings(),
        tta: str = "none",
        val_tta: str | None = None,
        speed: SpeedSettings = SpeedSettings(),
        preprocessing: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.loss_settings = loss
        self.speed = speed
        self.tta = tta
        self.val_tta = val_tta
        # Resolved against the training device in configure_model (``auto``); plain contiguous until then.
        self.channels_last = speed.channels_last is True
        self.num_classes = int(net.classifier.out_features)
        self.class_names = class_names(self.num_classes)
        self.preprocessing: dict[str, Any] | None = None
        self._normalizers: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        if preprocessing is not None:
            self.set_preprocessing(preprocessing)
        self.compiled = False  # torch.compile applied to ``self.net`` in place (configure_model)

        n = self.num_classes
        # Per-step updates of the training/validation metrics never wait for the device: no NaN scan of the
        # loss (``nan_strategy="warn"`` reads ``isnan(x).any()`` every step and then *drops* NaN losses, which
        # would hide a divergence from the epoch mean; with "disable" a NaN step makes the mean NaN) and no
        # value check of the targets (``validate_args`` runs ``torch.unique`` every step; the data module
        # validates the labels once at load time).  Each of those was a host sync per step on a GPU.
        self.train_loss = MeanMetric(nan_strategy="disable")
        self.val_loss = MeanMetric(nan_strategy="disable")
        self.test_loss = MeanMetric()
        self.train_acc = MulticlassAccuracy(n, average="micro", validate_args=False)
        self.val_acc = MulticlassAccuracy(n, average="micro", validate_args=False)
        self.test_acc = MulticlassAccuracy(n, average="micro")
        self.test_class_acc = MulticlassAccuracy(n, average=None)
        self.test_confmat = MulticlassConfusionMatrix(n)
        # Best validation accuracy so far: a buffer, so it is checkpointed and resumes exactly.
        self.register_buffer("val_acc_best", torch.tensor(0.0))
        self.test_confusion: torch.Tensor | None = None
        self.test_images = 0  # images this process evaluated in the last test (its shard under DDP)
        self.test_predictions: list[torch.Tensor] = []  # per test batch: label, predicted class, its probability
        # Optimizer state to start from (ckpt_path=<file>: a new run from another run's checkpoint).
        self.initial_optimizer_state: dict[str, Any] | None = None
        self.resumed_train_metrics: dict[str, Any] | None = None  # from the resumed checkpoint (running_metrics)
        self.epoch_start_lr: float | None = None  # the learning rate the epoch in progress started with

    # ----------------------------------------------------------------------------------- preprocessing
    def set_preprocessing(self, preprocessing: dict[str, Any]) -> None:
        """Adopt ``preprocessing`` (stored in this module's hyperparameters, hence in every checkpoint)."""
        self.preprocessing = dict(preprocessing)
        self.hparams["preprocessing"] = self.preprocessing
        self.class_names = list(self.preprocessing.get("class_names") or self.class_names)
        self._normalizers = {}

    def setup(self, stage: str) -> None:
        """Fitting takes the data module's preprocessing; evaluation keeps the checkpoint's (derives it when absent)."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        describe = getattr(datamodule, "describe_preprocessing", None)
        if describe is not None and (stage == "fit" or self.preprocessing is None):
            self.set_preprocessing(describe())

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Raw images (uint8 or float on the 0-255 scale, ``N×C×H×W``) → the network's input, with the stored
        training statistics: ``(x / 255 - mean) / std``, computed exactly as the data module does."""
        if self.preprocessing is None:
            raise RuntimeError(
                "this module has no preprocessing yet: fit it, or load it with resattn.training.from_checkpoint.module_from_checkpoint"
            )
        key = str(x.device)
        if key not in self._normalizers:
            from resattn.data.splits import pool_affine

            scale, shift = pool_affine(self.preprocessing["mean"], self.preprocessing["std"])
            as_tensor = lambda a: torch.tensor(a, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)  # noqa: E731
            self._normalizers[key] = (as_tensor(scale), as_tensor(shift))
        scale, shift = self._normalizers[key]
        return torch.addcmul(shift, x.to(torch.float32), scale)

    # ----------------------------------------------------------------------------------- model
    def configure_model(self) -> None:
        speed = self.speed
        self.channels_last = channels_last_enabled(speed.channels_last, self.device_type(), speed.batch_size)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if speed.compile is not None and not self.compiled:
            # nn.Module.compile compiles the network's call in place: no wrapper module, so state_dict keys
            # (and checkpoints) are the same with and without compile.
            self.net.compile(**speed.compile)
            self.compiled = True

    def device_type(self) -> str:
        """Type of the device this module trains or evaluates on (its trainer's, else its parameters')."""
        trainer = self._trainer
        return trainer.strategy.root_device.type if trainer is not None else self.device.type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def l2_penalty(self) -> torch.Tensor | float:
        """Keras ``kernel_regularizer=l2(c)``: ``c * sum(W**2)`` (no factor 1/2) on the chosen kernels."""
        l2, scope = self.loss_settings.l2, self.loss_settings.l2_scope
        if l2 == 0.0:
            return 0.0
        if scope == "head":
            kernels = [self.net.classifier.weight]
        else:
            kernels = [m.weight for m in self.net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        return l2 * sum(w.pow(2).sum() for w in kernels)

    # ----------------------------------------------------------------------------------- steps
    def _step(self, batch: Any, label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits, targets and cross-entropy (label smoothing only where asked: the training loss)."""
        x, y = batch[0], batch[1]
        logits = self(x)
        return logits, y, F.cross_entropy(logits, y, label_smoothing=label_smoothing)

    def _eval_step(self, batch: Any, tta: str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits under test-time augmentation ``tta`` (default ``self.tta``; ``none``: one plain forward), targets,
        cross-entropy."""
        x, y = batch[0], batch[1]
        logits = tta_logits(self, x, tta or self.tta)
        return logits, y, F.cross_entropy(logits, y)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        logits, y, ce = self._step(batch, self.loss_settings.label_smoothing)
        loss = ce + self.l2_penalty()
        # Written every trainer.log_every_n_steps steps (the only host sync it adds); train/loss stays the epoch mean.
        self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False)
        self.train_loss.update(loss.detach(), weight=y.numel())
        self.train_acc.update(logits.detach(), y)
        return loss

    def on_train_start(self) -> None:
        saved, self.resumed_train_metrics = self.resumed_train_metrics, None
        if saved is not None and saved["epoch"] == self.current_epoch:  # resumed mid-epoch: its means go on
            self.epoch_start_lr = saved["lr"]
            if self.epoch_start_lr is not None:
                self.log("lr", self.epoch_start_lr, on_step=False, on_epoch=True, sync_dist=False)
            running_metrics.restore(self._train_metrics(), saved, self.trainer.world_size)
        if self.initial_optimizer_state is None:
            return
        optimizer = self.trainer.optimizers[0]
        configured = [group["lr"] for group in optimizer.param_groups]
        optimizer.load_state_dict(self.initial_optimizer_state)
        for group, lr in zip(optimizer.param_groups, configured):  # this run's schedule owns the lr
            group["lr"] = lr
        self.initial_optimizer_state = None

    def on_train_epoch_start(self) -> None:  # not called when Lightning resumes mid-epoch: on_train_start
        self.epoch_start_lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        self.log("lr", self.epoch_start_lr, on_step=False, on_epoch=True, sync_dist=False)

    def on_train_epoch_end(self) -> None:
        self.log("train/loss", self.train_loss.compute(), prog_bar=True)
        self.log("train/acc", self.train_acc.compute(), prog_bar=True)
        self.train_loss.reset()
        self.train_acc.reset()

    def _train_metrics(self) -> dict[str, Any]:
        return {"train_loss": self.train_loss, "train_acc": self.train_acc}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[running_metrics.CHECKPOINT_KEY] = running_metrics.snapshot(
            self._train_metrics(), self.current_epoch, self.trainer.world_size, self.epoch_start_lr
        )

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.resumed_train_metrics = checkpoint.get(running_metrics.CHECKPOINT_KEY)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        logits, y, ce = self._eval_step(batch, self.val_tta)
        self.val_loss.update(ce, weight=y.numel())
        self.val_acc.update(logits, y)

    def on_validation_epoch_end(self) -> None:
        acc, loss = self.val_acc.compute(), self.val_loss.compute()
        self.val_acc.reset()
        self.val_loss.reset()
        if self.trainer.sanity_checking:
            return
        self.val_acc_best = torch.maximum(self.val_acc_best, acc.to(self.val_acc_best.device))
        self.log("val/loss", loss, prog_bar=False)
        self.log("val/acc", acc, prog_bar=True)
        self.log("val/acc_best", self.val_acc_best, prog_bar=True)

    def on_test_epoch_start(self) -> None:
        self.test_images = 0
        self.test_predictions = []

    def test_step(self, batch: Any, batch_idx: int) -> None:
        logits, y, ce = self._eval_step(batch)
        self.test_images += y.numel()
        probability, predicted = logits.detach().float().softmax(1).max(1)
        self.test_predictions.append(torch.stack([y.float(), predicted.float(), probability], 1))
        self.test_loss.update(ce, weight=y.numel())
        for metric in (self.test_acc, self.test_class_acc, self.test_confmat):
            metric.update(logits, y)

    def on_test_epoch_end(self) -> None:
        self.log("test/loss", self.test_loss.compute())
        self.log("test/acc", self.test_acc.compute())
        for name, acc in zip(self.class_names, self.test_class_acc.compute()):
            self.log(f"test/acc_{name}", acc)
        self.test_confusion = self.test_confmat.compute().cpu()
        if self.trainer.world_size > 1:  # metrics above are synced over ranks; each rank evaluated its shard
            log.info(
                "test: rank %d of %d evaluated %d of %d images",
                self.global_rank,
                self.trainer.world_size,
                self.test_images,
                int(self.test_confusion.sum()),
            )
        for metric in (self.test_loss, self.test_acc, self.test_class_acc, self.test_confmat):
            metric.reset()

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Class probabilities ``N×num_classes`` under the test-time augmentation ``tta``. ``batch`` is the data module's
        prepared ``(x, y)`` (already normalised), or raw uint8 images (a tensor or ``(images, ...)``) normalised here."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if x.dtype == torch.uint8:
            x = self.normalize(x)
        return tta_logits(self, x, self.tta).float().softmax(1)

    # ----------------------------------------------------------------------------------- optim
    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.net.parameters())
        scheduler = None
        if self.scheduler_factory is not None:
            scheduler = self.scheduler_factory(optimizer, lambda: self.trainer.estimated_stepping_batches)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
