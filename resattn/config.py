"""Locating and composing the Hydra config tree shared by every entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig

from resattn import schema

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
schema.register()  # the YAML files name their schemas: they must be in the ConfigStore before any compose


def compose(config_name: str = "train", overrides: Sequence[str] = (), with_hydra: bool = False) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with command-line style overrides (no run directory); the ``hydra``
    node is kept when ``with_hydra``. A value of the wrong type or an unknown key raises :class:`ConfigError`."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from resattn.validation.values import composition_error

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        try:
            return hydra_compose(config_name=config_name, overrides=list(overrides), return_hydra_config=with_hydra)
        except (HydraException, OmegaConfBaseException) as exc:
            error = composition_error(exc)  # a wrong type or unknown key: the usual one-line message
            if error is None:
                raise
            raise error from exc


def compose_run(run_dir: Path, overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """Compose like ``train.py`` does, outside ``@hydra.main``, with ``run_dir`` as the run directory.

    Sets the global ``HydraConfig`` (so ``${hydra:...}`` resolves) and ``paths.output_dir``; used by tests and
    benchmarks that call :func:`resattn.pipeline.train` in-process.
    """
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    cfg = compose(config_name, [*overrides, f"hydra.run.dir={run_dir}"], with_hydra=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        del cfg["hydra"]
    return cfg
