"""CUDA checks (issue 11): always collected, skipped when ``torch.cuda.is_available()`` is false.

Run them on a GPU machine with ``python -m pytest -m cuda``:

* the device-resident training loader slices batches on the GPU with no host-to-device copy per step;
* Keras augmentation on a CUDA generator is reproducible under a seed;
* resume on CUDA matches the uninterrupted run (bitwise where kernels are deterministic; cuDNN may pick
  non-deterministic convolution kernels, so weights are compared within rtol 1e-3 / atol 1e-4);
* bf16 + channels_last + compile (inductor) trains, and ``eval.py`` reproduces the recorded test metrics;
* a sweep job hands its GPU memory back before the next job starts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from torch.profiler import ProfilerActivity, profile

from resattn.data.loader import TrainLoader
from tests.conftest import TINY, compose_cfg, run_script
from tests.test_train import straight_and_resumed

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

GPU = [*TINY, "trainer.accelerator=gpu", "trainer.devices=1"]


def test_device_resident_loader_copies_nothing_from_the_host_per_step() -> None:
    x = torch.randint(0, 256, (512, 3, 32, 32), dtype=torch.uint8, device="cuda")
    y = torch.randint(0, 10, (512,), device="cuda")
    loader = TrainLoader(x, y, batch_size=32, seed=0, device_resident=True)
    loader.set_epoch(0)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        batches = list(loader)
        torch.cuda.synchronize()
    assert len(batches) == 16 and all(b[0].is_cuda and b[1].is_cuda for b in batches)
    copies = [e.name for e in prof.events() if "HtoD" in e.name]
    assert len(copies) <= 1, copies  # the epoch's permutation, once; never per batch


def test_augmentation_on_a_cuda_generator_is_reproducible(tmp_path: Path) -> None:
    augment = instantiate(compose_cfg(tmp_path, [*GPU, "augment=keras"]).augment).cuda()
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, device="cuda")

    def run(seed: int) -> torch.Tensor:
        generator = torch.Generator(device="cuda")
        generator.manual_seed(seed)
        return augment(x, generator)

    first, again, other = run(123), run(123), run(124)
    assert first.is_cuda and torch.equal(first, again)
    assert not torch.equal(first, other)


def test_resume_on_cuda_matches_the_uninterrupted_run(tmp_path: Path) -> None:
    straight, resumed, a, b = straight_and_resumed(tmp_path, GPU)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-3, atol=1e-4, msg=key)
    assert resumed["epochs"] == straight["epochs"] == 3


def test_bf16_channels_last_compile_train_to_eval_parity(tmp_path: Path) -> None:
    run = tmp_path / "run"
    switches = ["trainer.precision=bf16-mixed", "channels_last=true", "compile=true", "data.eval_batch_size=64"]
    trained = run_script("train.py", *GPU, *switches, f"hydra.run.dir={run}", timeout=900)
    assert trained.returncode == 0, trained.stderr[-3000:]
    evaluated = run_script("eval.py", f"ckpt_path={run}", f"hydra.run.dir={tmp_path / 'eval'}", timeout=900)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    recorded = json.loads((run / "metrics.json").read_text())
    again = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert again["test/acc"] == recorded["test/acc"]
    assert again["test/loss"] == pytest.approx(recorded["test/loss"], rel=1e-4)


def test_sweep_jobs_hand_gpu_memory_back(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_script("train.py", "-m", *GPU, "regularization.dropout=0.0,0.4", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    assert "GPU memory still allocated after the job" not in output
    for job in ("0", "1"):
        assert json.loads((sweep / job / "metrics.json").read_text())["status"] == "ok"
