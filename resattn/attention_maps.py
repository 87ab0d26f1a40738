"""See the soft masks of a trained run (one per attention module) as heat maps over the images.

    python -m resattn.attention_maps ckpt_path=<run dir or .ckpt> [n=16] [split=test|val] [out=<file.png>]
        [data.root=<dir>]

writes a PNG grid (default ``<run dir>/attention_maps_<split>.png``): per image one row, the image, then
one column per attention module with its mask ``M`` (mean over channels, bilinearly upsampled to the
image size, min-max scaled per map) overlaid as a heat map; the row is titled with the true and the
predicted class. The masks are read with forward hooks on the mask branches; the model's forward is
unchanged. :class:`resattn.callbacks.AttentionMaps` logs the same grid to TensorBoard during training.
"""

from __future__ import annotations

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

DEFAULTS = {"ckpt_path": None, "n": 16, "split": "test", "out": None}
SPLITS = ("val", "test")


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
def attention_maps(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits and, per attention module, its channel-mean mask upsampled to ``x``'s size (``B×H×W``, float32).

    Runs the eager ``net.forward`` (also for a compiled network) so that the hooks fire.
    """
    if not mask_branches(net):
        raise ConfigError("this model has no attention masks (model.attention=none); attention maps need model.attention=arl or nal")
    with captured_masks(net) as masks:
        logits = net.forward(x)
    maps = [F.interpolate(m.float().mean(1, keepdim=True), size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0] for m in masks]
    return logits, maps


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


def write_attention_maps(
    ckpt_path: str, n: int = 16, split: str = "test", out: str | None = None, data_overrides: Mapping[str, Any] | None = None
) -> Path:
    """Load a checkpoint (or a run dir's best) and write the grid PNG; returns its path."""
    from resattn.pipeline import OLD_CHECKPOINT_NOTE, build_datamodule, module_from_checkpoint

    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is not supported; allowed: {', '.join(SPLITS)}")
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
    fig = render(
        module,
        datamodule,
        split,
        n,
        module.class_names,
        title=f"{run_dir.name}/{ckpt_file.name}: {split} images, true / predicted; mask = channel mean",
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target


def main(argv: list[str] | None = None) -> int:
    from omegaconf import OmegaConf

    from resattn.cli import run_cli

    def body() -> int:
        args = OmegaConf.to_container(OmegaConf.from_dotlist(sys.argv[1:] if argv is None else argv))
        unknown = set(args) - set(DEFAULTS) - {"data"}
        if unknown:
            raise ConfigError(
                f"unknown argument(s) {', '.join(sorted(unknown))}; usage: python -m "
                "resattn.attention_maps ckpt_path=<run dir or .ckpt> [n=16] [split=test] [out=<png>]"
            )
        options = {**DEFAULTS, **args}
        if not options["ckpt_path"]:
            raise ConfigError("ckpt_path is required: python -m resattn.attention_maps ckpt_path=<run dir or .ckpt>")
        path = write_attention_maps(str(options["ckpt_path"]), options["n"], options["split"], options["out"], options.get("data"))
        print(f"attention maps: {path}")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
