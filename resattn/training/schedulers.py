"""Learning-rate schedules not provided by ``torch.optim.lr_scheduler``, and the Lightning wiring."""

from __future__ import annotations

import bisect
from typing import Any, Callable, Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from resattn.errors import ConfigError


class PiecewiseConstantLR(LRScheduler):
    """``lr = base_lr * factors[i]`` once ``milestones[i]`` scheduler steps have passed (absolute factors).

    Unlike ``MultiStepLR`` the factors need not be powers of one gamma, so both of the study's schedules
    (docs/original_study.md) are plain configs: ``milestones=[21, 51], factors=[0.1, 0.01]`` and
    ``milestones=[21, 41, 61, 81], factors=[0.1, 0.01, 1e-4, 1e-5]``.
    """

    def __init__(self, optimizer: Optimizer, milestones: Sequence[int], factors: Sequence[float], last_epoch: int = -1) -> None:
        milestones, factors = list(milestones), list(factors)
        if len(milestones) != len(factors):
            raise ConfigError(
                f"scheduler.scheduler.factors={factors}: wrong length; expected one factor per milestone "
                f"(scheduler.scheduler.milestones={milestones} has {len(milestones)})"
            )
        if milestones != sorted(milestones):
            raise ConfigError(f"scheduler.scheduler.milestones={milestones}: not increasing; expected increasing step counts")
        self.milestones, self.factors = milestones, factors
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        i = bisect.bisect_right(self.milestones, step)
        return 1.0 if i == 0 else float(self.factors[i - 1])

    def get_lr(self) -> list[float]:  # type: ignore[override]
        f = self.factor(self.last_epoch)
        return [base * f for base in self.base_lrs]


def lightning_scheduler(
    scheduler_cfg: dict[str, Any],
    optimizer: Optimizer,
    total_steps: Callable[[], int],
) -> dict[str, Any] | None:
    """Turn a ``conf/scheduler`` entry into Lightning's ``lr_scheduler`` dict (None = constant lr).

    ``T_max`` / ``total_steps`` left as null are filled with the run's optimizer steps.
    """
    factory = scheduler_cfg.get("scheduler")
    if factory is None:
        return None
    kwargs: dict[str, Any] = {}
    keywords = getattr(factory, "keywords", {})
    for key in ("T_max", "total_steps"):
        if key in keywords and keywords[key] is None:
            kwargs[key] = int(total_steps())
    config: dict[str, Any] = {
        "scheduler": factory(optimizer, **kwargs),
        "interval": scheduler_cfg.get("interval", "epoch"),
        "frequency": scheduler_cfg.get("frequency", 1),
    }
    if scheduler_cfg.get("monitor"):
        config["monitor"] = scheduler_cfg["monitor"]
        config["strict"] = True
    return config
