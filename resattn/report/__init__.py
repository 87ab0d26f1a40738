"""Comparisons of runs: one row per run, written as ``summary.csv``, ``summary.md``, ``summary.png`` (the test
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

from resattn.report.cli import main, write_files, write_summary
from resattn.report.runs import (
    CSV_NAME,
    CURVES_NAME,
    MD_NAME,
    PNG_NAME,
    Job,
    Sweep,
    collect,
    collect_runs,
    find_job_dirs,
    is_run_dir,
)
from resattn.report.tables import print_summary

__all__ = [
    "CSV_NAME", "CURVES_NAME", "MD_NAME", "PNG_NAME", "Job", "Sweep", "collect", "collect_runs", "find_job_dirs",
    "is_run_dir", "main", "print_summary", "write_files", "write_summary",
]  # fmt: skip
