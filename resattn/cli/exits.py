"""The one place that turns exceptions into ``error:`` lines and exit codes (the codes: :mod:`resattn.errors`):
one line, non-zero exit, traceback only on request (``HYDRA_FULL_ERROR=1``); and who prints (rank zero)."""

from __future__ import annotations

import os
import sys
from typing import Callable, NoReturn

from resattn.artifacts.atomic import out_of_space
from resattn.errors import EXIT_SIGINT, EXIT_USER_ERROR, DiskFull, ResattnError


def is_rank_zero() -> bool:
    """False in DDP ranks > 0 (started by Lightning, torchrun or SLURM): they print no notes."""
    return all(os.environ.get(k, "0") in ("", "0") for k in ("RANK", "LOCAL_RANK", "SLURM_PROCID"))


def full_error_requested() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def find_user_error(exc: BaseException) -> ResattnError | None:
    """Our user-facing error behind ``exc`` (Hydra wraps errors raised inside ``instantiate``); a write that failed
    on a full disk anywhere (a logger's file, not only resattn's atomic writes) is a :class:`DiskFull`."""
    chain = _chain(exc)
    found = next((e for e in chain if isinstance(e, ResattnError)), None)
    if found is None and out_of_space(exc):
        where = next((e.filename for e in chain if isinstance(e, OSError) and e.filename), None)
        return DiskFull(
            f"no space left on device{f' writing {where}' if where else ''}; files written before are intact; free space on "
            "that file system, then run again (resume=<run dir> continues from the last checkpoint)"
        )
    return found


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it (``__cause__``, else ``__context__``), without cycles."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not e for e in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def one_line(exc: BaseException) -> str:
    text = str(exc).split("\nConfig search path:")[0]  # Hydra appends its search path to missing-config errors
    return " ".join(text.split()) or type(exc).__name__


def exit_code(exc: BaseException) -> int:
    """Exit status of a user-facing error: its ``exit_code`` (e.g. 3 for a diverged run), else 2."""
    return int(getattr(exc, "exit_code", EXIT_USER_ERROR))


def print_error(message: str) -> None:
    """``error: <message>`` on stderr: how every command reports what went wrong."""
    print(f"error: {message}", file=sys.stderr)


def report(exc: BaseException) -> int:
    """Print the user-facing error behind ``exc`` (else ``exc`` itself) as one ``error:`` line; its exit status."""
    user_error = find_user_error(exc) or exc
    print_error(one_line(user_error))
    return exit_code(user_error)


def fail(message: str, code: int = EXIT_USER_ERROR) -> NoReturn:
    """``error: <message>`` and exit ``code``; a SystemExit, for where exceptions are not reported (Hydra callbacks
    turn them into warnings)."""
    print_error(message)
    raise SystemExit(code)


def run_cli(body: Callable[[], int]) -> int:
    """Run ``body``; user errors (ours and Hydra's config errors) become ``error: <message>`` and exit code 2
    (or the error's own ``exit_code``); stops by signal become ``interrupted: <message>``, exit 128 + signal.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        return body()
    except (ResattnError, HydraException, OmegaConfBaseException) as exc:
        if full_error_requested():
            raise
        return report(exc)
    except SystemExit as exc:
        message = getattr(exc, "user_message", None)  # resattn.callbacks.signals.RunInterrupted
        if message is None:
            raise
        print(f"interrupted: {one_line(exc)}", file=sys.stderr)
        return int(exc.code)
    except KeyboardInterrupt:
        if full_error_requested():
            raise
        print("interrupted: SIGINT before training started; nothing was saved", file=sys.stderr)
        return EXIT_SIGINT
