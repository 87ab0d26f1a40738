"""Checkpointing that survives moves and crashes: run-relative paths and atomic writes."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint

from resattn.artifacts.atomic import atomic_open, fsync_dir

log = logging.getLogger("resattn")

_PATH_KEYS = ("best_model_path", "kth_best_model_path", "last_model_path")
TMP_GLOB = ".*.ckpt.*.tmp"  # AtomicCheckpointIO's temporary files: .<name>.ckpt.<random>.tmp


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete temporary checkpoint files a killed write left in ``directory``; return what was removed."""
    removed = []
    for tmp in Path(directory).glob(TMP_GLOB):
        try:
            tmp.unlink()
            removed.append(tmp)
        except FileNotFoundError:
            pass
    if removed:
        log.info("removed %d unfinished checkpoint file(s) of an interrupted write in %s", len(removed), directory)
    return removed


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose saved state names files relative to its directory, and whose ``last.ckpt``
    really is the last state.

    * A run directory that was moved or copied elsewhere resumes with its best/last checkpoint
      bookkeeping intact instead of pointing into the old location.
    * Lightning writes ``last.ckpt`` only when a top-k checkpoint is saved (with ``monitor`` and
      ``save_top_k=1``: only when the metric improves), so a resume would silently redo every epoch since
      the last improvement. With ``save_last`` set, this class also writes it at every other epoch end.
    * Temporary files of a write that was killed (``kill -9``) are removed when training starts.
    """

    def _relative(self, path: str) -> str:
        if not path or self.dirpath is None:
            return path
        try:
            return os.path.relpath(path, self.dirpath)
        except ValueError:
            return path

    def _anchor(self, path: str) -> str:
        if not path or self.dirpath is None or os.path.isabs(path):
            return path
        return os.path.join(self.dirpath, path)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        for key in _PATH_KEYS:
            state[key] = self._relative(state.get(key, ""))
        state["best_k_models"] = {self._relative(k): v for k, v in state.get("best_k_models", {}).items()}
        state["dirpath"] = "."
        return state

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "fit" and trainer.is_global_zero and self.dirpath and os.path.isdir(self.dirpath):
            remove_stale_temporaries(self.dirpath)

    @staticmethod
    def _link_checkpoint(trainer: pl.Trainer, filepath: str, linkpath: str) -> None:
        """``save_last="link"``: replace ``last.ckpt`` by the new symlink atomically (never a missing file)."""
        if trainer.is_global_zero and os.path.abspath(filepath) != os.path.abspath(linkpath):
            directory = Path(linkpath).parent
            tmp = directory / f".{Path(linkpath).name}.{os.getpid()}.link.tmp"
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            os.symlink(os.path.relpath(filepath, directory), tmp)
            os.replace(tmp, linkpath)
            fsync_dir(directory)
        trainer.strategy.barrier()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_every_epoch(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_every_epoch(trainer)

    def _save_last_every_epoch(self, trainer: pl.Trainer) -> None:
        if not self.save_last or self._should_skip_saving_checkpoint(trainer):  # skip: already saved this step
            return
        self._last_checkpoint_saved = ""  # save_last="link": nothing newer to link to; write the file
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        if state.get("dirpath") == ".":
            for key in _PATH_KEYS:
                state[key] = self._anchor(state.get(key, ""))
            state["best_k_models"] = {self._anchor(k): v for k, v in state.get("best_k_models", {}).items()}
            state["dirpath"] = self.dirpath
        super().load_state_dict(state)
        if self.save_last and not self.last_model_path and self.dirpath is not None:
            # e.g. resumed from epoch 0's top-k checkpoint (saved before last.ckpt) because last.ckpt was damaged:
            # the run's own last.ckpt is overwritten, not kept beside a new last-v1.ckpt.
            self.last_model_path = os.path.join(self.dirpath, f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint atomically (:func:`resattn.artifacts.atomic.atomic_open`): a crash or ``kill -9`` at any
    moment leaves the previous or the new complete file under the final name, never a truncated one."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        import torch

        with atomic_open(path, "wb") as handle:
            torch.save(checkpoint, handle)

    def load_checkpoint(self, path: str | Path, map_location: Any | None = None, weights_only: bool | None = None) -> dict[str, Any]:
        # resattn checkpoints hold RNG states and the run config (numpy arrays, tuples): not weights-only.
        return super().load_checkpoint(path, map_location=map_location, weights_only=False)
