"""Issue 7: stops by signal, divergence, crash-safe checkpoints and long resume chains."""

from __future__ import annotations

import copy
import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import open_dict

from resattn.callbacks import RunInterrupted, TrainingDiverged, remove_stale_temporaries
from resattn.training.checkpoint_files import load_checkpoint
from resattn.training.fit import train
from tests.conftest import REPO, TINY, compose_cfg, run_script

SMALL = ["data.train_size=64", "data.val_size=32", "data.test_size=32", "data.batch_size=16", "test=false"]


class SignalAtStep(pl.Callback):
    """Test helper: sends ``signum`` to this process while training step ``step`` (1-based) runs, or
    (``during_validation``) during the second validation batch after that step."""

    def __init__(self, step: int, signum: str = "SIGTERM", during_validation: bool = False) -> None:
        self.step, self.signum, self.during_validation = int(step), getattr(signal, signum), during_validation

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if not self.during_validation and trainer.global_step == self.step - 1:
            os.kill(os.getpid(), self.signum)

    def on_validation_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.during_validation and not trainer.sanity_checking and trainer.global_step == self.step and batch_idx == 1:
            os.kill(os.getpid(), self.signum)


class PoisonAtEpoch(pl.Callback):
    """Test helper: turns the classifier weights into NaN at the start of epoch ``epoch``."""

    def __init__(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if trainer.current_epoch == self.epoch:
            with torch.no_grad():
                pl_module.net.classifier.weight.fill_(float("nan"))


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["state_dict"]


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def _epoch_means(run_dir: Path) -> list[dict[str, str]]:
    """Per epoch, the logged learning rate and training and validation means (metrics.csv)."""
    keys = ("epoch", "lr", "train/loss", "train/acc", "val/loss", "val/acc")
    with open(run_dir / "csv" / "metrics.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if any(r.get(k) for k in keys[1:])]
    return [{k: r[k] for k in keys if r.get(k)} for r in rows]


def _assert_same_run(a: Path, b: Path) -> None:
    """Same weights and the same logged epoch means, the epoch that was interrupted included."""
    _assert_same_weights(a, b)
    assert _epoch_means(a) == _epoch_means(b)


def _signal_cb(step: int, signum: str = "SIGTERM") -> list[str]:
    return [
        "+callbacks.stop._target_=tests.test_reliability.SignalAtStep",
        f"+callbacks.stop.step={step}",
        f"+callbacks.stop.signum={signum}",
    ]


# ------------------------------------------------------------------------------------------------ signals


# 8 steps per epoch; the signal lands during step 11 = mid epoch 1. Dropout exercises the RNG restore.
SIGNAL_RUN = [*TINY, "regularization.dropout=0.3", "trainer.max_epochs=2", "test=false"]


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted run of ``SIGNAL_RUN`` to compare stopped-and-resumed runs with."""
    run = tmp_path_factory.mktemp("straight")
    train(compose_cfg(run, SIGNAL_RUN))
    return run


def test_sigint_mid_epoch_saves_and_resumes_bitwise(tmp_path: Path, straight_run: Path) -> None:
    # SIGTERM mid-epoch goes through the real command line in test_sigterm_cli_exit_code_and_resume.
    common, signum = SIGNAL_RUN, "SIGINT"
    run = tmp_path / "run"
    handler_before = signal.getsignal(signal.SIGINT)  # SIG_IGN when started in the background (nohup, CI)
    with pytest.raises(RunInterrupted) as stop:
        train(compose_cfg(run, [*common, *_signal_cb(11, signum)]))
    assert stop.value.code == 128 + getattr(signal, signum)
    assert str(stop.value).startswith(f"{signum} mid-epoch 1 (step 11); saved resumable checkpoint {run}")
    assert f"resume={run}" in str(stop.value)
    saved = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert saved["global_step"] == 11 and saved["epoch"] == 1
    assert signal.getsignal(signal.SIGINT) == handler_before  # handlers restored
    train(compose_cfg(run, [*common, f"resume={run}"]))
    _assert_same_run(straight_run, run)


def test_sigterm_during_validation_finishes_the_epoch_first(tmp_path: Path, straight_run: Path) -> None:
    # Four validation batches; SIGTERM arrives in the second one after step 8 (the end of epoch 0).
    common = [*SIGNAL_RUN, "data.eval_batch_size=16"]
    run = tmp_path / "run"
    with pytest.raises(RunInterrupted) as stop:
        train(compose_cfg(run, [*common, *_signal_cb(8), "+callbacks.stop.during_validation=true"]))
    assert str(stop.value).startswith("SIGTERM at the end of epoch 0 (step 8); saved resumable checkpoint")
    assert (run / "checkpoints" / "epoch_000.ckpt").is_file()  # the epoch's regular saves happened
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 8
    train(compose_cfg(run, [*common, f"resume={run}"]))
    _assert_same_weights(straight_run, run)  # (its validation batches differ from straight_run's: the means too)


def test_sigterm_cli_exit_code_and_resume(tmp_path: Path, straight_run: Path) -> None:
    run = tmp_path / "run"
    args = [*SIGNAL_RUN, *_signal_cb(11), f"hydra.run.dir={run}"]
    stopped = run_script("train.py", *args)
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    line = stopped.stderr.strip().splitlines()[-1]
    assert line.startswith("interrupted: SIGTERM mid-epoch 1 (step 11)") and f"resume={run}" in line, line
    assert "Traceback" not in stopped.stderr
    resumed = run_script("train.py", f"resume={run}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 16
    _assert_same_run(straight_run, run)  # through the real command line, too
    logged = (run / "csv" / "metrics.csv").read_text().splitlines()
    epochs = {row.split(",")[logged[0].split(",").index("epoch")] for row in logged[1:]}
    assert {"0", "1"} <= epochs, "metrics logged before the stop survive the resume"


# --------------------------------------------------------------------------------------------- divergence


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    last = tmp_path / "checkpoints" / "last.ckpt"
    poison = ["+callbacks.poison._target_=tests.test_reliability.PoisonAtEpoch", "+callbacks.poison.epoch=1"]
    with pytest.raises(TrainingDiverged) as diverged:
        train(compose_cfg(tmp_path, [*TINY, *SMALL, "trainer.max_epochs=3", *poison]))
    message = str(diverged.value)
    assert message.startswith("training diverged at epoch 1 (train/loss=nan") and "lower optimizer.lr" in message
    assert f"last good checkpoint: {last}" in message
    good = load_checkpoint(last)
    assert good["epoch"] == 0 and all(torch.isfinite(v).all() for v in good["state_dict"].values() if v.is_floating_point())
    assert not (tmp_path / "checkpoints" / "epoch_001.ckpt").exists()


# -------------------------------------------------------------------------------------- crash-safe writes

_WRITER = """
import sys, torch
from resattn.callbacks import AtomicCheckpointIO
io, i = AtomicCheckpointIO(), 0
payload = torch.randn(4_000_000)
while True:
    io.save_checkpoint({"state_dict": {"w": payload + i}, "hyper_parameters": {"cfg": {"i": i}}}, sys.argv[1])
    i += 1
"""


def _tmp_files(directory: Path) -> list[Path]:
    return sorted(directory.glob(".*.ckpt.*.tmp"))


def _wait(condition: Any, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.stderr.read()[-2000:] if proc.stderr else "process ended"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_atomic_io_survives_kill_mid_write(tmp_path: Path) -> None:
    target = tmp_path / "last.ckpt"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], cwd=REPO, stderr=subprocess.PIPE, text=True)
    _wait(target.exists, 120, proc)  # one complete write
    _wait(lambda: bool(_tmp_files(tmp_path)), 60, proc)  # the next write is in progress
    proc.kill()
    proc.wait()
    ckpt = load_checkpoint(target)  # the previous complete file
    assert ckpt["state_dict"]["w"].numel() == 4_000_000
    assert _tmp_files(tmp_path), "the kill landed mid-write and left its temporary file"
    assert remove_stale_temporaries(tmp_path) and not _tmp_files(tmp_path)


def test_kill9_at_random_moments_never_corrupts_last_ckpt(tmp_path: Path) -> None:
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"
    # last.ckpt is rewritten after every step once val/acc exists (every_n_train_steps=1).
    args = [*TINY, "trainer.max_epochs=4", "test=false", "+callbacks.model_checkpoint.every_n_train_steps=1"]
    rng = random.Random(7)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    for attempt in range(2):
        cmd = [f"resume={run}"] if last.exists() else [*args, f"hydra.run.dir={run}"]
        before = last.stat().st_mtime_ns if last.exists() else 0
        proc = subprocess.Popen(
            [sys.executable, "train.py", *cmd], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        _wait(lambda before=before: last.exists() and last.stat().st_mtime_ns != before, 240, proc)
        if attempt == 0:  # kill while the next checkpoint is being written
            _wait(lambda: bool(_tmp_files(last.parent)), 120, proc)
        else:  # kill at a random moment
            time.sleep(rng.uniform(0.0, 0.5))
        proc.kill()
        proc.wait()
        load_checkpoint(last)  # never truncated or half-written
    leftovers = _tmp_files(last.parent)
    finished = run_script("train.py", f"resume={run}")
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert load_checkpoint(last)["global_step"] == 32
    assert not _tmp_files(last.parent), f"stale temporaries not cleaned: {leftovers}"


# ---------------------------------------------------------------------------------------- resume chains


def test_twenty_stop_resume_cycles_are_bitwise_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for plot in ("plot_curves", "plot_weight_histogram"):  # pictures are not under test here: save time
        monkeypatch.setattr(f"resattn.training.fit.{plot}", lambda *args, **kwargs: None)
    # 2 steps per epoch: the chain is about resume bookkeeping, not about how much is trained.
    common = [
        *TINY,
        *SMALL,
        "data.train_size=32",
        "data.val_size=16",
        "regularization.dropout=0.3",
        "callbacks.early_stopping=null",
        "logger.tensorboard=null",
        "callbacks.weight_histograms=null",
    ]
    train(compose_cfg(tmp_path / "straight", [*common, "trainer.max_epochs=20"]))
    run = tmp_path / "chain"
    base = compose_cfg(run, common)
    for k in range(1, 21):
        cfg = copy.deepcopy(base)
        with open_dict(cfg):
            cfg.trainer.max_epochs = k
            cfg.resume = str(run) if k > 1 else None
        train(cfg)
        assert load_checkpoint(run / "checkpoints" / "last.ckpt")["epoch"] == k - 1
    _assert_same_run(tmp_path / "straight", run)


def test_slurm_requeue_signal_saves_and_requeues_at_a_step_boundary(tmp_path: Path) -> None:
    """SLURM auto-requeue (``--signal=USR1@90``, Lightning's ``SLURMEnvironment(auto_requeue=True)``): the handler only
    records; at the end of the step Lightning's routine writes ``hpc_ckpt_1.ckpt`` and runs ``scontrol requeue``."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "scontrol.log"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "scontrol").chmod(0o755)
    slurm = {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "resattn", "SLURM_JOB_ID": "4242", "SLURM_PROCID": "0"}
    slurm.update({"SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "localhost", "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    run = tmp_path / "run"
    fault = ["+callbacks.fault._target_=tests.faults.Fault", "+callbacks.fault.at=train", "+callbacks.fault.action=SIGUSR1"]
    done = run_script("train.py", *SIGNAL_RUN, *fault, "+callbacks.fault.step=3", f"hydra.run.dir={run}", env=slurm)
    assert done.returncode == 0, done.stderr[-3000:]  # on a cluster SLURM ends the job; here training goes on
    assert calls.read_text().split() == ["requeue", "4242"]
    assert load_checkpoint(run / "hpc_ckpt_1.ckpt")["global_step"] == 3


def test_sigterm_during_the_final_test_stops_it_and_resume_runs_the_test(tmp_path: Path) -> None:
    common = [*TINY, "trainer.max_epochs=1", "+callbacks.fault._target_=tests.faults.Fault", "+callbacks.fault.at=test"]
    with pytest.raises(RunInterrupted) as stop:
        train(compose_cfg(tmp_path, [*common, "+callbacks.fault.batch=0"]))
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert stop.value.code == 143 and str(stop.value) == (
        f"SIGTERM during the test (step 8); no new checkpoint; the last one is {last}; continue with: python train.py resume={tmp_path}"
    )
    assert not (tmp_path / "metrics.json").exists()
    metrics = train(compose_cfg(tmp_path, [*common, "+callbacks.fault.ranks=[]", f"resume={tmp_path}"]))
    assert metrics["global_step"] == 8 and "test/acc" in metrics and (tmp_path / "metrics.json").is_file()
