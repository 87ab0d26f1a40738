"""``resume=<run dir>``: continue a run in place by replaying its saved overrides."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from resattn.artifacts.atomic import write_bytes
from resattn.errors import CheckpointError

LAST_CKPT = Path("checkpoints") / "last.ckpt"
LOG_FILE = "train.log"  # what train.py logs to (conf/train.yaml: hydra.job_logging)
HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")


def override_key(override: str) -> str:
    """The config key an override sets (``+a.b=1`` → ``a.b``)."""
    return override.split("=", 1)[0].lstrip("+~")


def find_resume_dir(args: list[str]) -> Path | None:
    values = [a.split("=", 1)[1] for a in args if override_key(a) == "resume" and "=" in a]
    if not values or values[-1] in ("", "null", "None"):
        return None
    return Path(values[-1]).expanduser().resolve()


def resume_checkpoint(run_dir: Path) -> Path:
    """The checkpoint a resumed run continues from, with a precise error when it cannot.

    A damaged ``last.ckpt`` (truncated, corrupted, not a resattn checkpoint) gives way to the newest valid
    checkpoint of the run, with a one-line warning naming both; when none is valid, the error names them.
    """
    if not run_dir.is_dir():
        raise CheckpointError(f"resume={run_dir}: no such run directory; pass the directory of an earlier train.py run")
    ckpt = run_dir / LAST_CKPT
    if not ckpt.is_file():
        raise CheckpointError(
            f"resume={run_dir}: {LAST_CKPT} not found, so there is nothing to resume; start a new run instead, "
            "or use ckpt_path=<file.ckpt> to start from another checkpoint"
        )
    problem = _damage(ckpt)
    if problem is None:
        return ckpt
    others = sorted((p for p in ckpt.parent.glob("*.ckpt") if p != ckpt and p.is_file()), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    valid = next((p for p in others if _damage(p) is None), None)
    if valid is None:
        names = ", ".join(p.name for p in others)
        also = f"and so is every other checkpoint of the run ({names})" if others else "and the run has no other checkpoint"
        raise CheckpointError(
            f"resume={run_dir}: no valid checkpoint to resume from: {LAST_CKPT}: {problem}, {also}; start a new run; "
            "this one is left untouched"
        )
    from resattn.cli.exits import is_rank_zero

    if (ckpt, valid) not in _WARNED and is_rank_zero():  # DDP ranks > 0 check the same files
        _WARNED.add((ckpt, valid))
        print(f"warning: resume={run_dir}: {ckpt} is damaged ({problem}); resuming from {valid}, the newest valid one", file=sys.stderr)
    return valid


_DAMAGE: dict[tuple[Path, int, int], str | None] = {}  # (file, size, mtime) -> problem: each file is read once
_WARNED: set[tuple[Path, Path]] = set()


def _damage(path: Path) -> str | None:
    """What is wrong with the checkpoint file ``path`` (``None``: it loads and is a resattn checkpoint)."""
    from resattn.training.checkpoint_files import read_checkpoint

    st = path.stat()
    key = (path.resolve(), st.st_size, st.st_mtime_ns)
    if key not in _DAMAGE:
        _DAMAGE[key] = read_checkpoint(path)[1]
    return _DAMAGE[key]


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
    saved = from_before_epochs(read_saved_overrides(saved_file, run_dir), run_dir)
    new_keys = {override_key(a) for a in args if "=" in a}
    replay = [o for o in saved if override_key(o) not in new_keys | {"resume", "hydra.run.dir"}]
    rest = [a if override_key(a) != "resume" else f"resume={run_dir}" for a in args]
    return replay + rest + [f"hydra.run.dir={run_dir}", *earlier_log(run_dir)]


def earlier_log(run_dir: Path) -> list[str]:
    """The override that keeps a run made before the fixed log name (its log was ``<task_name>.log``) logging
    to the file it has; none for other runs."""
    logs = [p for p in run_dir.glob("*.log") if p.is_file()]
    if (run_dir / LOG_FILE).is_file() or len(logs) != 1:
        return []
    return [f"hydra.job_logging.handlers.file.filename={logs[0]}"]


def from_before_epochs(saved: list[str], run_dir: Path) -> list[str]:
    """The saved overrides of a run made before the ``epochs`` key, in today's terms.

    Such a run (its ``.hydra/config.yaml`` has no ``epochs``) rescaled under a scale with a length: there its
    ``trainer.max_epochs`` was the experiment's length, which is ``epochs`` now, and at ``scale=full`` with
    ``scale.max_epochs`` set the epoch counts followed the scale's length. Other runs replay unchanged.
    """
    try:
        old = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return saved
    if not isinstance(old, dict) or "epochs" in old or not isinstance(old.get("scale"), dict):
        return saved
    if old["scale"].get("max_epochs") is None:  # it did not rescale: trainer.max_epochs meant what it means now
        return saved
    replay = [f"epochs={o.split('=', 1)[1]}" if override_key(o) == "trainer.max_epochs" else o for o in saved]
    if old["scale"].get("name", "full") == "full":
        replay.append("scale.reference_epochs=${epochs}")
    return replay


def read_saved_overrides(path: Path, run_dir: Path) -> list[str]:
    """A run's ``.hydra/overrides.yaml``; an empty or garbled file is an error, never "no overrides"."""
    text = path.read_text()
    try:
        saved = yaml.safe_load(text)
    except yaml.YAMLError:
        saved = None
    if not isinstance(saved, list) or not all(isinstance(o, str) for o in saved):
        raise CheckpointError(
            f"resume={run_dir}: .hydra/overrides.yaml is empty or corrupt (the run was killed while it was "
            "written?); rewrite it as a YAML list of the run's overrides, or start a new run with "
            f"ckpt_path={run_dir / LAST_CKPT}"
        )
    return saved


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


@contextlib.contextmanager
def keep_run_dir_on_failure(run_dir: Path | None, bad_input_code: int = 2) -> Iterator[None]:
    """Undo Hydra's rewrite of ``<run_dir>/.hydra/*.yaml`` when a resumed command fails before saving.

    Hydra writes the new command's config into the run directory before the task starts. If the command
    then fails (non-zero exit or an exception) and ``checkpoints/last.ckpt`` was not replaced, the run's
    saved config still describes its checkpoint, so the previous files are put back. After a bad-input
    error (exit status ``bad_input_code``) the run's ``*.log`` files are also cut back to their old size and
    files the command created (e.g. an empty TensorBoard event file) are removed: no trace is left.
    """
    if run_dir is None:
        yield
        return
    hydra_dir = run_dir / ".hydra"
    saved = {name: (hydra_dir / name).read_bytes() for name in HYDRA_FILES if (hydra_dir / name).is_file()}
    log_sizes = {p: p.stat().st_size for p in run_dir.glob("*.log") if p.is_file()}
    existing = set(run_dir.rglob("*"))
    before = _stamp(run_dir / LAST_CKPT)
    code: Any = 1
    try:
        yield
        code = 0
    except SystemExit as exc:
        code = exc.code
        raise
    finally:
        if code not in (0, None) and _stamp(run_dir / LAST_CKPT) == before:
            if code == bad_input_code:
                _undo_additions(run_dir, existing, log_sizes)
            for name, data in saved.items():
                current = hydra_dir / name
                if not current.is_file() or current.read_bytes() != data:
                    write_bytes(current, data)


def _undo_additions(run_dir: Path, existing: set[Path], log_sizes: dict[Path, int]) -> None:
    """Cut logs back to ``log_sizes`` and delete files and folders that are not in ``existing``."""
    for path, size in log_sizes.items():
        if path.is_file() and path.stat().st_size > size:
            os.truncate(path, size)
    added = sorted(set(run_dir.rglob("*")) - existing, key=lambda p: len(p.parts), reverse=True)
    for path in added:  # deepest first, so folders are empty when their turn comes
        if path.is_dir() and not path.is_symlink():
            with contextlib.suppress(OSError):
                path.rmdir()
        else:
            path.unlink(missing_ok=True)


# Keys that fix how many optimizer steps a run takes (Lightning's estimated_stepping_batches).
RUN_LENGTH_KEYS = (
    "trainer.max_epochs", "trainer.max_steps", "trainer.limit_train_batches", "trainer.accumulate_grad_batches",
    "trainer.devices", "trainer.num_nodes", "data.train_size", "data.batch_size",
)  # fmt: skip
# Scheduler arguments left null to be fitted to the run's length (resattn.training.schedulers.lightning_scheduler).
AUTO_LENGTH_KEYS = ("T_max", "total_steps")


def _select(tree: Mapping[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, Mapping) else None
    return tree


def check_resume_schedule(cfg: Any, stored: Mapping[str, Any], run_dir: Path) -> None:
    """A resumed run keeps the learning-rate schedule its checkpoint is part of.

    ``cfg`` is the resumed command's config (DictConfig), ``stored`` the checkpoint's (resolved). Raises
    :class:`CheckpointError` when a scheduler argument changed, or when a schedule fitted to the run's
    length (one-cycle, cosine) would be resumed with another length: the checkpointed scheduler state would
    silently keep the old schedule (cosine climbing back up) or crash mid-run (``OneCycleLR`` stepping past
    its total).
    """
    from omegaconf import OmegaConf

    def current(key: str) -> Any:
        value = OmegaConf.select(cfg, key)
        return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value

    fix = f"resume without changing it, or start a new run from its checkpoint with ckpt_path={run_dir / LAST_CKPT}"
    old_sched, new_sched = _select(stored, "scheduler.scheduler") or {}, current("scheduler.scheduler") or {}
    for key in sorted(set(old_sched) | set(new_sched)):
        if old_sched.get(key) != new_sched.get(key):
            raise CheckpointError(
                f"resume={run_dir}: scheduler.scheduler.{key} changed from {old_sched.get(key)} "
                f"to {new_sched.get(key)}; a resumed run keeps its schedule; {fix}"
            )
    if not any(key in old_sched and old_sched[key] is None for key in AUTO_LENGTH_KEYS):
        return
    name = str(old_sched.get("_target_", "")).rsplit(".", 1)[-1]
    for key in RUN_LENGTH_KEYS:
        if _select(stored, key) != current(key):
            raise CheckpointError(
                f"resume={run_dir}: {key} changed from {_select(stored, key)} to {current(key)}, but the run's "
                f"{name} schedule is fitted to its length and cannot be stretched mid-run; {fix}"
            )


def check_resume_averaging(cfg: Any, stored: Mapping[str, Any], run_dir: Path) -> None:
    """A resumed run keeps its weight averaging: with ``ema=true`` a checkpoint's ``state_dict`` is the average and
    the live weights are stored beside it, so switching ``ema`` mid-run would continue from the wrong weights."""
    old, new = bool(stored.get("ema", False)), bool(cfg.get("ema", False))
    if old != new:
        raise CheckpointError(
            f"resume={run_dir}: ema changed from {str(old).lower()} to {str(new).lower()}; a resumed run keeps its "
            f"weight averaging; resume without changing it, or start a new run with ckpt_path={run_dir / LAST_CKPT}"
        )
