"""Attention-mask grids: each image, then each attention module's mask over it as a heat map, in a compact grid."""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from resattn.artifacts.run_plots import set_suptitle  # noqa: E402
from resattn.errors import ConfigError  # noqa: E402
from resattn.models.masks import attention_maps  # noqa: E402

SCALES = ("per_map", "shared")  # each map min-max scaled, or one scale for all maps
COLOUR_MAP = "viridis"  # perceptually uniform, readable in print and by colour-blind readers


def map_titles(sizes: Sequence[tuple[int, int]]) -> list[str]:
    """Column titles by position and resolution: ``attention 1, 16×16`` (attention modules counted in forward order)."""
    return [f"attention {i}, {h}×{w}" for i, (h, w) in enumerate(sizes, start=1)]


def _groups(n: int, columns: int, aspect: float = 1.5) -> int:
    """How many blocks of image rows to set side by side so that the grid's width / height is closest to ``aspect``."""
    return min(range(1, n + 1), key=lambda g: abs(g * columns / math.ceil(n / g) - aspect))


def plot_attention_grid(
    images: torch.Tensor,
    maps: Sequence[torch.Tensor],
    labels: torch.Tensor,
    predictions: torch.Tensor,
    class_names: Sequence[str],
    titles: Sequence[str],
    title: str = "",
    scale: str = "per_map",
) -> plt.Figure:
    """The grid figure: images ``B×3×H×W`` uint8, ``maps`` one ``B×H×W`` tensor per attention module, ``titles`` one per
    module. Each image is followed by its masks over it; the rows are set in blocks side by side for a compact figure.
    ``scale``: ``per_map`` (each map min-max scaled to 0-1) or ``shared`` (one scale, the masks' values, for all maps).
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    if scale not in SCALES:
        raise ConfigError(f"scale={scale!r} is not supported; allowed: {', '.join(SCALES)}")
    n, columns = len(images), 1 + len(maps)
    groups = _groups(n, columns)
    rows = math.ceil(n / groups)
    stride = columns + 1  # a narrow empty column between blocks
    fig, axes = plt.subplots(
        rows,
        groups * stride - 1,
        figsize=(1.5 * groups * columns + 1.0, 1.55 * rows + 0.8),
        squeeze=False,
        layout="constrained",
        gridspec_kw={"width_ratios": ([1.0] * columns + [0.12]) * (groups - 1) + [1.0] * columns},
    )
    pictures = images.permute(0, 2, 3, 1).cpu().numpy()
    shared = scale == "shared"
    low = min(float(m.min()) for m in maps) if shared else 0.0
    high = max(float(m.max()) for m in maps) if shared else 1.0
    for ax in axes.flat:
        ax.set_axis_off()
    for i in range(n):
        row, first = i % rows, (i // rows) * stride
        true, pred = class_names[int(labels[i])], class_names[int(predictions[i])]
        cells = axes[row][first : first + columns]
        for ax in cells:
            ax.set_axis_on()
            ax.set_xticks([])
            ax.set_yticks([])
            ax.imshow(pictures[i])
        cells[0].set_xlabel(f"{true} / {pred}", fontsize=8, color="black" if true == pred else "red", labelpad=2)
        for ax, mask in zip(cells[1:], maps):
            heat = mask[i].cpu()
            if not shared:
                heat = (heat - heat.min()) / (heat.max() - heat.min()).clamp_min(1e-12)
            ax.imshow(heat.numpy(), cmap=COLOUR_MAP, alpha=0.6, vmin=low, vmax=high)
        if row == 0:
            for ax, text in zip(cells, ["image", *titles]):
                ax.set_title(text, fontsize=8)
    scaling = "scaled per map: 0 = its min, 1 = its max" if not shared else "one scale for all maps (their values)"
    fig.colorbar(ScalarMappable(Normalize(low, high), cmap=COLOUR_MAP), ax=axes, shrink=0.8, aspect=30, pad=0.01).set_label(
        f"soft mask M (mean over channels)\n{scaling}", fontsize=8
    )
    set_suptitle(fig, title or "attention masks", fontsize=10)
    return fig


def render(
    module: nn.Module, datamodule, split: str, n: int, class_names: Sequence[str], title: str = "", scale: str = "per_map"
) -> plt.Figure:
    """The grid for the first ``n`` images of ``split``: a fixed set, the same at every call."""
    images, labels = getattr(datamodule, f"{split}_x")[:n], getattr(datamodule, f"{split}_y")[:n]
    device = next(module.parameters()).device
    x, _ = datamodule.prepare_batch((images.to(device), labels.to(device)), train=False, split=split)
    net = module.net
    was_training = net.training
    net.eval()
    try:
        logits, maps, sizes = attention_maps(net, x)
    finally:
        net.train(was_training)
    return plot_attention_grid(images, maps, labels, logits.argmax(1).cpu(), class_names, map_titles(sizes), title, scale)
