"""Attention-mask grids: per image one row, the image, then each attention module's mask as a heat map."""

from __future__ import annotations

from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from resattn.models.masks import attention_maps, mask_branches  # noqa: E402


def plot_attention_grid(
    images: torch.Tensor,
    maps: Sequence[torch.Tensor],
    labels: torch.Tensor,
    predictions: torch.Tensor,
    class_names: Sequence[str],
    module_names: Sequence[str],
    title: str = "",
) -> plt.Figure:
    """The grid figure: images ``B×3×H×W`` uint8, ``maps`` one ``B×H×W`` tensor per attention module."""
    rows, cols = len(images), 1 + len(maps)
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 1.9 * rows), squeeze=False)
    pictures = images.permute(0, 2, 3, 1).cpu().numpy()
    for r in range(rows):
        true, pred = class_names[int(labels[r])], class_names[int(predictions[r])]
        axes[r][0].imshow(pictures[r])
        axes[r][0].set_title(f"{true} / {pred}", fontsize=8, color="black" if true == pred else "red")
        for c, mask in enumerate(maps, start=1):
            heat = mask[r].cpu()
            heat = (heat - heat.min()) / (heat.max() - heat.min()).clamp_min(1e-12)
            axes[r][c].imshow(pictures[r])
            axes[r][c].imshow(heat.numpy(), cmap="jet", alpha=0.5, vmin=0.0, vmax=1.0)
            if r == 0:
                axes[r][c].set_title(module_names[c - 1], fontsize=8)
        for ax in axes[r]:
            ax.axis("off")
    fig.suptitle(title or "attention masks (row title: true / predicted; mask: channel mean, min-max per map)", fontsize=9)
    fig.tight_layout()
    return fig


def render(module: nn.Module, datamodule, split: str, n: int, class_names: Sequence[str], title: str = "") -> plt.Figure:
    """The grid for the first ``n`` images of ``split``: a fixed set, the same at every call."""
    images, labels = getattr(datamodule, f"{split}_x")[:n], getattr(datamodule, f"{split}_y")[:n]
    device = next(module.parameters()).device
    x, _ = datamodule.prepare_batch((images.to(device), labels.to(device)), train=False, split=split)
    net = module.net
    was_training = net.training
    net.eval()
    try:
        logits, maps = attention_maps(net, x)
    finally:
        net.train(was_training)
    names = [name for name, _ in mask_branches(net)]
    return plot_attention_grid(images, maps, labels, logits.argmax(1).cpu(), class_names, names, title)
