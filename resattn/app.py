"""Hydra entry points behind ``train.py`` and ``eval.py``."""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable

import hydra
from omegaconf import DictConfig

from resattn.cli import exit_code, find_user_error, full_error_requested, one_line, run_cli
from resattn.config import CONF_DIR
from resattn.errors import ConfigError
from resattn.preflight import preflight
from resattn.resume import expand_resume_args, find_resume_dir, keep_run_dir_on_failure


def optimized_value(cfg: DictConfig, metrics: dict[str, Any]) -> float | None:
    """The value sweepers optimise; a misnamed metric is an error, not ``None``."""
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name not in metrics:
        raise ConfigError(f"optimized_metric={name!r} was not produced by this run; available: {', '.join(sorted(metrics))}")
    value = metrics[name]
    return float(value.item() if hasattr(value, "item") else value)


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _record_failure(cfg: DictConfig, exc: BaseException) -> None:
    """A failed sweep job leaves ``metrics.json`` with ``status=failed`` so the sweep summary keeps its row."""
    from pathlib import Path

    from resattn.results import write_metrics

    cause = find_user_error(exc) or exc
    write_metrics(Path(cfg.paths.output_dir), {"status": "failed", "error": f"{type(cause).__name__}: {one_line(cause)}"})


def _run(task: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig) -> float | None:
    try:
        return optimized_value(cfg, task(cfg))
    except Exception as exc:
        if _in_multirun() and not full_error_requested():
            # One failing job must not abort the sweep or lose the other jobs' results.
            logging.getLogger("resattn").error("job failed: %s: %s", type(exc).__name__, exc)
            _record_failure(cfg, exc)
            return float("nan")
        user_error = find_user_error(exc)
        if user_error is not None and not full_error_requested():
            print(f"error: {one_line(user_error)}", file=sys.stderr)
            sys.exit(exit_code(user_error))
        raise


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def _train(cfg: DictConfig) -> float | None:
    from resattn.pipeline import train

    return _run(train, cfg)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def _evaluate(cfg: DictConfig) -> float | None:
    from resattn.pipeline import evaluate

    return _run(evaluate, cfg)


def train_main() -> None:
    """``python train.py [overrides]``; ``resume=<run dir>`` replays that run's overrides in place.

    The composed config and its inputs are checked before Hydra writes anything, so a bad value never
    leaves a new run directory behind nor rewrites a resumed run's ``.hydra/*.yaml``.
    """

    def body() -> int:
        args = expand_resume_args(sys.argv[1:])
        preflight("train", args)
        sys.argv = [sys.argv[0], *args]
        with keep_run_dir_on_failure(find_resume_dir(args)):
            _train()
        return 0

    sys.exit(run_cli(body))


def eval_main() -> None:
    """``python eval.py ckpt_path=<checkpoint file or run dir>``."""

    def body() -> int:
        preflight("eval", sys.argv[1:])
        _evaluate()
        return 0

    sys.exit(run_cli(body))
