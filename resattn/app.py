"""Hydra entry points behind ``train.py`` and ``eval.py``."""

from __future__ import annotations

import sys
from typing import Any, Callable

import hydra
from omegaconf import DictConfig

from resattn.cli import EXIT_USER_ERROR, full_error_requested, run_cli
from resattn.config import CONF_DIR
from resattn.errors import ConfigError, ResattnError
from resattn.resume import expand_resume_args


def optimized_value(cfg: DictConfig, metrics: dict[str, Any]) -> float | None:
    """The value sweepers optimise; a misnamed metric is an error, not ``None``."""
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name not in metrics:
        raise ConfigError(f"optimized_metric={name!r} was not produced by this run; available: {', '.join(sorted(metrics))}")
    value = metrics[name]
    return float(value.item() if hasattr(value, "item") else value)


def _run(task: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig) -> float | None:
    try:
        return optimized_value(cfg, task(cfg))
    except ResattnError as exc:
        if full_error_requested():
            raise
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def _train(cfg: DictConfig) -> float | None:
    from resattn.pipeline import train

    return _run(train, cfg)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def _evaluate(cfg: DictConfig) -> float | None:
    from resattn.pipeline import evaluate

    return _run(evaluate, cfg)


def train_main() -> None:
    """``python train.py [overrides]``; ``resume=<run dir>`` replays that run's overrides in place."""

    def body() -> int:
        sys.argv = [sys.argv[0], *expand_resume_args(sys.argv[1:])]
        _train()
        return 0

    sys.exit(run_cli(body))


def eval_main() -> None:
    """``python eval.py ckpt_path=<checkpoint file or run dir>``."""
    _evaluate()
