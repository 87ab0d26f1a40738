"""The run's objects from its config: the LightningModule (receiving its parts), data module, callbacks, trainer."""

from __future__ import annotations

import functools
from typing import Any, Mapping

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from resattn.callbacks import AtomicCheckpointIO
from resattn.callbacks.ranks import strategy_with_timeout
from resattn.models.network import build_model
from resattn.training.checkpoint_files import run_record
from resattn.training.module import LossSettings, ResAttnModule, SpeedSettings
from resattn.training.precision import choose_precision
from resattn.training.schedulers import lightning_scheduler
from resattn.training.speed import compile_options


def module_from_config(cfg: Mapping[str, Any], preprocessing: Mapping[str, Any] | None = None) -> ResAttnModule:
    """The :class:`ResAttnModule` of a run config (a composed config, or the plain dict a checkpoint stores),
    with the resolved config recorded in its hyperparameters: every checkpoint of it rebuilds the exact run.

    Keys a checkpoint of an older version may lack take the settings' defaults (:class:`LossSettings`,
    :class:`SpeedSettings`; ``tta=none``).
    """
    run: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)  # type: ignore[assignment]
    reg, defaults = run.get("regularization") or {}, LossSettings()
    scheduler = instantiate(run.get("scheduler") or {"scheduler": None})
    module = ResAttnModule(
        net=build_model(run),
        optimizer=instantiate(run["optimizer"]),
        scheduler=functools.partial(lightning_scheduler, scheduler) if scheduler.get("scheduler") is not None else None,
        loss=LossSettings(
            l2=float(reg.get("l2", defaults.l2)),
            l2_scope=reg.get("l2_scope", defaults.l2_scope),
            label_smoothing=float(run.get("label_smoothing", defaults.label_smoothing)),
        ),
        tta=run.get("tta", "none"),
        val_tta=run.get("val_tta"),
        speed=SpeedSettings(
            channels_last=run.get("channels_last", False),
            batch_size=int((run.get("data") or {}).get("batch_size") or 0),
            compile=compile_options(run) if run.get("compile") else None,
        ),
        preprocessing=dict(preprocessing) if preprocessing is not None else None,
    )
    module.save_hyperparameters(run_record(run, module.preprocessing))
    return module


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a callbacks/logger group; ``null`` entries are switched off."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if entry is not None and "_target_" in entry]


def build_datamodule(cfg: DictConfig, preprocessing: Mapping[str, Any] | None = None) -> pl.LightningDataModule:
    """The data module of ``cfg``; with a checkpoint's ``preprocessing`` it evaluates without the training set."""
    augment = instantiate(cfg.augment) if cfg.get("augment") else None
    extra = {"preprocessing": dict(preprocessing)} if preprocessing else {}
    return instantiate(cfg.data, augment=augment, **extra)


def build_callbacks(cfg: DictConfig) -> list[Any]:
    """The ``callbacks`` group; ``callbacks.ema`` only with ``ema=true``."""
    group = cfg.get("callbacks")
    if group and not cfg.get("ema"):
        group = {name: entry for name, entry in group.items() if name != "ema"}
    return instantiate_group(group)


def build_trainer(cfg: DictConfig, callbacks: list[Any], loggers: list[Any], **overrides: Any) -> pl.Trainer:
    """The ``trainer`` group as a Trainer: ``precision=auto`` resolved by :mod:`resattn.training.precision`;
    ``trainer.ddp_start_timeout`` (not a Trainer argument) goes to the strategy (``trainer.ddp_timeout`` to
    :class:`resattn.callbacks.RankWatch`)."""
    args = OmegaConf.to_container(cfg.trainer, resolve=True)
    start_timeout = args.pop("ddp_start_timeout", None)
    args.pop("ddp_timeout", None)
    args["precision"] = choose_precision(overrides.pop("precision", args["precision"]), args.get("accelerator", "auto")).value
    if isinstance(args.get("strategy"), str):
        overrides.setdefault("strategy", strategy_with_timeout(args["strategy"], start_timeout))
    return instantiate(args, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()], **overrides)
