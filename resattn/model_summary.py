"""Model summaries: the Keras-style layer table (``python -m resattn.model_summary [hydra overrides]``, and every
run's log file) and the few lines a run prints on the console (totals, one line per stage).

Counts follow Keras: batch-norm moving mean/variance are *non-trainable parameters*.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

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


def _forward_outputs(model: nn.Module, modules: dict[str, nn.Module], input_shape: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
    """``(name, output shape without the batch)`` of every call of the named modules in one eval-mode forward of
    a zero image, in forward order (a module called twice appears twice); the model is left as it was."""
    calls: list[tuple[str, tuple[int, ...]]] = []
    hooks = [
        module.register_forward_hook(lambda _mod, _inp, out, name=name: calls.append((name, tuple(out.shape[1:]))))
        for name, module in modules.items()
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return calls


def summarize(model: nn.Module, input_shape: tuple[int, ...] = (3, 32, 32)) -> str:
    """Per-layer table (name, type, output shape, params) in forward order, ending with Keras' three count lines."""
    leaves = {name: module for name, module in model.named_modules() if next(module.children(), None) is None}
    rows = [
        (name, type(leaves[name]).__name__, "(None, " + ", ".join(map(str, shape)) + ")", sum(_own_counts(leaves[name])))
        for name, shape in _forward_outputs(model, leaves, input_shape)
    ]

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


def _parts(model: nn.Module) -> dict[str, nn.Module]:
    """The model's top-level parts in definition order; a container of composite blocks (``blocks``) is opened
    into its blocks (``blocks.0``, ``blocks.1``, ...)."""
    parts: dict[str, nn.Module] = {}
    for name, child in model.named_children():
        blocks = list(child.named_children())
        if blocks and all(next(b.children(), None) is not None for _, b in blocks):
            parts.update((f"{name}.{n}", b) for n, b in blocks)
        else:
            parts[name] = child
    return parts


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _kinds_text(modules: list[nn.Module]) -> str:
    """``unit + attention x2`` for a residual unit followed by two attention modules."""
    names = {"ResidualUnit": "unit", "AttentionModule": "attention"}
    runs: list[list[Any]] = []
    for module in modules:
        kind = names.get(type(module).__name__, type(module).__name__)
        if runs and runs[-1][0] == kind:
            runs[-1][1] += 1
        else:
            runs.append([kind, 1])
    return " + ".join(kind if n == 1 else f"{kind} x{n}" for kind, n in runs)


def stage_summary(model: nn.Module, input_shape: tuple[int, ...] = (3, 32, 32)) -> str:
    """A few lines: the Keras counts, then one line per part with its output shape and parameters, consecutive
    blocks of the same output shape taken together as one stage::

        model: 459,738 params (455,642 trainable, 4,096 non-trainable)
          stem      8x16x16       640
          stage 1  32x16x16    12,448  unit + attention
    """
    parts = _parts(model)
    groups: list[tuple[str, tuple[int, ...], list[nn.Module]]] = []
    for name, shape in _forward_outputs(model, parts, input_shape):
        block = name.split(".")[0] != name
        if block and groups and groups[-1][0] == "stage" and groups[-1][1] == shape:
            groups[-1][2].append(parts[name])
        else:
            groups.append(("stage" if block else name, shape, [parts[name]]))
    rows, stage = [], 0
    for label, shape, modules in groups:
        if label == "stage":
            stage += 1
            label = f"stage {stage}"
        params = sum(count_params(m).total for m in modules)
        rows.append((label, _shape_text(shape), f"{params:,}", _kinds_text(modules) if label.startswith("stage") else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    counts = count_params(model)
    lines = [f"model: {counts.total:,} params ({counts.trainable:,} trainable, {counts.non_trainable:,} non-trainable)"]
    lines += [f"  {a:<{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}  {d}".rstrip() for a, b, c, d in rows]
    return "\n".join(lines)


def log_model_summary(net: nn.Module, model_cfg: Any, full: bool = False) -> None:
    """A few lines on the console (totals, one line per stage); the full layer table in the run's log file, and on
    the console too with ``full`` (``model_summary=full``)."""
    import logging
    from pathlib import Path

    from resattn.cli.quiet import LOG_FILE_ONLY

    log = logging.getLogger("resattn")
    shape = (model_cfg.in_channels, model_cfg.input_size, model_cfg.input_size)
    log_file = next((Path(h.baseFilename) for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)), None)
    where = "" if full or log_file is None else f"\n  layer table in {log_file.name} (model_summary=full prints it here)"
    log.info(stage_summary(net, shape) + where)
    log.info("\n" + summarize(net, shape), extra=None if full else LOG_FILE_ONLY)


def main(argv: list[str] | None = None) -> int:
    """Compose the training config with the given overrides and print the model summary."""
    from resattn.cli.exits import run_cli
    from resattn.config.compose import compose
    from resattn.config.renames import renamed_overrides
    from resattn.models.network import build_model
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
