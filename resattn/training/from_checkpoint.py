"""A trained model from a checkpoint file, a run directory or a weights name, with its stored run config and preprocessing."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from resattn.errors import ConfigError
from resattn.training.build import build_datamodule, module_from_config
from resattn.training.checkpoint_files import (
    best_checkpoint_of_run,
    check_compatible,
    load_checkpoint,
    preprocessing_of,
    run_config_of,
    state_shapes,
)
from resattn.training.module import ResAttnModule
from resattn.validation import check_data

log = logging.getLogger("resattn")

OLD_CHECKPOINT_NOTE = (
    "note: %s stores no preprocessing (written before checkpoints carried it): normalisation and class names are "
    "recomputed from the training data under data.root, as before"
)


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
    cfg = run_config_of(ckpt)
    stored = OmegaConf.merge(OmegaConf.create(cfg), OmegaConf.create({"data": data_overrides or {}}))
    module = module_from_config(cfg, preprocessing_of(ckpt))
    prefix = "net." if ckpt.get("network_only") else ""  # a weights file holds the network alone
    check_compatible(state_shapes(module), ckpt, key=f"ckpt_path={ckpt_file}", prefix=prefix)
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
