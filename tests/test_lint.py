"""Issue 12: the code base passes ``ruff check`` and ``ruff format --check`` (settings in ``pyproject.toml``), so
CI fails on lint errors and unformatted code."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff_passes(command: list[str]) -> None:
    pytest.importorskip("ruff", reason="ruff comes with the dev extra: pip install -e '.[dev]'")
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "--no-cache", str(REPO)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
