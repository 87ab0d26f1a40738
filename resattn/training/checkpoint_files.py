"""Checkpoint files: loading them with precise one-line errors, the run config they store, whether they fit a model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch

from resattn.config.renames import renamed_stored
from resattn.errors import CheckpointError

REQUIRED_KEYS = ("state_dict", "hyper_parameters")


def run_record(cfg: Mapping[str, Any], preprocessing: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a checkpoint's ``hyper_parameters`` (and a weights file's header) hold: the run's resolved config and
    the model's preprocessing. Every checkpoint, whichever version wrote it, has this layout."""
    return {"cfg": cfg, "preprocessing": preprocessing}


# Classes a checkpoint may name by a module path they have left: old ``_target_`` prefix -> where they live now.
MOVED_TARGETS = {"resattn.schedulers.": "resattn.training.schedulers.", "resattn.loggers.": "resattn.artifacts.loggers."}


def run_config_of(ckpt: Mapping[str, Any]) -> dict[str, Any] | None:
    """The resolved run config a checkpoint (or a weights file's checkpoint-shaped dict) stores, with the
    ``_target_`` of every class that moved since (:data:`MOVED_TARGETS`) renamed in place; None if none."""
    cfg = (ckpt.get("hyper_parameters") or {}).get("cfg")
    if cfg is not None:
        _retarget(cfg)
    return cfg


def _retarget(tree: Any) -> None:
    if isinstance(tree, dict):
        target = tree.get("_target_")
        for old, new in MOVED_TARGETS.items():
            if isinstance(target, str) and target.startswith(old):
                tree["_target_"] = new + target.removeprefix(old)
        for value in tree.values():
            _retarget(value)
    elif isinstance(tree, list):
        for value in tree:
            _retarget(value)


def preprocessing_of(ckpt: Mapping[str, Any]) -> dict[str, Any] | None:
    """The preprocessing a checkpoint stores (None: written before checkpoints carried it)."""
    return (ckpt.get("hyper_parameters") or {}).get("preprocessing")


def read_checkpoint(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """A resattn checkpoint file loaded on the CPU and ``None``, or ``None`` and what is wrong with it."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for corrupt files
        reason = " ".join(str(exc).split())[:80]
        return None, f"unreadable or truncated checkpoint ({type(exc).__name__}: {reason})"
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED_KEYS) or run_config_of(ckpt) is None:
        return None, "not a resattn checkpoint (no stored model config)"
    return ckpt, None


def load_checkpoint(path: str | Path, key: str = "ckpt_path") -> dict[str, Any]:
    """Load a resattn Lightning checkpoint on the CPU, rejecting missing, truncated or foreign files."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"{key}={path}: no such file; pass a .ckpt file (e.g. <run dir>/checkpoints/last.ckpt) or a run directory")
    if not path.is_file():
        raise CheckpointError(f"{key}={path}: not a file; pass a .ckpt file or a run directory")
    ckpt, problem = read_checkpoint(path)
    if ckpt is None:
        fix = "use another checkpoint, e.g. last.ckpt" if problem.startswith("unreadable") else "pass a checkpoint written by train.py"
        raise CheckpointError(f"{key}={path}: {problem}; {fix}")
    renamed_stored(ckpt["hyper_parameters"])  # a checkpoint written under old names reads in today's
    return ckpt


def _flatten(tree: Any, prefix: str) -> dict[str, Any]:
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}.{k}"))
        return out
    return {prefix: tree}


def config_differences(stored: Mapping[str, Any] | None, current: Mapping[str, Any] | None, prefix: str = "model") -> list[str]:
    """``key (checkpoint A, now B)`` for every leaf of two config sections that differs."""
    a, b = _flatten(stored or {}, prefix), _flatten(current or {}, prefix)
    return [f"{k} (checkpoint {a.get(k, '<unset>')}, now {b.get(k, '<unset>')})" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def state_shapes(module: torch.nn.Module) -> dict[str, torch.Size]:
    """``{state-dict key: shape}`` of a module: what :func:`check_compatible` compares a checkpoint with."""
    return {k: v.shape for k, v in module.state_dict().items()}


def _shape(size: Any) -> str:
    return "(" + ", ".join(str(int(d)) for d in size) + ")"


def check_compatible(
    shapes: Mapping[str, Any],
    ckpt: Mapping[str, Any],
    key: str,
    model_cfg: Mapping[str, Any] | None = None,
    fix: str = "use a checkpoint of the same model, or set the model config the checkpoint was trained with",
    prefix: str = "",
    exclude: str | None = None,
) -> None:
    """Raise a one-line :class:`CheckpointError` when ``ckpt``'s weights do not fit a model with ``shapes``.

    ``shapes`` maps state-dict keys to shapes (``module.state_dict()`` shapes); the message names the first
    mismatching tensor with both shapes and the ``model.*`` config keys that differ from the checkpoint's.
    Only keys starting with ``prefix`` and not with ``exclude`` are compared.
    """
    keep = lambda k: k.startswith(prefix) and not (exclude and k.startswith(exclude))  # noqa: E731
    stored = {k: v for k, v in (ckpt.get("state_dict") or {}).items() if keep(k)}
    shapes = {k: v for k, v in shapes.items() if keep(k)}
    mismatch = next(
        ((k, v.shape, shapes[k]) for k, v in stored.items() if k in shapes and hasattr(v, "shape") and tuple(v.shape) != tuple(shapes[k])),
        None,
    )
    missing = [k for k in shapes if k not in stored]
    unexpected = [k for k in stored if k not in shapes]
    if mismatch is None and not missing and not unexpected:
        return
    if mismatch is not None:
        name, theirs, ours = mismatch
        what = f"{name} is {_shape(theirs)} in the checkpoint but {_shape(ours)} in the configured model"
    elif missing:
        what = f"{len(missing)} tensor(s) of the configured model are not in the checkpoint (first: {missing[0]})"
    else:
        what = f"{len(unexpected)} checkpoint tensor(s) do not exist in the configured model (first: {unexpected[0]})"
    stored_model = (run_config_of(ckpt) or {}).get("model")
    diffs = config_differences(stored_model, model_cfg) if model_cfg is not None else []
    where = f"; config differs at {', '.join(diffs[:3])}" if diffs else ""
    raise CheckpointError(f"{key}: incompatible model: {what}{where}; {fix}")


CLASSIFIER = "net.classifier."  # the head's dense layer: what a fine-tune to other classes re-initialises


def new_classifier(shapes: Mapping[str, Any], ckpt: Mapping[str, Any]) -> bool:
    """Whether the classifier, and only the classifier, has other shapes than the checkpoint's (a fine-tune to
    another ``model.num_classes`` or input size); every other tensor is then checked by :func:`check_compatible`."""
    stored = ckpt.get("state_dict") or {}
    differ = {k for k, v in shapes.items() if k in stored and tuple(getattr(stored[k], "shape", ())) != tuple(v)}
    return bool(differ) and all(k.startswith(CLASSIFIER) for k in differ)


def best_checkpoint_of_run(run_dir: Path) -> Path:
    """The best checkpoint a train.py run recorded in its metrics.json (else its only/last checkpoint)."""
    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        try:
            best = json.loads(metrics_file.read_text()).get("best_ckpt")
        except json.JSONDecodeError:
            raise CheckpointError(f"ckpt_path={run_dir}: metrics.json is not valid JSON; pass a checkpoint file instead") from None
        if best and (run_dir / best).is_file():
            return run_dir / best
    ckpts = sorted(p for p in (run_dir / "checkpoints").glob("*.ckpt") if p.name != "last.ckpt")
    if ckpts:
        return ckpts[-1]
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        return run_dir / "checkpoints" / "last.ckpt"
    raise CheckpointError(
        f"ckpt_path={run_dir}: no checkpoints in {run_dir / 'checkpoints'}; pass a run directory of train.py or a .ckpt file"
    )
