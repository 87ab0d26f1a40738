"""Checkpointing that survives moves and crashes: run-relative paths and atomic writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint

_PATH_KEYS = ("best_model_path", "kth_best_model_path", "last_model_path")


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose saved state names files relative to its directory.

    A run directory that was moved or copied elsewhere therefore resumes with its best/last checkpoint
    bookkeeping intact instead of pointing into the old location.
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

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        if state.get("dirpath") == ".":
            for key in _PATH_KEYS:
                state[key] = self._anchor(state.get(key, ""))
            state["best_k_models"] = {self._anchor(k): v for k, v in state.get("best_k_models", {}).items()}
            state["dirpath"] = self.dirpath
        super().load_state_dict(state)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file in the target directory, fsyncs it, then renames it.

    A crash or ``kill -9`` at any moment therefore leaves either the previous complete file or the new
    complete file under the final name, never a truncated one.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        import torch

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def load_checkpoint(self, path: str | Path, map_location: Any | None = None, weights_only: bool | None = None) -> dict[str, Any]:
        # resattn checkpoints hold RNG states and the run config (numpy arrays, tuples): not weights-only.
        return super().load_checkpoint(path, map_location=map_location, weights_only=False)
