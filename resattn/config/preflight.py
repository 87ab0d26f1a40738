"""Check a command line before Hydra creates or rewrites any file: the run's config, or every job of a multirun.

A multirun's jobs are the cartesian product of its sweeps: those on the command line (``a=1,2``,
``choice(...)``, ``range(...)``) and the sweeper's ``hydra.sweeper.params`` from the config (e.g.
``hparams_search=label_noise``), the command line winning for a key in both. Each job's config is composed
and checked, so ``python train.py -m regularization.dropout=0.2,1.5`` stops with the usual one-line error
before the first job starts, not hours into the sweep; a checkpoint the jobs share is loaded once. Intervals
(Optuna's ``interval(...)``) cannot be enumerated: their keys keep the configured value here and are checked
when their job starts.
"""

from __future__ import annotations

import itertools
import math
from typing import Sequence

from omegaconf import OmegaConf

from resattn.config.compose import compose
from resattn.validation import check_inputs, check_run

MULTIRUN_FLAGS = ("-m", "--multirun")
MAX_JOBS_CHECKED = 256  # larger grids: every value of every sweep is checked, not every combination


def _sweeps(overrides: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Split overrides into plain ones and enumerable sweeps ``{key: [job override, ...]}``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType

    plain, sweeps = [], {}
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        if not override.is_sweep_override():
            plain.append(override.input_line)
        elif override.value_type != ValueType.INTERVAL_SWEEP:
            key = override.get_key_element()
            sweeps[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
    return plain, sweeps


def job_overrides(config_name: str, args: Sequence[str]) -> list[list[str]]:
    """The override lists of the jobs ``args`` run: one for a single run, the sweeps' product for a multirun."""
    multirun = any(a in MULTIRUN_FLAGS for a in args)
    plain, sweeps = _sweeps([a for a in args if a not in MULTIRUN_FLAGS])
    hydra_cfg = compose(config_name, plain, with_hydra=True).hydra
    multirun = multirun or str(hydra_cfg.mode) == "RunMode.MULTIRUN"
    if not multirun:
        return [plain]
    params = hydra_cfg.sweeper.get("params")
    params = OmegaConf.to_container(params, resolve=False) if params else {}
    _, from_config = _sweeps([f"{key}={value}" for key, value in params.items()])
    fixed = {_key(o) for o in plain}  # a plain command-line value holds a configured sweep key fixed
    sweeps = {**{k: v for k, v in from_config.items() if _key(k) not in fixed}, **sweeps}
    values = list(sweeps.values())
    if math.prod(len(v) for v in values) <= MAX_JOBS_CHECKED:
        return [[*plain, *combo] for combo in itertools.product(*values)]
    first = [v[0] for v in values]
    jobs = [[*plain, *first]]
    for i, options in enumerate(values):
        jobs += [[*plain, *first[:i], option, *first[i + 1 :]] for option in options[1:]]
    return jobs


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def preflight(config_name: str, args: Sequence[str]) -> None:
    """Check the config and inputs of every job ``args`` run (``config_name``: ``train`` or ``eval``)."""
    if any(a.startswith("-") and a not in MULTIRUN_FLAGS for a in args):
        return  # --cfg, --info, -cn ...: Hydra's own commands
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # e.g. called in-process under a running Hydra app
        return
    task = "eval" if config_name == "eval" else "train"
    for overrides in job_overrides(config_name, args):
        cfg = compose(config_name, overrides)
        check_run(cfg, task)
        check_inputs(cfg, task)  # a checkpoint the jobs share is loaded once
