"""Loading checkpoints and run directories with precise, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from resattn.errors import CheckpointError

REQUIRED_KEYS = ("state_dict", "hyper_parameters")


def load_checkpoint(path: str | Path, key: str = "ckpt_path") -> dict[str, Any]:
    """Load a resattn Lightning checkpoint on the CPU, rejecting missing, truncated or foreign files."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"{key}={path}: no such file; pass a .ckpt file (e.g. <run dir>/checkpoints/last.ckpt) or a run directory")
    if not path.is_file():
        raise CheckpointError(f"{key}={path}: not a file; pass a .ckpt file or a run directory")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for corrupt files
        reason = " ".join(str(exc).split())[:160]
        raise CheckpointError(f"{key}={path}: unreadable or truncated checkpoint ({type(exc).__name__}: {reason}); use another checkpoint, e.g. last.ckpt") from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED_KEYS) or "cfg" not in (ckpt.get("hyper_parameters") or {}):
        raise CheckpointError(f"{key}={path}: not a resattn checkpoint (no stored model config); pass a checkpoint written by train.py")
    return ckpt


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
    raise CheckpointError(f"ckpt_path={run_dir}: no checkpoints in {run_dir / 'checkpoints'}; pass a run directory of train.py or a .ckpt file")
