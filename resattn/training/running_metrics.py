"""The training metrics of the epoch in progress, carried through a checkpoint.

torchmetrics keeps its states out of ``state_dict`` (``persistent=False``) and Lightning skips
``on_train_epoch_start`` when it resumes mid-epoch, so a run stopped mid-epoch and resumed would log that epoch's
``train/loss`` and ``train/acc`` over the steps after the resume only, and no ``lr`` for it. The module stores the
running states and the epoch's starting learning rate with each checkpoint and puts them back when training goes on
in the epoch they were saved in: the resumed run logs what the uninterrupted one logs. Under DDP each process holds
its own share of the states and only rank 0's checkpoint is written, so there they are not restored (the interrupted
epoch's training means then cover the steps after the resume).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torchmetrics import Metric

CHECKPOINT_KEY = "running_train_metrics"


def snapshot(metrics: Mapping[str, Metric], epoch: int, world_size: int, lr: float | None) -> dict[str, Any]:
    """The states of ``metrics`` (by name) in ``epoch``, which started at learning rate ``lr``, for a checkpoint."""
    states = {}
    for name, metric in metrics.items():
        tensors = {key: value.detach().clone() for key, value in metric.metric_state.items() if isinstance(value, torch.Tensor)}
        states[name] = {"update_count": metric.update_count, "states": tensors}
    return {"epoch": epoch, "world_size": world_size, "lr": lr, "metrics": states}


def restore(metrics: Mapping[str, Metric], saved: Mapping[str, Any], world_size: int) -> bool:
    """Put the states of ``saved`` (a :func:`snapshot` of the epoch training goes on in) back into ``metrics``, in one
    process; True if they were restored."""
    if saved["world_size"] != 1 or world_size != 1 or set(saved["metrics"]) != set(metrics):
        return False
    if any(set(saved["metrics"][name]["states"]) != set(metric.metric_state) for name, metric in metrics.items()):
        return False
    for name, metric in metrics.items():
        entry = saved["metrics"][name]
        for key, value in entry["states"].items():
            setattr(metric, key, value.to(metric.device))
        metric._update_count = int(entry["update_count"])  # torchmetrics has no public setter; compute() checks it
        metric._computed = None
    return True
