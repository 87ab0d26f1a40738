"""See the soft masks of a trained run (one per attention module) as heat maps over the images.

    python -m resattn.attention_maps ckpt_path=<run dir or .ckpt> [n=8] [split=test|val] [scale=per_map|shared]
        [out=<file.png>] [data.root=<dir>]

writes a PNG grid (default ``<run dir>/attention_maps_<split>.png``): each image, then one column per attention
module (``attention 1, 16×16``: its place in the network and the mask's resolution) with its mask ``M`` (mean
over channels, bilinearly upsampled to the image size) overlaid as a heat map; below each image its true and
predicted class. ``scale=per_map`` (default) min-max scales each map to 0-1 (where a module attends);
``scale=shared`` puts every map on one scale, the masks' own values (how strongly modules and images differ).
The colour bar states which. The masks are read with forward hooks on the mask branches; the model's forward
is unchanged. :class:`resattn.callbacks.AttentionMaps` logs the same grid to TensorBoard during training.
"""

from __future__ import annotations

import math
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from resattn.errors import ConfigError  # noqa: E402
from resattn.models.attention import AttentionModule  # noqa: E402
from resattn.plots import set_suptitle  # noqa: E402

DEFAULTS = {"ckpt_path": None, "n": 8, "split": "test", "out": None, "scale": "per_map"}
SPLITS = ("val", "test")
SPLIT_NAMES = {"val": "validation", "test": "test"}
SCALES = ("per_map", "shared")  # each map min-max scaled, or one scale for all maps
COLOUR_MAP = "viridis"  # perceptually uniform, readable in print and by colour-blind readers


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


def write_attention_maps(
    ckpt_path: str,
    n: int = DEFAULTS["n"],
    split: str = DEFAULTS["split"],
    out: str | None = None,
    data_overrides: Mapping[str, Any] | None = None,
    scale: str = DEFAULTS["scale"],
) -> Path:
    """Load a checkpoint (or a run dir's best) and write the grid PNG; returns its path."""
    from resattn.pipeline import OLD_CHECKPOINT_NOTE, build_datamodule, module_from_checkpoint
    from resattn.report.runs import is_run_dir, run_label

    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is not supported; allowed: {', '.join(SPLITS)}")
    if scale not in SCALES:
        raise ConfigError(f"scale={scale!r} is not supported; allowed: {', '.join(SCALES)}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n={n!r} must be an integer >= 1 (images in the grid)")
    module, stored, ckpt_file = module_from_checkpoint(ckpt_path, data_overrides)
    if not mask_branches(module.net):
        raise ConfigError(
            f"{ckpt_file} was trained with model.attention=none: it has no attention masks to show; "
            "use a run with model.attention=arl or nal"
        )
    if module.preprocessing is None:
        print(OLD_CHECKPOINT_NOTE % ckpt_file, file=sys.stderr)
    # test images alone with the checkpoint's statistics; validation images are part of the training set file
    datamodule = build_datamodule(stored, module.preprocessing)
    datamodule.setup("test" if split == "test" else "validate")
    run_dir = ckpt_file.parent.parent if ckpt_file.parent.name == "checkpoints" else Path.cwd()  # weights: here
    target = Path(out) if out else run_dir / f"attention_maps_{split}.png"
    name = run_label(run_dir) if is_run_dir(run_dir) else ckpt_file.stem
    fig = render(
        module,
        datamodule,
        split,
        n,
        module.class_names,
        title=f"{name}: soft attention masks of the first {n} {SPLIT_NAMES[split]} images (below each: true / predicted class)",
        scale=scale,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=150)
    plt.close(fig)
    return target


def main(argv: list[str] | None = None) -> int:
    from resattn.cli import parse_options, run_cli

    usage = (
        "usage: python -m resattn.attention_maps ckpt_path=<run dir or .ckpt> [n=8] [split=test|val] "
        "[scale=per_map|shared] [out=<png>] [data.root=<dir>]"
    )

    def body() -> int:
        options = parse_options(argv, {**DEFAULTS, "data": None}, usage, required=("ckpt_path",))
        path = write_attention_maps(
            str(options["ckpt_path"]), options["n"], options["split"], options["out"], options["data"], options["scale"]
        )
        print(f"attention maps: {path}")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
