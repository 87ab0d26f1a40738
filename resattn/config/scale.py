"""``scale=<name>``: an experiment's length and model width as ordinary config, with its epoch counts fitted.

An experiment states its length once, ``epochs``; ``trainer.max_epochs`` (what runs) is ``${scale.max_epochs}``,
which is ``epochs`` at ``scale=full`` and the scale's own length otherwise. Epoch counts written in the config
(step-schedule milestones, patience, warm-up and step sizes) are written for the experiment's length as
``${rescale:[21, 51]}`` or ``${rescale_patience:15}``: these resolvers multiply them by
``trainer.max_epochs / scale.reference_epochs`` while the config is composed, so ``--cfg job --resolve``, the
saved config and the checkpoint hold the values that run. ``scale=full`` has ``reference_epochs:
${trainer.max_epochs}`` (ratio 1: every count as configured, whatever the length); ``scale=cpu`` has ``${epochs}``,
so ``trainer.max_epochs=N`` runs N epochs and the schedule follows N. A rescaled patience is at least
``scale.min_patience`` (absent or null = 1) but never above the configured value.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf, open_dict

RESOLVERS = ("rescale", "rescale_patience")
_SCALED = re.compile(r"\$\{(rescale|rescale_patience):|\$\{scale\.")


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def rescaled(value: Any, ratio: float) -> Any:
    """An epoch/step count times ``ratio`` (half up, at least 1; 0 stays 0); a list stays strictly increasing."""
    if isinstance(value, (list, tuple)):
        scaled: list[Any] = []
        for item in value:
            new = rescaled(item, ratio)
            scaled.append(max(new, scaled[-1] + 1) if scaled and _is_count(new) else new)
        return scaled
    if _is_count(value) and value > 0:
        return max(1, math.floor(value * ratio + 0.5))  # half up: 10.5 -> 11
    return value


def ratio(root: Any) -> float:
    """``trainer.max_epochs / scale.reference_epochs`` of the config ``root``; 1 when either is not a length."""
    run = OmegaConf.select(root, "trainer.max_epochs", default=None)
    reference = OmegaConf.select(root, "scale.reference_epochs", default=None)
    if _is_count(run) and _is_count(reference) and run > 0 and reference > 0:
        return run / reference
    return 1.0


def _rescale(value: Any, *, _root_: DictConfig) -> Any:
    return rescaled(_plain(value), ratio(_root_))


def _rescale_patience(value: Any, *, _root_: DictConfig) -> Any:
    value = _plain(value)
    if not (_is_count(value) and value > 0):
        return value
    floor = OmegaConf.select(_root_, "scale.min_patience", default=None) or 1  # its range is checked by the validator
    return min(value, max(floor, rescaled(value, ratio(_root_))))


def register_resolvers() -> None:
    """Register ``${rescale:...}`` and ``${rescale_patience:...}`` (idempotent)."""
    OmegaConf.register_new_resolver("rescale", _rescale, replace=True)
    OmegaConf.register_new_resolver("rescale_patience", _rescale_patience, replace=True)


def _scaled_keys(node: DictConfig, prefix: str = "") -> Iterator[str]:
    """Keys whose value the scale computes (an interpolation of ``scale.*`` or a rescale resolver)."""
    for key in node:
        child = node._get_node(key)
        if prefix == "" and key == "scale":
            continue
        if child._is_interpolation():
            if _SCALED.search(str(child._value())):
                yield f"{prefix}{key}"
        elif isinstance(child, DictConfig) and not child._is_none():
            yield from _scaled_keys(child, f"{prefix}{key}.")


def changes(cfg: DictConfig) -> list[str]:
    """What the scale changed relative to the experiment, as ``key old -> new`` (``key new`` for a value the
    scale sets outright, such as ``model.width``)."""
    scale = cfg.get("scale")
    if not scale:
        return []
    experiment = cfg.copy()
    with open_dict(experiment):  # the same config at the experiment's length: every count as written
        experiment.scale.reference_epochs = None
        experiment.scale.max_epochs = experiment.get("epochs")
    out: list[str] = []
    for key in _scaled_keys(cfg):
        new, old = _plain(OmegaConf.select(cfg, key)), _plain(OmegaConf.select(experiment, key))
        node = OmegaConf.select(cfg, key.rpartition(".")[0]) if "." in key else cfg
        source = str(node._get_node(key.rpartition(".")[2])._value())
        if source == "${scale.name}":
            continue
        if source.startswith("${scale.") and source != "${scale.max_epochs}":
            out.append(f"{key} {new}")  # set by the scale outright: the experiment's value is not part of the config
        elif old != new:
            out.append(f"{key} {old} -> {new}")
    return out


def describe(cfg: DictConfig) -> str:
    """The ``scale:`` log line."""
    name = (cfg.get("scale") or {}).get("name", "full")
    found = changes(cfg)
    return f"scale: {name}" + (f" ({'; '.join(found)})" if found else " (as configured)")
