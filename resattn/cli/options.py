"""The ``key=value`` options of the small tools (predict, export)."""

from __future__ import annotations

import sys
from typing import Any, Mapping, Sequence

from resattn.errors import ConfigError


def parse_options(argv: list[str] | None, defaults: Mapping[str, Any], usage: str, required: Sequence[str]) -> dict[str, Any]:
    """A small tool's ``key=value`` arguments (``sys.argv[1:]`` when ``argv`` is None) over its ``defaults``; an unknown
    key or a missing ``required`` one is a one-line :class:`ConfigError` ending in ``usage``."""
    from omegaconf import OmegaConf

    args = OmegaConf.to_container(OmegaConf.from_dotlist(sys.argv[1:] if argv is None else argv))
    unknown = set(args) - set(defaults)
    if unknown:
        raise ConfigError(f"unknown argument(s) {', '.join(sorted(unknown))}; {usage}")
    options = {**defaults, **args}
    for key in required:
        if options[key] in (None, "", []):
            raise ConfigError(f"{key} is required; {usage}")
    return options
