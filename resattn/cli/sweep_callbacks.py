"""Hydra callbacks for sweeps (registered in ``conf/hydra/default.yaml`` under ``hydra.callbacks``).

* ``SweepChecks``: before a multirun starts, reject what would fail every job only after training
  (a misnamed ``optimized_metric``, DDP inside a launcher that cannot re-launch ranks): one line, exit 2.
* ``JobIsolation``: makes sequential jobs independent: DDP ranks of a job are re-launched as a single run in
  that job's directory, and each job's process group, DDP environment and GPU memory are released at its end.
* ``ResolvedConfig``: the job's ``.hydra/config.yaml`` holds the resolved values that run.
* ``SweepSummary``: at the end of a multirun, ``summary.csv``/``summary.md``/``summary.png`` in the sweep
  directory (see ``resattn.report``), the table on the console, and exit status 1 if any job failed.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from resattn.cli.exits import fail, is_rank_zero
from resattn.errors import EXIT_JOBS_FAILED
from resattn.training.metrics import CLASS_METRIC, RESULT_METRICS, TEST_METRICS

log = logging.getLogger("resattn.sweep")


# Set by Lightning's subprocess DDP launcher in the launching process (and inherited by its ranks).
DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
SPAWNING_STRATEGIES = ("ddp_spawn", "ddp_fork", "ddp_notebook")


def check_optimized_metric(cfg: DictConfig) -> None:
    """``optimized_metric`` must name a numeric metric the training task produces."""
    name = cfg.get("optimized_metric")
    if not name or "model" not in cfg:  # eval.py and configs without a sweep objective
        return
    known = [*RESULT_METRICS, *(TEST_METRICS if cfg.get("test", True) else ())]
    if name in known or (cfg.get("test", True) and CLASS_METRIC.match(name)):
        if str(name).startswith("test/"):
            log.warning("optimized_metric=%s selects hyperparameters on the test set; val/acc_best avoids that", name)
        return
    hint = "" if cfg.get("test", True) else " (test=false: no test/* metrics)"
    fail(
        f"optimized_metric={name!r} is not a metric of this task{hint}; "
        f"available: {', '.join(known)}{', test/acc_<class>' if cfg.get('test', True) else ''}"
    )


def ddp_relaunches_script(trainer: Any) -> bool:
    """Whether the trainer config selects Lightning's subprocess DDP (re-runs ``sys.argv`` for ranks > 0)."""
    if not trainer:
        return False
    strategy = trainer.get("strategy", "auto")
    devices, nodes = trainer.get("devices", 1), trainer.get("num_nodes", 1) or 1
    if not isinstance(strategy, str):
        return False
    if strategy.startswith(SPAWNING_STRATEGIES):
        return False
    several = (
        nodes > 1
        or devices in (-1, "-1", "auto")
        or (isinstance(devices, int) and devices > 1)
        or (not isinstance(devices, (int, str)) and len(devices) > 1)
    )
    return several and (strategy.startswith("ddp") or strategy == "auto")


def check_optuna_storage(config: DictConfig) -> None:
    """Optuna 2.x RDB storage (``hydra.sweeper.storage=sqlite:///...``) fails on SQLAlchemy 2 with a bare assert."""
    if not OmegaConf.select(config, "hydra.sweeper.storage", default=None):
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        optuna_major, sqlalchemy_major = (int(version(name).split(".")[0]) for name in ("optuna", "sqlalchemy"))
    except PackageNotFoundError:
        return
    if optuna_major < 3 and sqlalchemy_major >= 2:
        fail(
            f"hydra.sweeper.storage needs SQLAlchemy < 2 with optuna {version('optuna')} "
            f"(installed: SQLAlchemy {version('sqlalchemy')}); pip install 'sqlalchemy>=1.4,<2', "
            "or drop the storage for an in-memory study"
        )


class SweepChecks(Callback):
    """Fail a multirun up front (exit 2, one line) for settings that would make every job fail late."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_optimized_metric(config)
        launcher = str(OmegaConf.select(config, "hydra.launcher._target_", default=""))
        if ddp_relaunches_script(config.get("trainer")) and ("joblib" in launcher or "LocalLauncher" in launcher):
            name = "joblib" if "joblib" in launcher else "submitit_local"
            fail(
                f"trainer.strategy={config.trainer.strategy} with several devices re-launches train.py for "
                f"each rank, which hydra/launcher={name} workers cannot do; run DDP sweeps with the default "
                "launcher (jobs in sequence) or hydra/launcher=submitit_slurm (tasks_per_node=devices)"
            )
        check_optuna_storage(config)
        # The Optuna sweeper writes no multirun.yaml; the summary reads the swept keys from it.
        sweep_dir = Path(config.hydra.sweep.dir)
        if is_rank_zero() and not (sweep_dir / "multirun.yaml").exists():
            sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(config, sweep_dir / "multirun.yaml")


class ResolvedConfig(Callback):
    """Replaces the job's ``.hydra/config.yaml`` (saved unresolved by Hydra) with its resolved values, so the file
    shows what runs (``trainer.max_epochs: 24``, not ``${scale.max_epochs}``) and tools read numbers from it.
    Values decided when the run starts (``trainer.precision=auto``) are written in by :func:`record_decided`."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        subdir = config.hydra.output_subdir
        if subdir is None or not is_rank_zero():
            return
        from resattn.artifacts.atomic import write_bytes

        task = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
        path = Path(config.hydra.runtime.output_dir) / str(subdir) / "config.yaml"
        write_bytes(path, OmegaConf.to_yaml(task, resolve=True).encode())


def record_decided(run_dir: Path, key: str, value: Any) -> None:
    """Set ``key`` to ``value`` in the run's saved ``config.yaml`` (e.g. the precision ``auto`` chose), so the file
    says what runs; nothing to do for a run without one (composed in-process)."""
    from resattn.artifacts.atomic import write_bytes

    subdir = HydraConfig.get().output_subdir if HydraConfig.initialized() else ".hydra"
    path = Path(run_dir) / str(subdir) / "config.yaml"
    if subdir is None or not path.is_file():
        return
    saved = OmegaConf.load(path)
    if str(OmegaConf.select(saved, key)) != str(value):
        OmegaConf.update(saved, key, value, force_add=True)
        write_bytes(path, OmegaConf.to_yaml(saved).encode())


class JobIsolation(Callback):
    """Keeps the jobs of a multirun from leaking into each other.

    DDP: Lightning's ``ddp`` strategy starts ranks > 0 by re-running ``sys.argv`` with ``hydra.run.dir`` set to
    ``HydraConfig.run.dir``. In a multirun that would re-run the whole sweep; so, for the duration of a job,
    ``sys.argv`` becomes that job's single-run command line and ``run.dir`` its output directory: the ranks
    join the job and exit with it. At the end of the job the process group and the DDP environment
    variables Lightning set are removed (the next job starts its own ranks), and memory is released:
    ``gc.collect()`` (the trainer and the module reference each other, so only the collector frees them)
    and ``torch.cuda.empty_cache()``.
    """

    def __init__(self) -> None:
        self._argv: list[str] | None = None
        self._env: dict[str, str | None] = {}

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        self._env = {k: os.environ.get(k) for k in DDP_ENV}
        launcher = str(OmegaConf.select(config, "hydra.launcher._target_", default=""))
        if launcher.endswith("BasicLauncher"):  # jobs run in this process, whose sys.argv Lightning re-runs
            self._argv = list(sys.argv)
            sys.argv = single_run_argv(sys.argv, config)
            output_dir = config.hydra.runtime.output_dir
            hydra_node = HydraConfig.get()
            with read_write(hydra_node), open_dict(hydra_node):
                hydra_node.run.dir = output_dir

    def on_job_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        if self._argv is not None:
            sys.argv, self._argv = self._argv, None
        if config.hydra.mode == RunMode.MULTIRUN:
            self._end_distributed()
        release_memory()

    def _end_distributed(self) -> None:
        started_here = self._env.get("LOCAL_RANK") is None and os.environ.get("LOCAL_RANK") is not None
        if not started_here:  # no DDP in this job, or ranks launched from outside (torchrun, SLURM)
            return
        torch = sys.modules.get("torch")
        if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for key, value in self._env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def single_run_argv(argv: list[str], config: DictConfig) -> list[str]:
    """The command line of one job as a single run: config flags, the job's overrides, no sweep settings."""
    from hydra._internal.utils import get_args_parser

    args = get_args_parser().parse_known_args(argv[1:])[0]
    flags = []
    for flag, value in (("--config-path", args.config_path), ("--config-name", args.config_name), ("--config-dir", args.config_dir)):
        if value is not None:
            flags += [flag, str(value)]
    drop = (
        "hydra.mode",
        "hydra.sweep",
        "hydra.sweeper",
        "hydra.launcher",
        "hydra/sweeper",
        "hydra/launcher",
        "hydra.run",
        "hydra.output_subdir",
        "hydra.job.name",
        "hydra.callbacks",
    )
    hydra_overrides = [o for o in config.hydra.overrides.hydra if not o.lstrip("+~").startswith(drop)]
    return [argv[0], *flags, *config.hydra.overrides.task, *hydra_overrides, "hydra.mode=RUN"]


def release_memory() -> None:
    """Collect reference cycles and return cached CUDA blocks, so the next job starts with a clean device."""
    gc.collect()
    if log.isEnabledFor(logging.DEBUG):  # hydra.verbose=resattn.sweep: what survived the job
        alive = _alive("LightningModule", "Trainer", "LightningDataModule")
        log.debug("after the job: %s", ", ".join(f"{n} {k}" for k, n in alive.items()))
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return
    torch.cuda.empty_cache()
    held = torch.cuda.memory_allocated()
    if held:
        log.warning(
            "%.1f MiB of GPU memory still allocated after the job: something keeps tensors alive "
            "(e.g. a failed job's exception, kept with its frames under HYDRA_FULL_ERROR=1)",
            held / 2**20,
        )


def _alive(*type_names: str) -> dict[str, int]:
    """Live objects whose class or a base class has one of these names (a reference-leak probe)."""
    counts = dict.fromkeys(type_names, 0)
    for obj in gc.get_objects():
        for cls in type(obj).__mro__:
            if cls.__name__ in counts:
                counts[cls.__name__] += 1
                break
    return counts


class SweepSummary(Callback):
    """``summary.csv``, ``summary.md`` and ``summary.png`` in the sweep directory at the end of a multirun.

    Args:
        fail_on_error: exit with status 1 after writing the summary if a job failed or left no metrics.json
            (the summary is always written first; ``false`` keeps exit status 0).
        print_table: print the summary table on the console.
    """

    def __init__(self, fail_on_error: bool = True, print_table: bool = True) -> None:
        self.fail_on_error = fail_on_error
        self.print_table = print_table

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not is_rank_zero():
            return
        from resattn.report import MD_NAME, print_summary, write_summary

        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_config = {
            "hydra": {
                "overrides": {"task": list(OmegaConf.select(config, "hydra.overrides.task", default=[]) or [])},
                "sweeper": {"params": dict.fromkeys(OmegaConf.select(config, "hydra.sweeper.params", default={}) or {})},
            }
        }
        try:
            sweep = write_summary(sweep_dir, sweep_config)
        except Exception:  # the jobs' results are on disk; never lose them to a reporting bug
            log.exception("could not write the sweep summary; rerun: python -m resattn.report %s", sweep_dir)
            bad = None
        else:
            if self.print_table:
                sys.stdout.flush()
                print_summary(sweep)
            log.info("sweep summary: %s", sweep_dir / MD_NAME)
            bad = [job for job in sweep.jobs if job.status != "ok"]
        if self.fail_on_error and (bad is None or bad):
            what = "summary failed" if bad is None else f"{len(bad)} of {len(sweep.jobs)} jobs failed or are missing"
            fail(f"sweep {sweep_dir}: {what} (see {MD_NAME})", EXIT_JOBS_FAILED)
