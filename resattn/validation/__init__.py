"""Input checks that run before any work: config values, paths, data files and checkpoints.

Types are checked while the config is composed (the schemas in :mod:`resattn.schema`); every error is one
line, ``<key>=<value>: <problem>; <what is allowed>`` (:class:`~resattn.errors.ResattnError`).

* :func:`check_config` -- the schema fields' value rules, rules across fields, and that the paths exist
  (data folder, ``ckpt_path``, ``resume`` run);
* :func:`check_model` -- the model's values alone (``python -m resattn.model_summary``, no data needed);
* :func:`check_inputs` -- checkpoint contents: ``ckpt_path`` / the ``resume`` run's ``last.ckpt`` load and
  fit the configured model.

Data arrays (keys, shapes, dtypes, label range) are checked by the data module when it loads them.
:func:`resattn.config.preflight.preflight` composes each job's config as Hydra will and runs both before Hydra
creates or rewrites anything in a run directory.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from resattn.schema.data import DataConfig
from resattn.validation.consistency import (
    check_data_sizes,
    check_devices,
    check_ema,
    check_epochs,
    check_layout,
    check_optimized_metric,
    check_schedule,
)
from resattn.validation.inputs import check_inputs, check_model_fits
from resattn.validation.paths import check_data_root, check_paths
from resattn.validation.values import check_values, composition_error, typed

__all__ = ["check_config", "check_data", "check_inputs", "check_model", "check_model_fits", "check_run", "composition_error"]

_CHECKED: set[str] = set()  # configs (unresolved YAML) already checked in this process


def check_run(cfg: DictConfig, task: str = "train") -> None:
    """:func:`check_config` once per config and process: the entry point checks a run before Hydra writes
    anything (a multirun: each job, before the first starts), so the task itself does not check it again."""
    key = f"{task}|{OmegaConf.to_yaml(cfg)}"
    if key in _CHECKED:
        return
    check_config(cfg, task)
    _CHECKED.add(key)


def check_config(cfg: DictConfig, task: str = "train") -> None:
    """Values, cross-field rules and paths of a composed ``train`` or ``eval`` config."""
    check_values(cfg)
    if task == "train":
        check_layout(OmegaConf.to_container(cfg.model, resolve=True))
        check_epochs(cfg)
        check_optimized_metric(cfg)
        check_data_sizes(cfg)
        check_ema(cfg)
        check_data_root(cfg)  # eval's data comes from the checkpoint: checked in evaluate()
        check_schedule(cfg)
    check_devices(cfg)
    check_paths(cfg, task)


def check_model(cfg: DictConfig) -> None:
    """What building the network needs: ``regularization.*`` and ``model.*`` values and the layout."""
    for group in ("regularization", "model"):
        check_values(cfg[group], prefix=f"{group}.")
    check_layout(OmegaConf.to_container(cfg.model, resolve=True))


def check_data(cfg: DictConfig) -> None:
    """``data.*`` of any config (e.g. a checkpoint's stored one): values, sizes against the dataset, folder."""
    check_values(typed(cfg.data, DataConfig, "data"), prefix="data.")
    check_data_sizes(cfg)
    check_data_root(cfg)
