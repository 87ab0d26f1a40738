"""Training correctness (issue 10): runs that must learn, evaluation metrics and resumed schedules.

* the smoke run learns (synthetic data), and a short real-data run beats chance clearly (skipped without
  the offline ``cifar10.npz``);
* ``val/loss`` and ``test/loss`` are plain cross-entropy under label smoothing;
* ``eval.py`` evaluates in the precision the run trained with (``tests/test_switches.py``, mixed precision);
* resuming with another length is refused, before any work, for schedules fitted to the run's length.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from resattn.training.build import module_from_config
from tests.conftest import REPO, RUN_THREADS, TINY, compose_cfg, run_script

NPZ_DIRS = [Path(os.environ["RESATTN_DATA_DIR"])] if os.environ.get("RESATTN_DATA_DIR") else []
NPZ_DIRS += [REPO / "data", REPO.parent / "shared" / "cifar10"]
CIFAR_DIR = next((d for d in NPZ_DIRS if (d / "cifar10.npz").is_file()), None)


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_smoke_run_learns(tmp_path: Path) -> None:
    """``python train.py debug=smoke`` as users type it: the synthetic task is learnt, not left at chance."""
    run = tmp_path / "smoke"
    result = run_script("train.py", "debug=smoke", f"hydra.run.dir={run}", env=RUN_THREADS)
    assert result.returncode == 0, result.stderr[-2000:]
    assert _metrics(run)["test/acc"] >= 0.90


@pytest.mark.skipif(CIFAR_DIR is None, reason="cifar10.npz not found (RESATTN_DATA_DIR, data/ or ../shared/cifar10)")
def test_short_real_data_run_beats_chance(tmp_path: Path) -> None:
    """Width 8, 5,000 real images, 3 epochs: far above chance (0.10) on all 10,000 test images. Without test-time
    augmentation (``improved`` evaluates 2-6 views of each image, most of this run's time); TTA has its own tests."""
    run = tmp_path / "real"
    result = run_script(
        "train.py",
        "experiment=improved",
        "model.width=8",
        "data.train_size=5000",
        "data.batch_size=128",
        "optimizer.lr=0.1",
        "trainer.max_epochs=3",
        "tta=none",
        "val_tta=null",
        f"data.root={CIFAR_DIR}",
        "callbacks.progress_bar.refresh_rate=0",
        f"hydra.run.dir={run}",
        env=RUN_THREADS,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = _metrics(run)
    assert metrics["test/acc"] >= REAL_DATA_FLOOR, metrics


# Measured: test/acc 0.391 (val 0.385) on 2026-11-30; 0.383 (val 0.379) on 2026-12-07 (fp32, 2-core Zen 3). The floor
# leaves a wide margin above chance and below that.
REAL_DATA_FLOOR = 0.25


def test_eval_losses_are_plain_cross_entropy_under_label_smoothing(tmp_path: Path) -> None:
    cfg = compose_cfg(tmp_path, [*TINY, "label_smoothing=0.4"])
    module = module_from_config(cfg).eval()
    x, y = torch.randn(16, 3, 32, 32), torch.arange(16) % 10
    with torch.no_grad():
        logits = module(x)
        module.validation_step((x, y), 0)
        module.test_step((x, y), 0)
        train_loss = module.training_step((x, y), 0)
    plain = F.cross_entropy(logits, y)
    torch.testing.assert_close(module.val_loss.compute(), plain)
    torch.testing.assert_close(module.test_loss.compute(), plain)
    torch.testing.assert_close(train_loss, F.cross_entropy(logits, y, label_smoothing=0.4))  # training keeps it


@pytest.mark.parametrize("scheduler", ["onecycle", "cosine"])
def test_resume_with_another_length_is_refused_before_any_work(tmp_path: Path, scheduler: str) -> None:
    run = tmp_path / "run"
    first = run_script("train.py", *TINY, f"scheduler={scheduler}", "trainer.max_epochs=1", "test=false", f"hydra.run.dir={run}")
    assert first.returncode == 0, first.stderr[-2000:]
    last = run / "checkpoints" / "last.ckpt"
    before = (last.read_bytes(), (run / ".hydra" / "overrides.yaml").read_text())
    longer = run_script("train.py", f"resume={run}", "trainer.max_epochs=2")
    assert longer.returncode == 2, longer.stderr[-2000:]
    lines = longer.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "trainer.max_epochs changed from 1 to 2" in lines[-1], lines[-3:]
    assert "cannot be stretched" in lines[-1] and f"ckpt_path={last}" in lines[-1]
    assert (last.read_bytes(), (run / ".hydra" / "overrides.yaml").read_text()) == before
    same = run_script("train.py", f"resume={run}")  # the same length resumes (nothing left: tests only)
    assert same.returncode == 0, same.stderr[-2000:]
