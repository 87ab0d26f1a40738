"""A DDP rank that dies or hangs ends the run: the others stop with one line naming it.

A rank killed (``kill -9``, the out-of-memory killer) or ending on an error closes its connections, and the
next collective of every other rank fails at once; a rank that hangs makes them fail after the process-group
timeout. The strategy's timeout (:func:`strategy_with_timeout`, ``trainer.ddp_start_timeout``) bounds the ranks'
start-up, which can take long (rank 0 starts the others once it is set up); :class:`RankWatch` then sets the
timeout of every later collective to ``trainer.ddp_timeout``. It also learns every rank's host and pid, and
:func:`ranks_end_together` turns a failed collective into a :class:`RankLost` error (exit status 4) naming the rank
that is gone.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import re
import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import pytorch_lightning as pl
import torch.distributed as dist

from resattn.callbacks.signals import last_checkpoint_path
from resattn.errors import EXIT_RANK_LOST, ResattnError

log = logging.getLogger("resattn")

# Messages of gloo/NCCL/c10d errors raised when a peer is gone or silent (older torch raises plain RuntimeError).
_COLLECTIVE_FAILURE = re.compile(r"gloo|nccl|ProcessGroup|Connection (reset|closed|refused)|Broken pipe|Timed out|timeout", re.I)


class RankLost(ResattnError):
    """Another DDP rank died or stopped responding; this rank cannot continue."""

    exit_code = EXIT_RANK_LOST


def strategy_with_timeout(strategy: Any, seconds: float | None) -> Any:
    """``trainer.strategy`` (a registered name such as ``ddp``) as a strategy object whose process group times
    out after ``seconds``; names whose strategy takes no timeout (``auto``, ``single_device``) stay as they are."""
    if seconds is None or not isinstance(strategy, str):
        return strategy
    from pytorch_lightning.strategies import StrategyRegistry

    if strategy not in StrategyRegistry:
        return strategy
    entry = StrategyRegistry[strategy]
    if "timeout" not in inspect.signature(entry["strategy"]).parameters:
        return strategy
    return entry["strategy"](**entry["init_params"], timeout=timedelta(seconds=float(seconds)))


def is_collective_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a failed or timed-out collective."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, dist.DistError) or (isinstance(current, RuntimeError) and _COLLECTIVE_FAILURE.search(str(current))):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _gone(pid: int) -> bool:
    """Whether the local process ``pid`` has ended (no longer exists, or a zombie not yet reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return state in ("Z", "X")


class RankWatch(pl.Callback):
    """Once every rank has joined: sets the process-group ``timeout`` (seconds) and records every rank's (host, pid),
    to name the rank that is gone when a collective fails."""

    def __init__(self, timeout: float | None = None) -> None:
        self.timeout = timeout
        self.peers: list[tuple[str, int]] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.world_size > 1 and dist.is_available() and dist.is_initialized() and not self.peers:
            peers: list[Any] = [None] * trainer.world_size
            dist.all_gather_object(peers, (socket.gethostname(), os.getpid()))
            self.peers = [tuple(p) for p in peers]
            if self.timeout is not None:
                dist.set_timeout(timedelta(seconds=float(self.timeout)))

    def gone_ranks(self, rank: int, wait_s: float = 3.0) -> list[int] | None:
        """Ranks on this host whose process has ended (waiting up to ``wait_s`` for one that is exiting);
        ``None`` when some other rank runs on another host, whose state cannot be seen from here."""
        host = socket.gethostname()
        local = {r: pid for r, (h, pid) in enumerate(self.peers) if r != rank and h == host}
        deadline = time.monotonic() + wait_s
        while True:
            gone = [r for r, pid in local.items() if _gone(pid)]
            if gone or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        if not gone and len(local) < len(self.peers) - 1:
            return None
        return gone

    def explain(self, trainer: pl.Trainer, exc: BaseException) -> RankLost:
        """The one-line error for a failed collective on this rank."""
        rank = trainer.global_rank
        gone = self.gone_ranks(rank) if self.peers else None
        timeout = timedelta(seconds=float(self.timeout)) if self.timeout is not None else getattr(trainer.strategy, "_timeout", None)
        limit = f"{timeout.total_seconds():g} s" if isinstance(timeout, timedelta) else "the process-group timeout"
        if gone:
            names = ", ".join(f"rank {r} (pid {self.peers[r][1]})" for r in gone)
            what = f"DDP {names} {'is' if len(gone) == 1 else 'are'} gone (killed, out of memory, or failed: see its output)"
        elif gone is not None:
            what = f"the other DDP ranks did not respond within trainer.ddp_timeout ({limit}): hung or stopped"
        else:
            what = f"a DDP rank on another node failed or did not respond within {limit}"
        last = last_checkpoint_path(trainer)
        state = (
            f"last checkpoint {last}; continue with: python train.py resume={trainer.default_root_dir}"
            if last.is_file()
            else "no checkpoint was saved yet; start the run again"
        )
        cause = " ".join(str(exc).split())[:120]
        return RankLost(f"rank {rank} stops: {what}; {state} ({type(exc).__name__}: {cause})")


@contextlib.contextmanager
def ranks_end_together(trainer: pl.Trainer) -> Iterator[None]:
    """Turn a failed collective inside the block into :class:`RankLost` naming the rank that is gone."""
    try:
        yield
    except Exception as exc:
        watch = next((cb for cb in trainer.callbacks if isinstance(cb, RankWatch)), None)
        if watch is None or trainer.world_size <= 1 or not is_collective_failure(exc):
            raise
        raise watch.explain(trainer, exc) from None
