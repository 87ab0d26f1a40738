"""Issue 20: damaged checkpoints, SIGKILL during a checkpoint write, and a full disk, all through ``train.py``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from resattn.training.checkpoint_files import load_checkpoint
from resattn.training.fit import train
from tests.conftest import TINY, compose_cfg, run_script
from tests.faults import WRITE_POINTS, file_states, small_disk
from tests.helpers import assert_same_weights

# 8 steps per epoch, one process; dropout exercises the RNG restore.
RUN = [*TINY, "regularization.dropout=0.3", "test=false"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three uninterrupted epochs."""
    run = tmp_path_factory.mktemp("straight")
    train(compose_cfg(run, [*RUN, "trainer.max_epochs=3"]))
    return run


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run stopped after epoch 0 of 3: ``epoch_000.ckpt`` and ``last.ckpt``, both at step 8."""
    run = tmp_path_factory.mktemp("one_epoch") / "run"
    done = run_script("train.py", *RUN, "trainer.max_epochs=1", f"hydra.run.dir={run}")
    assert done.returncode == 0, done.stderr[-2000:]
    return run


# ------------------------------------------------------------------------------------- damaged checkpoints


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 3])
    else:  # corrupted: the zip header and the pickled record overwritten
        path.write_bytes(b"\xde\xad\xbe\xef" * 1024 + data[4096:])


@pytest.mark.parametrize("how", ["truncated", "corrupted"])
def test_resume_with_a_damaged_last_ckpt_continues_from_the_newest_valid_one(
    tmp_path: Path, one_epoch: Path, straight: Path, how: str
) -> None:
    run = tmp_path / "run"
    shutil.copytree(one_epoch, run)
    last, valid = run / "checkpoints" / "last.ckpt", run / "checkpoints" / "epoch_000.ckpt"
    _damage(last, how)
    resumed = run_script("train.py", f"resume={run}", "trainer.max_epochs=3")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    warnings = [line for line in resumed.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, resumed.stderr[-2000:]
    assert warnings[0].startswith(f"warning: resume={run}: {last} is damaged (unreadable or truncated checkpoint (")
    assert warnings[0].endswith(f"resuming from {valid}, the newest valid one")
    assert load_checkpoint(last)["global_step"] == 24
    assert_same_weights(straight, run)  # epoch_000.ckpt is the state of step 8: nothing is lost


# ------------------------------------------------------------------------------ SIGKILL in a checkpoint write


def test_sigkill_at_every_point_of_a_checkpoint_write_keeps_a_valid_checkpoint(tmp_path: Path, straight: Path) -> None:
    """A chain of runs, each killed (SIGKILL) at another point of its first or second write of ``last.ckpt``; each
    time ``last.ckpt`` is a complete checkpoint (the previous one, or the new one once renamed), and the last
    resume ends bit for bit like the uninterrupted run."""
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"
    kill = ["+callbacks.kill._target_=tests.faults.KillInWrite"]
    steps = []
    for attempt, point in enumerate(WRITE_POINTS):
        nth = 2 if attempt == 0 else 1  # the fresh run: its write at the end of epoch 1 (epoch 0's is kept)
        args = [f"+callbacks.kill.point={point}", f"+callbacks.kill.nth={nth}"]
        first = [*RUN, "trainer.max_epochs=3", *kill, f"hydra.run.dir={run}"]
        killed = run_script("train.py", *(first if attempt == 0 else [f"resume={run}"]), *args)
        assert killed.returncode == -9, f"{point}: {killed.returncode} {killed.stderr[-2000:]}"
        steps.append(load_checkpoint(last)["global_step"])  # loads: complete, never truncated
        if point != "renamed":
            assert list(last.parent.glob(".last.ckpt.*.tmp")), f"{point}: the kill left its temporary file"
    assert steps == [8, 8, 8, 16]  # the previous checkpoint each time, until the new one was renamed into place
    finished = run_script("train.py", f"resume={run}", "+callbacks.kill.point=created", "+callbacks.kill.nth=99")
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert not list(last.parent.glob(".*.tmp")), "stale temporary files are removed"
    assert load_checkpoint(last)["global_step"] == 24
    assert_same_weights(straight, run)


# ------------------------------------------------------------------------------------------------ full disk


def _intact(before: dict[str, str], run: Path) -> None:
    """Every file that existed before the disk filled up still has its content; logs may only have grown."""
    after = file_states(run)
    for name, digest in before.items():
        assert name in after, f"{name} was lost"
        if name.endswith((".ckpt", ".yaml", ".json")):
            assert after[name] == digest, f"{name} was changed"
    for name in (n for n in before if n.endswith(".ckpt")):
        load_checkpoint(run / name)


@pytest.mark.parametrize("at", ["save", "test_end"])
def test_a_full_disk_during_a_write_is_one_error_and_keeps_earlier_files(tmp_path: Path, at: str) -> None:
    """``save``: the disk fills up as the checkpoint of epoch 1 is written; ``test_end``: as ``metrics.json`` is."""
    snapshot = tmp_path / "before.json"
    with small_disk(tmp_path / "disk") as disk:
        run = disk / "run"
        fill = ["+callbacks.fill._target_=tests.faults.FillDisk", f"+callbacks.fill.at={at}", f"+callbacks.fill.snapshot={snapshot}"]
        extra = ["+callbacks.fill.step=16", "test=false"] if at == "save" else ["test=true"]
        failed = run_script("train.py", *TINY, "trainer.max_epochs=2", *fill, *extra, f"hydra.run.dir={run}")
        assert failed.returncode == 5, failed.stderr[-3000:]
        errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
        assert errors == [failed.stderr.strip().splitlines()[-1]], failed.stderr[-3000:]
        # save: the first checkpoint written at step 16, the new best one (if val/acc improved) or last.ckpt
        targets = [run / "checkpoints" / n for n in ("epoch_001.ckpt", "last.ckpt")] if at == "save" else [run / "metrics.json"]
        assert any(errors[0].startswith(f"error: no space left on device writing {t}; files written before are intact") for t in targets)
        assert "Traceback" not in failed.stderr
        before = json.loads(snapshot.read_text())
        _intact(before, run)
        assert not list(run.rglob(".*.tmp")), "the failed write's temporary file is removed"
        assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == (8 if at == "save" else 16)
        assert not (run / "metrics.json").exists()
