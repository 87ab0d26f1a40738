"""Checkpoint contents: ``ckpt_path`` and the ``resume`` run's checkpoint load and fit the configured model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


def check_model_fits(cfg: DictConfig, ckpt_file: Path | str, key: str, fix: str, finetune: bool = False) -> dict[str, Any]:
    """The checkpoint at ``ckpt_file`` (or a registered weights name) loads and its weights fit the model
    ``cfg.model`` builds; with ``finetune``, a classifier of another shape is allowed (re-initialised). Returns it."""
    from resattn.models.network import build_model
    from resattn.training.checkpoint_files import CLASSIFIER, check_compatible, new_classifier
    from resattn.weights import load_checkpoint_or_weights

    ckpt = load_checkpoint_or_weights(ckpt_file, key=key.split("=", 1)[0])
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    net = build_model({"model": model_cfg})
    shapes = {f"net.{k}": v.shape for k, v in net.state_dict().items()}
    exclude = CLASSIFIER if finetune and new_classifier(shapes, ckpt) else None
    check_compatible(shapes, ckpt, key=key, model_cfg=model_cfg, fix=fix, prefix="net.", exclude=exclude)
    return ckpt


_CHECKED: set[str] = set()  # inputs already checked in this process (a sweep's jobs, then the run itself)


def _inputs_key(cfg: DictConfig, task: str) -> str:
    """What :func:`check_inputs` reads: the checkpoint paths (and their files' states) and the config they are
    checked against."""
    keys = [k for k in ("ckpt_path", "resume", "model", "scheduler", "trainer", "data") if k in cfg]
    files = []
    for value in (cfg.get("ckpt_path"), cfg.get("resume")):
        path = Path(str(value)).expanduser() if value else None
        if path is not None and path.exists():
            target = path / "checkpoints" if (path / "checkpoints").is_dir() else path
            files.append(f"{target}:{target.stat().st_mtime_ns}")
    return f"{task}|{files}|" + OmegaConf.to_yaml(OmegaConf.masked_copy(cfg, keys))


def check_inputs(cfg: DictConfig, task: str = "train") -> None:
    """Checkpoint contents: ``ckpt_path`` (train: fits the configured model; eval: loads) and ``resume``
    (its model fits and its schedule is unchanged). Inputs already checked in this process are not loaded
    again (a sweep from one checkpoint, then each job)."""
    key = _inputs_key(cfg, task)
    if key in _CHECKED:
        return
    _check_inputs(cfg, task)
    _CHECKED.add(key)


def _check_inputs(cfg: DictConfig, task: str) -> None:
    from resattn import weights
    from resattn.cli.resume import check_resume_averaging, check_resume_schedule, resume_checkpoint
    from resattn.training.checkpoint_files import run_config_of

    ckpt = cfg.get("ckpt_path")
    if task == "eval":
        from resattn.training.checkpoint_files import best_checkpoint_of_run, load_checkpoint

        path = Path(str(ckpt)).expanduser()
        if weights.is_weights_name(ckpt):
            weights.fetch(str(ckpt))  # downloaded once, checksum verified
            return
        load_checkpoint(best_checkpoint_of_run(path) if path.is_dir() else path, key="ckpt_path")
    elif cfg.get("resume"):
        run_dir = Path(str(cfg.resume)).expanduser()
        stored = check_model_fits(
            cfg,
            resume_checkpoint(run_dir),
            f"resume={run_dir}",
            "a resumed run keeps its model; drop the model override, or start a new run",
        )
        check_resume_schedule(cfg, run_config_of(stored), run_dir)
        check_resume_averaging(cfg, run_config_of(stored), run_dir)
    elif ckpt:
        check_model_fits(
            cfg,
            str(ckpt) if weights.is_weights_name(ckpt) else Path(str(ckpt)).expanduser(),
            f"ckpt_path={ckpt}",
            "use a checkpoint of the same model, or set the model config it was trained with",
            finetune=True,
        )
