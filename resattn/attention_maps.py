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
from pathlib import Path
from typing import Any, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from resattn.artifacts.attention_grids import render  # noqa: E402
from resattn.errors import ConfigError  # noqa: E402
from resattn.models.masks import mask_branches  # noqa: E402

DEFAULTS = {"ckpt_path": None, "n": 16, "split": "test", "out": None}
SPLITS = ("val", "test")


def write_attention_maps(
    ckpt_path: str, n: int = 16, split: str = "test", out: str | None = None, data_overrides: Mapping[str, Any] | None = None
) -> Path:
    """Load a checkpoint (or a run dir's best) and write the grid PNG; returns its path."""
    from resattn.training.build import build_datamodule
    from resattn.training.from_checkpoint import OLD_CHECKPOINT_NOTE, module_from_checkpoint

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

    from resattn.cli.exits import run_cli

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
