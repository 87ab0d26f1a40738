"""Turning loader batches into model inputs on the training device: augmentation, uint8 → float, standardisation."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import torch

from resattn.data.splits import SPLITS

Augment = Callable[[torch.Tensor, Optional[torch.Generator]], torch.Tensor]


class BatchPreparer:
    """``(x_uint8, y[, seed])`` → ``(x_float32_normalised, y)`` with per-split statistics.

    Args:
        norm: ``{split: (scale, shift)}`` per channel, ``x_norm = x_0_255 * scale + shift``
            (:func:`resattn.data.splits.normalization`).
        augment: training augmentation, ``aug(x, generator) -> float 0-255`` (``None`` = none).
    """

    def __init__(self, norm: dict[str, tuple[torch.Tensor, torch.Tensor]], augment: Optional[Augment] = None) -> None:
        self.norm = norm
        self.augment = augment
        self._cache: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}

    def normalizer(self, split: str, device: Union[str, torch.device] = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """``(scale, shift)`` of shape ``1×3×1×1`` on ``device`` for ``split``."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        key = (split, str(device))
        if key not in self._cache:
            scale, shift = self.norm[split]
            self._cache[key] = (scale.view(1, -1, 1, 1).to(device), shift.view(1, -1, 1, 1).to(device))
        return self._cache[key]

    def __call__(self, batch: Sequence[Any], train: bool, split: Optional[str] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``train=True`` applies the augmentation with a ``torch.Generator(device=x.device)`` seeded by the
        batch's seed (global RNG when the batch has none). ``split`` picks the statistics (default: ``train``
        if ``train`` else ``val``). No channels_last here."""
        x, y = batch[0], batch[1]
        seed = batch[2] if len(batch) > 2 else None
        split = split or ("train" if train else "val")
        if train and self.augment is not None:
            generator = None
            if seed is not None:
                generator = torch.Generator(device=x.device)
                generator.manual_seed(int(seed))
            xf = self.augment(x, generator)
        else:
            xf = x.to(torch.float32)
        scale, shift = self.normalizer(split, xf.device)
        return torch.addcmul(shift, xf, scale), y


def seed_on_host(batch: Any) -> Any:
    """A training batch's seed tensor as a Python int while it is still on the CPU (after the transfer, ``int()``
    of a CUDA tensor would synchronise the device every step)."""
    if isinstance(batch, (tuple, list)) and len(batch) == 3 and isinstance(batch[2], torch.Tensor):
        if batch[2].device.type == "cpu":
            return (batch[0], batch[1], int(batch[2]))
    return batch


def split_of(trainer: Any) -> tuple[bool, str]:
    """``(training, split)`` of the batch a Lightning ``trainer`` is processing (no trainer: evaluation on val)."""
    if trainer is not None and trainer.training:
        return True, "train"
    if trainer is not None and (trainer.testing or trainer.predicting):
        return False, "test"
    return False, "val"
