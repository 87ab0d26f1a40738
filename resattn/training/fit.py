"""The training loop of ``train.py``: fit, test the best checkpoint, write metrics, checkpoints and pictures."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Timer
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities import rank_zero_info
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from resattn.artifacts.hparams import log_hparams
from resattn.artifacts.machine import device_line
from resattn.artifacts.results import print_results, to_number, write_metrics
from resattn.artifacts.run_plots import plot_curves, plot_weight_histogram
from resattn.callbacks import RunPlan
from resattn.callbacks.ranks import ranks_end_together
from resattn.callbacks.signals import fit as fit_until_stopped
from resattn.callbacks.signals import stop_signals
from resattn.cli.quiet import silence_harmless_warnings
from resattn.cli.resume import resume_checkpoint
from resattn.cli.sweep_callbacks import record_decided
from resattn.config.scale import describe as describe_scale
from resattn.model_summary import log_model_summary
from resattn.training.build import build_callbacks, build_datamodule, build_trainer, instantiate_group, module_from_config
from resattn.training.checkpoint_files import (
    CLASSIFIER,
    check_compatible,
    load_checkpoint,
    new_classifier,
    run_config_of,
    state_shapes,
)
from resattn.training.evaluate import plot_test_confusion, run_title
from resattn.training.module import ResAttnModule
from resattn.training.precision import resolve_precision
from resattn.validation import check_inputs, check_run
from resattn.weights import load_checkpoint_or_weights

log = logging.getLogger("resattn")


def init_from_checkpoint(module: ResAttnModule, path: str | Path, model_cfg: Mapping[str, Any] | None = None) -> None:
    """``ckpt_path=<file or weights name>``: start a *new* run from a checkpoint's weights and optimizer state.

    A classifier of another shape (another ``model.num_classes`` or input size) is a fine-tune: every other network
    tensor is loaded, the classifier keeps its fresh initialisation, the optimizer starts afresh, and one line says so.
    """
    ckpt = load_checkpoint_or_weights(path, key="ckpt_path")
    shapes, key = state_shapes(module), f"ckpt_path={path}"
    finetune = new_classifier(shapes, ckpt)
    if not finetune and not ckpt.get("network_only"):
        check_compatible(shapes, ckpt, key=key, model_cfg=model_cfg)
        module.load_state_dict(ckpt["state_dict"])
        states = ckpt.get("optimizer_states") or []
        module.initial_optimizer_state = states[0] if states else None
        return
    check_compatible(shapes, ckpt, key=key, model_cfg=model_cfg, prefix="net.", exclude=CLASSIFIER if finetune else None)
    state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    if finetune:
        state = {k: v for k, v in state.items() if not f"net.{k}".startswith(CLASSIFIER)}
        before, now = ckpt["state_dict"][f"{CLASSIFIER}weight"].shape, shapes[f"{CLASSIFIER}weight"]
        rank_zero_info(
            f"fine-tune: {len(state)} of {len(module.net.state_dict())} network tensors loaded from {path}; classifier "
            f"re-initialised ({before[0]} classes x {before[1]} features in the checkpoint, now {now[0]} x {now[1]}); "
            "optimizer state not loaded"
        )
    module.net.load_state_dict(state, strict=not finetune)


def _relative(path: str, run_dir: Path) -> str:
    if not path:
        return ""
    try:
        return str(Path(path).resolve().relative_to(run_dir.resolve()))
    except ValueError:
        return str(path)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, test the best checkpoint, and write ``metrics.json``, plots and checkpoints into the run dir."""
    started = time.monotonic()
    check_run(cfg, "train")  # done before Hydra started when run from the command line
    silence_harmless_warnings()
    run_dir = Path(cfg.paths.output_dir)
    if rank_zero_only.rank == 0:
        log.info(f"run: {run_dir}")
        log.info(describe_scale(cfg))
    check_inputs(cfg, "train")  # done by the preflight already when started from the command line
    resume_ckpt = resume_checkpoint(Path(cfg.resume)) if cfg.get("resume") else None
    resumed = run_config_of(load_checkpoint(resume_ckpt, key="resume"))["trainer"]["precision"] if resume_ckpt else None
    # before the module stores the config: checkpoints, .hydra/config.yaml and metrics.json hold the chosen value
    precision = resolve_precision(cfg, resumed)
    if rank_zero_only.rank == 0:
        record_decided(run_dir, "trainer.precision", precision.value)
        if resume_ckpt is not None:
            log.info(f"resume: from {_relative(str(resume_ckpt), run_dir)}; {precision.describe()}")
    pl.seed_everything(cfg.seed, workers=True)

    datamodule = build_datamodule(cfg)
    module = module_from_config(cfg)
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    if cfg.get("ckpt_path"):  # not together with resume (check_config)
        init_from_checkpoint(module, cfg.ckpt_path, model_cfg)
    if rank_zero_only.rank == 0:
        log_model_summary(module.net, cfg.model, full=cfg.get("model_summary") == "full")

    callbacks = build_callbacks(cfg)
    for plan in (c for c in callbacks if isinstance(c, RunPlan)):
        plan.precision = precision.describe()
    loggers = instantiate_group(cfg.get("logger"))
    trainer = build_trainer(cfg, callbacks, loggers)
    with stop_signals(trainer), ranks_end_together(trainer):  # fit and test
        fit_started = time.monotonic()
        try:
            fit_until_stopped(trainer, module, datamodule=datamodule, ckpt_path=str(resume_ckpt) if resume_ckpt else None)
        except RuntimeError:
            if resume_ckpt is not None:  # a load_state_dict size mismatch becomes a one-line CheckpointError
                check_compatible(
                    state_shapes(module),
                    load_checkpoint(resume_ckpt, key="resume"),
                    key=f"resume={cfg.resume}",
                    model_cfg=model_cfg,
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
            "precision": precision.value,
            "device": device_line(str(cfg.trainer.get("accelerator", "auto"))),
        }
        fit_s = time.monotonic() - fit_started  # this process's share of the fit (a resumed run's Timer holds all of it)
        timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
        metrics["train_time_s"] = round(timer.time_elapsed("train"), 2) if timer else None
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        metrics["best_ckpt"] = _relative(best, run_dir)

        if cfg.get("test", True):
            tested = trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)
            metrics.update(tested[0] if tested else {})

    if trainer.is_global_zero:
        # from the start of the run to its test result: the fit (over every resumed process) plus set-up and test
        metrics["wall_time_s"] = round((metrics["train_time_s"] or fit_s) + time.monotonic() - started - fit_s, 2)
        metrics["status"] = "ok"
        write_metrics(run_dir, metrics)
        log_hparams(trainer.loggers, cfg, metrics, step=trainer.global_step)
        csv_logger = next((lg for lg in trainer.loggers if isinstance(lg, CSVLogger)), None)
        if csv_logger is not None and Path(csv_logger.log_dir, "metrics.csv").is_file():
            plot_curves(Path(csv_logger.log_dir, "metrics.csv"), run_dir / "curves.png", title=run_title(cfg, run_dir))
        plot_test_confusion(module, run_dir, title=run_title(cfg, run_dir))
        plot_weight_histogram(module.net.classifier.weight, run_dir / "last_layer_hist.png")
        print_results({k: v for k, v in metrics.items() if not k.startswith("test/acc_")}, title=f"results: {run_dir}")
    return metrics
