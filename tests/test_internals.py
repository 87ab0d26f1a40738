"""Issue 12: the framework internals resattn relies on, checked loudly (each has no public equivalent).

pyproject.toml pins the versions these were tested with (pytorch-lightning < 2.7, hydra-core < 1.4); a newer
release that drops one of them fails here, naming it, instead of failing mid-run.

* ``Trainer._signal_connector.received_sigterm``: the flag Lightning broadcasts to stop all DDP ranks at
  one step (resattn.callbacks.signals);
* ``ModelCheckpoint._last_global_step_saved`` / ``_last_checkpoint_saved`` / ``_save_last_checkpoint`` /
  ``_monitor_candidates``: writing ``last.ckpt`` every epoch and after a stop (resattn.callbacks);
* ``ExperimentWriter._check_log_dir_exists`` and ``CSVLogger._fs`` / ``_experiment``: appending to
  ``metrics.csv`` on resume (resattn.loggers);
* ``LightningModule._trainer``: whether a trainer is attached (``.trainer`` raises when none is);
* ``hydra._internal.utils.get_args_parser``: Hydra's command-line parser, to rebuild one job's command line
  for DDP ranks inside a multirun (resattn.hydra_callbacks).
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter


def test_lightning_internals_exist(tmp_path: Path) -> None:
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert isinstance(trainer._signal_connector.received_sigterm, bool)
    checkpoint = ModelCheckpoint(dirpath=tmp_path)
    assert checkpoint._last_global_step_saved == 0 and checkpoint._last_checkpoint_saved == ""
    assert callable(checkpoint._save_last_checkpoint) and callable(checkpoint._monitor_candidates)
    assert callable(ExperimentWriter._check_log_dir_exists)
    logger = CSVLogger(tmp_path)
    assert logger._experiment is None and logger._fs is not None
    assert pl.LightningModule()._trainer is None


def test_hydra_argument_parser_exists() -> None:
    from hydra._internal.utils import get_args_parser

    args = get_args_parser().parse_known_args(["-m", "--config-name", "eval", "seed=1"])[0]
    assert args.multirun and args.config_name == "eval" and args.overrides == ["seed=1"]
