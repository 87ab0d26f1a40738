"""Issue 13: experiment trackers through the ``logger=`` group, offline (``pip install -e .[tracking]``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import TINY, run_script

RUN = [*TINY, "trainer.max_epochs=2"]


def test_mlflow_run_is_written_to_a_local_store_and_reads_back(tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow", reason="the tracking extra is not installed")
    run, log_dir = tmp_path / "run", tmp_path / "outputs"
    proc = run_script("train.py", *RUN, "logger=mlflow", f"paths.log_dir={log_dir}", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{log_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("train")  # experiment_name = task_name
    (logged,) = client.search_runs([experiment.experiment_id])
    assert logged.data.tags["run_dir"] == str(run)
    assert logged.data.metrics["test/acc"] == pytest.approx(metrics["test/acc"])
    assert len(client.get_metric_history(logged.info.run_id, "val/acc")) == metrics["epochs"] == 2
    assert logged.data.params["cfg/optimizer/lr"] == "0.01"  # the run's config as parameters
    assert (run / "tensorboard").is_dir() and (run / "csv" / "metrics.csv").is_file()  # in addition, not instead


def test_wandb_run_is_written_offline(tmp_path: Path) -> None:
    pytest.importorskip("wandb", reason="the tracking extra is not installed")
    run = tmp_path / "run"
    proc = run_script("train.py", *RUN, "logger=wandb", f"hydra.run.dir={run}", env={"WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    (offline,) = (run / "wandb").glob("offline-run-*")
    (records,) = offline.glob("run-*.wandb")
    assert records.stat().st_size > 0
    assert json.loads((run / "metrics.json").read_text())["status"] == "ok"
