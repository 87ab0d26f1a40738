"""The files a run needs exist: the data folder, ``ckpt_path`` and the ``resume`` run."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig

from resattn import weights
from resattn.cifar import ENV_DATA_DIR, NPZ_NAME, TORCHVISION_DIR
from resattn.errors import CheckpointError, ConfigError, DataError
from resattn.validation.values import ABSENT, select


def check_data_root(cfg: DictConfig) -> None:
    """The data folder holds what ``data.source`` needs (as ``resolve_source`` decides it at load time)."""
    source, download, root_value = (select(cfg, f"data.{k}") for k in ("source", "download", "root"))
    if source in (ABSENT, "synthetic") or download is ABSENT or root_value is ABSENT:
        return  # no data config, generated data, or a value known only inside the Hydra app
    root = Path(root_value) if root_value not in (None, "") else Path(os.environ.get(ENV_DATA_DIR) or "data")
    fix = (
        f"put {NPZ_NAME} there (or torchvision's {TORCHVISION_DIR}/; data.download=true when online), or point "
        f"data.root / ${ENV_DATA_DIR} at the folder that holds it"
    )
    if not download and not root.is_dir():
        raise DataError(f"data.root={root}: no such directory; {fix}")
    has_npz, has_tv = (root / NPZ_NAME).is_file(), (root / TORCHVISION_DIR).is_dir()
    if source == "npz" and not has_npz:
        raise DataError(f"data.root={root}: {NPZ_NAME} not found (data.source=npz); {fix}")
    if source == "torchvision" and not (has_tv or download):
        raise DataError(
            f"data.root={root}: {TORCHVISION_DIR}/ not found (data.source=torchvision); set "
            f"data.download=true (needs internet) or use {NPZ_NAME} with data.source=npz"
        )
    if source == "auto" and not (has_npz or has_tv or download):
        raise DataError(f"data.root={root}: no CIFAR-10 data found (neither {NPZ_NAME} nor {TORCHVISION_DIR}/); {fix}")


def _given(value: object) -> bool:
    return value not in (None, ABSENT, "")


def check_paths(cfg: DictConfig, task: str) -> None:
    """``ckpt_path`` (required by eval) and ``resume`` point at what they must; not both."""
    ckpt = select(cfg, "ckpt_path")
    resume = select(cfg, "resume") if task == "train" else None
    if task == "eval" and not _given(ckpt):
        raise ConfigError("ckpt_path=null: a checkpoint is required; pass ckpt_path=<checkpoint file or run dir>")
    if _given(ckpt):
        path = Path(ckpt).expanduser()
        if task == "eval" and not path.exists() and weights.is_registered(str(ckpt)):
            return  # a registered weights name (resattn.weights)
        if not path.exists():
            allowed = "a .ckpt file, a train.py run directory or a registered weights name" if task == "eval" else "a .ckpt file"
            raise CheckpointError(f"ckpt_path={ckpt}: no such file or directory; expected {allowed}")
        if task == "train" and not path.is_file():
            raise CheckpointError(f"ckpt_path={ckpt}: not a file; expected a .ckpt file (to continue a run directory use resume=<run dir>)")
    if _given(resume):
        if _given(ckpt):
            raise ConfigError(
                f"resume={resume} ckpt_path={ckpt}: both given; use resume=<run dir> to continue a "
                "run, or ckpt_path=<file> to start a new run from a checkpoint"
            )
        from resattn.resume import resume_checkpoint

        resume_checkpoint(Path(str(resume)).expanduser())
