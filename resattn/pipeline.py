"""What ``train.py`` and ``eval.py`` do, from a composed config to metrics, checkpoints and pictures."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Timer
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities import rank_zero_info
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from resattn.callbacks import AtomicCheckpointIO
from resattn.callbacks.signals import fit as fit_until_stopped
from resattn.checkpoints import best_checkpoint_of_run, check_compatible, load_checkpoint
from resattn.errors import ConfigError
from resattn.module import ResAttnModule
from resattn.plots import plot_confusion_matrix, plot_curves, plot_weight_histogram
from resattn.results import print_results, to_number, write_metrics
from resattn.resume import override_key, resume_checkpoint
from resattn.scale import describe as describe_scale
from resattn.summary import summarize
from resattn.validation import check_data, check_inputs, check_run

log = logging.getLogger("resattn")


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a callbacks/logger group; ``null`` entries are switched off."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if entry is not None and "_target_" in entry]


def build_datamodule(cfg: DictConfig) -> pl.LightningDataModule:
    augment = instantiate(cfg.augment) if cfg.get("augment") else None
    return instantiate(cfg.data, augment=augment)


def build_trainer(cfg: DictConfig, callbacks: list[Any], loggers: list[Any], **overrides: Any) -> pl.Trainer:
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()], **overrides)


def init_from_checkpoint(module: ResAttnModule, path: str | Path) -> None:
    """``ckpt_path=<file>``: start a *new* run from a checkpoint's weights and optimizer state."""
    ckpt = load_checkpoint(path, key="ckpt_path")
    check_compatible(_shapes(module), ckpt, key=f"ckpt_path={path}", model_cfg=module.cfg.get("model"))
    module.load_state_dict(ckpt["state_dict"])
    states = ckpt.get("optimizer_states") or []
    module.initial_optimizer_state = states[0] if states else None


def _shapes(module: ResAttnModule) -> dict[str, torch.Size]:
    return {k: v.shape for k, v in module.state_dict().items()}


def _relative(path: str, run_dir: Path) -> str:
    if not path:
        return ""
    try:
        return str(Path(path).resolve().relative_to(run_dir.resolve()))
    except ValueError:
        return str(path)


def _test_outputs(module: ResAttnModule, run_dir: Path, title: str) -> None:
    if module.test_confusion is not None:
        plot_confusion_matrix(module.test_confusion, module.class_names, run_dir / "confusion_matrix.png", title)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, test the best checkpoint, and write ``metrics.json``, plots and checkpoints into the run dir."""
    check_run(cfg, "train")  # done before Hydra started when run from the command line
    if rank_zero_only.rank == 0:
        log.info(describe_scale(cfg))
    run_dir = Path(cfg.paths.output_dir)
    check_inputs(cfg, "train")  # done by the preflight already when started from the command line
    resume_ckpt = resume_checkpoint(Path(cfg.resume)) if cfg.get("resume") else None
    pl.seed_everything(cfg.seed, workers=True)

    datamodule = build_datamodule(cfg)
    module = ResAttnModule(OmegaConf.to_container(cfg, resolve=True))
    if cfg.get("ckpt_path"):  # not together with resume (check_config)
        init_from_checkpoint(module, cfg.ckpt_path)
    rank_zero_info("\n" + summarize(module.net, (cfg.model.in_channels, cfg.model.input_size, cfg.model.input_size)))

    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    trainer = build_trainer(cfg, callbacks, loggers)
    try:
        fit_until_stopped(trainer, module, datamodule=datamodule, ckpt_path=str(resume_ckpt) if resume_ckpt else None)
    except RuntimeError:
        if resume_ckpt is not None:  # a load_state_dict size mismatch becomes a one-line CheckpointError
            check_compatible(
                _shapes(module),
                load_checkpoint(resume_ckpt, key="resume"),
                key=f"resume={cfg.resume}",
                model_cfg=module.cfg.get("model"),
                fix="a resumed run keeps its model; drop the model override",
            )
        raise

    metrics: dict[str, Any] = {
        "task": cfg.get("task_name"),
        "scale": (cfg.get("scale") or {}).get("name", "full"),
        "val/acc_best": float(module.val_acc_best),
        # a plain number: a device tensor in the returned metrics would keep GPU memory alive after the job
        "val/acc": to_number(trainer.callback_metrics.get("val/acc")),
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
    }
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    metrics["train_time_s"] = round(timer.time_elapsed("train"), 2) if timer else None
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    metrics["best_ckpt"] = _relative(best, run_dir)

    if cfg.get("test", True):
        tested = trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        metrics.update(tested[0] if tested else {})

    if trainer.is_global_zero:
        metrics["status"] = "ok"
        write_metrics(run_dir, metrics)
        csv_logger = next((lg for lg in trainer.loggers if isinstance(lg, CSVLogger)), None)
        if csv_logger is not None and Path(csv_logger.log_dir, "metrics.csv").is_file():
            plot_curves(Path(csv_logger.log_dir, "metrics.csv"), run_dir / "curves.png", title=run_dir.name)
        _test_outputs(module, run_dir, title=run_dir.name)
        plot_weight_histogram(module.net.classifier.weight, run_dir / "last_layer_hist.png")
        print_results({k: v for k, v in metrics.items() if not k.startswith("test/acc_")}, title=f"results: {run_dir}")
    return metrics


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Rebuild model and data protocol from a checkpoint and evaluate it on the test set."""
    check_run(cfg, "eval")
    run_dir = Path(cfg.paths.output_dir)
    # The stored protocol, plus only the data keys this command set explicitly (e.g. data.root elsewhere).
    command = HydraConfig.get().overrides.task
    data_overrides = OmegaConf.from_dotlist([o for o in command if override_key(o).startswith("data.")])
    module, stored, ckpt_file = module_from_checkpoint(cfg.ckpt_path, data_overrides.get("data"))
    check_data(stored)  # the stored protocol with this command's data overrides
    datamodule = build_datamodule(stored)
    # Evaluate in the precision the run trained with (bf16 logits differ from fp32), unless asked otherwise.
    precision = (
        {}
        if any(override_key(o) == "trainer.precision" for o in command)
        else {"precision": OmegaConf.select(stored, "trainer.precision", default=cfg.trainer.precision)}
    )
    trainer = build_trainer(cfg, callbacks=[], loggers=[], **precision)
    tested = trainer.test(module, datamodule=datamodule, verbose=False)
    metrics: dict[str, Any] = {"checkpoint": str(ckpt_file), **(tested[0] if tested else {})}
    if trainer.is_global_zero:
        metrics["status"] = "ok"
        write_metrics(run_dir, metrics)
        _test_outputs(module, run_dir, title=f"{ckpt_file.parent.parent.name}/{ckpt_file.name}")
        print_results(metrics, title=f"evaluation: {ckpt_file}")
    return metrics


def module_from_checkpoint(
    path: str | Path | None, data_overrides: Mapping[str, Any] | None = None
) -> tuple[ResAttnModule, DictConfig, Path]:
    """A checkpoint's (or a run dir's best) model with its weights, once they fit; the stored config with
    ``data_overrides`` (``data.*`` values) merged on; the checkpoint file."""
    ckpt_file = resolve_eval_checkpoint(path)
    ckpt = load_checkpoint(ckpt_file, key="ckpt_path")
    cfg = ckpt["hyper_parameters"]["cfg"]
    stored = OmegaConf.merge(OmegaConf.create(cfg), OmegaConf.create({"data": data_overrides or {}}))
    module = ResAttnModule(cfg)
    check_compatible(_shapes(module), ckpt, key=f"ckpt_path={ckpt_file}")
    module.load_state_dict(ckpt["state_dict"])
    return module, stored, ckpt_file


def resolve_eval_checkpoint(path: str | Path | None) -> Path:
    """A checkpoint file, or a run directory (meaning that run's best checkpoint from its metrics.json)."""
    if not path:
        raise ConfigError("ckpt_path is required: python eval.py ckpt_path=<checkpoint file or run dir>")
    p = Path(path).expanduser()
    return best_checkpoint_of_run(p) if p.is_dir() else p
