"""Build objects from the composed config (one place, shared by train, eval, summary and benchmarks)."""

from __future__ import annotations

import functools
from typing import Any, Mapping

from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from resattn.checkpoints import run_record
from resattn.module import LossSettings, ResAttnModule, SpeedSettings
from resattn.schedulers import lightning_scheduler
from resattn.speed import compile_options


def build_model(cfg: Mapping[str, Any]) -> nn.Module:
    """Instantiate ``cfg["model"]`` of a composed config or of a checkpoint's plain dict (a composed config's
    head options interpolate from ``cfg.regularization``)."""
    return instantiate(cfg["model"], _convert_="all")


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
        speed=SpeedSettings(
            channels_last=run.get("channels_last", False),
            batch_size=int((run.get("data") or {}).get("batch_size") or 0),
            compile=compile_options(run) if run.get("compile") else None,
        ),
        preprocessing=dict(preprocessing) if preprocessing is not None else None,
    )
    module.save_hyperparameters(run_record(run, module.preprocessing))
    return module
