"""Tables of a comparison: markdown, CSV and the console."""

from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path
from typing import Any, Sequence

from resattn.artifacts.results import format_seconds
from resattn.report.runs import PLOT_METRIC, SEED_KEY, STATUSES, Sweep
from resattn.training.metrics import AGGREGATED_METRICS, REPORTED_METRICS


def _fmt(value: Any, metric: str = "") -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if metric.endswith("_s"):
            return format_seconds(value)
        return f"{value:.4f}"
    return str(value)


def _fmt_mean_std(stats: tuple[float, float, int] | None, metric: str) -> str:
    if stats is None:
        return ""
    mean, std, n = stats
    return _fmt(mean, metric) if n == 1 else f"{_fmt(mean, metric)} ± {_fmt(std, metric)}"  # one run: no spread


def job_rows(sweep: Sweep, raw: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-job table; ``raw`` keeps full precision and every column (CSV), otherwise a
    metric that no finished run recorded (e.g. ``wall_time_s`` of runs made before it existed) is left out."""
    ok = [job for job in sweep.jobs if job.status == "ok"]
    metrics = [m for m in REPORTED_METRICS if raw or not ok or any(job.metrics.get(m) is not None for job in ok)]
    header = ["job", *sweep.keys, "status", *metrics, "error"]
    rows = []
    for job in sweep.jobs:
        numbers = [job.metrics.get(m) if job.status == "ok" else None for m in metrics]
        cells = [
            ("" if v is None else repr(v) if isinstance(v, float) else str(v)) if raw else _fmt(v, m) for v, m in zip(numbers, metrics)
        ]
        rows.append([job.name, *(job.overrides.get(k, "") for k in sweep.keys), job.status, *cells, job.error])
    return header, rows


def aggregate_rows(sweep: Sweep) -> tuple[list[str], list[list[str]]]:
    """Mean ± std over seeds per configuration (``n`` = jobs with a result / jobs)."""
    header = [*sweep.grid_keys, "n", *AGGREGATED_METRICS]
    rows = []
    for group in sweep.groups():
        n_ok = sum(job.status == "ok" for job in group.jobs)
        rows.append(
            [*group.params.values(), f"{n_ok}/{len(group.jobs)}", *(_fmt_mean_std(group.mean_std(m), m) for m in AGGREGATED_METRICS)]
        )
    return header, rows


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def headline(sweep: Sweep) -> str:
    counts = ", ".join(f"{sweep.count(s)} {s}" for s in STATUSES if sweep.count(s) or s == "ok")
    swept = ", ".join(f"`{k}`" for k in sweep.keys) or "nothing"
    text = f"{len(sweep.jobs)} {sweep.unit} ({counts}); {'swept' if sweep.unit == 'jobs' else 'compared by'}: {swept}."
    best = sweep.best()
    if best is not None and sweep.seeds_swept:
        scored = [(s, g) for g in sweep.groups() if (s := g.mean_std("val/acc_best")) is not None]
        stats, group = max(scored, key=lambda sg: sg[0][0])
        params = ", ".join(f"{k}={v}" for k, v in group.params.items()) or "all jobs"
        counts = sorted({s[2] for s, _ in scored})
        seeds = f"{stats[2]} seed{'s' if stats[2] != 1 else ''}"
        if len(counts) > 1:  # configurations with fewer seeds are noisier: say so next to the winner
            seeds += f"; configurations have {counts[0]}-{counts[-1]} seeds"
        text += (
            f" Best configuration by mean val/acc_best over {seeds}: {params}:"
            f" val/acc_best {_fmt_mean_std(stats, 'val/acc_best')},"
            f" test/acc {_fmt_mean_std(group.mean_std('test/acc'), 'test/acc')}."
        )
    elif best is not None:
        who = sweep.label(best) if sweep.unit == "runs" else f"job {best.name} ({sweep.label(best)})"
        text += f" Best by val/acc_best: {who}: val/acc_best {_fmt(best.value('val/acc_best'))}, test/acc {_fmt(best.value('test/acc'))}."
    return text


def markdown(sweep: Sweep, picture: Path | None, curves: Path | None = None, timed: Path | None = None) -> str:
    parts = [f"# {sweep.title}", "", headline(sweep), "", md_table(*job_rows(sweep))]
    if sweep.seeds_swept:
        parts += ["", f"## Mean ± std over `{SEED_KEY}`", "", md_table(*aggregate_rows(sweep))]
    if picture is not None:
        parts += ["", f"![{PLOT_METRIC} per configuration]({picture.name})"]
    if curves is not None:
        parts += ["", f"![validation curves]({curves.name})"]
    if timed is not None:
        parts += ["", f"![{PLOT_METRIC} against training time]({timed.name})", "", "Lines (one per configuration and machine):", ""]
        for name, jobs in sweep.budget_curves().items():
            points = (
                f"{job.metrics.get('epochs', '?')} ep {_fmt(job.value(PLOT_METRIC))} in {format_seconds(job.metrics['train_time_s'])}"
                for job in jobs
            )
            parts.append(f"- {name}: {', '.join(points)}")
    return "\n".join(parts) + "\n"


def csv_text(sweep: Sweep) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header, rows = job_rows(sweep, raw=True)
    writer.writerow([*header, "dir"])
    for row, job in zip(rows, sweep.jobs):
        writer.writerow([*row, str(job.path)])
    return buffer.getvalue()


def print_summary(sweep: Sweep, file: Any = None) -> None:
    """Rich tables of the jobs (and of mean ± std over seeds) on the console."""
    from rich.console import Console
    from rich.table import Table

    out = file or sys.stdout
    # Logs and pipes get wide tables (rich would wrap at 80 columns); terminals use their own width.
    console = Console(file=out, width=None if out.isatty() else 200)
    for title, (header, rows) in [(f"{'sweep' if sweep.unit == 'jobs' else 'comparison'}: {sweep.dir}", job_rows(sweep))] + (
        [(f"mean ± std over {SEED_KEY}", aggregate_rows(sweep))] if sweep.seeds_swept else []
    ):
        console.print(title, soft_wrap=True, markup=False, highlight=False)  # a path in it never wraps
        table = Table()
        for name in header:
            table.add_column(
                name,
                justify="right" if name in REPORTED_METRICS or name == "n" else "left",
                overflow="fold",
                max_width=60 if name == "error" else None,
            )
        for row in rows:
            table.add_row(*row)
        console.print(table)
    console.print(headline(sweep))
