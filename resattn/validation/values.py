"""Schema-driven value checks: every field rule of every typed config node, and type errors at composition."""

from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from resattn.errors import ConfigError
from resattn.schema.rules import RULE, Rule

ABSENT = object()
_KEY_REFERENCE = re.compile(r"\$\{[\w.]+\}")


def fmt(value: Any) -> str:
    """A config value as the command line would spell it (strings quoted)."""
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=False)
    return repr(value) if isinstance(value, str) else str(value)


def _hydra_initialized() -> bool:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.initialized()


def select(cfg: DictConfig, key: str) -> Any:
    """The resolved value at ``key`` (containers as plain Python), :data:`ABSENT` when the key or its
    ``${hydra:...}`` value (known only inside the Hydra app) is absent."""
    try:
        value = OmegaConf.select(cfg, key, default=ABSENT, throw_on_missing=True)
    except OmegaConfBaseException as exc:
        if "hydra" in str(exc).lower() and not _hydra_initialized():
            return ABSENT
        raise ConfigError(f"{key}: cannot be resolved ({' '.join(str(exc).split()[:30])}); set it explicitly") from None
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def check_rule(key: str, value: Any, rule: Rule) -> None:
    problem = rule.problem(value)
    if problem:
        raise ConfigError(f"{key}={fmt(value)}: {problem}; expected {rule.describe()}")


def check_values(node: Any, prefix: str = "") -> None:
    """Raise :class:`ConfigError` for the first value that breaks its schema field's rule, walking every
    typed node under ``node`` (untyped nodes such as ``logger`` are skipped)."""
    if isinstance(node, ListConfig):
        for index in range(len(node)):
            child = node._get_node(index)
            if isinstance(child, (DictConfig, ListConfig)):
                check_values(child, f"{prefix[:-1]}[{index}].")
        return
    schema = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
    if node is None or schema is None or not dataclasses.is_dataclass(schema) or node._is_none():
        return
    for field in dataclasses.fields(schema):
        rule = field.metadata.get(RULE)
        if rule is not None and not _refers_to_another_key(node, field.name):
            value = select(node, field.name)
            if value is not ABSENT:
                check_rule(prefix + field.name, value, rule)
        child = node._get_node(field.name)
        if isinstance(child, (DictConfig, ListConfig)) and not child._is_none() and not child._is_interpolation():
            check_values(child, f"{prefix}{field.name}.")


def _refers_to_another_key(node: DictConfig, name: str) -> bool:
    """``model.dropout: ${regularization.dropout}``: the value is checked where it is set."""
    child = node._get_node(name)
    return child is not None and child._is_interpolation() and _KEY_REFERENCE.fullmatch(str(child._value())) is not None


def typed(node: Any, schema: type, key: str) -> DictConfig:
    """``node`` (e.g. a checkpoint's plain ``data`` config) merged onto ``schema``; wrong types raise
    :class:`ConfigError` as on the command line."""
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), node)
    except OmegaConfBaseException as exc:
        raise composition_error(exc, prefix=f"{key}.") or ConfigError(f"{key}: {' '.join(str(exc).split())}") from None


def composition_error(exc: BaseException, prefix: str = "") -> ConfigError | None:
    """The one-line :class:`ConfigError` for a value of the wrong type or an unknown key refused while
    composing (``exc``: Hydra's or OmegaConf's exception), else ``None``."""
    from omegaconf.errors import ConfigKeyError

    cause: BaseException | None = exc
    while cause is not None and not (isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None)):
        cause = cause.__cause__
    if cause is None:
        return None
    schema = getattr(cause, "object_type", None)
    fields = {f.name: f for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else {}
    if isinstance(cause, (ConfigKeyError, AttributeError)):
        if not fields:
            return None
        first = " ".join(str(exc).split("\n")[0].split()) if exc is not cause else f"Could not override '{cause.full_key}'"
        where = str(cause.full_key).rpartition(".")[0] or schema.__name__.removesuffix("Config").lower()
        known = _known_keys(str(cause.key), fields, where)
        return ConfigError(f"{first.rstrip('.')}: no key {cause.key} in {where}; {known}{_addition(exc, cause)}")
    value, field = cause.value, fields.get(str(cause.key))
    if field is not None:
        rule = field.metadata.get(RULE)
        expected = rule.describe() if rule is not None else _type_name(str(field.type))
    else:
        target = str(cause).split("could not be converted to ", 1)[-1].split()[0] if "converted to" in str(cause) else ""
        expected = _TYPE_WORDS.get(target.lower(), "")
        if not expected:
            return None
    problem = "missing value" if value is None else f"wrong type ({type(value).__name__})"
    return ConfigError(f"{prefix}{cause.full_key}={fmt(value)}: {problem}; expected {expected}")


MAX_LISTED_KEYS = 8  # longer schemas (trainer: 26 keys) name the closest keys instead of all of them


def _known_keys(key: str, fields: dict[str, Any], where: str) -> str:
    """``allowed: a, b, c`` for a short schema, else the closest names and how to list them all."""
    names = [name for name in fields if not name.startswith("_")]
    if len(names) <= MAX_LISTED_KEYS:
        return f"allowed: {', '.join(names)}"
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return f"{hint}({len(names)} keys: python train.py --cfg job --package {where})"


def _addition(exc: BaseException, cause: BaseException) -> str:
    """How to add a key the schema does not list (its target takes any argument): ``+<key>=<value>``, with the
    command line's value when Hydra's message has it."""
    found = re.search(r"use (\+\S+=\S*)", str(exc))
    form = found.group(1) if found else f"+{getattr(cause, 'full_key', '')}=<value>"
    return f"; to pass an argument its schema does not list, add it: {form}"


_TYPE_WORDS = {
    "int": "an integer",
    "integer": "an integer",
    "float": "a number",
    "bool": "true or false",
    "boolean": "true or false",
    "str": "a string",
    "string": "a string",
}


def _type_name(annotation: str) -> str:
    """``int`` -> ``an integer``; ``Optional[int]`` -> ``an integer or null``; else the annotation."""
    inner = annotation[len("Optional[") : -1] if annotation.startswith("Optional[") else annotation
    words = _TYPE_WORDS.get(inner)
    return annotation if words is None else words + (" or null" if inner != annotation else "")
