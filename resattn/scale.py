"""``scale=<name>``: shrink an experiment's model width and length, rescaling every epoch-based setting.

The experiment's own ``trainer.max_epochs`` is the full-scale reference; ``scale.max_epochs`` is the length
actually trained. Epoch counts elsewhere in the config (step-schedule milestones, patience, warm-up and
step sizes) are multiplied by the same ratio, so a 60-epoch recipe with milestones at 21 and 51 becomes a
20-epoch recipe with milestones at 7 and 17. Rescaled patience (early stopping, ReduceLROnPlateau) is floored at
``scale.min_patience`` (absent = 1: plain rescaling) but never raised above the configured value.
"""

from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from resattn.errors import ConfigError

# Scheduler arguments counted in scheduler steps (epochs or optimizer steps; both shrink with the run).
SCHEDULER_LENGTH_KEYS = ("milestones", "step_size", "T_max", "total_steps", "total_iters", "T_0", "patience")


def _rescale(value: Any, ratio: float) -> Any:
    """An epoch/step count times ``ratio`` (at least 1; 0 stays 0); a list stays strictly increasing."""
    if OmegaConf.is_list(value) or isinstance(value, (list, tuple)):
        scaled: list[int] = []
        for item in value:
            scaled.append(max(_rescale(item, ratio), scaled[-1] + 1 if scaled else 1))
        return scaled
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return max(1, math.floor(value * ratio + 0.5))  # half up: 10.5 -> 11
    return value


def _rescale_patience(value: Any, ratio: float, floor: int) -> Any:
    """A patience times ``ratio``, at least ``floor`` but never above ``value`` itself (0 stays 0)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return min(value, max(floor, _rescale(value, ratio)))
    return value


def apply_scale(cfg: DictConfig) -> list[str]:
    """Apply ``cfg.scale`` to ``cfg`` in place; returns the changes as ``key: old -> new`` strings."""
    scale = cfg.get("scale")
    if not scale:
        return []
    changes: list[str] = []

    def change(key: str, node: Any, field: str, new: Any) -> None:
        old = node[field]
        old_plain = OmegaConf.to_container(old) if OmegaConf.is_list(old) else old
        if old_plain != new:
            with open_dict(node):
                node[field] = new
            changes.append(f"{key} {old_plain} -> {new}")

    if scale.get("width") is not None and "model" in cfg:
        change("model.width", cfg.model, "width", int(scale.width))
    target = scale.get("max_epochs")
    reference = cfg.trainer.get("max_epochs")
    max_steps = cfg.trainer.get("max_steps")
    if target is not None and reference in (None, -1) and max_steps not in (None, -1):
        raise ConfigError(
            f"scale.max_epochs={target} cannot shorten a run counted in optimizer steps "
            f"(trainer.max_steps={max_steps}); use scale=full and set trainer.max_steps and the "
            "scheduler's milestones yourself"
        )
    if target is None or reference in (None, -1) or int(target) == int(reference):
        return changes
    ratio = int(target) / int(reference)
    floor = scale.get("min_patience") or 1  # its range is checked by the validator
    change("trainer.max_epochs", cfg.trainer, "max_epochs", int(target))
    scheduler = (cfg.get("scheduler") or {}).get("scheduler")
    if scheduler:
        for field in SCHEDULER_LENGTH_KEYS:
            if scheduler.get(field) is None:
                continue
            if field == "patience":
                new = _rescale_patience(scheduler[field], ratio, floor)
            else:
                new = _rescale(scheduler[field], ratio)
            change(f"scheduler.scheduler.{field}", scheduler, field, new)
    early = (cfg.get("callbacks") or {}).get("early_stopping")
    if early and early.get("patience") is not None:
        change("callbacks.early_stopping.patience", early, "patience", _rescale_patience(int(early.patience), ratio, floor))
    return changes


def describe(cfg: DictConfig, changes: list[str]) -> str:
    """The ``scale:`` log line."""
    name = (cfg.get("scale") or {}).get("name", "full")
    return f"scale: {name}" + (f" ({'; '.join(changes)})" if changes else " (as configured)")
