"""Hydra entry points behind ``train.py`` and ``eval.py``."""

from __future__ import annotations

import copy
import logging
import sys
from pathlib import Path
from typing import Any, Callable

import hydra
from omegaconf import DictConfig

from resattn.cli.exits import find_user_error, full_error_requested, one_line, report, run_cli
from resattn.cli.resume import expand_resume_args, find_resume_dir, keep_run_dir_on_failure
from resattn.config.compose import CONF_DIR, compose_for_run, hydra_session
from resattn.config.preflight import MULTIRUN_FLAGS, preflight
from resattn.config.renames import renamed_overrides
from resattn.errors import ConfigError


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
    from resattn.artifacts.results import write_metrics

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
        if find_user_error(exc) is not None and not full_error_requested():
            sys.exit(report(exc))  # @hydra.main would print the traceback
        raise


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def _train(cfg: DictConfig) -> float | None:
    from resattn.training.fit import train

    return _run(train, cfg)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def _evaluate(cfg: DictConfig) -> float | None:
    from resattn.training.evaluate import evaluate

    return _run(evaluate, cfg)


def _task(config_name: str) -> Callable[[DictConfig], float | None]:
    def task(cfg: DictConfig) -> float | None:
        from resattn.training.evaluate import evaluate
        from resattn.training.fit import train

        return _run(train if config_name == "train" else evaluate, cfg)

    return task


def run_single(config_name: str, args: list[str]) -> bool:
    """Run ``args`` as one job the way ``@hydra.main`` does, composing the config once: that config is checked
    (values, rules, inputs, device) before Hydra writes anything, and the same object runs. Returns False,
    having done nothing, when the composed config is a multirun (e.g. ``hparams_search=...``)."""
    from hydra._internal.callbacks import Callbacks
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import run_job
    from hydra.types import HydraContext, RunMode
    from omegaconf import open_dict, read_write

    from resattn.validation import check_inputs, check_run

    with hydra_session(job_name=config_name):
        cfg = compose_for_run(config_name, args)
        if cfg.hydra.mode == RunMode.MULTIRUN:
            return False
        with read_write(cfg.hydra), open_dict(cfg.hydra):
            cfg.hydra.mode = RunMode.RUN
            cfg.hydra.runtime.output_dir = str(Path(str(cfg.hydra.run.dir)).absolute())  # as run_job will set it
        HydraConfig.instance().set_config(cfg)
        task_cfg = copy.deepcopy(cfg)  # the job's config, as run_job makes it (typed: the schemas' rules apply)
        with read_write(task_cfg), open_dict(task_cfg):
            del task_cfg["hydra"]
        check_run(task_cfg, config_name)
        check_inputs(task_cfg, config_name)
        callbacks = Callbacks(cfg)
        callbacks.on_run_start(config=cfg, config_name=config_name)
        loader = GlobalHydra.instance().config_loader()
        ret = run_job(
            hydra_context=HydraContext(config_loader=loader, callbacks=callbacks),
            task_function=_task(config_name),
            config=cfg,
            job_dir_key="hydra.run.dir",
            job_subdir_key=None,
        )
        callbacks.on_run_end(config=cfg, config_name=config_name, job_return=ret)
        _ = ret.return_value  # raises the job's exception, as Hydra.run does
    return True


def _sweeps(args: list[str]) -> bool:
    """Whether an override sweeps (``a=1,2``, ``choice(...)``): a multirun chosen by the config (hparams_search)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return any(o.is_sweep_override() for o in OverridesParser.create().parse_overrides(args))


def _main(config_name: str, args: list[str], hydra_main: Callable[[], Any]) -> None:
    """One run through :func:`run_single`; Hydra's own commands (``--cfg``, ``--info`` ...) and multiruns through
    ``@hydra.main`` (a multirun's jobs are each composed and checked first, see :mod:`resattn.config.preflight`). Old
    names (:mod:`resattn.config.renames`) run under their new ones."""
    args = renamed_overrides(args)
    sys.argv = [sys.argv[0], *args]
    if any(a.startswith("-") and a not in MULTIRUN_FLAGS for a in args):
        hydra_main()
    elif any(a in MULTIRUN_FLAGS for a in args) or _sweeps(args) or not run_single(config_name, args):
        preflight(config_name, args)
        hydra_main()


def train_main() -> None:
    """``python train.py [overrides]``; ``resume=<run dir>`` replays that run's overrides in place.

    The composed config and its inputs are checked before Hydra writes anything, so a bad value never
    leaves a new run directory behind nor rewrites a resumed run's ``.hydra/*.yaml``.
    """

    def body() -> int:
        args = expand_resume_args(sys.argv[1:])
        with keep_run_dir_on_failure(find_resume_dir(args)):
            _main("train", args, _train)
        return 0

    sys.exit(run_cli(body))


def eval_main() -> None:
    """``python eval.py ckpt_path=<checkpoint file or run dir>``."""

    def body() -> int:
        _main("eval", sys.argv[1:], _evaluate)
        return 0

    sys.exit(run_cli(body))
