#!/usr/bin/env python3
"""One-command setup + run, needing only Python 3.10+:

    python3 make.py train [hydra overrides]   # create .venv, install resattn (what training needs), run train.py
                                              # (downloads CIFAR-10 through torchvision if no local copy)
    python3 make.py test  [pytest args]       # install resattn[dev] (sweeps, trackers, test tools), run the tests
                                              # on every core (pytest-xdist; pass -n 0 for one process)

Any other first argument runs that script/module inside the venv, e.g. ``python3 make.py eval.py ckpt_path=...``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("RESATTN_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def _stamp(extras: str) -> tuple[Path, str]:
    """The file recording an install with ``extras``, and the digest it holds when pyproject.toml is unchanged."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    return VENV / f".resattn-installed-{extras or 'base'}", digest


def _installed(extras: str) -> bool:
    stamp, digest = _stamp(extras)
    return stamp.exists() and stamp.read_text() == digest


def ensure_env(extras: str = "dev") -> None:
    """Create the venv and (re)install the project when pyproject.toml changed: ``extras=""`` is what training and
    evaluation need; ``dev`` adds the sweep plugins, trackers and test tools (and so covers the base install)."""
    if not PYTHON.exists():
        print(f"[make] creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if _installed(extras) or _installed("dev"):
        return
    spec = f".[{extras}]" if extras else "."
    print(f"[make] installing resattn{f'[{extras}]' if extras else ''} into {VENV}", flush=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True, cwd=ROOT)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", "-e", spec], check=True, cwd=ROOT)
    stamp, digest = _stamp(extras)
    stamp.write_text(digest)


def with_download(args: list[str]) -> list[str]:
    """``make.py train``: let torchvision fetch CIFAR-10 when no local copy is found (skipped when present).

    An explicit ``data.download=...`` wins; offline, the data module's error names the npz to use instead.
    """
    if any(a.split("=", 1)[0].lstrip("+") == "data.download" for a in args):
        return args
    return [*args, "data.download=true"]


def pytest_args(args: list[str]) -> list[str]:
    """``make.py test``: one pytest-xdist worker per core (most tests run one single-threaded process), unless the
    caller chose (``-n N``, ``--numprocesses``, ``-p no:xdist``)."""
    if any(a.startswith(("-n", "--numprocesses")) or a == "no:xdist" for a in args):
        return args
    return ["-n", "auto", "--dist", "worksteal", *args]


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    command, args = argv[0], argv[1:]
    if command == "test":
        ensure_env()
        return subprocess.call([str(PYTHON), "-m", "pytest", *pytest_args(args)], cwd=ROOT)
    ensure_env(extras="" if command in ("train", "eval", "eval.py", "train.py") else "dev")
    if command == "train":
        args = with_download(args)
    script = {"train": "train.py", "eval": "eval.py"}.get(command, command)
    cmd = [str(PYTHON), script, *args] if script.endswith(".py") else [str(PYTHON), "-m", script, *args]
    return subprocess.call(cmd, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
