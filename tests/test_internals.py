"""Issue 12: the framework internals resattn relies on, checked loudly (each has no public equivalent).

pyproject.toml pins the versions these were tested with (pytorch-lightning < 2.7, hydra-core < 1.4); a newer
release that drops one of them fails here, naming it, instead of failing mid-run.

* ``Trainer._signal_connector.received_sigterm``: set by resattn once all ranks agreed, Lightning then stops after
  the epoch (``SIGTERMException``); ``_SignalConnector._sigterm_notifier_fn`` (broadcasts inside the SIGTERM handler:
  the DDP hang of issue 20), ``_slurm_sigusr_handler_fn`` (SLURM requeue) and ``register_signal_handlers`` chaining
  the SIGTERM handler found before it: replaced by ``RecordingSignalConnector`` (resattn.callbacks.signals);
* ``StrategyRegistry[name]["strategy"/"init_params"]`` and ``DDPStrategy(timeout=)`` / ``._timeout``: the ranks'
  start-up bound ``trainer.ddp_start_timeout``; ``torch.distributed.set_timeout``: ``trainer.ddp_timeout``
  (resattn.callbacks.ranks);
* ``ModelCheckpoint._last_global_step_saved`` / ``_last_checkpoint_saved`` / ``_save_last_checkpoint`` /
  ``_monitor_candidates``: writing ``last.ckpt`` every epoch and after a stop (resattn.callbacks);
* ``ExperimentWriter._check_log_dir_exists`` and ``CSVLogger._fs`` / ``_experiment``: appending to
  ``metrics.csv`` on resume (resattn.artifacts.loggers);
* ``LightningModule._trainer``: whether a trainer is attached (``.trainer`` raises when none is);
* ``hydra._internal.utils.get_args_parser``: Hydra's command-line parser, to rebuild one job's command line
  for DDP ranks inside a multirun (resattn.cli.sweep_callbacks).
"""

from __future__ import annotations

import inspect
import os
import signal
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


def test_lightning_signal_connector_is_neutralised(tmp_path: Path) -> None:
    """The SIGTERM handler Lightning registers only records (no broadcast, no flag), and the requeue handler too."""
    from pytorch_lightning.trainer.connectors.signal_connector import _SignalConnector

    from resattn.callbacks.signals import RecordingSignalConnector, StopRequests

    assert "broadcast" in inspect.getsource(_SignalConnector._sigterm_notifier_fn)  # what is being neutralised
    assert callable(_SignalConnector._slurm_sigusr_handler_fn) and callable(_SignalConnector.teardown)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    requests = StopRequests()
    before = signal.getsignal(signal.SIGTERM)
    requests.install()
    try:
        trainer._signal_connector = RecordingSignalConnector(trainer, requests)
        trainer._signal_connector.register_signal_handlers()
        assert signal.getsignal(signal.SIGTERM) != requests.record  # Lightning's composite handler ...
        os.kill(os.getpid(), signal.SIGTERM)  # ... calls ours after its (neutralised) notifier
        assert requests.signum == signal.SIGTERM and trainer.received_sigterm is False
        trainer._signal_connector._slurm_sigusr_handler_fn(signal.SIGUSR1, None)
        assert requests.requeue
        trainer._signal_connector.teardown()
        assert signal.getsignal(signal.SIGTERM) == requests.record
    finally:
        requests.restore()
    assert signal.getsignal(signal.SIGTERM) == before


def test_ddp_strategy_takes_a_timeout() -> None:
    from datetime import timedelta

    from pytorch_lightning.strategies import DDPStrategy, StrategyRegistry

    from resattn.callbacks.ranks import strategy_with_timeout

    assert StrategyRegistry["ddp"]["strategy"] is DDPStrategy and "start_method" in StrategyRegistry["ddp"]["init_params"]
    strategy = strategy_with_timeout("ddp", 7)
    assert isinstance(strategy, DDPStrategy) and strategy._timeout == timedelta(seconds=7)
    assert strategy._start_method == "popen"
    assert strategy_with_timeout("auto", 7) == "auto" and strategy_with_timeout("ddp", None) == "ddp"
    import torch.distributed as dist

    assert list(inspect.signature(dist.set_timeout).parameters)[:2] == ["timeout", "group"]
