"""Python builders of the torchvision kind: ``attention56_mini(width=32, weights=None, **model_keys)``.

Each builds the network of its YAML layout (``conf/model/<name>.yaml``, composed exactly as ``train.py``
composes ``model=<name>``): one definition per architecture. Keyword arguments are ``model.*`` keys (checked
like command-line overrides); ``weights=<registered name>`` (:mod:`resattn.weights`) builds the model those
weights were trained as and loads them (checksum verified). Such a network carries ``net.preprocessing``:
the training normalisation (0-1 mean/std), class names, input size and data protocol.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf
from torch import nn

ARCHITECTURES = ("attention56_mini", "attention56_mini_paper", "attention56", "attention92")


def model_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The resolved ``model`` config of ``conf/model/<name>.yaml`` with ``overrides`` (``model.*`` keys) set."""
    from omegaconf import open_dict
    from omegaconf.errors import OmegaConfBaseException

    from resattn.config.compose import compose
    from resattn.errors import ConfigError
    from resattn.validation import check_model, composition_error

    if name not in ARCHITECTURES:
        raise ConfigError(f"model={name}: unknown architecture; allowed: {', '.join(ARCHITECTURES)}")
    cfg = compose("train", [f"model={name}", "regularization=none"])
    unknown = sorted(set(overrides) - set(cfg.model))
    if unknown:
        raise ConfigError(
            f"{name}(): unknown argument(s) {', '.join(unknown)}; allowed: weights and the model.* keys {', '.join(cfg.model)}"
        )
    try:
        with open_dict(cfg):
            cfg.model = OmegaConf.merge(cfg.model, overrides)  # the schema types the values
    except OmegaConfBaseException as exc:
        raise (composition_error(exc) or exc) from None
    check_model(cfg)
    return OmegaConf.to_container(cfg.model, resolve=True)


SHAPE_KEYS = ("layout", "stem_kernel", "stem_norm", "pool_kernel", "pool_stride")  # what tells the architectures apart


def architecture_of(model: dict[str, Any]) -> str | None:
    """The builder whose YAML layout a resolved ``model`` config has (``None`` for a custom layout)."""

    def shape(cfg: dict[str, Any]) -> list[Any]:
        layout = [{k: v for k, v in block.items() if v is not None} for block in cfg["layout"]]
        return [layout, *(cfg[k] for k in SHAPE_KEYS[1:])]

    return next((name for name in ARCHITECTURES if shape(model_config(name)) == shape(model)), None)


def build(name: str, weights: str | None = None, **overrides: Any) -> nn.Module:
    """The ``name`` network (``model.*`` ``overrides``), with ``weights`` loaded when given."""
    from resattn import weights as registry
    from resattn.errors import ConfigError
    from resattn.models.network import build_model

    if weights is None:
        return build_model({"model": model_config(name, **overrides)})
    entry = registry.get(weights)
    if entry.builder != name:
        raise ConfigError(
            f"weights={weights} are {entry.builder} weights, not {name}; use resattn.models.{entry.builder}(weights={weights!r})"
        )
    state, header = registry.read(registry.fetch(weights))
    stored = header["cfg"]["model"]  # a weights file's header: resattn.training.checkpoint_files.run_record
    conflicts = [f"{k}={v!r} (weights: {stored.get(k)!r})" for k, v in overrides.items() if stored.get(k) != v]
    if conflicts:
        raise ConfigError(f"weights={weights} were trained with other model keys: {', '.join(conflicts)}; drop those arguments")
    net = build_model({"model": stored})
    net.load_state_dict(state)
    net.preprocessing = header.get("preprocessing")
    return net


def attention56_mini(*, weights: str | None = None, **model_keys: Any) -> nn.Module:
    """The study's base mini network (``conf/model/attention56_mini.yaml``)."""
    return build("attention56_mini", weights, **model_keys)


def attention56_mini_paper(*, weights: str | None = None, **model_keys: Any) -> nn.Module:
    """The study's larger mini variant ("56paper", ``conf/model/attention56_mini_paper.yaml``)."""
    return build("attention56_mini_paper", weights, **model_keys)


def attention56(*, weights: str | None = None, **model_keys: Any) -> nn.Module:
    """The 3-stage Attention-56 (``conf/model/attention56.yaml``)."""
    return build("attention56", weights, **model_keys)


def attention92(*, weights: str | None = None, **model_keys: Any) -> nn.Module:
    """Attention-92 (``conf/model/attention92.yaml``)."""
    return build("attention92", weights, **model_keys)
