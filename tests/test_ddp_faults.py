"""Issue 20: a 2-rank CPU DDP run started by ``train.py`` stops safely on SIGTERM/SIGINT sent to any of its ranks, and
ends when a rank dies. Every run is its own session (``setsid``), has a time limit, and is killed as a whole group
when the test ends, also on failure (:func:`tests.faults.process_group`)."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from resattn.training.checkpoint_files import load_checkpoint
from tests.conftest import TINY
from tests.faults import fault_args, process_group
from tests.helpers import assert_same_weights

DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
# 256 images / (32 per rank x 2 ranks) = 4 steps per epoch; dropout exercises every rank's RNG restore.
RUN = [*TINY, *DDP, "regularization.dropout=0.3", "trainer.max_epochs=2", "test=false", "data.eval_batch_size=16"]
RUN += ["logger.tensorboard=null", "callbacks.weight_histograms=null"]  # not under test here: quicker runs
START_S = 240  # start-up of both ranks on a loaded 2-core machine
STOP_S = 60  # the bound: every rank has exited this long after the signal


def train_group(args: list[str], log: Path, limit: float = START_S + 120) -> tuple[dict[int, int], str]:
    """Run ``train.py args`` (2 ranks) to its end; exit status by rank and the output of both ranks."""
    with process_group(["train.py", *args], log) as group:
        group.wait_for_ranks(2, START_S)
        codes = group.wait(limit)
        return codes, group.output()


def lines(output: str, prefix: str) -> list[str]:
    """The ``prefix...`` lines of both ranks' output (whose writes may interleave within a line)."""
    return re.findall(re.escape(prefix) + r"[^\n]*?(?=interrupted:|error:|\n|$)", output)


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run that stopped-and-resumed runs must match bit for bit."""
    run = tmp_path_factory.mktemp("straight") / "run"
    codes, output = train_group([*RUN, f"hydra.run.dir={run}"], run.parent / "log")
    assert codes == {0: 0, 1: 0}, output[-3000:]
    return run


# ------------------------------------------------------------------------------------------------ signals


@pytest.mark.timeout(START_S + 3 * STOP_S + 240)
def test_sigterm_to_every_rank_stops_all_and_resumes_bitwise(tmp_path: Path, straight: Path) -> None:
    """The cluster case (SLURM, docker stop, timeout): ``kill -TERM -- -<pgid>`` while training runs. Rank 1 sleeps
    before each step, so rank 0 waits in DDP's gradient all-reduce when the signal lands: Lightning's handler,
    which broadcasts inside the handler, made this run hang or crash."""
    run, marker = tmp_path / "run", tmp_path / "training"
    pace = ["+callbacks.pace._target_=tests.faults.Pace", f"+callbacks.pace.marker={marker}", "+callbacks.pace.after=6"]
    with process_group(["train.py", *RUN, *pace, f"hydra.run.dir={run}"], tmp_path / "log") as group:
        group.wait_for_ranks(2, START_S)
        group.wait_for(marker.exists, START_S)  # step 6 of 8 (mid epoch 1) is about to run
        sent = time.monotonic()
        group.signal(signal.SIGTERM)
        codes = group.wait(STOP_S)
        elapsed = time.monotonic() - sent
        output = group.output()
    assert codes == {0: 143, 1: 143}, output[-3000:]
    assert elapsed < STOP_S
    stopped = lines(output, "interrupted:")
    assert len(stopped) == 2 and len(set(stopped)) == 1, output[-3000:]  # both ranks stopped at the same step
    step = load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"]
    assert 6 <= step < 8 and stopped[0].startswith(f"interrupted: SIGTERM mid-epoch 1 (step {step}); saved resumable checkpoint")
    assert f"resume={run}" in stopped[0] and "Traceback" not in output

    codes, output = train_group([f"resume={run}"], tmp_path / "resume.log")
    assert codes == {0: 0, 1: 0}, output[-3000:]
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 8
    assert_same_weights(straight, run)


# One run per case; with the case above they send SIGTERM to rank 0 only, to rank 1 only and to every rank, SIGINT to
# rank 1 only and to every rank (SIGINT to rank 0 alone takes the same path as SIGTERM; single-process runs test it),
# during a training step, validation, a checkpoint save and the final test. test_reliability.py resumes a run stopped
# during its test.
EPOCH_END = "at the end of epoch 0 (step 4); saved resumable checkpoint"
CASES = {
    "train-SIGINT-rank1": ("train", "SIGINT", [1], {"step": 3}, "mid-epoch 0 (step 3); saved resumable checkpoint", 3),
    "validation-SIGTERM-rank0": ("validation", "SIGTERM", [0], {"step": 4}, EPOCH_END, 4),
    # the save at the end of epoch 0 completes; the ranks agree at the end of the next step
    "save-SIGINT-every-rank": ("save", "SIGINT", [0, 1], {"step": 4}, "mid-epoch 1 (step 5); saved resumable checkpoint", 5),
    "test-SIGTERM-rank1": ("test", "SIGTERM", [1], {"batch": 0}, "during the test (step 8); no new checkpoint; the last one is", 8),
}


@pytest.mark.timeout(START_S + 120)
@pytest.mark.parametrize("case", list(CASES))
def test_signal_to_some_ranks_stops_all_at_one_step(tmp_path: Path, case: str) -> None:
    at, name, ranks, where, message, step = CASES[case]
    run = tmp_path / "run"
    extra = ["test=true"] if at == "test" else []
    codes, output = train_group([*RUN, *extra, *fault_args(at, name, ranks, **where), f"hydra.run.dir={run}"], tmp_path / "log")
    code = 128 + getattr(signal, name)
    assert codes == {0: code, 1: code}, output[-3000:]
    stopped = lines(output, "interrupted:")
    last = run / "checkpoints" / "last.ckpt"
    assert stopped == [f"interrupted: {name} {message} {last}; continue with: python train.py resume={run}"] * 2
    assert load_checkpoint(last)["global_step"] == step
    assert "Traceback" not in output and not (run / "metrics.json").exists()


# -------------------------------------------------------------------------------------------- a dying rank


@pytest.mark.timeout(3 * (START_S + 120))
@pytest.mark.parametrize("action, dead", [("SIGKILL", 0), ("raise", 1)])
def test_a_dying_rank_ends_the_run_and_resume_continues(tmp_path: Path, straight: Path, action: str, dead: int) -> None:
    """Killed (the OOM killer) or failing with an error at step 6: the survivor stops at once with one line naming the
    rank that is gone; the checkpoint of epoch 0 stays loadable and ``resume=`` finishes the run bit for bit."""
    run, survivor = tmp_path / "run", 1 - dead
    codes, output = train_group([*RUN, *fault_args("train", action, [dead], step=6), f"hydra.run.dir={run}"], tmp_path / "log")
    assert codes[dead] == (137 if action == "SIGKILL" else 1), output[-3000:]
    assert codes[survivor] == 4, output[-3000:]
    errors = lines(output, "error:")
    assert len(errors) == 1, output[-3000:]
    assert errors[0].startswith(f"error: rank {survivor} stops: DDP rank {dead} (pid ")
    assert f"is gone (killed, out of memory, or failed: see its output); last checkpoint {run / 'checkpoints' / 'last.ckpt'}" in errors[0]
    assert f"continue with: python train.py resume={run}" in errors[0]
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 4
    if action == "raise":
        assert f"RuntimeError: injected fault on rank {dead}" in output  # the failing rank's own error stays visible
        return
    codes, output = train_group([f"resume={run}", "+callbacks.fault.ranks=[]"], tmp_path / "resume.log")
    assert codes == {0: 0, 1: 0}, output[-3000:]
    assert_same_weights(straight, run)


@pytest.mark.timeout(START_S + 180)
def test_a_hung_rank_ends_the_run_after_the_timeout(tmp_path: Path) -> None:
    """A rank that stops responding (here SIGSTOP) ends the run after trainer.ddp_timeout seconds, not gloo's 30 min
    (the ranks' start-up has its own, longer bound: trainer.ddp_start_timeout)."""
    run, timeout = tmp_path / "run", 10
    args = ["train.py", *RUN, f"trainer.ddp_timeout={timeout}", *fault_args("train", "SIGSTOP", [1], step=3), f"hydra.run.dir={run}"]
    with process_group(args, tmp_path / "log") as group:
        group.wait_for_ranks(2, START_S)
        code = group.proc.wait(START_S + timeout + 60)  # start-up, 2 steps, the timeout, exit
        output = group.output()
    assert code == 4, output[-3000:]
    errors = lines(output, "error:")
    assert len(errors) == 1 and errors[0].startswith(
        f"error: rank 0 stops: the other DDP ranks did not respond within trainer.ddp_timeout ({timeout} s): hung or stopped"
    ), output[-3000:]
    assert "no checkpoint was saved yet; start the run again" in errors[0]
