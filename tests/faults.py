"""Fault injection for the reliability tests: callbacks a ``train.py`` run loads with ``+callbacks.<name>._target_``,
and a process-group runner that never leaves a process behind."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytorch_lightning as pl

from tests.conftest import REPO

PHASES = ("train", "validation", "test", "save")


def _rank() -> int:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0)


class Fault(pl.Callback):
    """At one point of a run (``at``), every rank in ``ranks`` does ``action`` to itself.

    ``at``: ``train`` (while training step ``step`` runs, 1-based), ``validation`` (validation batch ``batch`` after
    step ``step``), ``test`` (test batch ``batch`` of the final test), ``save`` (while the checkpoint of step ``step``
    is being written). ``action``: a signal name (``SIGTERM``, ``SIGINT``, ``SIGKILL``, ``SIGSTOP``, ...) or ``raise``.
    """

    def __init__(self, at: str, action: str = "SIGTERM", ranks: Sequence[int] = (0,), step: int = 1, batch: int = 1) -> None:
        assert at in PHASES, at
        self.at, self.action, self.ranks, self.step, self.batch = at, action, {int(r) for r in ranks}, int(step), int(batch)
        self.done = False

    def _fire(self, trainer: pl.Trainer) -> None:
        if self.done or trainer.global_rank not in self.ranks:
            return
        self.done = True
        if self.action == "raise":
            raise RuntimeError(f"injected fault on rank {trainer.global_rank}")
        os.kill(os.getpid(), getattr(signal, self.action))

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self.at == "train" and trainer.global_step == self.step - 1:
            self._fire(trainer)

    def on_validation_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.at == "validation" and not trainer.sanity_checking and trainer.global_step == self.step and batch_idx == self.batch:
            self._fire(trainer)

    def on_test_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.at == "test" and batch_idx == self.batch:
            self._fire(trainer)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        if self.at == "save" and trainer.global_step == self.step:
            self._fire(trainer)


class Pace(pl.Callback):
    """From training step ``after`` (1-based) on, rank 0 touches ``marker`` and the ranks in ``ranks`` sleep ``seconds``
    before each step, so that a signal sent from outside once ``marker`` exists lands while training runs, with the
    other ranks waiting in DDP's gradient all-reduce (the state of the group-SIGTERM hang)."""

    def __init__(self, marker: str, after: int = 2, seconds: float = 0.5, ranks: Sequence[int] = (1,)) -> None:
        self.marker, self.after, self.seconds, self.ranks = Path(marker), int(after), float(seconds), {int(r) for r in ranks}

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step >= self.after - 1:
            if trainer.global_rank == 0:
                self.marker.touch()
            if trainer.global_rank in self.ranks:
                time.sleep(self.seconds)


def fault_args(at: str, action: str, ranks: Sequence[int], **kwargs: Any) -> list[str]:
    """Overrides that add a :class:`Fault` to a ``train.py`` run."""
    args = [
        "+callbacks.fault._target_=tests.faults.Fault",
        f"+callbacks.fault.at={at}",
        f"+callbacks.fault.action={action}",
        f"+callbacks.fault.ranks=[{','.join(str(r) for r in ranks)}]",
    ]
    return args + [f"+callbacks.fault.{k}={v}" for k, v in kwargs.items()]


# ------------------------------------------------------------------------------------------ checkpoint writes

WRITE_POINTS = ("created", "writing", "written", "renamed")


class _Handle:
    """A file handle that SIGKILLs its process once more than ``limit`` bytes were written through it."""

    def __init__(self, handle: Any, limit: int) -> None:
        self._handle, self._left = handle, limit

    def write(self, data: Any) -> int:
        self._left -= len(data)
        if self._left < 0:
            self._handle.write(bytes(data)[: len(data) + self._left])
            self._handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return self._handle.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __enter__(self) -> _Handle:
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._handle.__exit__(*exc)


class KillInWrite(pl.Callback):
    """SIGKILLs this process at ``point`` of its ``nth`` atomic write of a file called ``name``
    (:func:`resattn.artifacts.atomic.atomic_open`): ``created`` (the empty temporary file exists), ``writing`` (64 KiB of the
    data are written), ``written`` (all data written, before fsync and rename), ``renamed`` (renamed over ``name``,
    the directory not yet fsynced)."""

    def __init__(self, point: str, nth: int = 1, name: str = "last.ckpt") -> None:
        assert point in WRITE_POINTS, point
        self.point, self.nth, self.name = point, int(nth), name
        self.count, self.current = 0, False

    def setup(self, trainer: pl.Trainer, pl_module: Any, stage: str) -> None:
        import resattn.artifacts.atomic as atomic

        if not isinstance(atomic.os, _Os):
            atomic.os, atomic.tempfile = _Os(atomic.os, self), _Temp(atomic.tempfile, self)

    def armed(self, point: str) -> bool:
        return self.current and self.count == self.nth and self.point == point


class _Temp:
    def __init__(self, real: Any, killer: KillInWrite) -> None:
        self._real, self._killer = real, killer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def mkstemp(self, *args: Any, **kwargs: Any) -> Any:
        k = self._killer
        k.current = kwargs.get("prefix") == f".{k.name}."
        k.count += int(k.current)
        return self._real.mkstemp(*args, **kwargs)


class _Os:
    def __init__(self, real: Any, killer: KillInWrite) -> None:
        self._real, self._killer = real, killer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def fdopen(self, fd: int, *args: Any, **kwargs: Any) -> Any:
        handle = self._real.fdopen(fd, *args, **kwargs)
        if self._killer.armed("created"):
            self._real.kill(self._real.getpid(), signal.SIGKILL)
        return _Handle(handle, 64 * 1024) if self._killer.armed("writing") else handle

    def fsync(self, fd: int) -> None:
        if self._killer.armed("written"):
            self._real.kill(self._real.getpid(), signal.SIGKILL)
        self._real.fsync(fd)

    def replace(self, src: Any, dst: Any) -> None:
        self._real.replace(src, dst)
        if self._killer.armed("renamed"):
            self._real.kill(self._real.getpid(), signal.SIGKILL)


# ---------------------------------------------------------------------------------------------- full disk


def file_states(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative names)."""
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


class FillDisk(pl.Callback):
    """Fills the file system of the run directory (a small tmpfs made by the test) with ``<run dir>/../filler`` just
    before a write: ``at=save`` when the checkpoint of step ``step`` is about to be written, ``at=test_end`` after the
    final test (before ``metrics.json``). Every file's content at that moment goes to ``snapshot`` (a JSON file
    elsewhere), so the test can check that none was damaged."""

    def __init__(self, at: str, snapshot: str, step: int = 0) -> None:
        assert at in ("save", "test_end"), at
        self.at, self.snapshot, self.step, self.done = at, Path(snapshot), int(step), False

    def _fill(self, trainer: pl.Trainer) -> None:
        if self.done or trainer.global_rank != 0:
            return
        import json

        self.done = True
        for logger in trainer.loggers:  # what the loggers buffered so far is part of the "earlier files"
            logger.save()
        run_dir = Path(trainer.default_root_dir)
        self.snapshot.write_text(json.dumps(file_states(run_dir)))
        with open(run_dir.parent / "filler", "wb", buffering=0) as filler:
            for chunk in (1 << 20, 4096, 1):
                with contextlib.suppress(OSError):
                    while True:
                        filler.write(b"\0" * chunk)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        if self.at == "save" and trainer.global_step == self.step:
            self._fill(trainer)

    def on_test_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if self.at == "test_end":
            self._fill(trainer)


@contextlib.contextmanager
def small_disk(path: Path, size: str = "32m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (root only); skips the test when it cannot be mounted."""
    import pytest

    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here ({mounted.stderr.strip() or 'mount failed'}); needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


# ------------------------------------------------------------------------------------------ process groups

_PR_SET_CHILD_SUBREAPER = 36
EXIT_LOG_DIR = Path(__file__).parent / "exitlog"


def _set_subreaper(on: bool) -> bool:
    """Make this process adopt its orphaned descendants (Linux), so a DDP rank's exit status can be read
    after rank 0, its parent, is gone."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def group_pids(pgid: int) -> list[int]:
    """Live (or zombie) processes of process group ``pgid``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[2]) == pgid:
                    pids.append(int(entry.name))
    return sorted(pids)


class Group:
    """``python train.py ...`` started in its own session (``setsid``, as a scheduler does), whose ranks are tracked
    by pid so that each one's exit status can be read; :meth:`close` kills whatever is left of the group."""

    def __init__(self, args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.exit_log = log.with_name(log.name + ".exit")
        path = os.pathsep.join(filter(None, [str(EXIT_LOG_DIR), os.environ.get("PYTHONPATH")]))
        exit_env = {"RESATTN_EXIT_LOG": str(self.exit_log), "PYTHONPATH": path}
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **exit_env, **(env or {})}
        full_env.pop("HYDRA_FULL_ERROR", None)
        self.subreaper = _set_subreaper(True)
        self.log = log
        self._out = open(log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, *args], cwd=REPO, env=full_env, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.pgid = self.proc.pid
        self.ranks: dict[int, int] = {0: self.proc.pid}  # rank -> pid
        self.codes: dict[int, int] = {}  # rank -> exit status (128 + n when killed by signal n, as a shell reports)

    def wait_for_ranks(self, n: int, timeout: float) -> None:
        """Wait until ``n`` processes of the group exist (rank 0 launches the others) and record their pids."""
        deadline = time.monotonic() + timeout
        while True:
            others = [p for p in group_pids(self.pgid) if p != self.proc.pid]
            if len(others) >= n - 1:
                self.ranks.update({r + 1: p for r, p in enumerate(others[: n - 1])})
                return
            assert self.proc.poll() is None, f"rank 0 ended early ({self.proc.returncode}): {self.output()[-3000:]}"
            assert time.monotonic() < deadline, f"ranks did not start within {timeout} s"
            time.sleep(0.05)

    def wait_for(self, condition: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.proc.poll() is None, f"rank 0 ended early ({self.proc.returncode}): {self.output()[-3000:]}"
            assert time.monotonic() < deadline, f"timed out after {timeout} s: {self.output()[-3000:]}"
            time.sleep(0.05)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to every process of the group (``kill -<sig> -- -<pgid>``)."""
        os.killpg(self.pgid, signum)

    def wait(self, timeout: float) -> dict[int, int]:
        """Wait until every tracked rank has exited; their exit statuses by rank."""
        deadline = time.monotonic() + timeout
        while len(self.codes) < len(self.ranks):
            for rank, pid in self.ranks.items():
                if rank in self.codes:
                    continue
                status = self.proc.poll() if rank == 0 else self._reap(pid)
                if status is not None:
                    self.codes[rank] = 128 - status if status < 0 else status
                elif rank and not Path(f"/proc/{pid}").exists():  # reaped by rank 0 before we could
                    self.codes[rank] = self._recorded(pid)
            if time.monotonic() > deadline:
                raise AssertionError(f"ranks {sorted(set(self.ranks) - set(self.codes))} still running after {timeout} s")
            time.sleep(0.05)
        return dict(self.codes)

    def _reap(self, pid: int) -> int | None:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # the child of a living rank 0 (not adopted yet), or already reaped by it
            return None
        if done == 0:
            return None
        return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)

    def _recorded(self, pid: int) -> int | None:
        """The exit status ``pid`` recorded last (tests/exitlog/sitecustomize.py); -1 if none (e.g. it was killed)."""
        lines = self.exit_log.read_text().splitlines() if self.exit_log.is_file() else []
        codes = [int(line.split()[1]) for line in lines if line.split()[0] == str(pid)]
        return codes[-1] if codes else -1

    def output(self) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        """SIGKILL whatever is left of the group, reap it, stop adopting orphans."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        for rank, pid in self.ranks.items():
            if rank and rank not in self.codes:
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, 0)
        self._out.close()
        if self.subreaper:
            _set_subreaper(False)


@contextlib.contextmanager
def process_group(args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> Iterator[Group]:
    group = Group(args, log, env)
    try:
        yield group
    finally:
        group.close()
