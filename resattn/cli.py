"""Uniform error reporting for entry points: one line, non-zero exit, traceback only on request."""

from __future__ import annotations

import os
import sys
from typing import Callable

from resattn.errors import ResattnError

EXIT_USER_ERROR = 2


def full_error_requested() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def find_user_error(exc: BaseException) -> ResattnError | None:
    """Our user-facing error behind ``exc`` (Hydra wraps errors raised inside ``instantiate``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ResattnError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def run_cli(body: Callable[[], int]) -> int:
    """Run ``body``; user errors (ours and Hydra's config errors) become ``error: <message>`` and exit code 2."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        return body()
    except (ResattnError, HydraException, OmegaConfBaseException) as exc:
        if full_error_requested():
            raise
        print(f"error: {one_line(find_user_error(exc) or exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
