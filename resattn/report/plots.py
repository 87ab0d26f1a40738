"""Pictures of a comparison: the test metric per configuration and the runs' validation curves."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from resattn.report.runs import PLOT_METRIC, SEED_KEY, Group, Sweep


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


def _cell_text(stats: tuple[float, float, int] | None, seeds: bool) -> str:
    if stats is None:
        return "no result"
    mean, std, n = stats
    return f"{mean:.3f}\n±{std:.3f} (n={n})" if seeds else f"{mean:.3f}"


def plot_summary(sweep: Sweep, out_path: Path, metric: str = PLOT_METRIC) -> Path | None:
    """Heatmap for two grid keys, line plot for one numeric key, bars otherwise; mean ± std over seeds when swept."""
    import matplotlib
    import numpy as np
    from matplotlib.figure import Figure

    groups = sweep.groups()
    if not any(g.values(metric) for g in groups):
        return None
    keys, seeds = sweep.grid_keys, sweep.seeds_swept
    over = f" (mean ± std over {SEED_KEY})" if seeds else ""
    if len(keys) == 2:
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
                ax.text(j, i, _cell_text(by_cell[(r, c)], seeds), ha="center", va="center", fontsize=9, color="white" if dark else "black")
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
        labels = [", ".join(f"{k}={v}" for k, v in g.params.items()) or "all jobs" for g in groups]
        stats = [g.mean_std(metric) for g in groups]
        fig = Figure(figsize=(7.5, 1.2 + 0.4 * len(groups)))
        ax = fig.add_subplot()
        y = range(len(groups))
        ax.barh(
            list(y),
            [s[0] if s else 0.0 for s in stats],
            xerr=[s[1] if s else 0.0 for s in stats] if seeds else None,
            color="tab:blue",
            capsize=3,
        )
        ax.set_yticks(list(y), labels, fontsize=8)
        for i, st in enumerate(stats):
            if st is not None:
                ax.text(st[0], i, f" {st[0]:.3f}", va="center", fontsize=8)
        ax.set_xlim(0, 1.08 * max((s[0] + s[1] for s in stats if s), default=1.0))
        ax.invert_yaxis()
        ax.set_xlabel(metric)
        ax.grid(alpha=0.3, axis="x")
        ax.set_title(f"{metric} per configuration{over}")
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    return out_path


def plot_val_curves(sweep: Sweep, out_path: Path) -> Path | None:
    from resattn.artifacts.run_plots import plot_val_curves as plot

    runs = {sweep.label(job): job.path / "csv" / "metrics.csv" for job in sweep.jobs if job.status == "ok"}
    return plot(runs, out_path, title=f"validation curves ({len(runs)} runs)")
