"""Comparisons: one row per run, written as ``summary.csv``, ``summary.md``, ``summary.png`` (the test
metric per configuration) and ``val_curves.png`` (validation curves of every run).

Run by the ``SweepSummary`` Hydra callback at the end of every multirun, or afterwards (e.g. for an
interrupted sweep), and for separate runs (written to ``--out``; ``--publish`` also copies each run's
``metrics.json`` and ``curves.png`` and writes a README with the commands, the machine and the dates)::

    python -m resattn.report <sweep dir>
    python -m resattn.report <run dir> <run dir> ... [--out DIR] [--publish]

Rows are labelled by ``experiment`` (the experiment override, else the run's ``task_name``). Swept keys are
the sweep overrides of the command line (``hydra.overrides.task`` in ``multirun.yaml``), the
keys of ``hydra.sweeper.params`` and any key whose value differs between jobs. A job directory is one that
holds ``.hydra/overrides.yaml``; its status is that of its ``metrics.json`` (``ok`` / ``failed``) or
``missing`` when the job left none (killed, still running). ``seed`` is not a grid axis: when it is swept,
the summary adds mean ± std over seeds per configuration.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

SEED_KEY = "seed"
# Per-job numbers reported (in this order), then the error message and the job directory.
METRICS = ("val/acc_best", "test/acc", "test/loss", "epochs", "train_time_s")
PLOT_METRIC = "test/acc"
CSV_NAME, MD_NAME, PNG_NAME, CURVES_NAME = "summary.csv", "summary.md", "summary.png", "val_curves.png"
EXPERIMENT_KEY = "experiment"
# Overrides that say where a run wrote its files, not what it ran: never comparison axes.
LOCATION_PREFIXES = ("paths.", "hydra.")
STATUSES = ("ok", "failed", "missing")


@dataclass
class Job:
    """One job directory of a sweep."""

    name: str  # path relative to the sweep directory, e.g. "3"
    path: Path
    overrides: dict[str, str]
    metrics: dict[str, Any]
    status: str  # ok | failed | missing
    error: str = ""

    def value(self, metric: str) -> float | None:
        value = self.metrics.get(metric) if self.status == "ok" else None
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


@dataclass
class Group:
    """The jobs of one configuration (all swept keys but ``seed`` equal)."""

    params: dict[str, str]
    jobs: list[Job] = field(default_factory=list)

    def values(self, metric: str) -> list[float]:
        return [v for v in (job.value(metric) for job in self.jobs) if v is not None]

    def mean_std(self, metric: str) -> tuple[float, float, int] | None:
        values = self.values(metric)
        if not values:
            return None
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return statistics.fmean(values), std, len(values)


@dataclass
class Sweep:
    dir: Path  # the sweep directory, or where a comparison of separate runs is written
    keys: list[str]  # swept keys, seed included when swept
    jobs: list[Job]
    title: str = ""

    def label(self, job: Job) -> str:
        """``experiment, key=value, ...`` of the job's grid keys (seed included)."""
        parts = [f"{k}={job.overrides.get(k, '')}" if k != EXPERIMENT_KEY else job.overrides.get(k, "") for k in self.keys]
        return ", ".join(p for p in parts if p) or job.name

    @property
    def grid_keys(self) -> list[str]:
        return [k for k in self.keys if k != SEED_KEY]

    @property
    def seeds_swept(self) -> bool:
        return SEED_KEY in self.keys

    def count(self, status: str) -> int:
        return sum(job.status == status for job in self.jobs)

    def groups(self) -> list[Group]:
        """Jobs grouped by their non-seed swept values, in order of first appearance."""
        groups: dict[tuple[str, ...], Group] = {}
        for job in self.jobs:
            params = {k: job.overrides.get(k, "") for k in self.grid_keys}
            groups.setdefault(tuple(params.values()), Group(params)).jobs.append(job)
        return list(groups.values())

    def best(self, metric: str = "val/acc_best") -> Job | None:
        """Best ``ok`` job by a validation metric (model selection never looks at the test set)."""
        scored = [job for job in self.jobs if job.value(metric) is not None]
        return max(scored, key=lambda job: job.value(metric)) if scored else None


# --------------------------------------------------------------------------------------------- reading


def split_override(text: str) -> tuple[str, str, bool] | None:
    """``key=value`` → ``(key, value, is_sweep)`` via Hydra's override grammar; ``None`` for deletions."""
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        override = OverridesParser.create().parse_override(text)
        if override.is_delete():
            return None
        key = override.key_or_group if override.package is None else f"{override.key_or_group}@{override.package}"
        if override.is_sweep_override():
            return key, text.split("=", 1)[1], True
        return key, override.get_value_element_as_str(), False
    except Exception:  # not Hydra syntax (hand-edited files): plain split
        if "=" not in text:
            return None
        key, value = text.split("=", 1)
        return key.lstrip("+~"), value, False


def _load_yaml(path: Path) -> Any:
    try:
        with open(path) as handle:
            return yaml.safe_load(handle)
    except (OSError, yaml.YAMLError):
        return None


def _natural(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def find_job_dirs(sweep_dir: Path) -> list[Path]:
    """Directories under ``sweep_dir`` holding ``.hydra/overrides.yaml``, in natural order (2 before 10)."""
    dirs = {p.parent.parent for p in sweep_dir.glob("**/.hydra/overrides.yaml")}
    return sorted(dirs, key=lambda d: _natural(d.relative_to(sweep_dir).as_posix()))


def read_job(job_dir: Path, sweep_dir: Path) -> Job:
    overrides: dict[str, str] = {}
    for text in _load_yaml(job_dir / ".hydra" / "overrides.yaml") or []:
        parsed = split_override(str(text))
        if parsed is not None:
            overrides[parsed[0]] = parsed[1]
    name = job_dir.relative_to(sweep_dir).as_posix() if job_dir != sweep_dir else job_dir.name
    metrics_file = job_dir / "metrics.json"
    if not metrics_file.is_file():
        return Job(name, job_dir, overrides, {}, "missing", "no metrics.json (job killed, still running or not started)")
    try:
        metrics = json.loads(metrics_file.read_text())
    except (OSError, ValueError) as exc:
        return Job(name, job_dir, overrides, {}, "missing", f"unreadable metrics.json: {exc}")
    if metrics.get("task") and EXPERIMENT_KEY not in overrides:
        overrides[EXPERIMENT_KEY] = str(metrics["task"])
    status = str(metrics.get("status", "ok"))
    status = status if status in STATUSES else "failed"
    error = " ".join(str(metrics.get("error") or "").split())
    return Job(name, job_dir, overrides, metrics, status, error)


def declared_keys(config: Mapping[str, Any] | None) -> list[str]:
    """Swept keys a sweep config declares: sweep overrides of the command line, then ``hydra.sweeper.params``."""
    if not config:
        return []
    hydra = config.get("hydra") or {}
    keys: list[str] = []
    for text in (hydra.get("overrides") or {}).get("task") or []:
        parsed = split_override(str(text))
        if parsed is not None and parsed[2]:
            keys.append(parsed[0])
    params = (hydra.get("sweeper") or {}).get("params") or {}
    keys.extend(str(k) for k in params)
    return list(dict.fromkeys(keys))


def _sweep_config(sweep_dir: Path, job_dirs: Sequence[Path]) -> Mapping[str, Any] | None:
    """``multirun.yaml`` of the sweep, else the first job's ``hydra.yaml`` (its sweeper params)."""
    config = _load_yaml(sweep_dir / "multirun.yaml")
    if isinstance(config, Mapping):
        return config
    for job_dir in job_dirs[:1]:
        config = _load_yaml(job_dir / ".hydra" / "hydra.yaml")
        if isinstance(config, Mapping):
            hydra = dict(config.get("hydra") or {})
            hydra.pop("overrides", None)  # a job's own overrides are not the sweep's
            return {"hydra": hydra}
    return None


def varying_keys(jobs: Iterable[Job]) -> list[str]:
    jobs = list(jobs)
    keys = list(dict.fromkeys(k for job in jobs for k in job.overrides if not k.startswith(LOCATION_PREFIXES)))
    return [k for k in keys if len({job.overrides.get(k) for job in jobs}) > 1]


def collect(sweep_dir: str | Path, config: Mapping[str, Any] | None = None) -> Sweep:
    """Read every job of a sweep directory; ``config`` is the sweep's config (default: ``multirun.yaml``)."""
    sweep_dir = Path(sweep_dir)
    job_dirs = find_job_dirs(sweep_dir)
    jobs = [read_job(d, sweep_dir) for d in job_dirs]
    declared = declared_keys(config if config is not None else _sweep_config(sweep_dir, job_dirs))
    keys = list(dict.fromkeys([*declared, *varying_keys(jobs)]))
    return Sweep(sweep_dir, keys, jobs, title=f"Sweep summary: `{sweep_dir}`")


def is_run_dir(path: Path) -> bool:
    return (path / ".hydra" / "overrides.yaml").is_file()


def collect_runs(run_dirs: Sequence[str | Path], out_dir: str | Path) -> Sweep:
    """Separate runs as one comparison written to ``out_dir``: labelled by experiment and differing overrides."""
    jobs = []
    for run_dir in map(Path, run_dirs):
        jobs.append(read_job(run_dir, run_dir))
    keys = list(dict.fromkeys([EXPERIMENT_KEY, *varying_keys(jobs)]))
    for job in jobs:  # a key one run did not override shows that run's configured value
        for key in keys:
            if key not in job.overrides:
                job.overrides[key] = configured_value(job.path, key)
    return Sweep(Path(out_dir), keys, jobs, title=f"Comparison of {len(jobs)} runs")


def configured_value(run_dir: Path, key: str) -> str:
    """``key`` in the run's composed config (``.hydra/config.yaml``), or its config-group choice."""
    value: Any = _load_yaml(run_dir / ".hydra" / "config.yaml")
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        hydra = (_load_yaml(run_dir / ".hydra" / "hydra.yaml") or {}).get("hydra") or {}
        value = ((hydra.get("runtime") or {}).get("choices") or {}).get(key)
    return "" if value is None else str(value)


# --------------------------------------------------------------------------------------------- tables


def _fmt(value: Any, metric: str = "") -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if metric.endswith("time_s"):
            return f"{value:.1f}"
        return f"{value:.4f}"
    return str(value)


def _fmt_mean_std(stats: tuple[float, float, int] | None, metric: str) -> str:
    if stats is None:
        return ""
    mean, std, _ = stats
    return f"{_fmt(mean, metric)} ± {_fmt(std, metric)}"


def job_rows(sweep: Sweep, raw: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-job table; ``raw`` keeps full precision (CSV)."""
    header = ["job", *sweep.keys, "status", *METRICS, "error"]
    rows = []
    for job in sweep.jobs:
        numbers = [job.metrics.get(m) if job.status == "ok" else None for m in METRICS]
        cells = [("" if v is None else repr(v) if isinstance(v, float) else str(v)) if raw else _fmt(v, m)
                 for v, m in zip(numbers, METRICS)]
        rows.append([job.name, *(job.overrides.get(k, "") for k in sweep.keys), job.status, *cells, job.error])
    return header, rows


def aggregate_rows(sweep: Sweep) -> tuple[list[str], list[list[str]]]:
    """Mean ± std over seeds per configuration (``n`` = jobs with a result / jobs)."""
    metrics = ("val/acc_best", "test/acc", "test/loss")
    header = [*sweep.grid_keys, "n", *metrics]
    rows = []
    for group in sweep.groups():
        n_ok = sum(job.status == "ok" for job in group.jobs)
        rows.append([*group.params.values(), f"{n_ok}/{len(group.jobs)}",
                     *(_fmt_mean_std(group.mean_std(m), m) for m in metrics)])
    return header, rows


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def headline(sweep: Sweep) -> str:
    counts = ", ".join(f"{sweep.count(s)} {s}" for s in STATUSES if sweep.count(s) or s == "ok")
    swept = ", ".join(f"`{k}`" for k in sweep.keys) or "nothing"
    text = f"{len(sweep.jobs)} jobs ({counts}); swept: {swept}."
    best = sweep.best()
    if best is not None and sweep.seeds_swept:
        scored = [(g.mean_std("val/acc_best"), g) for g in sweep.groups()]
        stats, group = max(((s, g) for s, g in scored if s is not None), key=lambda sg: sg[0][0])
        params = ", ".join(f"{k}={v}" for k, v in group.params.items()) or "all jobs"
        text += (f" Best configuration by mean val/acc_best over {stats[2]} seeds: {params}:"
                 f" val/acc_best {_fmt_mean_std(stats, 'val/acc_best')},"
                 f" test/acc {_fmt_mean_std(group.mean_std('test/acc'), 'test/acc')}.")
    elif best is not None:
        params = ", ".join(f"{k}={best.overrides.get(k, '')}" for k in sweep.keys)
        text += (f" Best by val/acc_best: job {best.name} ({params}): val/acc_best {_fmt(best.value('val/acc_best'))},"
                 f" test/acc {_fmt(best.value('test/acc'))}.")
    return text


def markdown(sweep: Sweep, picture: Path | None, curves: Path | None = None) -> str:
    parts = [f"# {sweep.title}", "", headline(sweep), "", _md_table(*job_rows(sweep))]
    if sweep.seeds_swept:
        parts += ["", f"## Mean ± std over `{SEED_KEY}`", "", _md_table(*aggregate_rows(sweep))]
    if picture is not None:
        parts += ["", f"![{PLOT_METRIC} per configuration]({picture.name})"]
    if curves is not None:
        parts += ["", f"![validation curves]({curves.name})"]
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------------------------- picture


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
    """Heatmap for two grid keys, line plot for one, bars otherwise; mean ± std over seeds when swept."""
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
                ax.text(j, i, _cell_text(by_cell[(r, c)], seeds), ha="center", va="center", fontsize=9,
                        color="white" if dark else "black")
        ax.set_title(f"{metric}{over}")
    elif len(keys) == 1:
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
            ax.errorbar(x, [p[1][0] for p in pts], yerr=[p[1][1] for p in pts] if seeds else None,
                        marker="o", capsize=4, color=color, label=name)
            if seeds:
                for g in groups:
                    ax.scatter([position[g.params[key]]] * len(g.values(name)), g.values(name),
                               color=color, alpha=0.3, s=12)
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
        ax.barh(list(y), [s[0] if s else 0.0 for s in stats],
                xerr=[s[1] if s else 0.0 for s in stats] if seeds else None, color="tab:blue", capsize=3)
        ax.set_yticks(list(y), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(metric)
        ax.grid(alpha=0.3, axis="x")
        ax.set_title(f"{metric} per configuration{over}")
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    return out_path


# --------------------------------------------------------------------------------------------- writing


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", newline="") as handle:
        handle.write(text)
    os.replace(tmp, path)


def csv_text(sweep: Sweep) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header, rows = job_rows(sweep, raw=True)
    writer.writerow([*header, "dir"])
    for row, job in zip(rows, sweep.jobs):
        writer.writerow([*row, str(job.path)])
    return buffer.getvalue()


def plot_val_curves(sweep: Sweep, out_path: Path) -> Path | None:
    from resattn.plots import plot_val_curves as plot

    runs = {sweep.label(job): job.path / "csv" / "metrics.csv" for job in sweep.jobs if job.status == "ok"}
    return plot(runs, out_path, title=f"validation curves ({len(runs)} runs)")


def write_files(sweep: Sweep) -> Sweep:
    """Write ``summary.csv``, ``summary.md`` and (when there are results) ``summary.png`` and ``val_curves.png``."""
    sweep.dir.mkdir(parents=True, exist_ok=True)
    picture = plot_summary(sweep, sweep.dir / PNG_NAME)
    curves = plot_val_curves(sweep, sweep.dir / CURVES_NAME)
    _write_atomic(sweep.dir / CSV_NAME, csv_text(sweep))
    _write_atomic(sweep.dir / MD_NAME, markdown(sweep, picture, curves))
    return sweep


def write_summary(sweep_dir: str | Path, config: Mapping[str, Any] | None = None) -> Sweep:
    """Collect a sweep directory and write its summary files into it."""
    return write_files(collect(sweep_dir, config))


def print_summary(sweep: Sweep, file: Any = None) -> None:
    """Rich tables of the jobs (and of mean ± std over seeds) on the console."""
    from rich.console import Console
    from rich.table import Table

    out = file or sys.stdout
    # Logs and pipes get wide tables (rich would wrap at 80 columns); terminals use their own width.
    console = Console(file=out, width=None if out.isatty() else 200)
    for title, (header, rows) in [(f"sweep: {sweep.dir}", job_rows(sweep))] + (
        [(f"mean ± std over {SEED_KEY}", aggregate_rows(sweep))] if sweep.seeds_swept else []
    ):
        table = Table(title=title)
        for name in header:
            table.add_column(name, justify="right" if name in METRICS or name == "n" else "left",
                             overflow="fold", max_width=60 if name == "error" else None)
        for row in rows:
            table.add_row(*row)
        console.print(table)
    console.print(headline(sweep))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resattn.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", type=Path, nargs="+", metavar="DIR",
                        help="one multirun directory (holds multirun.yaml and job dirs), or train.py run directories")
    parser.add_argument("--out", type=Path, help="where a comparison of runs is written (default: outputs/reports/<time>)")
    parser.add_argument("--publish", action="store_true",
                        help="also copy each run's metrics.json and curves.png into --out and write its README.md")
    parser.add_argument("--quiet", action="store_true", help="write the files without printing the table")
    args = parser.parse_args(argv)
    for path in args.dirs:
        if not path.is_dir():
            print(f"error: {path} is not a directory; pass a multirun directory or train.py run directories", file=sys.stderr)
            return 2
    single_sweep = len(args.dirs) == 1 and not is_run_dir(args.dirs[0])
    if single_sweep and not find_job_dirs(args.dirs[0]):
        print(f"error: no job directories (with .hydra/overrides.yaml) under {args.dirs[0]}", file=sys.stderr)
        return 2
    if not single_sweep:
        not_runs = [str(p) for p in args.dirs if not is_run_dir(p)]
        if not_runs:
            print(f"error: {', '.join(not_runs)}: not a train.py run directory (no .hydra/overrides.yaml); "
                  "compare run directories, or pass a single multirun directory alone", file=sys.stderr)
            return 2
    if single_sweep:
        sweep = write_summary(args.dirs[0])
    else:
        out = args.out or Path("outputs") / "reports" / __import__("time").strftime("%Y-%m-%d_%H-%M-%S")
        sweep = write_files(collect_runs(args.dirs, out))
        if args.publish:
            from resattn.publish import publish

            publish(sweep)
    if not args.quiet:
        print_summary(sweep)
    print(f"wrote {sweep.dir / CSV_NAME} and {sweep.dir / MD_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
