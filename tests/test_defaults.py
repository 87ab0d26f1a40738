"""Issue 19: one home per default. Every option of every config group built on a schema sets only what differs
from what it inherits (its schema's defaults, or the option it extends); a schema's default is the value its
options run with when one option alone builds on it; our own targets' constructor defaults agree with it."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from hydra.utils import get_class

from resattn.config.compose import CONF_DIR
from resattn.schema import SCHEMAS

MISSING = object()


def _options() -> dict[str, dict[str, Any]]:
    """``group/name`` -> the raw YAML of every option in a group whose options build on a schema."""
    options = {}
    for path in sorted(CONF_DIR.glob("*/*.yaml")):
        raw = yaml.safe_load(path.read_text()) or {}
        options[f"{path.parent.name}/{path.stem}"] = raw
    return options


OPTIONS = _options()


def _base(option: str) -> tuple[str, str] | None:
    """What ``option`` builds on: ``("schema", "optimizer/sgd")`` or ``("option", "data/cifar10")``; None for
    options of untyped groups (experiment, debug, logger ...)."""
    group = option.split("/")[0]
    for entry in OPTIONS[option].get("defaults", []):
        if isinstance(entry, str) and entry.startswith("/schema/"):
            return "schema", entry.removeprefix("/schema/").split("@")[0]
        if isinstance(entry, str) and entry != "_self_" and f"{group}/{entry}" in OPTIONS:
            return ("option", f"{group}/{entry}") if _base(f"{group}/{entry}") else None
    return None


def _body(option: str) -> dict[str, Any]:
    raw = dict(OPTIONS[option])
    raw.pop("defaults", None)
    return raw.get("scale", raw) if option.startswith("scale/") else raw  # scale/cpu is a global package


def _schema_of(option: str) -> type:
    kind, name = _base(option)
    return SCHEMAS[name] if kind == "schema" else _schema_of(name)


def _schema_default(schema: type, dotted: str) -> Any:
    """The default of ``dotted`` in ``schema`` (nested typed fields followed), MISSING when it has none."""
    node: Any = schema
    parts = dotted.split(".")
    for index, part in enumerate(parts):
        if not (dataclasses.is_dataclass(node) and part in {f.name for f in dataclasses.fields(node)}):
            return MISSING
        field = next(f for f in dataclasses.fields(node) if f.name == part)
        nested = [t for t in typing.get_args(typing.get_type_hints(node)[part]) if dataclasses.is_dataclass(t)]
        hint = typing.get_type_hints(node)[part]
        if dataclasses.is_dataclass(hint) or nested:
            node = hint if dataclasses.is_dataclass(hint) else nested[0]
            continue
        if index < len(parts) - 1:
            return MISSING  # an untyped node (e.g. callbacks.timer): its option is the home of its keys
        if field.default is not dataclasses.MISSING:
            return field.default
        return field.default_factory() if field.default_factory is not dataclasses.MISSING else MISSING
    return MISSING


def _leaves(tree: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _inherited(option: str, key: str) -> Any:
    kind, name = _base(option)
    if kind == "schema":
        return _schema_default(SCHEMAS[name], key)
    parent = dict(_leaves(_body(name)))
    return parent[key] if key in parent else _inherited(name, key)


TYPED = [option for option in OPTIONS if _base(option)]


def test_the_check_sees_every_typed_group() -> None:
    groups = {option.split("/")[0] for option in TYPED}
    assert groups >= {"data", "augment", "model", "regularization", "optimizer", "scheduler", "trainer", "callbacks", "scale"}


@pytest.mark.parametrize("option", TYPED)
def test_no_option_restates_what_it_inherits(option: str) -> None:
    restated = [key for key, value in _leaves(_body(option)) if _inherited(option, key) == value]
    assert not restated, f"conf/{option}.yaml restates inherited defaults (delete them there): {restated}"


@pytest.mark.parametrize("option", TYPED)
def test_a_schema_with_one_option_holds_its_values(option: str) -> None:
    kind, name = _base(option)
    roots = [o for o in TYPED if _base(o) == (kind, name)]
    if kind != "schema" or len(roots) > 1:
        return  # several options build on this schema: each sets its own values
    differing = [
        f"{key}: {value!r} here, {_schema_default(SCHEMAS[name], key)!r} in the schema"
        for key, value in _leaves(_body(option))
        if _schema_default(SCHEMAS[name], key) is not MISSING and _schema_default(SCHEMAS[name], key) != value
    ]
    assert not differing, f"conf/{option}.yaml is the only option of schema {name}; move into the schema: {differing}"


def _targets() -> Iterator[tuple[str, type]]:
    seen = set()
    for schema in SCHEMAS.values():
        stack = [schema]
        while stack:
            node = stack.pop()
            for field in dataclasses.fields(node):
                hint = typing.get_type_hints(node)[field.name]
                stack += [t for t in (hint, *typing.get_args(hint)) if dataclasses.is_dataclass(t) and t not in seen]
            target = _schema_default(node, "_target_")
            if isinstance(target, str) and target.startswith("resattn.") and node not in seen:
                yield target, node
            seen.add(node)


@pytest.mark.parametrize(("target", "schema"), list(_targets()), ids=[t for t, _ in _targets()])
def test_constructor_defaults_agree_with_the_schema(target: str, schema: type) -> None:
    init = get_class(target).__init__
    if not init.__module__.startswith("resattn."):
        pytest.skip(f"{target} takes its constructor from {init.__module__}")
    signature = inspect.signature(init)
    disagree = []
    for name, parameter in signature.parameters.items():
        default = _schema_default(schema, name)
        if parameter.default is inspect.Parameter.empty or default is MISSING:
            continue
        if isinstance(default, str) and "${" in default:
            continue  # the config wires it to another key; the constructor's default serves Python callers
        value = list(parameter.default) if isinstance(parameter.default, tuple) else parameter.default
        if value != default:
            disagree.append(f"{name}: {parameter.default!r} in {target}, {default!r} in the schema")
    assert not disagree, disagree


def test_the_defaults_that_experiments_run_with_are_unchanged() -> None:
    """The effective values of the study's options (moving defaults must not change what runs)."""
    from resattn.config.compose import compose

    cfg = compose("train", ["optimizer=sgd"])
    assert (cfg.optimizer.lr, cfg.optimizer.momentum, cfg.optimizer.nesterov) == (1e-4, 0.9, True)
    cfg = compose("train")
    assert (cfg.optimizer.lr, cfg.optimizer.eps, cfg.data.batch_size, cfg.trainer.max_epochs) == (1e-4, 1e-7, 128, 60)
    assert list(cfg.scheduler.scheduler.milestones) == [21, 51]
    assert compose("train", ["optimizer=adamw"]).optimizer.weight_decay == 0.05
    assert compose("train", ["scheduler=plateau"]).scheduler.scheduler.patience == 5


def test_conf_dir_is_the_repository_one() -> None:
    assert CONF_DIR == Path(__file__).resolve().parents[1] / "conf"
