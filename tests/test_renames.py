"""Issue 23: the original study's names (``seed_*`` -> ``original_*``), the fixed log name and ``--help``.

A run made under the old names (as the long full-scale run was) keeps resuming, evaluating and reporting, with
one ``note:`` line; new command lines may still use the old names.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from resattn.training.checkpoint_files import load_checkpoint
from tests.conftest import TINY, run_script

# The experiment and every renamed value; explicit milestones, so a longer resume keeps the schedule.
NEW = [
    "experiment=original_adam_base",
    "regularization=original",
    "scheduler=original_step",
    "data.val_source=original_overlap",
    "data.normalization=original",
]
RUN = [*NEW, *TINY, "scheduler.scheduler.milestones=[1,2]", "trainer.max_epochs=1"]
# What the code before the rename wrote for the same run.
OLD_WORDS = [
    ("experiment=original_adam_base", "experiment=seed_adam_base"),
    ("regularization=original", "regularization=seed"),
    ("scheduler=original_step", "scheduler=seed_step"),
    ("data.val_source=original_overlap", "data.val_source=seed_overlap"),
    ("data.normalization=original", "data.normalization=seed"),
]
NOTE = (
    "note: 'experiment=seed_adam_base' is now 'experiment=original_adam_base', 'regularization=seed' is now "
    "'regularization=original', 'scheduler=seed_step' is now 'scheduler=original_step', "
    "'data.val_source=seed_overlap' is now 'data.val_source=original_overlap', 'data.normalization=seed' is now "
    "'data.normalization=original' (renamed); continuing with the new names"
)


def notes(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("note:")]


def make_old(run: Path) -> None:
    """Rewrite a run of today's code into what the code before the rename left: its saved overrides and config,
    its log name (``<task_name>.log``) and its checkpoints' stored config and preprocessing."""
    overrides = run / ".hydra" / "overrides.yaml"
    text = overrides.read_text()
    for new, old in OLD_WORDS:
        text = text.replace(new, old)
    overrides.write_text(text)
    config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    config["task_name"], config["data"]["val_source"], config["data"]["normalization"] = "seed_adam_base", "seed_overlap", "seed"
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "train.log").rename(run / "seed_adam_base.log")
    for path in (run / "checkpoints").glob("*.ckpt"):
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        cfg, prep = ckpt["hyper_parameters"]["cfg"], ckpt["hyper_parameters"]["preprocessing"]
        cfg["task_name"], cfg["data"]["val_source"], cfg["data"]["normalization"] = "seed_adam_base", "seed_overlap", "seed"
        prep["normalization"], prep["protocol"]["val_source"] = "seed", "seed_overlap"
        torch.save(ckpt, path)


@pytest.fixture(scope="module")
def old_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch of a run under the old names (made with today's code, then rewritten)."""
    run = tmp_path_factory.mktemp("old") / "run"
    done = run_script("train.py", *RUN, f"hydra.run.dir={run}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert notes(done.stderr) == []
    assert (run / "train.log").is_file() and not (run / "original_adam_base.log").exists()  # the fixed log name
    make_old(run)
    return run


def test_old_run_resumes_in_new_names_with_one_note(tmp_path: Path, old_run: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(old_run, run)
    log_size = (run / "seed_adam_base.log").stat().st_size
    resumed = run_script("train.py", f"resume={run}", "trainer.max_epochs=2")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert notes(resumed.stderr) == [NOTE]
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 16  # 8 steps an epoch: it continued
    saved = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
    assert [o for o in saved if o.split("=")[0] in {n.split("=")[0] for n in NEW}] == NEW
    assert json.loads((run / "metrics.json").read_text())["task"] == "original_adam_base"
    assert (run / "seed_adam_base.log").stat().st_size > log_size and not (run / "train.log").exists()  # one log


def test_old_checkpoint_evaluates_and_reports_with_one_note(tmp_path: Path, old_run: Path) -> None:
    evaluated = run_script("eval.py", f"ckpt_path={old_run}", f"hydra.run.dir={tmp_path / 'eval'}")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert notes(evaluated.stderr) == [
        "note: 'experiment=seed_adam_base' is now 'experiment=original_adam_base', 'data.normalization=seed' is now "
        "'data.normalization=original', 'data.val_source=seed_overlap' is now 'data.val_source=original_overlap' "
        "(renamed); continuing with the new names"
    ]
    assert "normalisation=original" in (tmp_path / "eval" / "eval.log").read_text()
    out = tmp_path / "report"
    reported = run_script("-m", "resattn.report", str(old_run), "--out", str(out), "--publish")
    assert reported.returncode == 0, reported.stderr[-2000:]
    assert notes(reported.stderr) == [NOTE]
    readme = (out / "README.md").read_text()
    assert "python train.py experiment=original_adam_base regularization=original scheduler=original_step" in readme
    assert "seed_adam_base" not in readme and "seed_overlap" not in readme


def test_old_names_on_a_new_command_line_run_under_the_new_ones() -> None:
    shown = run_script("train.py", "experiment=seed_sgd_base", "data.val_source=seed_overlap", "--cfg", "job")
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert notes(shown.stderr) == [
        "note: 'experiment=seed_sgd_base' is now 'experiment=original_sgd_base', 'data.val_source=seed_overlap' is now "
        "'data.val_source=original_overlap' (renamed); continuing with the new names"
    ]
    cfg = yaml.safe_load(shown.stdout)
    assert (cfg["task_name"], cfg["data"]["val_source"]) == ("original_sgd_base", "original_overlap")


def test_help_lists_the_user_groups_only() -> None:
    shown = run_script("train.py", "--help")
    assert shown.returncode == 0, shown.stderr[-2000:]
    groups = shown.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    names = [line.split(":")[0] for line in groups.splitlines() if ": " in line]
    assert names == [
        "augment", "callbacks", "data", "debug", "experiment", "hparams_search", "logger", "model", "optimizer", "paths",
        "regularization", "scale", "scheduler", "trainer",
    ]  # fmt: skip
    assert "schema" not in groups and "scheduler: cosine, none, onecycle, original_step, paper_step, plateau" in groups
    assert shown.stdout.startswith("python train.py [group=option ...] [key=value ...]")
