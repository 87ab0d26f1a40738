"""Export a trained model: ``python -m resattn.export ckpt_path=<run dir|.ckpt|weights name> format=onnx [out=...]``.

* ``format=onnx`` (needs the ``export`` extra: ``pip install -e ".[export]"``) and ``format=torchscript``: the
  network *with its normalisation*. Input ``images``: float32 ``N×3×H×W`` RGB in **0-1** (torchvision's
  ``ToTensor`` / ``to_dtype(scale=True)`` convention; H = W = the model's input size), any batch size; output
  ``logits`` ``N×num_classes``. The class names are in the ONNX metadata (``class_names``, JSON) and in the
  TorchScript module's ``class_names`` attribute.
* ``format=safetensors`` [``half=true``]: the weights file of the registry (:mod:`resattn.weights`) with the
  config and preprocessing in its metadata; prints the sha256 and the ``Weights(...)`` entry to add.

``out`` defaults to ``<run dir>/export/model.onnx`` (``.pt``, ``.safetensors``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Sequence

import torch
from omegaconf import OmegaConf
from torch import nn

from resattn.errors import ConfigError

FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}
DEFAULTS: dict[str, Any] = {"ckpt_path": None, "format": "onnx", "out": None, "half": False, "opset": 17}
USAGE = "usage: python -m resattn.export ckpt_path=<run dir|.ckpt|weights name> format=onnx|torchscript|safetensors [out=<file>]"


class Normalized(nn.Module):
    """``net((x - mean) / std)`` for 0-1 images ``x``: the network with the training normalisation in front."""

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.net = net
        std_t = torch.tensor(std, dtype=torch.float64)
        self.register_buffer("scale", (1.0 / std_t).float().view(1, -1, 1, 1))
        self.register_buffer("shift", (-torch.tensor(mean, dtype=torch.float64) / std_t).float().view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images * self.scale + self.shift)


def normalized_model(module: Any) -> Normalized:
    """The eval-mode, contiguous-memory network of a :class:`ResAttnModule` with its stored normalisation."""
    prep = module.preprocessing
    return Normalized(module.net, prep["mean"], prep["std"]).eval().to(memory_format=torch.contiguous_format)


def export_onnx(model: Normalized, example: torch.Tensor, out: Path, class_names: Sequence[str], opset: int) -> None:
    try:
        import onnx
    except ImportError:
        raise ConfigError('format=onnx needs the onnx package: pip install -e ".[export]"') from None
    import warnings

    tmp = out.with_name(out.name + ".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation and tracer notes
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            dynamo=False,
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=opset,
        )
    graph = onnx.load(str(tmp))
    graph.metadata_props.add(key="class_names", value=json.dumps(list(class_names)))
    graph.metadata_props.add(key="input", value="float32 N x 3 x H x W RGB in 0-1; normalisation is inside the graph")
    onnx.checker.check_model(graph)
    onnx.save(graph, str(out))
    tmp.unlink()


def export_torchscript(model: Normalized, example: torch.Tensor, out: Path, class_names: Sequence[str]) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example)
    traced.save(str(out), _extra_files={"class_names.json": json.dumps(list(class_names))})


def export(options: dict[str, Any]) -> Path:
    from resattn import weights
    from resattn.models.builders import architecture_of
    from resattn.training.from_checkpoint import ensure_preprocessing, module_from_checkpoint

    fmt = options["format"]
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt!r}: not supported; allowed: {', '.join(FORMATS)}")
    if not isinstance(options["half"], bool):
        raise ConfigError(f"half={options['half']!r}: expected true or false")
    module, stored, ckpt_file = module_from_checkpoint(str(options["ckpt_path"]))
    ensure_preprocessing(module, stored, ckpt_file)
    run_dir = ckpt_file.parent.parent if ckpt_file.parent.name == "checkpoints" else Path.cwd()
    out = Path(str(options["out"])) if options["out"] else run_dir / "export" / f"model{FORMATS[fmt]}"
    out.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    if fmt == "safetensors":
        cfg = OmegaConf.to_container(stored)
        digest = weights.save(module.net, cfg, module.preprocessing, out, half=options["half"])
        model = cfg["model"]
        arch = architecture_of(model)
        print(f"weights: {out}\nsha256: {digest}")
        print(
            "registry entry (resattn/weights.py, REGISTRY):\n"
            f'    "<name>": Weights("<name>", url="weights/{out.name}", sha256="{digest}", builder="{arch or "<architecture>"}",\n'
            f'        meta={{"test_acc": <from eval.py>, "width": {model["width"]}, '
            f'"protocol": {json.dumps(module.preprocessing.get("protocol"))}, "command": "<train command>"}}),'
        )
        return out
    size = int(module.preprocessing.get("input_size", stored.model.input_size))
    example = torch.rand(2, int(module.preprocessing.get("in_channels", 3)), size, size)
    model = normalized_model(module)
    if fmt == "onnx":
        export_onnx(model, example, out, module.class_names, int(options["opset"]))
    else:
        export_torchscript(model, example, out, module.class_names)
    print(f"exported: {out} (input: float32 N x 3 x {size} x {size} RGB in 0-1, normalisation included; output: logits)")
    return out


def main(argv: list[str] | None = None) -> int:
    from resattn.cli.exits import run_cli
    from resattn.cli.options import parse_options

    def body() -> int:
        export(parse_options(argv, DEFAULTS, USAGE, required=("ckpt_path",)))
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
