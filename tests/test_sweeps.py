"""Issue 5: multirun summaries, named sweeps (grid, Optuna), launchers (joblib, submitit_local), sweep checks."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from resattn import report
from resattn.cli.sweep_callbacks import (
    check_optimized_metric,
    check_optuna_storage,
    ddp_relaunches_script,
    single_run_argv,
)
from resattn.training.metrics import CLASS_METRIC, RESULT_METRICS, TEST_METRICS
from tests.conftest import TINY, compose_cfg, run_script

# Tiny sweeps: one epoch, and per-run pictures/logs that do not matter here switched off where possible.
SWEEP = [*TINY, "trainer.max_epochs=1"]


def _rows(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "summary.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _metrics(job_dir: str | Path) -> dict:
    return json.loads((Path(job_dir) / "metrics.json").read_text())


# ------------------------------------------------------------------------------------ grid + failures


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A 3 × 2 grid in which lr=1e30 diverges at run time: 4 jobs succeed, 2 fail (one sweep, one subprocess).

    (A value the config checks reject, such as dropout=1.5, stops the whole sweep before it starts instead.)
    """
    sweep_dir = tmp_path_factory.mktemp("grid") / "sweep"
    proc = run_script("train.py", "-m", *SWEEP, "optimizer.lr=0.01,1e30,0.02", "regularization.l2=0,0.01", f"hydra.sweep.dir={sweep_dir}")
    return sweep_dir, proc


def test_grid_summary_has_one_row_per_job_matching_metrics(grid: tuple[Path, object]) -> None:
    sweep_dir, proc = grid
    rows = _rows(sweep_dir)
    assert [r["job"] for r in rows] == [str(i) for i in range(6)], proc.stderr[-3000:]
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 4
    assert {(r["optimizer.lr"], r["regularization.l2"]) for r in ok} == {("0.01", "0"), ("0.01", "0.01"), ("0.02", "0"), ("0.02", "0.01")}
    for row in ok:
        on_disk = _metrics(row["dir"])
        assert float(row["test/acc"]) == on_disk["test/acc"]
        assert float(row["val/acc_best"]) == on_disk["val/acc_best"]
        assert int(row["epochs"]) == on_disk["epochs"] == 1
        assert float(row["train_time_s"]) == on_disk["train_time_s"]
    md = (sweep_dir / "summary.md").read_text()
    assert "| job | optimizer.lr | regularization.l2 | status |" in md
    assert "![test/acc per configuration](summary.png)" in md
    assert (sweep_dir / "summary.png").stat().st_size > 10_000
    assert "sweep:" in proc.stdout and "test/acc" in proc.stdout  # table printed at the end of the sweep


def test_failed_jobs_are_reported_and_sweep_exits_nonzero(grid: tuple[Path, object]) -> None:
    sweep_dir, proc = grid
    failed = [r for r in _rows(sweep_dir) if r["status"] == "failed"]
    assert [r["optimizer.lr"] for r in failed] == ["1e+30", "1e+30"]
    assert all(r["error"].startswith("TrainingDiverged: ") for r in failed)
    assert all(r["test/acc"] == "" for r in failed)
    # The summary is written first, then the sweep exits 1 with one line naming the count.
    assert proc.returncode == 1
    assert "error: sweep" in proc.stderr and "2 of 6 jobs failed or are missing" in proc.stderr


def test_known_metric_names_match_what_train_writes(grid: tuple[Path, object]) -> None:
    sweep_dir, _ = grid
    on_disk = _metrics(sweep_dir / "0")
    numeric = {k for k, v in on_disk.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    declared = set(RESULT_METRICS) | set(TEST_METRICS)
    assert declared <= numeric
    assert all(CLASS_METRIC.match(k) for k in numeric - declared)


def test_report_cli_regenerates_the_same_summary(grid: tuple[Path, object]) -> None:
    sweep_dir, _ = grid
    before = {name: (sweep_dir / name).read_text() for name in ("summary.csv", "summary.md")}
    for name in ("summary.csv", "summary.md", "summary.png"):
        (sweep_dir / name).unlink()
    proc = run_script("-m", "resattn.report", str(sweep_dir), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert {name: (sweep_dir / name).read_text() for name in before} == before
    assert (sweep_dir / "summary.png").is_file()
    bad = run_script("-m", "resattn.report", str(sweep_dir / "0" / "csv"))
    assert bad.returncode == 2 and bad.stderr.startswith("error: no job directories")


# ------------------------------------------------------------------------------------ named sweeps


def test_optuna_sweep_runs_three_trials(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "optuna"
    proc = run_script("train.py", "hparams_search=optuna", "hydra.sweeper.n_trials=3", *SWEEP, f"hydra.sweep.dir={sweep_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _rows(sweep_dir)
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    keys = ["regularization.dropout", "regularization.l2", "optimizer.lr"]
    assert all(k in rows[0] for k in keys)
    assert len({tuple(r[k] for k in keys) for r in rows}) == 3  # three different sampled configurations
    result = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert result["best_value"] == pytest.approx(max(float(r["val/acc_best"]) for r in rows))
    assert (sweep_dir / "multirun.yaml").is_file()  # written by SweepChecks: the Optuna sweeper writes none


def test_bad_sweep_value_stops_the_multirun_before_any_job(tmp_path: Path) -> None:
    """Every job's config is checked up front: the bad value of job 1 stops job 0 from starting too."""
    sweep_dir = tmp_path / "sweep"
    proc = run_script("train.py", "-m", "debug=smoke", "regularization.dropout=0.2,1.5", f"hydra.sweep.dir={sweep_dir}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "regularization.dropout=1.5" in last
    assert not sweep_dir.exists() and "Launching" not in proc.stdout


def test_a_checkpoint_shared_by_the_jobs_is_checked_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Preflight loads ``ckpt_path`` once for jobs that differ only in other keys, once per model otherwise."""
    from resattn.config.preflight import preflight
    from resattn.validation import inputs

    loads: list[str] = []
    monkeypatch.setattr(inputs, "_check_inputs", lambda cfg, task: loads.append(str(cfg.model.width)))
    monkeypatch.setattr(inputs, "_CHECKED", set())
    ckpt = tmp_path / "start.ckpt"
    ckpt.write_bytes(b"stand-in: the loading itself is replaced")
    preflight("train", ["-m", *TINY, f"ckpt_path={ckpt}", "optimizer.lr=0.1,0.2,0.3"])
    assert loads == ["4"]
    preflight("train", ["-m", *TINY, f"ckpt_path={ckpt}", "optimizer.lr=0.1,0.2", "model.width=4,8"])
    assert loads == ["4", "8"]  # the width-4 jobs were checked already


def test_jobs_of_a_multirun_are_enumerated_for_the_checks() -> None:
    from resattn.config.preflight import job_overrides

    assert job_overrides("train", ["optimizer.lr=0.1"]) == [["optimizer.lr=0.1"]]
    assert job_overrides("train", ["-m", "seed=1,2", "model.attention=arl,none"]) == [
        ["seed=1", "model.attention=arl"],
        ["seed=1", "model.attention=none"],
        ["seed=2", "model.attention=arl"],
        ["seed=2", "model.attention=none"],
    ]
    grid = job_overrides("train", ["hparams_search=label_noise"])  # sweeps from the config: -m implied
    assert len(grid) == 10 and ["hparams_search=label_noise", "data.label_noise=0.7", "model.attention=none"] in grid
    fixed = job_overrides("train", ["hparams_search=label_noise", "data.label_noise=0.3"])  # the command line wins
    assert fixed == [["hparams_search=label_noise", "data.label_noise=0.3", f"model.attention={a}"] for a in ("arl", "none")]


def test_misnamed_optimized_metric_stops_sweep_before_training(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "bad"
    proc = run_script("train.py", "hparams_search=optuna", "optimized_metric=val/acc_bset", *SWEEP, f"hydra.sweep.dir={sweep_dir}")
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [errors[0]] and "optimized_metric='val/acc_bset'" in errors[0] and "val/acc_best" in errors[0]
    assert "Traceback" not in proc.stderr
    assert not list(sweep_dir.glob("*/metrics.json"))  # nothing trained


def _compose_with_hydra(overrides: list[str]):
    from hydra.core.global_hydra import GlobalHydra

    from resattn.config.compose import compose

    GlobalHydra.instance().clear()
    return compose("train", overrides, with_hydra=True)


def test_named_sweeps_compose() -> None:
    grid = _compose_with_hydra(["hparams_search=dropout_l2"])
    assert dict(grid.hydra.sweeper.params) == {"regularization.dropout": "0.0,0.2,0.4", "regularization.l2": "0,1e-4,1e-2"}
    assert str(grid.hydra.mode) == "RunMode.MULTIRUN"  # -m is implied
    optuna = _compose_with_hydra(["hparams_search=optuna", "hydra.sweeper.n_trials=7"])
    assert optuna.hydra.sweeper._target_.endswith("OptunaSweeper")
    assert optuna.hydra.sweeper.n_trials == 7 and optuna.hydra.sweeper.direction == "maximize"
    assert optuna.optimized_metric == "val/acc_best"


# ------------------------------------------------------------------------------------ launchers


def test_joblib_parallel_jobs_get_their_own_dirs_and_logs(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "joblib"
    proc = run_script(
        "train.py",
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *SWEEP,
        "regularization.dropout=0.0,0.4",
        f"hydra.sweep.dir={sweep_dir}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout + proc.stderr
    rows = _rows(sweep_dir)
    assert [(r["job"], r["status"], r["regularization.dropout"]) for r in rows] == [("0", "ok", "0.0"), ("1", "ok", "0.4")]
    for row in rows:
        job = Path(row["dir"])
        # Lightning's CSV/TensorBoard output stays in its own job: its own hparams, one epoch of rows.
        hparams = yaml.safe_load((job / "csv" / "hparams.yaml").read_text())
        assert str(hparams["cfg"]["regularization"]["dropout"]) == row["regularization.dropout"]
        with open(job / "csv" / "metrics.csv", newline="") as handle:
            val_rows = [r for r in csv.DictReader(handle) if r.get("val/acc")]
        assert len(val_rows) == 1
        assert len(list((job / "tensorboard").glob("events.out.tfevents.*"))) >= 1


def test_submitit_local_runs_two_jobs(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "submitit"
    proc = run_script(
        "train.py",
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        *SWEEP,
        "regularization.dropout=0.0,0.4",
        f"hydra.sweep.dir={sweep_dir}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _rows(sweep_dir)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert (sweep_dir / ".submitit").is_dir()


def test_run_and_sweep_dirs_are_unique_within_a_second() -> None:
    cfgs = [_compose_with_hydra([]) for _ in range(3)]
    run_dirs = {OmegaConf.select(cfg, "hydra.run.dir") for cfg in cfgs}
    sweep_dirs = {OmegaConf.select(cfg, "hydra.sweep.dir") for cfg in cfgs}
    assert len(run_dirs) == len(sweep_dirs) == 3
    assert all(re.search(r"_\d{2}-\d{2}-\d{2}_\d{6}$", d) for d in run_dirs | sweep_dirs)


def test_slurm_preset_maps_ddp_devices_to_tasks() -> None:
    cfg = _compose_with_hydra(["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "hydra.launcher.partition=gpu"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "gpu"
    assert (launcher.tasks_per_node, launcher.gpus_per_node, launcher.nodes) == (4, 4, 1)


# ------------------------------------------------------------------------------------ checks (in-process)


def test_optimized_metric_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("val/acc_best", "test/acc", "test/acc_cat", "train_time_s"):
        check_optimized_metric(compose_cfg(tmp_path, [f"optimized_metric={name}"]))
    with pytest.raises(SystemExit) as exit_info:
        check_optimized_metric(compose_cfg(tmp_path, ["optimized_metric=test/acc", "test=false"]))
    assert exit_info.value.code == 2
    assert "test=false" in capsys.readouterr().err


def test_optuna_storage_needs_sqlalchemy_1(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    cfg = OmegaConf.create({"hydra": {"sweeper": {"storage": "sqlite:///study.db"}}})
    if int(version("sqlalchemy").split(".")[0]) >= 2:
        with pytest.raises(SystemExit) as exit_info:
            check_optuna_storage(cfg)
        assert exit_info.value.code == 2 and "SQLAlchemy < 2" in capsys.readouterr().err
    else:
        check_optuna_storage(cfg)
    check_optuna_storage(OmegaConf.create({"hydra": {"sweeper": {"storage": None}}}))


def test_ddp_relaunch_detection() -> None:
    assert ddp_relaunches_script({"strategy": "ddp", "devices": 2})
    assert ddp_relaunches_script({"strategy": "auto", "devices": -1})
    assert not ddp_relaunches_script({"strategy": "ddp_spawn", "devices": 2})
    assert not ddp_relaunches_script({"strategy": "ddp", "devices": 1})
    assert not ddp_relaunches_script({"strategy": "auto", "devices": 1})


def test_single_run_argv_keeps_config_flags_and_job_overrides() -> None:
    cfg = OmegaConf.create(
        {
            "hydra": {
                "overrides": {
                    "task": ["trainer=ddp", "regularization.dropout=0.4"],
                    "hydra": ["hydra.sweep.dir=/s", "hydra.mode=MULTIRUN", "hydra/launcher=basic", "hydra.verbose=true"],
                }
            }
        }
    )
    argv = single_run_argv(["train.py", "-m", "-cn", "train", "regularization.dropout=0.0,0.4"], cfg)
    assert argv == [
        "train.py",
        "--config-name",
        "train",
        "trainer=ddp",
        "regularization.dropout=0.4",
        "hydra.verbose=true",
        "hydra.mode=RUN",
    ]


# ------------------------------------------------------------------------------------ report (no training)


def _fake_sweep(root: Path, task: list[str], jobs: list[tuple[dict[str, str], dict | None]]) -> Path:
    root.mkdir(parents=True)
    (root / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": task}}}))
    for i, (overrides, metrics) in enumerate(jobs):
        job = root / str(i)
        (job / ".hydra").mkdir(parents=True)
        fixed = [o for o in task if "," not in o]
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([*fixed, *(f"{k}={v}" for k, v in overrides.items())]))
        if metrics is not None:
            (job / "metrics.json").write_text(json.dumps({"status": "ok", "epochs": 3, **metrics}))
    return root


def test_seed_sweep_reports_mean_and_std(tmp_path: Path) -> None:
    jobs = []
    for dropout, accs in (("0.0", (0.50, 0.52, 0.54)), ("0.4", (0.60, 0.60, 0.66)), ("0.8", (0.30, None, None))):
        for seed, acc in zip((1, 2, 3), accs):
            jobs.append(
                (
                    {"regularization.dropout": dropout, "seed": str(seed)},
                    None if acc is None else {"test/acc": acc, "val/acc_best": acc + 0.01, "test/loss": 1.0},
                )
            )
    jobs[5] = (jobs[5][0], None)  # dropout=0.4 seed=3 was killed: status missing, excluded from the mean
    sweep_dir = _fake_sweep(tmp_path / "s", ["data=synthetic", "regularization.dropout=0.0,0.4,0.8", "seed=1,2,3"], jobs)
    sweep = report.write_summary(sweep_dir)
    assert sweep.keys == ["regularization.dropout", "seed"] and sweep.seeds_swept
    assert [j.status for j in sweep.jobs].count("missing") == 3
    md = (sweep_dir / "summary.md").read_text()
    assert "## Mean ± std over `seed`" in md
    assert "| 0.0 | 3/3 | 0.5300 ± 0.0200 | 0.5200 ± 0.0200 | 1.0000 ± 0.0000 |" in md
    assert "| 0.4 | 2/3 | 0.6100 ± 0.0000 | 0.6000 ± 0.0000 |" in md
    assert "| 0.8 | 1/3 | 0.3100 | 0.3000 | 1.0000 |" in md  # one run: its value, no made-up spread
    assert "Best configuration by mean val/acc_best over 2 seeds; configurations have 1-3 seeds: regularization.dropout=0.4:" in md
    rows = _rows(sweep_dir)
    assert rows[5]["status"] == "missing" and "no metrics.json" in rows[5]["error"]
    assert (sweep_dir / "summary.png").is_file()  # line plot over dropout with std error bars


def test_two_keys_with_seeds_give_annotated_heatmap(tmp_path: Path) -> None:
    jobs = [
        ({"a": a, "b": b, "seed": s}, {"test/acc": 0.1 * int(s) + float(a), "val/acc_best": 0.5})
        for a in ("1", "2")
        for b in ("x", "y")
        for s in ("1", "2")
    ]
    sweep_dir = _fake_sweep(tmp_path / "h", ["a=1,2", "b=x,y", "seed=1,2"], jobs)
    sweep = report.write_summary(sweep_dir)
    groups = sweep.groups()
    assert len(groups) == 4
    mean, std, n = groups[0].mean_std("test/acc")
    assert (n, mean) == (2, pytest.approx(1.15)) and std == pytest.approx(math.sqrt(0.005))
    assert (sweep_dir / "summary.png").is_file()


def test_swept_keys_without_multirun_yaml_come_from_differences(tmp_path: Path) -> None:
    sweep_dir = _fake_sweep(
        tmp_path / "o", ["data=synthetic"], [({"optimizer.lr": "0.001"}, {"test/acc": 0.2}), ({"optimizer.lr": "0.01"}, {"test/acc": 0.3})]
    )
    (sweep_dir / "multirun.yaml").unlink()
    assert report.collect(sweep_dir).keys == ["optimizer.lr"]
