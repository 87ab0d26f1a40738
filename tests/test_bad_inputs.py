"""Issue 7: a catalogue of bad inputs to ``train.py`` / ``eval.py``.

Every case must fail with exit status 2 (3: diverged), exactly one ``error: ...`` line naming the key or
file, the bad value and what is allowed, no Python traceback, and leave every file that existed before untouched
(directories are hashed before and after). Cases marked ``early`` must fail before Hydra creates a run
directory. The commands run as subprocesses, a few at a time, in one module fixture.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.conftest import REPO, TINY, run_script


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]  # placeholders: {run} (a private copy of a trained run), {base}, {new}
    expect: tuple[str, ...]  # substrings of the error line
    script: str = "train.py"
    early: bool = True  # fails before Hydra creates the run directory {new}
    code: int = 2  # exit status
    run_copy: str = ""  # how the private run copy is damaged: "", "empty_overrides", "truncated_checkpoints"
    without_cuda: bool = False  # the case is a mistake only on a machine without CUDA


T = tuple(TINY)
T_ANY_DEVICE = tuple(a for a in TINY if not a.startswith("trainer.accelerator"))
NEW = ("hydra.run.dir={new}",)
CASES = [
    # ---------------------------------------------------------------------------------------- config values
    Case("type_int", (*T, "trainer.max_epochs=abc", *NEW), ("trainer.max_epochs='abc': wrong type (str); expected an integer >= 1",)),
    Case("type_float_for_int", (*T, "data.batch_size=1.5", *NEW), ("data.batch_size=1.5: wrong type (float); expected an integer >= 1",)),
    Case("lr_not_positive", (*T, "optimizer.lr=-0.1", *NEW), ("optimizer.lr=-0.1: out of range; expected a finite number > 0",)),
    Case(
        "dropout_range",
        (*T, "regularization.dropout=1.0", *NEW),
        ("regularization.dropout=1.0: out of range; expected a finite number >= 0 and < 1",),
    ),
    Case("epochs_zero", (*T, "trainer.max_epochs=0", *NEW), ("trainer.max_epochs=0: out of range",)),
    Case(
        "enum_val_source",
        (*T, "data.val_source=leaky", *NEW),
        ("data.val_source='leaky': not supported; expected one of holdout, original_overlap",),
    ),
    Case(
        "optimized_metric",
        (*T, "optimized_metric=val/accuracy", *NEW),
        ("optimized_metric='val/accuracy': not a metric this run produces; allowed: val/acc_best",),
    ),
    Case(
        "monitor_metric",
        (*T, "callbacks.early_stopping.monitor=val/accuracy", *NEW),
        ("callbacks.early_stopping.monitor='val/accuracy': not supported; expected one of val/acc",),
    ),
    Case("unknown_group_option", (*T, "optimizer=adamx", *NEW), ("Could not find 'optimizer/adamx'", "adam adamw sgd")),
    Case("unknown_key", (*T, "data.batchsize=3", *NEW), ("Could not override 'data.batchsize'",)),
    Case("type_at_composition", (*T, "data.batch_size=abc", *NEW), ("data.batch_size='abc': wrong type (str); expected an integer >= 1",)),
    Case(
        "key_of_another_target",
        (*T, "optimizer=adam", "optimizer.momentum=0.9", *NEW),
        ("no key momentum in optimizer; allowed: lr, betas, eps, weight_decay",),
    ),
    Case(
        "sizes_vs_dataset",
        ("data=cifar10", "data.train_size=48000", *NEW),
        ("data.train_size=48000 + data.val_size=5000: out of range", "<= 50000"),
    ),
    Case("batch_vs_train_size", (*T, "data.batch_size=512", *NEW), ("data.batch_size=512: out of range; expected <= data.train_size=256",)),
    Case(
        "addition_needs_plus",  # a Trainer argument the schema does not list: the error names the + form
        (*T, "trainer.profiler=simple", *NEW),
        ("no key profiler in trainer", "+trainer.profiler=simple"),
    ),
    Case(
        "schedule_factors_length",  # checked by building the schedule before any work, not in configure_optimizers
        (*T, "scheduler.scheduler.factors=[0.1]", *NEW),
        ("scheduler.scheduler.factors=[0.1]: wrong length; expected one factor per milestone", "milestones=[21, 51]"),
    ),
    Case(
        "schedule_unknown_argument",
        (*T, "scheduler=plateau", "+scheduler.scheduler.gamma=0.5", *NEW),
        ("scheduler.scheduler (torch.optim.lr_scheduler.ReduceLROnPlateau)", "gamma"),
    ),
    # ---------------------------------------------------------------------------------------------- devices
    Case("cpu_devices_above_cores", (*T, "trainer.devices=4096", *NEW), ("trainer.devices=4096: out of range", "CPU cores")),
    Case("trainer_gpu_without_cuda", (*T_ANY_DEVICE, "trainer=gpu", *NEW), ("no CUDA device is available",), without_cuda=True),
    Case(
        "accelerator_gpu_without_cuda",
        (*T_ANY_DEVICE, "trainer.accelerator=gpu", *NEW),
        ("trainer.accelerator='gpu': no CUDA device is available", "trainer=cpu"),
        without_cuda=True,
    ),
    # ------------------------------------------------------------------------------------------------- data
    Case("no_data_found", ("data=cifar10", "data.root={base}/data/empty", *NEW), ("data.root=", "no CIFAR-10 data found")),
    Case(
        "data_root_missing",
        ("data=cifar10", "data.source=npz", "data.root={base}/nowhere", *NEW),
        (
            "data.root=",
            "nowhere: no such directory",
        ),
    ),
    Case(
        "data_root_is_the_npz_file",
        ("data=cifar10", "data.root={base}/data/bad_labels/cifar10.npz", *NEW),
        ("cifar10.npz: a file, not a folder; pass the folder that holds cifar10.npz: data.root=", "data/bad_labels"),
    ),
    Case(
        "labels_out_of_range",
        (*T, "data=cifar10", "data.source=npz", "data.root={base}/data/bad_labels", *NEW),
        ("bad_labels/cifar10.npz: y_train has labels in [0, 12]; expected class indices 0..9",),
        early=False,
    ),
    Case(
        "missing_array_key",
        (*T, "data=cifar10", "data.source=npz", "data.root={base}/data/missing_key", *NEW),
        ("missing_key/cifar10.npz: missing key(s) y_test",),
        early=False,
    ),
    # ------------------------------------------------------------------------------------------ checkpoints
    Case(
        "ckpt_missing",
        (*T, "ckpt_path={base}/nope.ckpt", *NEW),
        (
            "ckpt_path=",
            "nope.ckpt: no such file or directory",
        ),
    ),
    Case("ckpt_truncated", (*T, "ckpt_path={base}/ckpts/truncated.ckpt", *NEW), ("truncated.ckpt: unreadable or truncated checkpoint",)),
    Case("ckpt_not_resattn", (*T, "ckpt_path={base}/ckpts/foreign.ckpt", *NEW), ("foreign.ckpt: not a resattn checkpoint",)),
    Case(
        "ckpt_other_model",
        (*T, "ckpt_path={base}/run/checkpoints/last.ckpt", "model.width=8", *NEW),
        ("incompatible model: net.stem.0.weight is (4, 3, 5, 5) in the checkpoint but (8, 3, 5, 5)", "model.width (checkpoint 4, now 8)"),
    ),
    # ----------------------------------------------------------------------------------------------- resume
    Case(
        "resume_missing_dir",
        ("resume={base}/nowhere",),
        (
            "resume=",
            "nowhere: no such run directory",
        ),
    ),
    Case("resume_without_checkpoint", ("resume={base}/data/empty",), ("checkpoints/last.ckpt not found",)),
    Case("resume_bad_value", ("resume={run}", "optimizer.lr=abc"), ("optimizer.lr='abc': wrong type (str)",)),
    Case(
        "resume_other_model",
        ("resume={run}", "model.width=8"),
        (
            "incompatible model: net.stem.0.weight is (4, 3, 5, 5) in the checkpoint but (8, 3, 5, 5)",
            "model.width (checkpoint 4, now 8)",
            "a resumed run keeps its model",
        ),
    ),
    Case("resume_and_ckpt_path", ("resume={run}", "ckpt_path={base}/run/checkpoints/last.ckpt"), ("both given",)),
    Case("resume_corrupt_overrides", ("resume={run}",), (".hydra/overrides.yaml is empty or corrupt",), run_copy="empty_overrides"),
    Case(
        "resume_no_valid_checkpoint",
        ("resume={run}",),
        ("no valid checkpoint to resume from", "last.ckpt: unreadable or truncated checkpoint", "(epoch_000.ckpt); start a new run"),
        run_copy="truncated_checkpoints",
    ),
    # Passes every early check; fails when the data loads, after Hydra rewrote .hydra/ (which is restored).
    Case(
        "resume_bad_data_late",
        ("resume={run}", "data=cifar10", "data.source=npz", "data.root={base}/data/bad_labels"),
        ("y_train has labels in [0, 12]",),
        early=False,
    ),
    # A config that diverges (simulated: NaN weights from epoch 0 on) is stopped with its own exit status.
    Case(
        "diverges",
        (*T, "trainer.max_epochs=2", "+callbacks.poison._target_=tests.test_reliability.PoisonAtEpoch", "+callbacks.poison.epoch=0", *NEW),
        ("training diverged at epoch 0 (train/loss=nan", "last good checkpoint: none", "lower optimizer.lr"),
        early=False,
        code=3,
    ),
    # ------------------------------------------------------------------------------------------------- eval
    Case("eval_no_checkpoint", NEW, ("ckpt_path=null: a checkpoint is required",), script="eval.py"),
    Case("eval_truncated", ("ckpt_path={base}/ckpts/truncated.ckpt", *NEW), ("unreadable or truncated checkpoint",), script="eval.py"),
    Case("eval_dir_without_checkpoints", ("ckpt_path={base}/data/empty", *NEW), ("no checkpoints in",), script="eval.py"),
    Case(
        "eval_bad_value",
        ("ckpt_path={base}/run", "data.eval_batch_size=0", *NEW),
        ("data.eval_batch_size=0: out of range; expected an integer >= 1",),
        script="eval.py",
    ),
]


def _tree_hash(root: Path) -> dict[str, str]:
    """Relative path -> content hash of every file under ``root``."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() or p.is_symlink()
    }


def _npz(path: Path, drop: str = "", bad_label: bool = False) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (400, 32, 32, 3), dtype=np.uint8),
        "y_train": np.arange(400) % 10,
        "x_test": rng.integers(0, 256, (100, 32, 32, 3), dtype=np.uint8),
        "y_test": np.arange(100) % 10,
    }
    if bad_label:
        arrays["y_train"][7] = 12
    arrays.pop(drop, None)
    path.mkdir(parents=True)
    np.savez(path / "cifar10.npz", **arrays)


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("fixtures")
    trained = run_script("train.py", *TINY, "trainer.max_epochs=1", "test=false", f"hydra.run.dir={base / 'run'}")
    assert trained.returncode == 0, trained.stderr[-2000:]
    (base / "data" / "empty").mkdir(parents=True)
    _npz(base / "data" / "bad_labels", bad_label=True)
    _npz(base / "data" / "missing_key", drop="y_test")
    (base / "ckpts").mkdir()
    last = (base / "run" / "checkpoints" / "last.ckpt").read_bytes()
    (base / "ckpts" / "truncated.ckpt").write_bytes(last[: len(last) // 2])
    torch.save({"weights": torch.zeros(3)}, base / "ckpts" / "foreign.ckpt")

    cases = tmp_path_factory.mktemp("cases")
    jobs = {}
    for case in CASES:
        where = cases / case.id
        run = where / "run"
        if "{run}" in " ".join(case.args):
            shutil.copytree(base / "run", run)
            if case.run_copy == "empty_overrides":
                (run / ".hydra" / "overrides.yaml").write_text("")
            elif case.run_copy == "truncated_checkpoints":  # a damaged last.ckpt alone falls back to epoch_000.ckpt
                for ckpt in (run / "checkpoints").glob("*.ckpt"):
                    ckpt.write_bytes(last[: len(last) // 3])
        args = [a.format(run=run, base=base, new=where / "new") for a in case.args]
        jobs[case.id] = (case.script, args, run if run.exists() else None)

    before = {cid: _tree_hash(run) for cid, (_, _, run) in jobs.items() if run is not None}
    base_before = _tree_hash(base)
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {cid: pool.submit(run_script, script, *args) for cid, (script, args, _) in jobs.items()}
        results = {cid: f.result() for cid, f in futures.items()}
    return {
        "results": results,
        "runs": {cid: (run, before[cid], _tree_hash(run)) for cid, (_, _, run) in jobs.items() if run is not None},
        "base": (base_before, _tree_hash(base)),
        "cases_dir": cases,
    }


def test_catalogue_is_large_enough() -> None:
    assert len({c.id for c in CASES}) == len(CASES) >= 15


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(catalogue: dict[str, Any], case: Case) -> None:
    if case.without_cuda and torch.cuda.is_available():
        pytest.skip("a GPU is present: trainer=gpu is fine here")
    result = catalogue["results"][case.id]
    stderr = result.stderr
    assert result.returncode == case.code, f"exit {result.returncode}\n{stderr[-3000:]}"
    assert "Traceback" not in stderr and "Traceback" not in result.stdout, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]
    assert stderr.rstrip().splitlines()[-1] == errors[0]  # the last thing printed
    for text in case.expect:
        assert text in errors[0], f"{text!r} not in {errors[0]!r}"
    assert len(errors[0]) <= 400, f"an error line of {len(errors[0])} characters"
    before, after = catalogue["base"]
    assert before == after, "the shared fixtures (data, checkpoints, trained run) changed"
    if case.id in catalogue["runs"]:
        run, run_before, run_after = catalogue["runs"][case.id]
        assert run_before == run_after, f"files of the resumed run changed: {set(run_before.items()) ^ set(run_after.items())}"
    if case.early:
        assert not (catalogue["cases_dir"] / case.id / "new").exists(), "a run directory was created before the check"


def test_full_error_shows_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "train.py", "trainer.max_epochs=abc", f"hydra.run.dir={tmp_path / 'new'}"],
        cwd=REPO,
        env={**os.environ, "HYDRA_FULL_ERROR": "1"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "Traceback" in result.stderr and "trainer.max_epochs='abc'" in result.stderr


@pytest.mark.parametrize("override", ["trainer.max_epochs=abc", "optimizer=adamx", "data.batch_size=512"])
def test_config_errors_come_before_torch_is_imported(tmp_path: Path, override: str) -> None:
    """A mistyped value is reported in about a second: checking a config never waits for ``import torch``."""
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['train.py', *{list(TINY)!r}, {override!r}, 'hydra.run.dir={tmp_path / 'new'}']\n"
        "try:\n    runpy.run_path('train.py', run_name='__main__')\n"
        "except SystemExit as stop:\n    print('exit', stop.code, 'torch imported:', 'torch' in sys.modules)\n"
    )
    result = run_script("-c", code)
    assert "error: " in result.stderr, result.stderr[-2000:]
    assert result.stdout.strip().endswith("exit 2 torch imported: False"), result.stdout + result.stderr[-2000:]
