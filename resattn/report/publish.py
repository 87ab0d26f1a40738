"""Publish a comparison of separate runs (``python -m resattn.report <run dir> ... --out DIR --publish``).

Into the comparison's folder, next to ``summary.*`` and ``val_curves.png``: one folder per run with its
``metrics.json`` and ``curves.png`` (redrawn from the run's history where it has one; no checkpoints), and a
``README.md`` with the table, the pictures, the command of every run, the machine and the dates.
"""

from __future__ import annotations

import re
import shlex
import shutil
import time
from pathlib import Path

import yaml

from resattn.artifacts.atomic import write_text
from resattn.artifacts.machine import machine_line
from resattn.artifacts.run_plots import plot_curves
from resattn.config.renames import renamed_overrides
from resattn.report.runs import CURVES_NAME, LOCATION_PREFIXES, PNG_NAME, SEED_KEY, TIME_NAME, Job, Sweep, run_label
from resattn.report.tables import aggregate_rows, headline, job_rows, md_table

RUN_FILES = ("metrics.json", "curves.png")


def command_of(job: Job) -> str:
    """The run's ``train.py`` command from its saved overrides (where it wrote its files left out), in today's names."""
    saved = renamed_overrides(map(str, yaml.safe_load((job.path / ".hydra" / "overrides.yaml").read_text()) or []))
    kept = [o for o in saved if not o.lstrip("+~").startswith(LOCATION_PREFIXES)]
    return " ".join(["python train.py", *map(shlex.quote, kept)])


UNRECORDED = "not recorded (metrics.json written before resattn recorded `device` and `precision`)"


def trained_on(sweep: Sweep, folders: dict[str, str]) -> list[str]:
    """The devices and precisions the runs trained in, from their ``metrics.json`` (``folders``: job name -> folder)."""
    runs_by: dict[str, list[str]] = {}
    for job in sweep.jobs:
        runs_by.setdefault(job.trained_on or UNRECORDED, []).append(folders[job.name])
    if len(runs_by) == 1:
        only = next(iter(runs_by))
        return [f"Trained on: {only}{'' if only == UNRECORDED else ' (every run)'}."]
    return ["Trained on:", "", *(f"- {key}: {', '.join(names)}" for key, names in runs_by.items())]


def run_date(job: Job) -> str:
    path = job.path / "metrics.json"
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(path.stat().st_mtime)) + " UTC" if path.is_file() else ""


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "run"


def publish(sweep: Sweep) -> Path:
    """Copy each run's files into ``sweep.dir/<label>/`` and write ``sweep.dir/README.md``."""
    rows = []
    for job in sweep.jobs:
        folder = sweep.dir / slug(sweep.label(job))
        folder.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:
            if (job.path / name).is_file():
                shutil.copy2(job.path / name, folder / name)
        history = job.path / "csv" / "metrics.csv"
        if history.is_file():  # redrawn with today's plot and label (where the data was read is no part of it)
            plot_curves(history, folder / "curves.png", title=run_label(job.path))
        rows.append((job, folder.name))
    header, table = job_rows(sweep)
    table = [[f"[{folder}]({folder}/)", *row[1:]] for row, (_, folder) in zip(table, rows)]
    lines = [f"# {sweep.title}", "", headline(sweep), "", md_table(["run", *header[1:]], table), ""]
    if sweep.seeds_swept:
        lines += [f"Mean ± std over `{SEED_KEY}` per configuration:", "", md_table(*aggregate_rows(sweep)), ""]
    for picture in (PNG_NAME, CURVES_NAME, TIME_NAME):
        if (sweep.dir / picture).is_file():
            lines += [f"![{picture}]({picture})", ""]
    lines += [
        "## Commands",
        "",
        "Each run, as run (data from `data.root` or `$RESATTN_DATA_DIR`; finished on the date shown):",
        "",
        "```bash",
    ]
    for job, folder in rows:
        lines += [f"# {folder}: {run_date(job)}", command_of(job)]
    lines += [
        "```",
        "",
        "## Machine",
        "",
        *trained_on(sweep, {job.name: folder for job, folder in rows}),
        "",
        f"Published on: {machine_line()}.",
        "",
        f"Published {time.strftime('%Y-%m-%d', time.gmtime())} with `python -m resattn.report <run dirs> --out {sweep.dir} --publish`.",
        "",
    ]
    readme = sweep.dir / "README.md"
    write_text(readme, "\n".join(lines))
    return readme
