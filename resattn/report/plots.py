"""Pictures of a comparison: the test metric per configuration, the runs' validation curves, and the test metric
against training time."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Sequence

from resattn.report.runs import EPOCHS_KEY, PLOT_METRIC, SEED_KEY, Group, Sweep

REFERENCE_COLORS = ["tab:red", "tab:purple", "tab:brown", "tab:olive"]  # reference stars, one colour each (runs: the default cycle)


def _as_float(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _axis_values(groups: Sequence[Group], key: str) -> list[str]:
    values = list(dict.fromkeys(g.params[key] for g in groups))
    if all(_as_float(v) is not None for v in values):
        return sorted(values, key=lambda v: _as_float(v))  # type: ignore[arg-type, return-value]
    return values


def _stats_text(stats: tuple[float, float, int] | None, separator: str = " ") -> str:
    """``0.832`` for one run, ``0.832 ± 0.004 (n=2)`` for several: no spread where there is none."""
    if stats is None:
        return "no result"
    mean, std, n = stats
    return f"{mean:.3f}{separator}± {std:.3f} (n={n})" if n > 1 else f"{mean:.3f}"


def _title(text: str, sweep: Sweep, keys: Sequence[str] | None = None) -> str:
    note = sweep.baseline_text(keys)
    return f"{text}\n{note}" if note else text


def plot_summary(sweep: Sweep, out_path: Path, metric: str = PLOT_METRIC) -> Path | None:
    """A sweep: heatmap for two grid keys, line plot for one numeric key; otherwise, and for every comparison of runs,
    one dot per configuration on an axis zoomed to the results (close results stay apart); mean ± std over seeds
    where a configuration has several."""
    import matplotlib
    import numpy as np
    from matplotlib.figure import Figure

    groups = sweep.groups()
    if not any(g.values(metric) for g in groups):
        return None
    keys, seeds = sweep.grid_keys, sweep.seeds_swept
    over = f" (mean ± std over {SEED_KEY})" if seeds else ""
    if len(keys) == 2 and sweep.unit != "runs":
        rows, cols = _axis_values(groups, keys[0]), _axis_values(groups, keys[1])
        by_cell = {(g.params[keys[0]], g.params[keys[1]]): g.mean_std(metric) for g in groups}
        grid = np.full((len(rows), len(cols)), np.nan)
        for (r, c), stats in by_cell.items():
            if stats is not None:
                grid[rows.index(r), cols.index(c)] = stats[0]
        fig = Figure(figsize=(2.0 + 1.6 * len(cols), 1.6 + 1.0 * len(rows)))
        ax = fig.add_subplot()
        cmap = matplotlib.colormaps["viridis"].with_extremes(bad="lightgrey")  # grey: no result
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto")
        fig.colorbar(image, ax=ax, label=metric)
        ax.set_xticks(range(len(cols)), cols)
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel(keys[1])
        ax.set_ylabel(keys[0])
        finite = grid[np.isfinite(grid)]
        middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                if (r, c) not in by_cell:
                    continue
                dark = np.isfinite(grid[i, j]) and grid[i, j] < middle
                ax.text(j, i, _stats_text(by_cell[(r, c)], "\n"), ha="center", va="center", fontsize=9, color="white" if dark else "black")
        ax.set_title(f"{metric}{over}")
    elif len(keys) == 1 and all(_as_float(x) is not None for x in _axis_values(groups, keys[0])):
        key = keys[0]
        xs = _axis_values(groups, key)
        numeric = all(_as_float(x) is not None for x in xs)
        position = {x: (_as_float(x) if numeric else i) for i, x in enumerate(xs)}
        fig = Figure(figsize=(6.5, 4.2))
        ax = fig.add_subplot()
        for name, color in ((metric, "tab:blue"), ("val/acc_best", "tab:orange")):
            pts = [(position[g.params[key]], g.mean_std(name)) for g in groups]
            pts = sorted((x, s) for x, s in pts if s is not None)
            if not pts:
                continue
            x = [p[0] for p in pts]
            ax.errorbar(
                x, [p[1][0] for p in pts], yerr=[p[1][1] for p in pts] if seeds else None, marker="o", capsize=4, color=color, label=name
            )
            if seeds:
                for g in groups:
                    ax.scatter([position[g.params[key]]] * len(g.values(name)), g.values(name), color=color, alpha=0.3, s=12)
        if not numeric:
            ax.set_xticks(range(len(xs)), xs)
        ax.set_xlabel(key)
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title(f"{metric} vs {key}{over}")
    else:
        fig = _dot_chart(sweep, groups, metric)
    fig.tight_layout()
    fig.savefig(out_path, dpi=150)
    return out_path


def _dot_chart(sweep: Sweep, groups: Sequence[Group], metric: str):
    """One row per configuration: its mean (a dot), its seeds (faint dots) and ± std when it has several, and the
    numbers; the axis spans the results, not 0-1."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 1.5 + 0.4 * len(groups)))
    ax = fig.add_subplot()
    ends: list[float] = []
    for i, group in enumerate(groups):
        stats = group.mean_std(metric)
        if stats is None:
            ax.annotate("no result", (0, i), xycoords=("axes fraction", "data"), xytext=(6, 0), textcoords="offset points", va="center")
            continue
        mean, std, n = stats
        ax.errorbar(mean, i, xerr=std if n > 1 else None, fmt="o", color="tab:blue", capsize=3)
        if n > 1:
            ax.scatter(group.values(metric), [i] * n, s=14, color="tab:blue", alpha=0.35, zorder=3)
        ax.annotate(_stats_text(stats), (mean + std, i), xytext=(6, 0), textcoords="offset points", va="center", fontsize=8)
        ends += [mean - std, mean + std]
    low, high = min(ends), max(ends)
    span = max(high - low, 0.01)
    ax.set_xlim(low - 0.05 * span, high + 0.35 * span)
    ax.set_ylim(len(groups) - 0.5, -0.5)
    ax.set_yticks(range(len(groups)), [sweep.group_label(g) for g in groups], fontsize=8)
    ax.set_xlabel(metric)
    ax.grid(alpha=0.3, axis="x")
    seeds = any(len(g.values(metric)) > 1 for g in groups)
    ax.set_title(_title(f"{metric} per configuration{' (mean ± std over seeds)' if seeds else ''}", sweep, sweep.grid_keys), fontsize=10)
    return fig


def plot_val_curves(sweep: Sweep, out_path: Path) -> Path | None:
    from resattn.artifacts.run_plots import plot_val_curves as plot

    runs = {sweep.label(job): job.path / "csv" / "metrics.csv" for job in sweep.jobs if job.status == "ok"}
    return plot(runs, out_path, title=_title(f"validation curves ({len(runs)} {sweep.unit})", sweep))


def plot_time_to_accuracy(
    sweep: Sweep, out_path: Path, references: Sequence[tuple[str, float, float]] = (), metric: str = PLOT_METRIC
) -> Path | None:
    """``time_to_accuracy.png``: ``metric`` against training minutes (``train_time_s``), one point per run, labelled
    with its epochs, one line per :meth:`Sweep.budget_curves` curve. ``references`` (label, minutes, accuracy), e.g. a
    published result, are drawn as stars."""
    from matplotlib.figure import Figure

    curves = sweep.budget_curves(metric)
    if not curves:
        return None
    fig = Figure(figsize=(7.5, 5.2), layout="constrained")
    ax = fig.add_subplot()
    for name, jobs in curves.items():
        points = [(job.value("train_time_s") / 60, job.value(metric), job) for job in jobs]  # type: ignore[operator]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
        for minutes, value, job in points:
            epochs = job.metrics.get("epochs")
            note = f"{value:.3f}" + (f" ({epochs} ep)" if epochs else "")
            ax.annotate(note, (minutes, value), xytext=(5, -11), textcoords="offset points", fontsize=8)
    for (label, minutes, value), color in zip(references, itertools.cycle(REFERENCE_COLORS)):
        ax.plot([minutes], [value], marker="*", markersize=13, linestyle="none", color=color, label=label)
        ax.annotate(f"{value:.3f}", (minutes, value), xytext=(6, -11), textcoords="offset points", fontsize=8, color=color)
    ax.margins(x=0.12, y=0.12)  # room for the labels beside the points
    ax.set_xlim(left=0)
    ax.set_xlabel("training time (minutes)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    ncols = 1 if max(map(len, labels)) > 50 else 2  # long labels (a device named) one per row
    fig.legend(handles, labels, loc="outside lower center", ncols=ncols, fontsize=8, frameon=False)  # off the data
    ax.set_title(_title(f"{metric} against training time", sweep, [k for k in sweep.keys if k != EPOCHS_KEY]), fontsize=10)
    fig.savefig(out_path, dpi=150)
    return out_path
