"""Stop training cleanly on SIGTERM/SIGINT: finish the step, write ``checkpoints/last.ckpt``, exit non-zero.

SIGTERM goes through Lightning's own handler (``trainer.received_sigterm``, which also serves DDP and the
SLURM requeue plugin); SIGINT (Ctrl-C) is caught by :class:`GracefulStop` while the training loop runs. At
the end of the current training step the callback writes a resumable checkpoint through the trainer's
checkpoint IO (atomic) and raises :class:`RunInterrupted`; ``python train.py resume=<run dir>`` continues
at the next batch. A signal during the last batch of an epoch or during validation lets the epoch finish
(validation and ``ModelCheckpoint``'s regular epoch-end save) and stops right after it: the callback holds
the SIGTERM back from Lightning, which would otherwise abort the validation and lose the epoch's training,
and hands it back at the epoch end, where Lightning's own stop (``SIGTERMException``) follows the save.

With several processes (DDP) every rank must stop at the same step, so the callback leaves the decision
to Lightning, which broadcasts rank 0's SIGTERM flag before every step (SIGINT is turned into that flag):
all ranks raise ``SIGTERMException`` together and the checkpoint is written from ``on_exception``.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities.exceptions import SIGTERMException

log = logging.getLogger("resattn")


class RunInterrupted(SystemExit):
    """Training was stopped by a signal; the exit status is ``128 + signal number`` (SIGTERM: 143).

    A ``SystemExit`` so that nothing that handles ordinary errors (e.g. a sweep recording a failed job
    and moving on) swallows it: a stop request stops the whole command.
    """

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(128 + int(signum))
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
    if saved is not None:
        state = f"saved resumable checkpoint {saved}"
    else:
        existing = last_checkpoint_path(trainer)
        state = f"no new checkpoint; the last one is {existing}" if existing.is_file() else "no checkpoint was saved yet"
    resume = (
        f"continue with: python train.py resume={run_dir}"
        if (saved or last_checkpoint_path(trainer).is_file())
        else "nothing to resume; start the run again"
    )
    return RunInterrupted(f"{_signal_name(signum)} {where} (step {trainer.global_step}); {state}; {resume}", signum)


class GracefulStop(pl.Callback):
    """On SIGTERM or SIGINT, save ``checkpoints/last.ckpt`` at the end of the current step and stop.

    A second SIGINT aborts at once (``KeyboardInterrupt``); the last complete checkpoint stays intact
    because every checkpoint is written atomically.
    """

    def __init__(self) -> None:
        self._signum: int | None = None
        self._previous: Any = None
        self._installed = False
        self._start_step = 0
        self.saved: Path | None = None  # checkpoint written when Lightning itself stopped on SIGTERM
        self.stop_signum: int = int(signal.SIGTERM)  # the signal behind Lightning's SIGTERMException
        self._trainer: pl.Trainer | None = None
        self._distributed = False

    # ------------------------------------------------------------------------------------ handlers
    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self._signum is not None:  # second Ctrl-C: stop now
            self._restore()
            raise KeyboardInterrupt
        self._signum = signum
        if self._distributed and self._trainer is not None:  # let Lightning stop all ranks at the same step
            self._trainer._signal_connector.received_sigterm = True
        log.warning(
            "%s received: finishing the current step, then saving a resumable checkpoint (press Ctrl-C again to abort at once)",
            _signal_name(signum),
        )

    def _install(self) -> None:
        if threading.current_thread() is threading.main_thread() and not self._installed:
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._on_sigint)
            self._installed = True

    def _restore(self) -> None:
        if self._installed and threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGINT) == self._on_sigint:
                signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)
            self._installed = False

    def _hold_back(self, trainer: pl.Trainer) -> None:
        """Keep Lightning from aborting the coming/running validation (its SIGTERM flag is re-set at epoch end)."""
        connector = getattr(trainer, "_signal_connector", None)
        if connector is not None and getattr(connector, "received_sigterm", False):
            self._signum = self._signum or int(signal.SIGTERM)
            connector.received_sigterm = False

    def requested(self, trainer: pl.Trainer) -> int | None:
        """The signal that asked to stop, if any."""
        if self._signum is not None:
            return self._signum
        return int(signal.SIGTERM) if trainer.received_sigterm else None

    # --------------------------------------------------------------------------------------- hooks
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After Lightning registered its handlers, so its teardown restores the pre-fit SIGINT handler.
        self._signum, self.saved, self._start_step = None, None, trainer.global_step
        self._trainer, self._distributed = trainer, trainer.world_size > 1
        self._install()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        signum = self.requested(trainer)
        if signum is None or self._distributed:
            return
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            self._hold_back(trainer)  # let validation and the epoch-end save happen first
            return
        raise interruption(trainer, signum, self.save(trainer), f"mid-epoch {trainer.current_epoch}")

    def on_validation_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking and not self._distributed:
            self._hold_back(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Runs before ModelCheckpoint's epoch-end save (monitoring callbacks come last): hand the stop to
        # Lightning, which raises SIGTERMException once the epoch is complete; on_exception reports the save.
        signum = self.requested(trainer)
        connector = getattr(trainer, "_signal_connector", None)
        if signum is not None and connector is not None:
            self.stop_signum = signum
            connector.received_sigterm = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()
        self._trainer = None

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore()
        if isinstance(exception, SIGTERMException) and not isinstance(exception, RunInterrupted):
            self.stop_signum = self._signum or self.stop_signum
            self.saved = self._save_after_lightning_stop(trainer)

    def _save_after_lightning_stop(self, trainer: pl.Trainer) -> Path | None:
        """Lightning raised ``SIGTERMException`` itself (signal after this callback's batch-end check).

        After a training step or epoch the loop state is consistent and is saved; inside validation or
        the sanity check it is not (metrics of a partial validation are not checkpointed), so nothing is.
        """
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
            log.error("not saving a checkpoint on SIGTERM: %s", exc)
            return None

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore()

    # ---------------------------------------------------------------------------------------- save
    def save(self, trainer: pl.Trainer) -> Path:
        """Write ``last.ckpt`` now (through the trainer's checkpoint IO: atomic)."""
        path = last_checkpoint_path(trainer)
        ckpt_cb = trainer.checkpoint_callback
        if ckpt_cb is not None and hasattr(ckpt_cb, "last_model_path"):
            ckpt_cb.last_model_path = str(path)  # part of the saved state, as ModelCheckpoint does
        trainer.save_checkpoint(path)
        log.info("saved resumable checkpoint %s at epoch %d, step %d", path, trainer.current_epoch, trainer.global_step)
        return path


def fit(trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
    """``trainer.fit`` whose stops by signal all end in :class:`RunInterrupted` (exit status 128 + signal).

    Lightning ends a SIGTERM it handled itself (during validation or the sanity check) with
    ``SIGTERMException`` (exit status 0) and a Ctrl-C outside the training loop with ``sys.exit(1)``.
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
        elif trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            where = f"at the end of epoch {trainer.current_epoch - 1}"  # current_epoch counts completed epochs
        else:
            where = f"mid-epoch {trainer.current_epoch}"
        raise interruption(trainer, signum, saved, where) from None
    except SystemExit as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise interruption(trainer, signal.SIGINT, None, "before a checkpoint could be written") from None
        raise
