"""Speed switches of a run: memory format (``channels_last``) and ``torch.compile`` options (no Hydra needed)."""

from __future__ import annotations

from typing import Any

CHANNELS_LAST_MIN_CPU_BATCH = 32


def channels_last_enabled(setting: bool | str | None, device_type: str, batch_size: int) -> bool:
    """``channels_last=auto``: on where it measures faster (CUDA; CPU at batch >= 32: 1.3x at 128-256)."""
    if setting == "auto":
        return device_type == "cuda" or (device_type == "cpu" and batch_size >= CHANNELS_LAST_MIN_CPU_BATCH)
    return bool(setting)


def compile_options(cfg: dict[str, Any]) -> dict[str, Any]:
    """``torch.compile`` arguments from ``compile_options`` (backend, mode, fullgraph; defaults: inductor, whole graph)."""
    options = {"backend": "inductor", "mode": None, "fullgraph": True, **(cfg.get("compile_options") or {})}
    return {key: options[key] for key in ("backend", "mode", "fullgraph")}
