"""Reading comparisons: the jobs of a multirun directory, or separately started run directories."""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from resattn.config.renames import renamed_overrides, renamed_value

SEED_KEY = "seed"
PLOT_METRIC = "test/acc"
CSV_NAME, MD_NAME, PNG_NAME, CURVES_NAME = "summary.csv", "summary.md", "summary.png", "val_curves.png"
TIME_NAME = "time_to_accuracy.png"
EXPERIMENT_KEY = "experiment"
EPOCHS_KEY = "trainer.max_epochs"  # the budget axis of Sweep.budget_curves
# Overrides that say where a run read its data or wrote its files, or which of its own checkpoints it continued from
# (resume=<run dir>: the same run), not what it ran: never comparison axes, left out of published commands and figure
# titles (the run's data: line and its hashes say which data it was).
LOCATION_PREFIXES = ("paths.", "hydra.", "data.root", "data.download", "resume")
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
    configured: set[str] = field(default_factory=set)  # compared keys it did not override: its config's value

    def value(self, metric: str) -> float | None:
        value = self.metrics.get(metric) if self.status == "ok" else None
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

    @property
    def trained_on(self) -> str | None:
        """``<device>; precision <precision>`` as its ``metrics.json`` records them (None: written before resattn
        recorded them)."""
        device, precision = self.metrics.get("device"), self.metrics.get("precision")
        return f"{device}; precision {precision}" if device else None


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
    unit: str = "jobs"  # what a row is: a sweep's jobs, or separately started runs

    def label(self, job: Job) -> str:
        """``experiment, key=value, ...``: a sweep's job with every swept key (seed included); a run of a comparison
        with only the keys where it differs from :meth:`baseline`."""
        return self._label({k: job.overrides.get(k, "") for k in self.keys}) or job.name

    def label_without(self, job: Job, key: str) -> str:
        """:meth:`label` of ``job`` leaving ``key`` out (e.g. the budget, to name a budget curve)."""
        return self._label({k: job.overrides.get(k, "") for k in self.keys if k != key})

    def budget_curves(self, metric: str = PLOT_METRIC) -> dict[str, list[Job]]:
        """The finished jobs with a training time and ``metric``, by budget curve: jobs that differ only in
        ``trainer.max_epochs`` and trained on the same device in the same precision share a curve (a curve never joins
        times from two machines), in order of training time. Named by :meth:`label_without` and the device."""
        curves: dict[str, list[Job]] = {}
        for job in self.jobs:
            if job.value("train_time_s") is None or job.value(metric) is None:
                continue
            name = self.label_without(job, EPOCHS_KEY) or "runs"
            curves.setdefault(f"{name} ({job.trained_on})" if job.trained_on else name, []).append(job)
        return {name: sorted(jobs, key=lambda job: job.metrics["train_time_s"]) for name, jobs in curves.items()}

    def group_label(self, group: Group) -> str:
        """:meth:`label` of a configuration (its non-seed keys)."""
        return self._label(group.params) or "all jobs"

    def _label(self, values: Mapping[str, str]) -> str:
        base = self.baseline()
        parts = [v if k == EXPERIMENT_KEY else f"{k}={v}" for k, v in values.items() if k == EXPERIMENT_KEY or base.get(k) != v]
        return ", ".join(p for p in parts if p)

    def baseline(self) -> dict[str, str]:
        """For a comparison of runs, per compared key (the experiment aside), the value of the runs that left it as
        configured (the most common one); labels leave it out. A key that every run set on its command line
        (``model.attention=nal`` against ``none``) has none: each run names its value. Empty for a sweep, whose
        labels name every swept key."""
        if self.unit != "runs":
            return {}
        base = {}
        for key in (k for k in self.keys if k != EXPERIMENT_KEY):
            values = [job.overrides.get(key, "") for job in self.jobs if key in job.configured]
            if values:
                base[key] = max(values, key=values.count)  # the first of the most frequent
        return base

    def baseline_text(self, keys: Sequence[str] | None = None) -> str:
        """``labels show what differs from seed=42, model.attention=arl`` (of ``keys``, default: all), or ``""`` when
        labels name every key."""
        base = {k: v for k, v in self.baseline().items() if keys is None or k in keys}
        return f"labels show what differs from {', '.join(f'{k}={v}' for k, v in base.items())}" if base else ""

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
    for text in renamed_overrides(map(str, _load_yaml(job_dir / ".hydra" / "overrides.yaml") or [])):
        parsed = split_override(text)
        if parsed is not None:
            overrides[parsed[0]] = parsed[1]
    overrides.setdefault(EXPERIMENT_KEY, configured_value(job_dir, "task_name"))  # no override: its task_name
    name = job_dir.relative_to(sweep_dir).as_posix() if job_dir != sweep_dir else job_dir.name
    metrics_file = job_dir / "metrics.json"
    if not metrics_file.is_file():
        return Job(name, job_dir, overrides, {}, "missing", "no metrics.json (job killed, still running or not started)")
    try:
        metrics = json.loads(metrics_file.read_text())
    except (OSError, ValueError) as exc:
        return Job(name, job_dir, overrides, {}, "missing", f"unreadable metrics.json: {exc}")
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


def run_label(run_dir: Path) -> str:
    """A run's name for figure titles: its experiment (else its task) and the overrides it was started with, where it
    wrote left out: ``improved (scale=cpu, seed=1)``."""
    job = read_job(run_dir, run_dir)
    experiment = job.overrides.pop(EXPERIMENT_KEY, "")
    rest = [f"{k}={v}" for k, v in job.overrides.items() if not k.startswith(LOCATION_PREFIXES)]
    return f"{experiment} ({', '.join(rest)})" if rest and experiment else ", ".join(rest) or experiment or run_dir.name


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
                job.configured.add(key)
    return Sweep(Path(out_dir), keys, jobs, title=f"Comparison of {len(jobs)} runs", unit="runs")


def configured_value(run_dir: Path, key: str) -> str:
    """``key`` in the run's composed config (``.hydra/config.yaml``), or its config-group choice."""
    value: Any = _load_yaml(run_dir / ".hydra" / "config.yaml")
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        hydra = (_load_yaml(run_dir / ".hydra" / "hydra.yaml") or {}).get("hydra") or {}
        value = ((hydra.get("runtime") or {}).get("choices") or {}).get(key)
    return "" if value is None else renamed_value(key, str(value))
