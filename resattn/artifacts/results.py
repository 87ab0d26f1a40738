"""Final numbers of a run: ``metrics.json`` (flat) and a printed results table."""

from __future__ import annotations

import json
import math
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


def write_metrics(run_dir: Path, metrics: Mapping[str, Any]) -> Path:
    """Write ``metrics.json`` atomically (a crash never leaves half a file)."""
    path = Path(run_dir) / METRICS_FILE
    flat = {k: to_number(v) for k, v in metrics.items()}
    write_text(path, json.dumps(flat, indent=2, sort_keys=True) + "\n")
    return path


def print_results(metrics: Mapping[str, Any], title: str = "results") -> None:
    """Rich table of the headline numbers (accuracies as percentages)."""
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        value = to_number(value)
        if isinstance(value, float):
            text = f"{value:.4f}" if "acc" not in key else f"{value:.4f} ({100 * value:.2f} %)"
        else:
            text = str(value)
        table.add_row(key, text)
    Console().print(table)
