"""Test helper, put on ``PYTHONPATH`` by :class:`tests.faults.Group` only: each process appends ``<pid> <exit status>``
to ``$RESATTN_EXIT_LOG`` when it calls ``sys.exit`` or ends on an uncaught exception. A DDP rank > 0 is a child of
rank 0, which may reap it before the test can, so its exit status is read from here when ``waitpid`` cannot."""

import os
import sys

_LOG = os.environ.get("RESATTN_EXIT_LOG")

if _LOG:
    _exit, _excepthook = sys.exit, sys.excepthook

    def _write(status: object) -> None:
        code = status if isinstance(status, int) else (0 if status is None else 1)
        fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{os.getpid()} {code}\n".encode())
        finally:
            os.close(fd)

    def _recording_exit(status: object = None) -> None:
        _write(status)
        _exit(status)

    def _recording_excepthook(kind: type, value: BaseException, tb: object) -> None:
        _write(value.code if isinstance(value, SystemExit) else 1)
        _excepthook(kind, value, tb)

    sys.exit, sys.excepthook = _recording_exit, _recording_excepthook
