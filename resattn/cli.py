"""Uniform error reporting for entry points: one line, non-zero exit, traceback only on request."""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Mapping, Sequence

from resattn.atomic import out_of_space
from resattn.errors import EXIT_SIGINT, EXIT_USER_ERROR, ConfigError, DiskFull, ResattnError


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


def parse_options(argv: list[str] | None, defaults: Mapping[str, Any], usage: str, required: Sequence[str]) -> dict[str, Any]:
    """A small tool's ``key=value`` arguments (``sys.argv[1:]`` when ``argv`` is None) over its ``defaults``; an unknown
    key or a missing ``required`` one is a one-line :class:`ConfigError` ending in ``usage``."""
    from omegaconf import OmegaConf

    args = OmegaConf.to_container(OmegaConf.from_dotlist(sys.argv[1:] if argv is None else argv))
    unknown = set(args) - set(defaults)
    if unknown:
        raise ConfigError(f"unknown argument(s) {', '.join(sorted(unknown))}; {usage}")
    options = {**defaults, **args}
    for key in required:
        if options[key] in (None, "", []):
            raise ConfigError(f"{key} is required; {usage}")
    return options


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
        user_error = find_user_error(exc) or exc
        print(f"error: {one_line(user_error)}", file=sys.stderr)
        return exit_code(user_error)
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
