"""Atomic file writes, the one way resattn writes results: a temporary file in the target folder, fsynced,
renamed over the target, then the folder fsynced. A crash or ``kill -9`` at any moment leaves either the old
complete file or the new complete file under the final name, never a truncated one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def fsync_dir(directory: str | Path) -> None:
    """Make a rename in ``directory`` durable."""
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """``open(path, mode)`` whose content appears under ``path`` only when the ``with`` block completes.

    The temporary file is ``.<name>.<random>.tmp`` beside ``path`` (with the usual permissions, not
    mkstemp's 0600); it is removed if the block raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        full = isinstance(exc, Exception) and out_of_space(exc, path.parent)  # before the temporary file frees space
        Path(tmp).unlink(missing_ok=True)
        if full:
            from resattn.errors import DiskFull

            raise DiskFull(
                f"no space left on device writing {path}; files written before are intact (this write was not completed); "
                "free space on that file system, then run again (resume=<run dir> continues from the last checkpoint)"
            ) from None
        raise
    fsync_dir(path.parent)


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def out_of_space(exc: BaseException, directory: str | Path | None = None) -> bool:
    """Whether ``exc`` is a write that failed on a full file system (or quota): an ``ENOSPC``/``EDQUOT`` error in its
    chain, or a failed write (torch's zip writer reports no errno) while ``directory``'s file system has no space left."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError) and current.errno in _NO_SPACE:
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    if directory is None or "write" not in str(exc).lower():
        return False
    try:
        st = os.statvfs(directory)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


def write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w", newline="") as handle:
        handle.write(text)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)
