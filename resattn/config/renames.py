"""Names that changed, in one table: the original study's vocabulary was ``seed`` (easily read as the random
``seed``) and is ``original`` now.

Old names keep working with one ``note:`` line: on the command line, in the saved overrides a resumed or
reported run replays (:func:`renamed_overrides`), and in the configs stored in checkpoints and weights files
(:func:`renamed_stored`).
"""

from __future__ import annotations

import re
import sys
from typing import Any, Iterable, Mapping, MutableMapping

_EXPERIMENTS = ("adam_base", "sgd_base", "regularized", "mini_paper", "attention56")
# key -> {old value: new value}; the keys are override keys (config groups and config keys).
RENAMED: dict[str, dict[str, str]] = {
    "experiment": {f"seed_{name}": f"original_{name}" for name in _EXPERIMENTS},
    "regularization": {"seed": "original"},
    "scheduler": {"seed_step": "original_step"},
    "data.normalization": {"seed": "original"},
    "data.val_source": {"seed_overlap": "original_overlap"},
}
# Other keys that hold one of those names: a run's task_name is its experiment's name.
SAME_NAMES = {"task_name": "experiment"}
# Where a stored config (a checkpoint's hyper_parameters, a weights file's header) holds them.
STORED_KEYS = {
    ("cfg", "task_name"): "task_name",
    ("cfg", "data", "normalization"): "data.normalization",
    ("cfg", "data", "val_source"): "data.val_source",
    ("preprocessing", "normalization"): "data.normalization",
    ("preprocessing", "protocol", "val_source"): "data.val_source",
}
_OVERRIDE = re.compile(r"^(?P<prefix>[+~]*)(?P<key>[\w./@-]+)=(?P<value>.*)$", re.S)
_WORD = re.compile(r"[A-Za-z0-9_]+")
_NOTED: list[bool] = []  # [True] once this process has printed its note


def renamed_value(key: str, value: str) -> str:
    """``value`` of ``key`` in today's names (every name in it: ``seed_adam_base,improved`` sweeps too)."""
    table = RENAMED.get(SAME_NAMES.get(key, key))
    if not table or not isinstance(value, str):
        return value
    return _WORD.sub(lambda word: table.get(word.group(0), word.group(0)), value)


def renamed_overrides(overrides: Iterable[str]) -> list[str]:
    """Command-line style overrides in today's names; a note names the old names it replaced."""
    out, changes = [], []
    for text in overrides:
        match = _OVERRIDE.match(text)
        if match is None:
            out.append(text)
            continue
        key, value = match["key"], match["value"]
        new = renamed_value(key, value)
        if new != value:
            changes.append((key, value, new))
        out.append(f"{match['prefix']}{key}={new}")
    _announce(changes)
    return out


def renamed_stored(hyper: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A checkpoint's ``hyper_parameters`` (``cfg``, ``preprocessing``) in today's names, changed in place."""
    changes = []
    for path, key in STORED_KEYS.items():
        parent: Any = hyper
        for part in path[:-1]:
            parent = parent.get(part) if isinstance(parent, Mapping) else None
        if not isinstance(parent, MutableMapping) or not isinstance(parent.get(path[-1]), str):
            continue
        old = parent[path[-1]]
        new = renamed_value(key, old)
        if new != old:
            parent[path[-1]] = new
            changes.append((SAME_NAMES.get(key, key), old, new))
    _announce(changes)
    return hyper


def _announce(changes: list[tuple[str, str, str]]) -> None:
    """One ``note:`` line a process (rank zero only), for the first old names it meets: a command reads one run's
    names from several files (overrides, checkpoint), and one line says that they continue under the new ones."""
    from resattn.cli.exits import is_rank_zero

    fresh = list(dict.fromkeys(changes))  # in order, once each
    if not fresh or _NOTED or not is_rank_zero():
        return
    _NOTED.append(True)
    names = ", ".join(f"'{key}={old}' is now '{key}={new}'" for key, old, new in fresh)
    plural = "s" if len(fresh) > 1 else ""
    print(f"note: {names} (renamed); continuing with the new name{plural}", file=sys.stderr)
