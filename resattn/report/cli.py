"""``python -m resattn.report``: write (and print) the comparison of a sweep or of separate runs."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from resattn.artifacts.atomic import write_text
from resattn.cli.exits import run_cli
from resattn.errors import ConfigError
from resattn.report.plots import plot_summary, plot_time_to_accuracy, plot_val_curves
from resattn.report.runs import CSV_NAME, CURVES_NAME, MD_NAME, PNG_NAME, TIME_NAME, Sweep, collect, collect_runs, find_job_dirs, is_run_dir
from resattn.report.tables import csv_text, markdown, print_summary

DESCRIPTION = "Write summary.csv, summary.md, summary.png and val_curves.png for a sweep or for separate runs."
Reference = tuple[str, float, float]  # label, training minutes, accuracy


def write_files(sweep: Sweep, time_to_accuracy: bool = False, references: Sequence[Reference] = ()) -> Sweep:
    """Write ``summary.csv``, ``summary.md`` and (when there are results) ``summary.png`` and ``val_curves.png``;
    with ``time_to_accuracy`` also ``time_to_accuracy.png`` (``references`` drawn into it)."""
    sweep.dir.mkdir(parents=True, exist_ok=True)
    picture = plot_summary(sweep, sweep.dir / PNG_NAME)
    curves = plot_val_curves(sweep, sweep.dir / CURVES_NAME)
    timed = plot_time_to_accuracy(sweep, sweep.dir / TIME_NAME, references) if time_to_accuracy else None
    write_text(sweep.dir / CSV_NAME, csv_text(sweep))
    write_text(sweep.dir / MD_NAME, markdown(sweep, picture, curves, timed))
    return sweep


def parse_reference(text: str) -> Reference:
    """``LABEL:MINUTES:ACCURACY`` (the label may hold colons) -> ``(label, minutes, accuracy)``."""
    parts = text.rsplit(":", 2)
    try:
        label, minutes, value = parts[0], float(parts[1]), float(parts[2])
    except (IndexError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r}: expected LABEL:MINUTES:ACCURACY, e.g. 'original, P100:76.8:0.7854'") from None
    if not label:
        raise argparse.ArgumentTypeError(f"{text!r}: the label before MINUTES:ACCURACY is empty")
    return label, minutes, value


def write_summary(sweep_dir: str | Path, config: Mapping[str, Any] | None = None) -> Sweep:
    """Collect a sweep directory and write its summary files into it."""
    return write_files(collect(sweep_dir, config))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resattn.report", description=DESCRIPTION)
    parser.add_argument(
        "dirs",
        type=Path,
        nargs="+",
        metavar="DIR",
        help="one multirun directory (holds multirun.yaml and job dirs), or train.py run directories",
    )
    parser.add_argument("--out", type=Path, help="where a comparison of runs is written (default: outputs/reports/<time>)")
    parser.add_argument(
        "--publish", action="store_true", help="also copy each run's metrics.json and curves.png into --out and write its README.md"
    )
    parser.add_argument("--title", help="heading of a comparison of runs (default: Comparison of N runs)")
    parser.add_argument(
        "--time-to-accuracy",
        action="store_true",
        help="also write time_to_accuracy.png: test/acc against training minutes (runs differing only in trainer.max_epochs joined)",
    )
    parser.add_argument(
        "--reference",
        type=parse_reference,
        action="append",
        default=[],
        metavar="LABEL:MINUTES:ACCURACY",
        help="a published point drawn into time_to_accuracy.png (repeatable)",
    )
    parser.add_argument("--quiet", action="store_true", help="write the files without printing the table")
    args = parser.parse_args(argv)
    if args.reference and not args.time_to_accuracy:
        parser.error("--reference is drawn into time_to_accuracy.png: add --time-to-accuracy")
    return run_cli(lambda: _report(args))


def _report(args: argparse.Namespace) -> int:
    for path in args.dirs:
        if not path.is_dir():
            raise ConfigError(f"{path} is not a directory; pass a multirun directory or train.py run directories")
    single_sweep = len(args.dirs) == 1 and not is_run_dir(args.dirs[0])
    if single_sweep and not find_job_dirs(args.dirs[0]):
        raise ConfigError(f"no job directories (with .hydra/overrides.yaml) under {args.dirs[0]}")
    if not single_sweep:
        not_runs = [str(p) for p in args.dirs if not is_run_dir(p)]
        if not_runs:
            raise ConfigError(
                f"{', '.join(not_runs)}: not a train.py run directory (no .hydra/overrides.yaml); "
                "compare run directories, or pass a single multirun directory alone"
            )
    if single_sweep and (args.publish or args.out):
        raise ConfigError(
            f"--out/--publish compare run directories; pass the job directories of {args.dirs[0]} "
            "(e.g. <sweep dir>/*/) instead of the sweep directory"
        )
    if single_sweep:
        sweep = write_files(collect(args.dirs[0]), args.time_to_accuracy, args.reference)
    else:
        out = args.out or Path("outputs") / "reports" / time.strftime("%Y-%m-%d_%H-%M-%S")
        sweep = collect_runs(args.dirs, out)
        sweep.title = args.title or sweep.title
        write_files(sweep, args.time_to_accuracy, args.reference)
        if args.publish:
            from resattn.report.publish import publish

            publish(sweep)
    if not args.quiet:
        print_summary(sweep)
    print(f"wrote {sweep.dir / CSV_NAME} and {sweep.dir / MD_NAME}")
    return 0
