"""The soft attention masks of a network, read with forward hooks on its mask branches (the forward is unchanged)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from resattn.errors import ConfigError
from resattn.models.attention import AttentionModule


def mask_branches(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(attention module name, its mask branch)`` in forward order; empty for ``model.attention=none``."""
    return [(name, m.mask) for name, m in net.named_modules() if isinstance(m, AttentionModule) and m.mask is not None]


@contextmanager
def captured_masks(net: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collects the output of every mask branch during the forward passes inside the ``with`` block."""
    masks: list[torch.Tensor] = []
    handles = [branch.register_forward_hook(lambda _m, _i, out: masks.append(out.detach())) for _, branch in mask_branches(net)]
    try:
        yield masks
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def attention_maps(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[tuple[int, int]]]:
    """Logits; per attention module, its channel-mean mask upsampled to ``x``'s size (``B×H×W``, float32); and the
    mask's own resolution ``(h, w)``.

    Runs the eager ``net.forward`` (also for a compiled network) so that the hooks fire.
    """
    if not mask_branches(net):
        raise ConfigError("this model has no attention masks (model.attention=none); attention maps need model.attention=arl or nal")
    with captured_masks(net) as masks:
        logits = net.forward(x)
    maps = [F.interpolate(m.float().mean(1, keepdim=True), size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0] for m in masks]
    return logits, maps, [tuple(m.shape[-2:]) for m in masks]
