"""``resume=<run dir>``: continue a run in place by replaying its saved overrides."""

from __future__ import annotations

from pathlib import Path

import yaml

from resattn.errors import CheckpointError

LAST_CKPT = Path("checkpoints") / "last.ckpt"


def override_key(override: str) -> str:
    """The config key an override sets (``+a.b=1`` → ``a.b``)."""
    return override.split("=", 1)[0].lstrip("+~")


def find_resume_dir(args: list[str]) -> Path | None:
    values = [a.split("=", 1)[1] for a in args if override_key(a) == "resume" and "=" in a]
    if not values or values[-1] in ("", "null", "None"):
        return None
    return Path(values[-1]).expanduser().resolve()


def resume_checkpoint(run_dir: Path) -> Path:
    """The checkpoint a resumed run continues from, with a precise error when it cannot."""
    if not run_dir.is_dir():
        raise CheckpointError(f"resume={run_dir}: no such run directory; pass the directory of an earlier train.py run")
    ckpt = run_dir / LAST_CKPT
    if not ckpt.is_file():
        raise CheckpointError(
            f"resume={run_dir}: {LAST_CKPT} not found, so there is nothing to resume; start a new run instead, "
            "or use ckpt_path=<file.ckpt> to start from another checkpoint"
        )
    return ckpt


def expand_resume_args(args: list[str]) -> list[str]:
    """Rewrite ``train.py`` arguments so ``resume=<dir>`` re-runs in ``<dir>`` with its original overrides.

    The run's saved ``.hydra/overrides.yaml`` comes first and the new command-line overrides replace any
    saved override of the same key; ``hydra.run.dir`` is pinned to the run directory.
    """
    run_dir = find_resume_dir(args)
    if run_dir is None:
        return args
    if "-m" in args or "--multirun" in args:
        raise CheckpointError("resume=<run dir> resumes a single run; resume each job of a sweep separately")
    resume_checkpoint(run_dir)
    saved_file = run_dir / ".hydra" / "overrides.yaml"
    if not saved_file.is_file():
        raise CheckpointError(f"resume={run_dir}: .hydra/overrides.yaml not found; is this a train.py run directory?")
    saved = yaml.safe_load(saved_file.read_text()) or []
    new_keys = {override_key(a) for a in args if "=" in a}
    replay = [o for o in saved if override_key(o) not in new_keys | {"resume", "hydra.run.dir"}]
    rest = [a if override_key(a) != "resume" else f"resume={run_dir}" for a in args]
    return replay + rest + [f"hydra.run.dir={run_dir}"]
