"""Uniform error reporting for entry points: one line, non-zero exit, traceback only on request."""

from __future__ import annotations

import os
import sys
from typing import Callable

from resattn.errors import ResattnError

EXIT_USER_ERROR = 2


def full_error_requested() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def run_cli(body: Callable[[], int]) -> int:
    """Run ``body``; user errors (ours and Hydra's config errors) become ``error: <message>`` and exit code 2."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        return body()
    except (ResattnError, HydraException, OmegaConfBaseException) as exc:
        if full_error_requested():
            raise
        message = " ".join(str(exc).split())
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
