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

from resattn.atomic import write_text
from resattn.callbacks import AtomicCheckpointIO, RunPlan
from resattn.callbacks.ranks import ranks_end_together, strategy_with_timeout
from resattn.callbacks.signals import fit as fit_until_stopped
from resattn.callbacks.signals import stop_signals
from resattn.checkpoints import (
    CLASSIFIER,
    best_checkpoint_of_run,
    check_compatible,
    load_checkpoint,
    load_checkpoint_or_weights,
    new_classifier,
)
from resattn.errors import ConfigError
from resattn.hparams import log_hparams
from resattn.module import ResAttnModule
from resattn.plots import plot_confusion_matrix, plot_curves, plot_weight_histogram
from resattn.precision import choose_precision, resolve_precision
from resattn.quiet import LOG_FILE_ONLY, silence_harmless_warnings
from resattn.results import print_results, to_number, write_metrics
from resattn.resume import override_key, resume_checkpoint
from resattn.scale import describe as describe_scale
from resattn.summary import stage_summary, summarize
from resattn.validation import check_data, check_inputs, check_run

log = logging.getLogger("resattn")


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
    """The ``trainer`` group as a Trainer: ``precision=auto`` resolved by :mod:`resattn.precision`;
    ``trainer.ddp_start_timeout`` (not a Trainer argument) goes to the strategy (``trainer.ddp_timeout`` to
    :class:`resattn.callbacks.RankWatch`)."""
    args = OmegaConf.to_container(cfg.trainer, resolve=True)
    start_timeout = args.pop("ddp_start_timeout", None)
    args.pop("ddp_timeout", None)
    args["precision"] = choose_precision(overrides.pop("precision", args["precision"]), args.get("accelerator", "auto")).value
    if isinstance(args.get("strategy"), str):
        overrides.setdefault("strategy", strategy_with_timeout(args["strategy"], start_timeout))
    return instantiate(args, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()], **overrides)


def init_from_checkpoint(module: ResAttnModule, path: str | Path) -> None:
    """``ckpt_path=<file or weights name>``: start a *new* run from a checkpoint's weights and optimizer state.

    A classifier of another shape (another ``model.num_classes`` or input size) is a fine-tune: every other network
    tensor is loaded, the classifier keeps its fresh initialisation, the optimizer starts afresh, and one line says so.
    """
    ckpt = load_checkpoint_or_weights(path, key="ckpt_path")
    shapes, key, model_cfg = _shapes(module), f"ckpt_path={path}", module.cfg.get("model")
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


def _shapes(module: ResAttnModule) -> dict[str, torch.Size]:
    return {k: v.shape for k, v in module.state_dict().items()}


def _relative(path: str, run_dir: Path) -> str:
    if not path:
        return ""
    try:
        return str(Path(path).resolve().relative_to(run_dir.resolve()))
    except ValueError:
        return str(path)


def log_model_summary(net: torch.nn.Module, cfg: DictConfig) -> None:
    """A few lines on the console (totals, one line per stage); the full layer table in the run's log file, and on
    the console too with ``model_summary=full``."""
    shape = (cfg.model.in_channels, cfg.model.input_size, cfg.model.input_size)
    full = cfg.get("model_summary") == "full"
    log_file = next((Path(h.baseFilename) for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)), None)
    where = "" if full or log_file is None else f"\n  layer table in {log_file.name} (model_summary=full prints it here)"
    log.info(stage_summary(net, shape) + where)
    log.info("\n" + summarize(net, shape), extra=None if full else LOG_FILE_ONLY)


def _label(cfg: DictConfig, run_dir: Path) -> str:
    """The run's name in its figures' titles: experiment and overrides (:func:`resattn.report.runs.run_label`)."""
    from resattn.report.runs import is_run_dir, run_label

    return run_label(run_dir) if is_run_dir(run_dir) else str(cfg.get("task_name") or run_dir.name)


def _test_outputs(module: ResAttnModule, run_dir: Path, title: str) -> list[Path]:
    if module.test_confusion is None:
        return []
    return [plot_confusion_matrix(module.test_confusion, module.class_names, run_dir / "confusion_matrix.png", title)]


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, test the best checkpoint, and write ``metrics.json``, plots and checkpoints into the run dir."""
    check_run(cfg, "train")  # done before Hydra started when run from the command line
    silence_harmless_warnings()
    precision = resolve_precision(cfg)  # before the module stores the config: checkpoints hold the chosen value
    run_dir = Path(cfg.paths.output_dir)
    if rank_zero_only.rank == 0:
        log.info(f"run: {run_dir}")
        log.info(describe_scale(cfg))
    check_inputs(cfg, "train")  # done by the preflight already when started from the command line
    resume_ckpt = resume_checkpoint(Path(cfg.resume)) if cfg.get("resume") else None
    pl.seed_everything(cfg.seed, workers=True)

    datamodule = build_datamodule(cfg)
    module = ResAttnModule(OmegaConf.to_container(cfg, resolve=True))
    if cfg.get("ckpt_path"):  # not together with resume (check_config)
        init_from_checkpoint(module, cfg.ckpt_path)
    if rank_zero_only.rank == 0:
        log_model_summary(module.net, cfg)

    callbacks = build_callbacks(cfg)
    for plan in (c for c in callbacks if isinstance(c, RunPlan)):
        plan.precision = precision.describe()
    loggers = instantiate_group(cfg.get("logger"))
    trainer = build_trainer(cfg, callbacks, loggers)
    with stop_signals(trainer), ranks_end_together(trainer):  # fit and test
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
        log_hparams(trainer.loggers, cfg, metrics, step=trainer.global_step)
        csv_logger = next((lg for lg in trainer.loggers if isinstance(lg, CSVLogger)), None)
        if csv_logger is not None and Path(csv_logger.log_dir, "metrics.csv").is_file():
            plot_curves(Path(csv_logger.log_dir, "metrics.csv"), run_dir / "curves.png", title=_label(cfg, run_dir))
        _test_outputs(module, run_dir, title=_label(cfg, run_dir))
        plot_weight_histogram(module.net.classifier.weight, run_dir / "last_layer_hist.png")
        print_results({k: v for k, v in metrics.items() if not k.startswith("test/acc_")}, title=f"results: {run_dir}")
    return metrics


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Rebuild model and data protocol from a checkpoint and evaluate it on the test set."""
    silence_harmless_warnings()
    check_run(cfg, "eval")
    run_dir = Path(cfg.paths.output_dir)
    # The stored protocol, plus only the data keys this command set explicitly (e.g. data.root elsewhere).
    command = HydraConfig.get().overrides.task
    data_overrides = OmegaConf.from_dotlist([o for o in command if override_key(o).startswith("data.")])
    module, stored, ckpt_file = module_from_checkpoint(cfg.ckpt_path, data_overrides.get("data"))
    check_data(stored)  # the stored protocol with this command's data overrides
    if module.preprocessing is None:
        log.info(OLD_CHECKPOINT_NOTE, ckpt_file)
    datamodule = build_datamodule(stored, module.preprocessing)
    given = {override_key(o) for o in command}
    # Evaluate in the precision and with the test-time augmentation the run used (bf16 logits differ from
    # fp32), unless this command sets them.
    if "tta" in given:
        module.tta = cfg.tta
    precision = (
        cfg.trainer.precision
        if "trainer.precision" in given
        else OmegaConf.select(stored, "trainer.precision", default=cfg.trainer.precision)
    )
    trainer = build_trainer(cfg, callbacks=[], loggers=[], precision=precision)
    tested = trainer.test(module, datamodule=datamodule, verbose=False)
    metrics: dict[str, Any] = {"checkpoint": str(ckpt_file), **(tested[0] if tested else {})}
    if trainer.is_global_zero:
        metrics["status"] = "ok"
        written = [write_metrics(run_dir, metrics)]
        if trainer.world_size == 1:  # under DDP each rank holds only its shard's predictions
            written += write_predictions(run_dir / "predictions.csv", module)
        written += _test_outputs(module, run_dir, title=f"{_label(stored, ckpt_file.parent.parent)}: {ckpt_file.name}")
        print_results({k: v for k, v in metrics.items() if k != "checkpoint"}, title=f"evaluation: {ckpt_file.absolute()}")
        print(f"wrote to {run_dir.absolute()}: {', '.join(p.name for p in written)}")
    return metrics


OLD_CHECKPOINT_NOTE = (
    "note: %s stores no preprocessing (written before checkpoints carried it): normalisation and class names are "
    "recomputed from the training data under data.root, as before"
)


def write_predictions(path: Path, module: ResAttnModule) -> list[Path]:
    """``predictions.csv`` of the last test: one row per test image (index, label, predicted class, probability);
    returns ``[path]``, or ``[]`` when the test kept no predictions."""
    if not module.test_predictions:
        return []
    rows = torch.cat([p.cpu() for p in module.test_predictions]).tolist()
    names = module.class_names
    lines = ["index,label,predicted,probability"]
    lines += [f"{i},{names[int(y)]},{names[int(p)]},{prob:.6f}" for i, (y, p, prob) in enumerate(rows)]
    write_text(path, "\n".join(lines) + "\n")
    return [path]


def load_any_checkpoint(path: str | Path | None) -> tuple[Path, dict[str, Any]]:
    """``(file, checkpoint dict)`` of a ``.ckpt`` file, a run directory (its best checkpoint) or a registered
    weights name (:mod:`resattn.weights`: downloaded once, checksum verified)."""
    from resattn import weights

    if weights.is_weights_name(path):
        return weights.as_checkpoint(str(path))
    ckpt_file = resolve_eval_checkpoint(path)
    return ckpt_file, load_checkpoint(ckpt_file, key="ckpt_path")


def module_from_checkpoint(
    path: str | Path | None, data_overrides: Mapping[str, Any] | None = None
) -> tuple[ResAttnModule, DictConfig, Path]:
    """A checkpoint's (a run dir's best, or a weights name's) model with its weights and stored preprocessing,
    once they fit; the stored config with ``data_overrides`` (``data.*`` values) merged on; the checkpoint file."""
    ckpt_file, ckpt = load_any_checkpoint(path)
    cfg = ckpt["hyper_parameters"]["cfg"]
    stored = OmegaConf.merge(OmegaConf.create(cfg), OmegaConf.create({"data": data_overrides or {}}))
    module = ResAttnModule(cfg, ckpt["hyper_parameters"].get("preprocessing"))
    prefix = "net." if ckpt.get("network_only") else ""  # a weights file holds the network alone
    check_compatible(_shapes(module), ckpt, key=f"ckpt_path={ckpt_file}", prefix=prefix)
    if prefix:
        module.net.load_state_dict({k.removeprefix(prefix): v for k, v in ckpt["state_dict"].items()})
    else:
        module.load_state_dict(ckpt["state_dict"])
    return module, stored, ckpt_file


def ensure_preprocessing(module: ResAttnModule, stored: DictConfig, ckpt_file: Path) -> None:
    """Give a checkpoint written before preprocessing was stored the one its data protocol gives (one note line;
    this reads the training set, as evaluating such a checkpoint always did)."""
    if module.preprocessing is not None:
        return
    log.warning(OLD_CHECKPOINT_NOTE, ckpt_file)
    check_data(stored)
    datamodule = build_datamodule(stored)
    datamodule.setup("fit")
    module.set_preprocessing(datamodule.describe_preprocessing())


def resolve_eval_checkpoint(path: str | Path | None) -> Path:
    """A checkpoint file, or a run directory (meaning that run's best checkpoint from its metrics.json)."""
    if not path:
        raise ConfigError("ckpt_path is required: python eval.py ckpt_path=<checkpoint file or run dir>")
    p = Path(path).expanduser()
    return best_checkpoint_of_run(p) if p.is_dir() else p
