"""Shared helpers: compose the real config tree and run train/eval in-process or as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import pytest
import torch
from omegaconf import DictConfig

from resattn.config.compose import compose_run

REPO = Path(__file__).resolve().parents[1]

# Tiny models are dominated by per-op overhead: one thread per process avoids oversubscribing 2 cores.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Threads for a test's larger training run: the cores left to each pytest-xdist worker (``make.py test`` starts one
# per core), so parallel tests never oversubscribe the machine.
RUN_THREADS = {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))}

# A seconds-long CPU run: synthetic data, 4-channel network, small batches, no progress bar.
TINY = [
    "data=synthetic",
    "model.width=4",
    "trainer.accelerator=cpu",
    # fp32 on every machine: trainer.precision=auto would pick bf16 on a CPU with native bf16, whose results depend on
    # batch composition (e.g. DDP shards vs one process) beyond the tolerances the tests use
    "trainer.precision=32",
    "trainer.max_epochs=2",
    "trainer.num_sanity_val_steps=0",
    "callbacks.progress_bar=null",
    "data.train_size=256",
    "data.val_size=64",
    "data.test_size=64",
    "data.batch_size=32",
    "optimizer.lr=0.01",
    "model.init=torch",  # PyTorch BN momentum: running statistics settle within a few steps
    "data.eval_batch_size=64",
]


def compose_cfg(run_dir: Path, overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """Compose like ``train.py`` would, with ``run_dir`` as the (created) run directory."""
    cfg = compose_run(run_dir, overrides, config_name)
    run_dir.mkdir(parents=True, exist_ok=True)
    return cfg


def run_script(*args: str, cwd: Path = REPO, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``python <args>`` in the repo with the test interpreter; output captured as text."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def tiny() -> list[str]:
    return list(TINY)
