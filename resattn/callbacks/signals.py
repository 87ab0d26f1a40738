"""Stop training cleanly on SIGTERM/SIGINT, with one process or many (DDP): finish the step, write
``checkpoints/last.ckpt``, exit with 128 + the signal number.

* A signal handler only **records** the request (:class:`StopRequests`): no I/O, no logging, no collective.
  Lightning's own SIGTERM notifier, which broadcasts from inside the handler (and so hangs a DDP run whose
  ranks all receive the signal), is neutralised by :class:`RecordingSignalConnector`.
* At fixed points every rank passes through — the end of every training step, the end of every training
  epoch, the end of every test batch that all ranks run — the ranks **agree** through one ``all_reduce(MAX)``
  of (signal, requeue) (:meth:`GracefulStop.agree`). A signal delivered to rank 0 only, to one other rank
  only, or to every rank thus stops all of them at the same step.
* Mid-epoch, the agreed stop writes ``last.ckpt`` (atomically) and raises :class:`RunInterrupted` on every
  rank. A signal during the last batch of an epoch or during validation lets the epoch finish (validation and
  ``ModelCheckpoint``'s epoch-end save) and stops right after it, through Lightning's ``SIGTERMException``; one
  during a checkpoint save lets the save complete and stops at the next agreed point. A signal during the
  final test stops the test; ``last.ckpt`` is already the finished fit, and ``resume=`` runs the test again.
* SLURM's SIGUSR1 auto-requeue (``SLURMEnvironment(auto_requeue=True)``) is recorded the same way and carried
  out by Lightning's own routine (``hpc_ckpt_<n>.ckpt``, ``scontrol requeue``) at the next step boundary.

A second SIGINT (Ctrl-C) aborts at once (``KeyboardInterrupt``); every checkpoint is written atomically, so
the last complete one stays intact. :func:`stop_signals` scopes the handlers to a ``fit`` + ``test``.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any, Iterator

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.trainer.connectors.signal_connector import _SignalConnector
from pytorch_lightning.utilities.exceptions import SIGTERMException

from resattn.errors import EXIT_SIGNAL_BASE

log = logging.getLogger("resattn")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunInterrupted(SystemExit):
    """Training was stopped by a signal; the exit status is ``128 + signal number`` (SIGTERM: 143).

    A ``SystemExit`` so that nothing that handles ordinary errors (e.g. a sweep recording a failed job
    and moving on) swallows it: a stop request stops the whole command.
    """

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(EXIT_SIGNAL_BASE + int(signum))
        self.user_message = message
        self.signum = int(signum)

    def __str__(self) -> str:
        return self.user_message


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def last_checkpoint_path(trainer: pl.Trainer) -> Path:
    """Where ``last.ckpt`` lives: the ModelCheckpoint directory, else ``<run dir>/checkpoints``."""
    ckpt_cb = trainer.checkpoint_callback
    if ckpt_cb is not None and getattr(ckpt_cb, "dirpath", None):
        return Path(ckpt_cb.dirpath) / f"{ckpt_cb.CHECKPOINT_NAME_LAST}{ckpt_cb.FILE_EXTENSION}"
    return Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"


def interruption(trainer: pl.Trainer, signum: int, saved: Path | None, where: str) -> RunInterrupted:
    """The :class:`RunInterrupted` for a stop at ``where``; ``saved`` is the checkpoint just written, if any."""
    run_dir = Path(trainer.default_root_dir)
    existing = last_checkpoint_path(trainer)
    if saved is not None:
        state = f"saved resumable checkpoint {saved}"
    else:
        state = f"no new checkpoint; the last one is {existing}" if existing.is_file() else "no checkpoint was saved yet"
    resume = (
        f"continue with: python train.py resume={run_dir}" if (saved or existing.is_file()) else "nothing to resume; start the run again"
    )
    return RunInterrupted(f"{_signal_name(signum)} {where} (step {trainer.global_step}); {state}; {resume}", signum)


# ---------------------------------------------------------------------------------------- handlers


class StopRequests:
    """What this process's signal handlers recorded. The handlers only set these fields."""

    def __init__(self) -> None:
        self.signum: int | None = None  # SIGTERM or SIGINT asked to stop
        self.requeue = False  # SLURM's requeue signal (SIGUSR1) arrived
        self._previous: dict[int, Any] = {}

    def record(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: abort now (checkpoints are atomic)
        if self.signum is None:
            self.signum = int(signum)

    def record_requeue(self, signum: int, frame: FrameType | None) -> None:
        self.requeue = True

    def install(self) -> None:
        """Record SIGTERM and SIGINT from now on (main thread only; elsewhere Python cannot set handlers)."""
        if threading.current_thread() is not threading.main_thread() or self._previous:
            return
        self.signum, self.requeue = None, False
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self.record)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}


class RecordingSignalConnector(_SignalConnector):
    """Lightning's signal connector without communication inside handlers.

    Lightning 2.6 registers ``_sigterm_notifier_fn`` for SIGTERM, which forwards the signal to the ranks it
    launched and broadcasts from rank 0 *inside the handler*: with every rank signalled, ranks > 0 block in
    that broadcast while rank 0 waits in DDP's gradient all-reduce, forever. Here the notifier does nothing
    (the :class:`StopRequests` handler, which Lightning chains after it, records the signal), and SLURM's
    requeue handler only records; :meth:`requeue` runs Lightning's routine at a step boundary.
    """

    def __init__(self, trainer: pl.Trainer, requests: StopRequests) -> None:
        super().__init__(trainer)
        self.requests = requests

    def _sigterm_notifier_fn(self, signum: Any, frame: Any) -> None:
        """Nothing: ``received_sigterm`` is set by :class:`GracefulStop` once all ranks agreed."""

    def _slurm_sigusr_handler_fn(self, signum: Any, frame: Any) -> None:
        self.requests.record_requeue(signum, frame)

    def requeue(self) -> None:
        """Lightning's SLURM auto-requeue: ``hpc_ckpt_<n>.ckpt`` (all ranks), ``scontrol requeue`` (rank 0)."""
        super()._slurm_sigusr_handler_fn(signal.SIGUSR1, None)  # type: ignore[arg-type]


@contextlib.contextmanager
def stop_signals(trainer: pl.Trainer) -> Iterator[None]:
    """While the block runs (fit and test), SIGTERM/SIGINT are recorded and acted on by the trainer's
    :class:`GracefulStop` at the next agreed point; without that callback, Lightning's defaults stay."""
    stop = next((cb for cb in trainer.callbacks if isinstance(cb, GracefulStop)), None)
    if stop is None:
        yield
        return
    connector = trainer._signal_connector
    trainer._signal_connector = RecordingSignalConnector(trainer, stop.requests)
    stop.requests.install()
    try:
        yield
    finally:
        stop.requests.restore()
        trainer._signal_connector = connector
    if stop.requests.signum is not None and not stop.acted:  # e.g. while metrics.json was written
        log.warning("%s arrived after the run's last step; the run is complete", _signal_name(stop.requests.signum))


# --------------------------------------------------------------------------------------- callback


class GracefulStop(pl.Callback):
    """On SIGTERM or SIGINT, every rank stops at the same step boundary with a resumable ``last.ckpt``."""

    def __init__(self) -> None:
        self.requests = StopRequests()
        self.saved: Path | None = None  # checkpoint behind an epoch-end stop
        self.stop_signum: int = int(signal.SIGTERM)  # the signal behind Lightning's SIGTERMException
        self.acted = False  # a stop was carried out
        self._pending: int | None = None  # agreed during an epoch's last batch: stop after the epoch
        self._announced = False
        self._start_step = 0
        self._test_batches = 0  # test batches every rank runs (agreement points of the test)

    # ------------------------------------------------------------------------------------ agreement
    def agree(self, trainer: pl.Trainer) -> tuple[int | None, bool]:
        """(signal, requeue) as the ranks agree on them: the maximum over ranks, through one collective."""
        local = [int(self.requests.signum or 0), int(self.requests.requeue)]
        if local[0] and not self._announced:
            self._announced = True
            log.warning(
                "rank %d: %s received: all ranks stop at the next step boundary with a resumable checkpoint (Ctrl-C again: abort)",
                trainer.global_rank,
                _signal_name(local[0]),
            )
        if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            votes = torch.tensor(local, dtype=torch.int64, device=trainer.strategy.root_device)
            dist.all_reduce(votes, op=dist.ReduceOp.MAX)
            local = [int(v) for v in votes.tolist()]
        if local[1]:
            self.requests.requeue = False
            connector = trainer._signal_connector
            if isinstance(connector, RecordingSignalConnector):
                connector.requeue()
        return (local[0] or None), bool(local[1])

    # --------------------------------------------------------------------------------------- hooks
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.saved, self._pending, self._start_step = None, None, trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        signum, _ = self.agree(trainer)
        if signum is None or self._pending is not None:
            return
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            self._pending = signum  # let validation and the epoch-end save happen first
            return
        self.acted = True
        raise interruption(trainer, signum, self.save(trainer), f"mid-epoch {trainer.current_epoch}")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Runs before ModelCheckpoint's epoch-end save (checkpoint callbacks come last): hand the stop to
        # Lightning, which raises SIGTERMException on every rank once the epoch is complete.
        signum, _ = self.agree(trainer)
        signum = self._pending or signum
        if signum is not None:
            self.stop_signum, self.acted = signum, True
            trainer._signal_connector.received_sigterm = True

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        batches = int(sum(trainer.num_test_batches))
        if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            count = torch.tensor([batches], dtype=torch.int64, device=trainer.strategy.root_device)
            dist.all_reduce(count, op=dist.ReduceOp.MIN)  # shards may differ by one batch
            batches = int(count.item())
        self._test_batches = batches

    def on_test_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if batch_idx >= self._test_batches:
            return
        signum, _ = self.agree(trainer)
        if signum is not None:
            self.acted = True
            raise interruption(trainer, signum, None, "during the test")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException) and not isinstance(exception, RunInterrupted):
            self.saved = self._save_after_lightning_stop(trainer)

    def _save_after_lightning_stop(self, trainer: pl.Trainer) -> Path | None:
        """The checkpoint of an epoch-end stop: ``ModelCheckpoint``'s ``last.ckpt`` of this step, else a new one."""
        if not trainer.training or trainer.sanity_checking or trainer.global_step == self._start_step:
            return None
        ckpt_cb = trainer.checkpoint_callback
        path = last_checkpoint_path(trainer)
        if (
            getattr(ckpt_cb, "save_last", False)
            and getattr(ckpt_cb, "_last_global_step_saved", None) == trainer.global_step
            and path.is_file()
        ):
            return path
        try:
            return self.save(trainer)
        except Exception as exc:  # e.g. a diverged state: keep the previous checkpoint
            log.error("not saving a checkpoint on %s: %s", _signal_name(self.stop_signum), exc)
            return None

    # ---------------------------------------------------------------------------------------- save
    def save(self, trainer: pl.Trainer) -> Path:
        """Write ``last.ckpt`` now (every rank calls this; rank 0 writes, through the atomic checkpoint IO)."""
        path = last_checkpoint_path(trainer)
        ckpt_cb = trainer.checkpoint_callback
        if ckpt_cb is not None and hasattr(ckpt_cb, "last_model_path"):
            ckpt_cb.last_model_path = str(path)  # part of the saved state, as ModelCheckpoint does
        trainer.save_checkpoint(path)
        log.info("saved resumable checkpoint %s at epoch %d, step %d", path, trainer.current_epoch, trainer.global_step)
        return path


def fit(trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
    """``trainer.fit`` whose stops by signal all end in :class:`RunInterrupted` (exit status 128 + signal).

    An epoch-end stop ends in Lightning's ``SIGTERMException`` (exit status 0), and a Ctrl-C that Lightning
    caught itself (a second one) in ``sys.exit(1)``: both become :class:`RunInterrupted`.
    """
    try:
        trainer.fit(*args, **kwargs)
    except RunInterrupted:
        raise
    except SIGTERMException:
        stop = next((cb for cb in trainer.callbacks if isinstance(cb, GracefulStop)), None)
        saved = stop.saved if stop is not None else None
        signum = stop.stop_signum if stop is not None else int(signal.SIGTERM)
        if saved is None:
            where = "before a checkpoint could be written"
        else:
            where = f"at the end of epoch {trainer.current_epoch - 1}"  # current_epoch counts completed epochs
        raise interruption(trainer, signum, saved, where) from None
    except SystemExit as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise interruption(trainer, signal.SIGINT, None, "before a checkpoint could be written") from None
        raise
