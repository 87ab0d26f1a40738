"""Classify your own images with a trained model.

    python -m resattn.predict ckpt_path=<run dir | .ckpt | weights name> inputs=<image file, folder or [a.png,b.jpg]>
        [out=<file.csv>] [topk=5] [resize=true] [batch_size=256] [tta=none|flip|flip_translate]

PNG and JPEG files are decoded with torchvision's decoders (a folder means every ``.png``/``.jpg``/``.jpeg``
under it, sorted), resized to the model's input size (``resize=false`` refuses other sizes instead), normalised
with the statistics stored in the checkpoint and classified through ``trainer.predict`` (the module's
``predict_step``). A top-k table goes to the screen; ``out=`` writes one CSV row per image: file, predicted
class, probability, top-k (``class:probability`` pairs separated by ``;``).

A bad file (unreadable, not 3-channel RGB, wrong size with ``resize=false``) is reported on one line; the others
are still classified and the exit status is 1. When no input can be classified the exit status is 2.
``tta=`` sets the test-time augmentation (:mod:`resattn.training.tta`); by default the run's own, as ``eval.py`` does.
"""

from __future__ import annotations

import csv
import io
import logging
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from resattn.errors import EXIT_JOBS_FAILED, ConfigError, DataError
from resattn.training.tta import TTA_MODES

DEFAULTS: dict[str, Any] = {"ckpt_path": None, "inputs": None, "out": None, "topk": 5, "resize": True, "batch_size": 256, "tta": None}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
USAGE = (
    "usage: python -m resattn.predict ckpt_path=<run dir|.ckpt|weights name> inputs=<image file or folder> "
    "[out=<csv>] [topk=5] [tta=none|flip|flip_translate]"
)


@dataclass(frozen=True)
class Prediction:
    file: str
    top: list[tuple[str, float]]  # (class name, probability), most probable first


def image_files(inputs: str | Sequence[str]) -> list[Path]:
    """The image files ``inputs`` names: files as given, folders expanded to their PNG/JPEG files (recursively)."""
    files: list[Path] = []
    for item in [inputs] if isinstance(inputs, str) else list(inputs):
        path = Path(str(item)).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataError(
                    f"inputs={path}: no {'/'.join(IMAGE_SUFFIXES)} images in this folder; "
                    "point inputs at image files or a folder holding them"
                )
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"inputs={path}: no such file or folder; pass image files or a folder of PNG/JPEG images")
    return files


def read_image(path: Path, size: int, channels: int, resize: bool) -> torch.Tensor:
    """``path`` decoded to a uint8 ``C×size×size`` tensor; a :class:`DataError` (one line) if it cannot be used."""
    from torchvision.io import ImageReadMode, decode_image, read_file
    from torchvision.transforms.v2.functional import resize as resize_image

    try:
        image = decode_image(read_file(str(path)), mode=ImageReadMode.UNCHANGED)
    except (RuntimeError, ValueError, OSError) as exc:
        reason = str(exc).split(".cpp:", 1)[-1].split(", ", 1)[-1].split(".")[0]  # torchvision: "<op>, <file>.cpp:<n>, <reason>."
        raise DataError(f"{path}: unreadable image ({' '.join(reason.split())[:100]}); expected a PNG or JPEG file") from None
    if image.dtype != torch.uint8:
        raise DataError(
            f"{path}: {str(image.dtype).removeprefix('torch.')} pixels; expected 8-bit images (save it as an 8-bit PNG or JPEG)"
        )
    if image.shape[0] != channels:
        kind = {1: "grayscale", 2: "grayscale + alpha", 4: "RGBA"}.get(int(image.shape[0]), "")
        raise DataError(
            f"{path}: {image.shape[0]} channel(s){f' ({kind})' if kind else ''}; "
            f"the model takes {channels}-channel RGB images: convert it to RGB"
        )
    if tuple(image.shape[1:]) != (size, size):
        if not resize:
            raise DataError(
                f"{path}: {image.shape[2]}x{image.shape[1]} pixels; the model takes {size}x{size} images (resize=false): "
                "resize it, or pass resize=true"
            )
        image = resize_image(image, [size, size], antialias=True)
    return image


def classify(module: Any, images: torch.Tensor, batch_size: int, precision: Any = "32-true") -> torch.Tensor:
    """Class probabilities ``N×K`` of uint8 ``images`` through ``trainer.predict`` (the module's ``predict_step``)."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    from resattn.cli.quiet import silence_harmless_warnings

    quiet = logging.getLogger("pytorch_lightning")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # no "GPU available" lines between the user and the table
    try:
        with warnings.catch_warnings():
            silence_harmless_warnings()  # e.g. a deprecation note inside Lightning's predict loop
            trainer = pl.Trainer(
                accelerator="auto", devices=1, precision=precision, logger=False, enable_progress_bar=False, enable_model_summary=False
            )
            batches = trainer.predict(module, dataloaders=DataLoader(TensorDataset(images), batch_size=batch_size))
    finally:
        quiet.setLevel(level)
    return torch.cat([b.float().cpu() for b in batches])


def top_k(probabilities: torch.Tensor, class_names: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
    values, indices = probabilities.topk(k, dim=1)
    return [[(class_names[int(i)], float(v)) for v, i in zip(vs, ix)] for vs, ix in zip(values, indices)]


def to_csv(predictions: Sequence[Prediction]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", "predicted", "probability", "topk"])
    for p in predictions:
        writer.writerow([p.file, p.top[0][0], f"{p.top[0][1]:.6f}", ";".join(f"{c}:{v:.6f}" for c, v in p.top)])
    return buffer.getvalue()


def table(predictions: Sequence[Prediction], limit: int | None = None) -> str:
    shown = list(predictions[:limit] if limit else predictions)
    width = max([len("file"), *(len(p.file) for p in shown)])
    lines = [f"{'file':<{width}}  top-{len(shown[0].top) if shown else 0}", "-" * (width + 40)]
    lines += [f"{p.file:<{width}}  " + "  ".join(f"{c} {v:.3f}" for c, v in p.top) for p in shown]
    if len(shown) < len(predictions):
        lines.append(f"... {len(predictions) - len(shown)} more rows")
    return "\n".join(lines)


def _option_int(options: dict[str, Any], key: str, low: int, high: int | None = None) -> int:
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ConfigError(f"{key}={value!r}: out of range; expected an integer {bound}")
    return value


def predict(options: dict[str, Any]) -> tuple[list[Prediction], list[str]]:
    """Predictions for the readable inputs and one message per input that could not be used."""
    from omegaconf import OmegaConf

    from resattn.training.from_checkpoint import ensure_preprocessing, module_from_checkpoint

    if not isinstance(options["resize"], bool):
        raise ConfigError(f"resize={options['resize']!r}: expected true or false")
    batch_size = _option_int(options, "batch_size", 1)
    files = image_files(options["inputs"])
    module, stored, ckpt_file = module_from_checkpoint(str(options["ckpt_path"]))
    ensure_preprocessing(module, stored, ckpt_file)
    if options["tta"] is not None:  # else the run's own test-time augmentation, as eval.py
        if options["tta"] not in TTA_MODES:
            raise ConfigError(f"tta={options['tta']!r}: not supported; expected one of {', '.join(TTA_MODES)}")
        module.tta = options["tta"]
    k = _option_int(options, "topk", 1, module.num_classes)
    prep = module.preprocessing
    size, channels = int(prep.get("input_size", stored.model.input_size)), int(prep.get("in_channels", stored.model.in_channels))
    images, used, problems = [], [], []
    for path in files:
        try:
            images.append(read_image(path, size, channels, options["resize"]))
            used.append(path)
        except DataError as exc:
            problems.append(str(exc))
    if not images:
        if len(problems) == 1:
            raise DataError(problems[0])
        raise DataError(f"none of the {len(files)} inputs could be read; first: {problems[0]}")
    precision = OmegaConf.select(stored, "trainer.precision", default="32-true")
    probabilities = classify(module.eval(), torch.stack(images), batch_size, precision)
    return [Prediction(str(p), top) for p, top in zip(used, top_k(probabilities, module.class_names, k))], problems


def main(argv: list[str] | None = None) -> int:
    from resattn.artifacts.atomic import write_text
    from resattn.cli.exits import print_error, run_cli
    from resattn.cli.options import parse_options

    def body() -> int:
        options = parse_options(argv, DEFAULTS, USAGE, required=("ckpt_path", "inputs"))
        predictions, problems = predict(options)
        for message in problems:
            print_error(message)
        print(table(predictions, limit=20 if options["out"] else None))
        if options["out"]:
            out = Path(str(options["out"]))
            out.parent.mkdir(parents=True, exist_ok=True)
            write_text(out, to_csv(predictions))
            print(f"predictions: {out} ({len(predictions)} rows)")
        if problems:
            print(f"{len(problems)} of {len(problems) + len(predictions)} inputs could not be classified (listed above)", file=sys.stderr)
            return EXIT_JOBS_FAILED
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
