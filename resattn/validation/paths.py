"""The files a run needs exist: the data folder, ``ckpt_path`` and the ``resume`` run."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig

from resattn.cifar import ENV_DATA_DIR, NPZ_NAME, TORCHVISION_DIR
from resattn.errors import CheckpointError, ConfigError, DataError
from resattn.validation.values import ABSENT, select


def check_data_root(cfg: DictConfig) -> None:
    """The data folder holds what ``data.source`` needs (as ``resolve_source`` decides it at load time)."""
    source, download, root_value = (select(cfg, f"data.{k}") for k in ("source", "download", "root"))
    if source == "imagefolder":
        return check_imagefolder(cfg)
    if source in (ABSENT, "synthetic") or download is ABSENT or root_value is ABSENT:
        return  # no data config, generated data, or a value known only inside the Hydra app
    root = Path(root_value) if root_value not in (None, "") else Path(os.environ.get(ENV_DATA_DIR) or "data")
    fix = (
        f"put {NPZ_NAME} there (or torchvision's {TORCHVISION_DIR}/; data.download=true when online), or point "
        f"data.root / ${ENV_DATA_DIR} at the folder that holds it"
    )
    if root.is_file():
        raise DataError(f"data.root={root}: a file, not a folder; pass the folder that holds {root.name}: data.root={root.parent}")
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


def check_imagefolder(cfg: DictConfig) -> None:
    """``data=imagefolder``: the tree exists and the model fits it (classes, image size); reads one image at most."""
    from resattn.data.imagefolder import scan

    root = select(cfg, "data.root")
    if root in (None, "", ABSENT):
        raise ConfigError("data.root=null: data=imagefolder needs data.root=<folder with one sub-folder of images per class>")
    classes, files = scan(Path(root).expanduser())
    num_classes, input_size = select(cfg, "model.num_classes"), select(cfg, "model.input_size")
    if num_classes is not ABSENT and num_classes != len(classes):
        shown = ", ".join(classes[:5]) + (", ..." if len(classes) > 5 else "")
        raise ConfigError(
            f"model.num_classes={num_classes}: data.root={root} has {len(classes)} classes ({shown}); set model.num_classes={len(classes)}"
        )
    size = select(cfg, "data.image_size")
    if size in (None, ABSENT):
        from torchvision.io import read_image

        shape = tuple(read_image(str(files[0][0])).shape[1:])
        size = shape[0] if shape[0] == shape[1] else None
        if size is None:
            raise ConfigError(
                f"data.image_size=null: {files[0][0]} is {shape[1]}x{shape[0]}, not square; set data.image_size=<n> to resize to n x n"
            )
    if input_size is not ABSENT and input_size != size:
        raise ConfigError(f"model.input_size={input_size}: the images are {size}x{size} (data.root={root}); set model.input_size={size}")


def _given(value: object) -> bool:
    return value not in (None, ABSENT, "")


def _is_weights_name(value: object) -> bool:
    from resattn import weights  # imports torch: only when a checkpoint is named, so config errors come fast

    return weights.is_weights_name(value)


def check_paths(cfg: DictConfig, task: str) -> None:
    """``ckpt_path`` (required by eval) and ``resume`` point at what they must; not both."""
    ckpt = select(cfg, "ckpt_path")
    resume = select(cfg, "resume") if task == "train" else None
    if task == "eval" and not _given(ckpt):
        raise ConfigError("ckpt_path=null: a checkpoint is required; pass ckpt_path=<checkpoint file or run dir>")
    path = Path(str(ckpt)).expanduser()
    if _given(ckpt) and not _is_weights_name(ckpt):
        if not path.exists():
            allowed = "a .ckpt file, a train.py run directory" if task == "eval" else "a .ckpt file"
            raise CheckpointError(f"ckpt_path={ckpt}: no such file or directory; expected {allowed} or a registered weights name")
        if task == "train" and not path.is_file():
            raise CheckpointError(f"ckpt_path={ckpt}: not a file; expected a .ckpt file (to continue a run directory use resume=<run dir>)")
    if _given(resume):
        if _given(ckpt):
            raise ConfigError(
                f"resume={resume} ckpt_path={ckpt}: both given; use resume=<run dir> to continue a "
                "run, or ckpt_path=<file> to start a new run from a checkpoint"
            )
        from resattn.cli.resume import resume_checkpoint

        resume_checkpoint(Path(str(resume)).expanduser())
