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

import sys
from pathlib import Path
from typing import Any, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from resattn.artifacts.attention_grids import SCALES, render  # noqa: E402
from resattn.errors import ConfigError  # noqa: E402
from resattn.models.masks import mask_branches  # noqa: E402

DEFAULTS = {"ckpt_path": None, "n": 8, "split": "test", "out": None, "scale": "per_map"}
SPLITS = ("val", "test")
SPLIT_NAMES = {"val": "validation", "test": "test"}


def write_attention_maps(
    ckpt_path: str,
    n: int = DEFAULTS["n"],
    split: str = DEFAULTS["split"],
    out: str | None = None,
    data_overrides: Mapping[str, Any] | None = None,
    scale: str = DEFAULTS["scale"],
) -> Path:
    """Load a checkpoint (or a run dir's best) and write the grid PNG; returns its path."""
    from resattn.report.runs import is_run_dir, run_label
    from resattn.training.build import build_datamodule
    from resattn.training.from_checkpoint import OLD_CHECKPOINT_NOTE, module_from_checkpoint

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
    from resattn.cli.exits import run_cli
    from resattn.cli.options import parse_options

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
