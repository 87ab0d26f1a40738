"""Model configs without Hydra: load ``conf/model/<variant>.yaml`` and build the network from a plain dict.

Hydra is the normal way in (``compose("train", [...])`` + ``resattn.factory.build_model``), but benchmarks
and the GPU kit must also run where only torch is installed. This module resolves exactly what Hydra
would for a model config group file:

* the ``defaults:`` list (other files of the same ``model`` group, ``_self_``; without ``_self_`` the
  file's own keys come last, as in Hydra >= 1.1), merged recursively (lists are replaced, not merged);
* ``${regularization.<key>}`` interpolations, filled from ``conf/regularization/<name>.yaml``
  (``none`` by default, like ``conf/train.yaml``).

YAML is read with PyYAML (it ships with Lightning). ``tests/test_models.py`` checks that this path gives
the same models as the Hydra path.
"""

from __future__ import annotations

import copy
import importlib
import re
from pathlib import Path
from typing import Any

from resattn.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parent.parent.parent / "conf"
DEFAULT_TARGET = "resattn.models.ResidualAttentionNet"
_INTERPOLATION = re.compile(r"^\$\{\s*([A-Za-z_][\w.]*)\s*\}$")


def available_variants(conf_dir: Path | str = CONF_DIR) -> list[str]:
    """Names of the model variants (``conf/model/*.yaml``)."""
    return sorted(p.stem for p in (Path(conf_dir) / "model").glob("*.yaml"))


def read_yaml(path: Path | str) -> dict[str, Any]:
    """Read one config file with PyYAML (a dependency of Lightning, so present wherever resattn runs)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must contain a mapping")
    return data


# ---------------------------------------------------------------------------------------------------------
# Defaults lists, merging and interpolation


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_group_file(group: str, name: str, conf_dir: Path | str = CONF_DIR, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """``conf/<group>/<name>.yaml`` with its ``defaults:`` list (same-group entries) resolved."""
    conf_dir = Path(conf_dir)
    if name in _seen:
        raise ConfigError(f"{group}={name}: circular defaults list ({' -> '.join(_seen + (name,))})")
    path = conf_dir / group / f"{name}.yaml"
    if not path.is_file():
        choices = ", ".join(sorted(p.stem for p in (conf_dir / group).glob("*.yaml")))
        raise ConfigError(f"{group}={name!r} does not exist; available: {choices}")
    own = read_yaml(path)
    defaults = own.pop("defaults", None) or []
    if not isinstance(defaults, list):
        raise ConfigError(f"{path}: 'defaults' must be a list")
    if "_self_" not in defaults:
        defaults = [*defaults, "_self_"]
    result: dict[str, Any] = {}
    for entry in defaults:
        if entry == "_self_":
            result = _merge(result, own)
        elif isinstance(entry, str) and not entry.startswith(("/", "override ")) and "@" not in entry:
            result = _merge(result, load_group_file(group, entry, conf_dir, _seen + (name,)))
        else:
            raise ConfigError(f"{path}: defaults entry {entry!r} is not supported by the Hydra-free loader")
    return result


def _resolve(value: Any, root: dict[str, Any], where: str) -> Any:
    if isinstance(value, dict):
        return {k: _resolve(v, root, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, root, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        match = _INTERPOLATION.fullmatch(value.strip())
        if not match:
            raise ConfigError(f"{where}={value!r}: only whole-value interpolations ${{a.b}} are supported")
        node: Any = root
        for part in match.group(1).split("."):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"{where}={value!r}: {match.group(1)} is not defined")
            node = node[part]
        return _resolve(node, root, match.group(1))
    return value


def load_model_config(
    variant: str,
    regularization: str = "none",
    conf_dir: Path | str = CONF_DIR,
    **overrides: Any,
) -> dict[str, Any]:
    """The resolved ``model`` config of ``conf/model/<variant>.yaml``, as a plain dict, without Hydra.

    Args:
        variant: model config name, e.g. ``attention56_mini``.
        regularization: ``conf/regularization/<name>.yaml`` used to fill ``${regularization.*}``.
        conf_dir: config root (default: the repository's ``conf/``).
        **overrides: model keys to replace, e.g. ``width=16, attention="nal"`` (like ``model.width=16``).
    """
    model = load_group_file("model", variant, conf_dir)
    unknown = sorted(set(overrides) - set(model))
    if unknown:
        raise ConfigError(f"model.{unknown[0]} is not a key of model={variant}; known: {', '.join(sorted(model))}")
    model.update(copy.deepcopy(overrides))
    reg = load_group_file("regularization", regularization, conf_dir)
    return _resolve(model, {"model": model, "regularization": reg}, "model")


def build_from_config(cfg: dict[str, Any]):
    """Instantiate a model config dict (from :func:`load_model_config`), like ``hydra.utils.instantiate``."""
    kwargs = dict(cfg)
    target = kwargs.pop("_target_", DEFAULT_TARGET)
    module_name, _, attr = str(target).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"model._target_={target!r} cannot be imported: {exc}") from exc
    try:
        return cls(**kwargs)
    except TypeError as exc:  # unknown / missing keyword
        raise ConfigError(f"model config does not match {target}: {exc}") from exc


def build_model_variant(variant: str, regularization: str = "none", **overrides: Any):
    """Shortcut: ``build_from_config(load_model_config(variant, regularization, **overrides))``."""
    return build_from_config(load_model_config(variant, regularization, **overrides))
