"""Final numbers of a run: ``metrics.json`` (flat) and a printed results table."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Mapping

from rich.console import Console
from rich.table import Table

from resattn.artifacts.atomic import write_text

METRICS_FILE = "metrics.json"


def to_number(value: Any) -> Any:
    """Tensors and numpy scalars to plain Python numbers (JSON-safe)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def format_seconds(seconds: float) -> str:
    """A measured time rounded to seconds: ``45 s``, ``2 min 16 s``, ``1 h 05 min``."""
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def format_value(key: str, value: Any) -> str:
    """A metric for a table: times (``*_s``) rounded to seconds, accuracies also as percentages, floats to 4 digits."""
    value = to_number(value)
    if isinstance(value, float) and key.endswith("_s"):
        return format_seconds(value)
    if isinstance(value, float):
        return f"{value:.4f}" if "acc" not in key else f"{value:.4f} ({100 * value:.2f} %)"
    return "" if value is None else str(value)


def write_metrics(run_dir: Path, metrics: Mapping[str, Any]) -> Path:
    """Write ``metrics.json`` atomically (a crash never leaves half a file)."""
    path = Path(run_dir) / METRICS_FILE
    flat = {k: to_number(v) for k, v in metrics.items()}
    write_text(path, json.dumps(flat, indent=2, sort_keys=True) + "\n")
    return path


def print_results(metrics: Mapping[str, Any], title: str = "results") -> None:
    """``title`` on a line of its own (a path in it never wraps), then a rich table of the headline numbers."""
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right", no_wrap=True)
    for key, value in metrics.items():
        table.add_row(key, format_value(key, value))
    console = Console(width=None if sys.stdout.isatty() else 200)  # logs and pipes: no wrapping at 80 columns
    console.print(title, soft_wrap=True, markup=False, highlight=False)
    console.print(table)
