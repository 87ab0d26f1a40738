"""``scale=<full|cpu>`` (issue 10): what the CPU scale changes, what it keeps, and the plan line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from resattn.callbacks.plan import RunPlan
from resattn.config.compose import compose
from resattn.config.scale import changes, describe
from resattn.errors import ConfigError
from resattn.training.checkpoint_files import run_config_of
from resattn.validation.values import check_values
from tests.conftest import TINY, run_script
from tests.helpers import run_checkpoint
from tests.test_train import EXPERIMENTS

CPU_WIDTH = {"improved": 16}  # scale=cpu's width per experiment (8 unless listed)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_cpu_scale_shrinks_model_and_length_keeps_data(experiment: str) -> None:
    full = compose("train", [f"experiment={experiment}"])
    cpu = compose("train", [f"experiment={experiment}", "scale=cpu"])
    ratio = cpu.trainer.max_epochs / full.trainer.max_epochs
    assert full.trainer.max_epochs == full.epochs == cpu.epochs  # the experiment's length, at every scale
    assert cpu.model.width == CPU_WIDTH.get(experiment, 8) < full.model.width and ratio < 1
    assert (cpu.data.train_size, cpu.data.val_size, cpu.data.test_size) == (full.data.train_size, full.data.val_size, None)
    assert cpu.data.val_source == "holdout" and cpu.data.batch_size == full.data.batch_size
    sched, full_sched = cpu.scheduler.scheduler, full.scheduler.scheduler
    if "milestones" in full_sched:  # the study's epoch schedule follows the shorter run
        scaled = list(sched.milestones)
        assert scaled == sorted(set(scaled)) and len(scaled) == len(full_sched.milestones)
        assert all(abs(new - old * ratio) <= 1 for new, old in zip(scaled, full_sched.milestones))
    for key in ("total_steps", "T_max"):  # schedules fitted to the run's length stay fitted to it
        if key in full_sched:
            assert sched[key] is None
    if full.callbacks.early_stopping is not None:  # rescaled, floored at scale.min_patience, never raised
        old, new = full.callbacks.early_stopping.patience, cpu.callbacks.early_stopping.patience
        if old * ratio < cpu.scale.min_patience:
            assert new == min(old, cpu.scale.min_patience)
        else:
            assert abs(new - old * ratio) <= 0.5


def test_cpu_scale_of_the_study_schedule() -> None:
    cfg = compose("train", ["experiment=original_adam_base", "scale=cpu"])
    # 60 -> 24 epochs: milestones 21, 51 -> 8.4, 20.4; patience 15 -> 6
    assert (cfg.trainer.max_epochs, list(cfg.scheduler.scheduler.milestones)) == (24, [8, 20])
    assert cfg.callbacks.early_stopping.patience == 6


def test_full_scale_changes_nothing_whatever_the_length() -> None:
    cfg = compose("train", ["experiment=original_adam_base"])
    assert (cfg.trainer.max_epochs, list(cfg.scheduler.scheduler.milestones), cfg.callbacks.early_stopping.patience) == (60, [21, 51], 15)
    assert describe(cfg) == "scale: full (as configured)" and changes(cfg) == []
    for length in ("trainer.max_epochs=80", "scale.max_epochs=80"):  # a longer run keeps its step schedule (resume)
        longer = compose("train", ["experiment=original_adam_base", length])
        assert (longer.trainer.max_epochs, list(longer.scheduler.scheduler.milestones)) == (80, [21, 51])


@pytest.mark.parametrize("length", ["scale.max_epochs=30", "trainer.max_epochs=30"])
def test_cpu_scale_length_from_either_key_and_per_experiment_sizes(length: str) -> None:
    cfg = compose("train", ["experiment=original_adam_base", "scale=cpu", length])
    assert cfg.trainer.max_epochs == 30 and list(cfg.scheduler.scheduler.milestones) == [11, 26]  # 10.5, 25.5
    big = compose("train", ["experiment=original_attention56", "scale=cpu"])
    assert big.trainer.max_epochs == big.scale.epochs_by_task.original_attention56
    # milestones [21, 41, 61, 81] squeezed into a few epochs stay strictly increasing
    milestones = list(big.scheduler.scheduler.milestones)
    assert milestones == sorted(set(milestones)) and len(milestones) == 4


def test_what_the_user_sets_is_what_runs_and_the_experiment_length_is_epochs() -> None:
    cfg = compose("train", ["experiment=original_adam_base", "scale=cpu", "model.width=16", "scheduler.scheduler.milestones=[5,9]"])
    assert cfg.model.width == 16 and list(cfg.scheduler.scheduler.milestones) == [5, 9]  # never replaced
    assert "model.width" not in describe(cfg) and "milestones" not in describe(cfg)
    cfg = compose("train", ["experiment=original_adam_base", "scale=cpu", "epochs=120"])  # milestones written for 120
    assert cfg.trainer.max_epochs == 24 and list(cfg.scheduler.scheduler.milestones) == [4, 10]


def test_plateau_patience_is_rescaled() -> None:
    cfg = compose("train", ["scale=cpu", "scheduler=plateau", "trainer.max_epochs=30"])
    assert cfg.scheduler.scheduler.patience == 3  # 5 epochs of 60 -> 2.5 -> 3 of 30
    cfg = compose("train", ["scale=cpu", "scheduler=plateau", "trainer.max_epochs=20"])
    assert cfg.scheduler.scheduler.patience == 3  # 5 of 60 -> 2 of 20, floored at scale.min_patience=3
    cfg = compose("train", ["scale=cpu", "scheduler=plateau", "trainer.max_epochs=20", "scale.min_patience=1"])
    assert cfg.scheduler.scheduler.patience == 2  # plain rescaling


def test_cpu_scale_floors_the_rescaled_patience_of_attention56() -> None:
    cfg = compose("train", ["experiment=original_attention56", "scale=cpu"])
    # 100 -> 14 epochs: milestones 21/41/61/81 -> 2.94/5.74/8.54/11.34; patience 1.4
    assert cfg.trainer.max_epochs == 14 and list(cfg.scheduler.scheduler.milestones) == [3, 6, 9, 11]
    assert cfg.callbacks.early_stopping.patience == 3  # not 1: one noisy validation epoch would end the run
    assert describe(cfg) == (
        "scale: cpu (trainer.max_epochs 100 -> 14; model.width 8; "
        "scheduler.scheduler.milestones [21, 41, 61, 81] -> [3, 6, 9, 11]; callbacks.early_stopping.patience 10 -> 3)"
    )


def test_min_patience_is_overridable_and_checked() -> None:
    cfg = compose("train", ["experiment=original_attention56", "scale=cpu", "scale.min_patience=1"])
    # plain rescaling: 10 of 100 -> 1 of 14
    assert cfg.callbacks.early_stopping.patience == 1 and "callbacks.early_stopping.patience 10 -> 1" in changes(cfg)
    cfg = compose("train", ["experiment=original_attention56", "scale=cpu", "scale.min_patience=5"])
    assert cfg.callbacks.early_stopping.patience == 5
    for bad in ("0", "-2"):
        cfg = compose("train", ["experiment=original_attention56", "scale=cpu", f"scale.min_patience={bad}"])
        with pytest.raises(ConfigError, match=f"scale.min_patience={bad}: out of range; expected an integer >= 1"):
            check_values(cfg)
    with pytest.raises(ConfigError, match="scale.min_patience=2.5: wrong type"):
        compose("train", ["scale=cpu", "scale.min_patience=2.5"])


def test_min_patience_never_raises_a_patience_above_its_own_value() -> None:
    overrides = ["experiment=original_adam_base", "scale=cpu", "scheduler=plateau"]
    # 60 -> 24 epochs: 2 -> 0.8 -> 1, floored at 3, capped at 2
    cfg = compose("train", [*overrides, "callbacks.early_stopping.patience=${rescale_patience:2}", "scheduler.scheduler.patience=2"])
    assert cfg.callbacks.early_stopping.patience == 2 and cfg.scheduler.scheduler.patience == 2
    assert not [c for c in changes(cfg) if "patience" in c]  # unchanged values are not reported
    cfg = compose("train", ["experiment=original_adam_base", "scale=cpu", "callbacks.early_stopping.patience=${rescale_patience:0}"])
    assert cfg.callbacks.early_stopping.patience == 0


def test_cpu_scale_through_train_py_prints_scale_and_plan_and_stores_scaled_config(tmp_path: Path) -> None:
    run = tmp_path / "run"
    # original_adam_base at CPU scale on generated data: width 8, 60 -> 2 epochs, milestones and patience follow.
    small = [a for a in TINY if not a.startswith(("model.width", "trainer.max_epochs"))]
    result = run_script(
        "train.py",
        "experiment=original_adam_base",
        "scale=cpu",
        *small,
        "scale.max_epochs=2",
        "data.train_size=512",
        "data.batch_size=32",
        f"hydra.run.dir={run}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout + result.stderr
    assert "scale: cpu (trainer.max_epochs 60 -> 2; model.width 8; scheduler.scheduler.milestones [21, 51] -> [1, 2]" in out
    plan = re.search(r"plan: 2 epochs x 16 steps, about \S+ (s|min) on cpu \((\d+\.\d+) s/step", out)
    assert plan, out[-3000:]
    stored = run_config_of(torch.load(run / "checkpoints" / "last.ckpt", weights_only=False))
    assert stored["model"]["width"] == 8 and stored["trainer"]["max_epochs"] == 2
    assert list(stored["scheduler"]["scheduler"]["milestones"]) == [1, 2]
    saved = OmegaConf.load(run / ".hydra" / "config.yaml")  # resolved: the numbers that ran
    assert (saved.model.width, saved.trainer.max_epochs, list(saved.scheduler.scheduler.milestones)) == (8, 2, [1, 2])
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["task"], metrics["scale"], metrics["epochs"]) == ("original_adam_base", "cpu", 2)


def test_what_is_set_under_a_scale_is_what_runs_prints_and_is_recorded(tmp_path: Path) -> None:
    """Issue 19: ``scale=cpu model.width=16 trainer.max_epochs=1`` trains width 16 for 1 epoch, and every record says so."""
    small = [a for a in TINY if not a.startswith(("model.width", "trainer.max_epochs"))]
    args = ["scale=cpu", "model.width=16", "trainer.max_epochs=1", *small]
    shown = run_script("train.py", *args, "--cfg", "job", "--resolve")
    assert shown.returncode == 0, shown.stderr[-2000:]
    printed = OmegaConf.create(shown.stdout)
    assert (printed.model.width, printed.trainer.max_epochs) == (16, 1)
    run = tmp_path / "run"
    result = run_script("train.py", *args, f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-2000:]
    saved = OmegaConf.load(run / ".hydra" / "config.yaml")
    assert (saved.model.width, saved.trainer.max_epochs) == (16, 1)
    ckpt = run_checkpoint(run)
    assert (run_config_of(ckpt)["model"]["width"], run_config_of(ckpt)["trainer"]["max_epochs"]) == (16, 1)
    assert ckpt["state_dict"]["net.stem.0.weight"].shape[0] == 16 and ckpt["epoch"] == 0  # what ran: width 16, one epoch
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["scale"], metrics["epochs"]) == ("cpu", 1)


def test_resume_of_a_run_made_before_epochs_existed(tmp_path: Path) -> None:
    """Before ``epochs``, ``trainer.max_epochs`` under a scale was the experiment's length: such a run resumes with
    the schedule it was trained with (its overrides are read in today's terms)."""
    small = [a for a in TINY if not a.startswith(("model.width", "trainer.max_epochs"))]
    run = tmp_path / "run"
    first = run_script("train.py", "scale=cpu", *small, "epochs=30", "scale.max_epochs=1", "test=false", f"hydra.run.dir={run}")
    assert first.returncode == 0, first.stderr[-2000:]
    # Make it look like the old code's run: overrides with trainer.max_epochs=30, a saved config without epochs.
    overrides = run / ".hydra" / "overrides.yaml"
    overrides.write_text(overrides.read_text().replace("epochs=30", "trainer.max_epochs=30"))
    saved = OmegaConf.load(run / ".hydra" / "config.yaml")
    del saved["epochs"]
    OmegaConf.save(saved, run / ".hydra" / "config.yaml")
    resumed = run_script("train.py", f"resume={run}", "scale.max_epochs=1")
    assert resumed.returncode == 0, resumed.stderr[-2000:]  # milestones [1, 2] of 1 epoch of 30, as stored
    assert "epochs=30" in (run / ".hydra" / "overrides.yaml").read_text()


def _fake_trainer(steps_per_epoch: int, epochs: int, device: str = "cpu") -> SimpleNamespace:
    return SimpleNamespace(
        num_training_batches=steps_per_epoch,
        estimated_stepping_batches=steps_per_epoch * epochs,
        max_epochs=epochs,
        global_step=0,
        limit_val_batches=1.0,
        datamodule=SimpleNamespace(batch_size=128, val_size=5000),
        strategy=SimpleNamespace(root_device=torch.device(device)),
    )


def test_plan_estimates_the_run_and_suggests_cpu_scale_on_cpu() -> None:
    line = RunPlan(scale="full").plan(_fake_trainer(234, 60), step_s=2.0)
    # 14,040 steps x 2 s, plus validation (5,000 images at a third of the cost of 29,952 training images)
    assert line.startswith("plan: 60 epochs x 234 steps, about 8.2 h on cpu (2.00 s/step")
    assert "try scale=cpu" in line
    assert "scale=cpu" not in RunPlan(scale="cpu").plan(_fake_trainer(234, 24), step_s=0.3)
    # scale=cpu says when this machine cannot keep its 30 minutes (e.g. fp32 on a CPU without native bf16)
    assert "over scale=cpu's 30-minute target" in RunPlan(scale="cpu").plan(_fake_trainer(117, 26), step_s=1.0)
    assert "scale=cpu" not in RunPlan(scale="full").plan(_fake_trainer(234, 60, "cuda"), step_s=2.0)


def test_improved_at_cpu_scale_and_the_overrides_that_reproduce_the_earlier_scale() -> None:
    """The retuned ``improved scale=cpu`` (README "Results") and the published *w8* runs' reproducing overrides."""
    now = compose("train", ["experiment=improved", "scale=cpu"])
    assert (now.model.width, now.trainer.max_epochs, now.tta, now.val_tta, now.ema) == (16, 26, "flip_translate", "flip", False)
    w8 = compose("train", ["experiment=improved", "scale=cpu", "model.width=8", "trainer.max_epochs=24", "tta=none", "val_tta=null"])
    assert (w8.model.width, w8.trainer.max_epochs, w8.tta, w8.val_tta) == (8, 24, "none", None)
    assert OmegaConf.to_container(w8.optimizer) == OmegaConf.to_container(now.optimizer)  # the recipe is the same
