"""``eval.py``: a checkpoint's model and data protocol rebuilt and evaluated on the test set."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from resattn.artifacts.atomic import write_text
from resattn.artifacts.results import print_results, write_metrics
from resattn.artifacts.run_plots import plot_confusion_matrix
from resattn.cli.quiet import silence_harmless_warnings
from resattn.cli.resume import override_key
from resattn.training.build import build_datamodule, build_trainer
from resattn.training.from_checkpoint import OLD_CHECKPOINT_NOTE, module_from_checkpoint
from resattn.training.module import ResAttnModule
from resattn.validation import check_data, check_run

log = logging.getLogger("resattn")


def run_title(cfg: Any, run_dir: Path) -> str:
    """The run's name in its figures' titles: experiment and overrides (:func:`resattn.report.runs.run_label`)."""
    from resattn.report.runs import is_run_dir, run_label

    return run_label(run_dir) if is_run_dir(run_dir) else str(cfg.get("task_name") or run_dir.name)


def plot_test_confusion(module: ResAttnModule, run_dir: Path, title: str) -> list[Path]:
    """``confusion_matrix.png`` of the module's last test (``[path]``), or ``[]`` when it ran none."""
    if module.test_confusion is None:
        return []
    return [plot_confusion_matrix(module.test_confusion, module.class_names, run_dir / "confusion_matrix.png", title)]


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
        written += plot_test_confusion(module, run_dir, title=f"{run_title(stored, ckpt_file.parent.parent)}: {ckpt_file.name}")
        print_results({k: v for k, v in metrics.items() if k != "checkpoint"}, title=f"evaluation: {ckpt_file.absolute()}")
        print(f"wrote to {run_dir.absolute()}: {', '.join(p.name for p in written)}")
    return metrics


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
