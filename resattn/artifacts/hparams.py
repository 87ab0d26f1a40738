"""The run's main hyperparameters against its final metrics, for TensorBoard's HParams view."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import TensorBoardLogger

from resattn.artifacts.results import to_number

# Final metrics shown in the HParams view, logged as ``hp/<name>`` (the run's own ``test/acc`` etc. scalars stay
# as they are; the copies only carry the view's columns).
HPARAM_METRICS = ("val/acc_best", "val/acc", "test/acc", "test/loss", "epochs", "train_time_s")
HPARAM_PREFIX = "hp/"


def _target_name(node: Any) -> str:
    target = node.get("_target_") if isinstance(node, Mapping) else None
    return str(target).rsplit(".", 1)[-1] if target else "none"


def main_hparams(cfg: DictConfig) -> dict[str, Any]:
    """The keys that tell runs apart: recipe, model, data, length, precision and the evaluation switches."""
    c = OmegaConf.to_container(cfg, resolve=True)
    model, optimizer, data = c.get("model") or {}, c.get("optimizer") or {}, c.get("data") or {}
    scheduler = (c.get("scheduler") or {}).get("scheduler")
    regularization, trainer = c.get("regularization") or {}, c.get("trainer") or {}
    ema = (c.get("callbacks") or {}).get("ema") or {}
    params = {
        "task": c.get("task_name"),
        "scale": (c.get("scale") or {}).get("name", "full"),
        "seed": c.get("seed"),
        "model/width": model.get("width"),
        "model/attention": model.get("attention"),
        "model/trunk_depth": model.get("trunk_depth"),
        "model/mask_activation": model.get("mask_activation"),
        "optimizer": _target_name(optimizer),
        "optimizer/lr": optimizer.get("lr"),
        "optimizer/weight_decay": optimizer.get("weight_decay"),
        "scheduler": _target_name(scheduler),
        "augment": _target_name(c.get("augment")),
        "data/batch_size": data.get("batch_size"),
        "data/train_size": data.get("train_size"),
        "data/label_noise": data.get("label_noise"),
        "regularization/dropout": regularization.get("dropout"),
        "regularization/l2": regularization.get("l2"),
        "label_smoothing": c.get("label_smoothing"),
        "trainer/max_epochs": trainer.get("max_epochs"),
        "trainer/precision": str(trainer.get("precision")),
        "ema": bool(c.get("ema")),
        "ema/decay": ema.get("decay") if c.get("ema") else None,
        "tta": c.get("tta", "none"),
        "val_tta": c.get("val_tta"),
    }
    return {k: v for k, v in params.items() if v is not None}


def log_hparams(loggers: Iterable[Any], cfg: DictConfig, metrics: Mapping[str, Any], step: int) -> None:
    """Write :func:`main_hparams` with the final :data:`HPARAM_METRICS` to every TensorBoard logger."""
    final = {HPARAM_PREFIX + k: float(to_number(metrics[k])) for k in HPARAM_METRICS if to_number(metrics.get(k)) is not None}
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(main_hparams(cfg), metrics=final, step=step)
            logger.finalize("success")  # after the test's finalize: flush and close the new event file too
