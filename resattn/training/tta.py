"""Test-time augmentation: logits averaged over mirrored and translated copies of a batch (as airbench94).

Only evaluation uses it (validation, test, ``eval.py``); training batches never pass through here.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from resattn.schema.run import TTA_MODES

FORWARDS = {"none": 1, "flip": 2, "flip_translate": 6}  # network evaluations per image of each mode
TRANSLATE_PX = 1  # flip_translate: shift by one pixel (reflect padding), up-left and down-right


def _mirrored(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Mean logits of ``x`` and its horizontal mirror (NCHW: the last dimension is the width)."""
    return 0.5 * (forward(x) + forward(x.flip(-1)))


def tta_logits(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, mode: str = "none") -> torch.Tensor:
    """Logits of the NCHW batch ``x`` under test-time augmentation ``mode``.

    * ``none``: ``forward(x)``, exactly (one call, the batch untouched);
    * ``flip``: the mean of the logits of ``x`` and of its horizontal mirror (2 forwards);
    * ``flip_translate``: half the ``flip`` logits plus half the mean ``flip`` logits of two copies shifted by
      one pixel diagonally (up-left, down-right; reflect padding) (6 forwards).
    """
    if mode == "none":
        return forward(x)
    if mode == "flip":
        return _mirrored(forward, x)
    if mode == "flip_translate":
        p = TRANSLATE_PX
        height, width = x.shape[-2:]
        padded = F.pad(x, (p, p, p, p), mode="reflect")
        shifted = [padded[..., :height, :width], padded[..., 2 * p : 2 * p + height, 2 * p : 2 * p + width]]
        translated = 0.5 * (_mirrored(forward, shifted[0]) + _mirrored(forward, shifted[1]))
        return 0.5 * _mirrored(forward, x) + 0.5 * translated
    raise ValueError(f"tta={mode!r}: unknown test-time augmentation; expected one of {', '.join(TTA_MODES)}")
