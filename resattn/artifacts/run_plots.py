"""Pictures written into a run directory: learning curves, confusion matrix, last-layer histogram."""

from __future__ import annotations

import csv
import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

if TYPE_CHECKING:
    import torch


def read_epoch_metrics(csv_path: Path) -> dict[int, dict[str, float]]:
    """Lightning CSVLogger rows merged per epoch (later rows win, so resumed runs replace replayed epochs)."""
    per_epoch: dict[int, dict[str, float]] = {}
    with open(csv_path, newline="") as handle:
        for row in csv.DictReader(handle):
            if not row.get("epoch"):
                continue
            values = per_epoch.setdefault(int(float(row["epoch"])), {})
            for key, value in row.items():
                if key not in ("epoch", "step") and value not in ("", None):
                    values[key] = float(value)
    return dict(sorted(per_epoch.items()))


def set_suptitle(fig: plt.Figure, text: str, fontsize: float = 11) -> None:
    """The figure's title, each line wrapped to its width (about 120 / fontsize characters per inch): never clipped."""
    width = int(120 / fontsize * fig.get_figwidth())
    fig.suptitle("\n".join(textwrap.fill(line, width) for line in text.splitlines()), fontsize=fontsize)


def epoch_points(metrics: Mapping[int, Mapping[str, float]], key: str) -> list[tuple[int, float]]:
    """``(epoch, value)`` of ``key`` with epochs counted from 1 (the epochs trained), the one convention of every plot."""
    return [(epoch + 1, m[key]) for epoch, m in metrics.items() if key in m]


def plot_curves(csv_path: Path, out_path: Path, title: str = "") -> Path:
    """``curves.png``: train/val loss, train/val accuracy and the learning rate per epoch (counted from 1)."""
    from matplotlib.ticker import MaxNLocator

    metrics = read_epoch_metrics(csv_path)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "acc", "accuracy")):
        for split in ("train", "val"):
            pts = epoch_points(metrics, f"{split}/{key}")
            if pts:
                ax.plot(*zip(*pts), marker="o", markersize=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    lr = epoch_points(metrics, "lr")
    if lr:
        axes[2].plot(*zip(*lr), marker="o", markersize=3, color="tab:green")
        if all(v > 0 for _, v in lr):
            axes[2].set_yscale("log")
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("learning rate")
    axes[2].grid(alpha=0.3)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    set_suptitle(fig, title or "learning curves")
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path


def plot_val_curves(runs: Mapping[str, Path], out_path: Path, title: str = "") -> Path | None:
    """``val_curves.png``: validation accuracy and loss per epoch of several runs (label -> metrics.csv); the legend
    sits below the plots, off the curves."""
    from matplotlib.ticker import MaxNLocator

    curves = {label: read_epoch_metrics(path) for label, path in runs.items() if Path(path).is_file()}
    if not any(any("val/acc" in m for m in metrics.values()) for metrics in curves.values()):
        return None
    columns = 3 if len(curves) > 4 else max(len(curves), 1)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2 + 0.22 * -(-len(curves) // columns)), layout="constrained")
    for label, metrics in curves.items():
        for ax, key in zip(axes, ("val/acc", "val/loss")):
            pts = epoch_points(metrics, key)
            if pts:
                ax.plot(*zip(*pts), marker="o", markersize=2.5, linewidth=1.4, label=label)
    for ax, key in zip(axes, ("val/acc", "val/loss")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=columns, fontsize=8, frameon=False)
    set_suptitle(fig, title or "validation curves")
    fig.savefig(out_path, dpi=150)
    plt.close(fig)
    return out_path


def plot_confusion_matrix(confusion: torch.Tensor, class_names: Sequence[str], out_path: Path, title: str = "") -> Path:
    """``confusion_matrix.png``: counts, rows = true class, with per-row accuracy in the labels."""
    cm = confusion.cpu().numpy()
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * n, 0.8 + 0.7 * n))
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    row_sums = cm.sum(axis=1)
    labels = [f"{c} ({cm[i, i] / row_sums[i]:.2f})" if row_sums[i] else c for i, c in enumerate(class_names)]
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (accuracy)")
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7, color="white" if cm[i, j] > threshold else "black")
    set_suptitle(fig, title or "test confusion matrix")
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path


def plot_weight_histogram(weights: torch.Tensor, out_path: Path, title: str = "") -> Path:
    """``last_layer_hist.png``: histogram of the classifier kernel (as in the original report)."""
    values = weights.detach().float().cpu().flatten().numpy()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(values, bins=max(10, min(200, int(math.sqrt(values.size)))), color="tab:blue")
    ax.set_xlabel("weight value")
    ax.set_ylabel("count")
    ax.set_title(title or f"last layer weights (n={values.size:,})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path
