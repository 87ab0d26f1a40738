"""Config schemas: a typed dataclass per config group and target, with value rules (:mod:`.rules`).

The groups: :mod:`.data` (data, augment), :mod:`.model` (model, regularization), :mod:`.optim` (optimizer,
scheduler), :mod:`.trainer` (trainer, callbacks), :mod:`.run` (scale and the top level of train/eval).

:func:`register` stores them in Hydra's ConfigStore under ``schema/``; each YAML file names its schema
first in its defaults list (``- /schema/optimizer/sgd@_here_``), so its keys are typed by it.
"""

from __future__ import annotations

from resattn.schema import data, model, optim, run, trainer

SCHEMAS: dict[str, type] = {
    "train": run.TrainConfig,
    "eval": run.EvalConfig,
    "data/base": data.DataConfig,
    "augment/none": data.NoAugmentConfig,
    "augment/keras": data.KerasAugmentConfig,
    "augment/standard": data.StandardAugmentConfig,
    "model/base": model.ModelConfig,
    "regularization/base": model.RegularizationConfig,
    "optimizer/adam": optim.AdamConfig,
    "optimizer/adamw": optim.AdamWConfig,
    "optimizer/sgd": optim.SGDConfig,
    "scheduler/none": optim.SchedulerConfig,
    "scheduler/cosine": optim.CosineSchedulerConfig,
    "scheduler/onecycle": optim.OneCycleSchedulerConfig,
    "scheduler/piecewise": optim.PiecewiseSchedulerConfig,
    "scheduler/plateau": optim.PlateauSchedulerConfig,
    "trainer/base": trainer.TrainerConfig,
    "callbacks/base": trainer.CallbacksConfig,
    "scale/base": run.ScaleConfig,
}


def register() -> None:
    """Store every schema as ``schema/<group>/<name>`` in Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for path, node in SCHEMAS.items():
        group, _, name = path.rpartition("/")
        store.store(group="schema/" + group if group else "schema", name=name, node=node)
