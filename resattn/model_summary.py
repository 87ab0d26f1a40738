"""Keras-style model summary: ``python -m resattn.model_summary [hydra overrides]``.

Counts follow Keras: batch-norm moving mean/variance are *non-trainable parameters*.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@dataclass(frozen=True)
class ParamCounts:
    total: int
    trainable: int
    non_trainable: int


def _own_counts(module: nn.Module) -> tuple[int, int]:
    """(trainable, non-trainable) Keras-convention counts of one module, not of its children."""
    trainable = sum(p.numel() for p in module.parameters(recurse=False) if p.requires_grad)
    frozen = sum(p.numel() for p in module.parameters(recurse=False) if not p.requires_grad)
    if isinstance(module, _BatchNorm) and module.track_running_stats:
        frozen += module.running_mean.numel() + module.running_var.numel()
    return trainable, frozen


def count_params(model: nn.Module) -> ParamCounts:
    """Keras-convention parameter counts of a whole model."""
    trainable = frozen = 0
    for m in model.modules():
        t, f = _own_counts(m)
        trainable, frozen = trainable + t, frozen + f
    return ParamCounts(trainable + frozen, trainable, frozen)


def summarize(model: nn.Module, input_shape: tuple[int, ...] = (3, 32, 32)) -> str:
    """Per-layer table (name, type, output shape, params) in forward order, ending with Keras' three count lines."""
    rows: list[tuple[str, str, str, int]] = []
    hooks = []
    for name, module in model.named_modules():
        if next(module.children(), None) is not None:
            continue

        def hook(mod: nn.Module, _inp, out, name: str = name) -> None:
            shape = "(None, " + ", ".join(str(s) for s in out.shape[1:]) + ")"
            rows.append((name, type(mod).__name__, shape, sum(_own_counts(mod))))

        hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)

    widths = [max(len(r[i]) for r in rows + [("Layer", "Type", "Output shape", "")]) for i in range(3)]
    line = "-" * (sum(widths) + 20)
    out = [line, f"{'Layer':<{widths[0]}}  {'Type':<{widths[1]}}  {'Output shape':<{widths[2]}}  {'Param #':>12}", line]
    out += [f"{n:<{widths[0]}}  {t:<{widths[1]}}  {s:<{widths[2]}}  {p:>12,}" for n, t, s, p in rows]
    counts = count_params(model)
    out += [
        line,
        f"Total params: {counts.total:,}",
        f"Trainable params: {counts.trainable:,}",
        f"Non-trainable params: {counts.non_trainable:,}",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Compose the training config with the given overrides and print the model summary."""
    from resattn.cli.exits import run_cli
    from resattn.config.compose import compose
    from resattn.models.network import build_model
    from resattn.config.renames import renamed_overrides
    from resattn.validation import check_model

    def body() -> int:
        cfg = compose("train", renamed_overrides(sys.argv[1:] if argv is None else argv))
        check_model(cfg)
        model = build_model(cfg)
        print(summarize(model, (cfg.model.in_channels, cfg.model.input_size, cfg.model.input_size)))
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
