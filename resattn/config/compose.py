"""Locating and composing the Hydra config tree shared by every entry point."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from omegaconf import DictConfig, OmegaConf

from resattn import schema
from resattn.config.scale import register_resolvers

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def user_groups() -> str:
    """``group: option, ...`` lines of the config groups in ``conf/`` a user picks from (``--help``): neither
    Hydra's own groups nor the internal ``schema/*`` ones (those live in the ConfigStore, not in ``conf/``)."""
    groups = sorted(d for d in CONF_DIR.iterdir() if d.is_dir() and d.name != "hydra")
    return "\n".join(f"{d.name}: {', '.join(sorted(p.stem for p in d.glob('*.yaml')))}" for d in groups)


schema.register()  # the YAML files name their schemas: they must be in the ConfigStore before any compose
register_resolvers()  # ${rescale:...}: epoch counts fitted to the run's length while the config is composed
OmegaConf.register_new_resolver("user_groups", user_groups, replace=True)  # --help (conf/hydra/default.yaml)


def compose(config_name: str = "train", overrides: Sequence[str] = (), with_hydra: bool = False) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with command-line style overrides (no run directory); the ``hydra``
    node is kept when ``with_hydra``. A value of the wrong type or an unknown key raises :class:`ConfigError`."""
    from hydra import compose as hydra_compose

    with hydra_session():
        return _one_line_errors(lambda: hydra_compose(config_name=config_name, overrides=list(overrides), return_hydra_config=with_hydra))


@contextlib.contextmanager
def hydra_session(job_name: str = "app") -> Iterator[None]:
    """Hydra initialised on ``conf/`` (as ``@hydra.main`` does for ``job_name``) for the duration of the block."""
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name=job_name):
        yield


def compose_for_run(config_name: str, overrides: Sequence[str]) -> DictConfig:
    """Inside :func:`hydra_session`: the config ``@hydra.main`` would run, ``hydra`` node included (one
    composition, the same call ``Hydra.run`` makes)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    hydra = GlobalHydra.instance().hydra
    assert hydra is not None, "compose_for_run needs a hydra_session"
    return _one_line_errors(
        lambda: hydra.compose_config(config_name=config_name, overrides=list(overrides), run_mode=RunMode.RUN, with_log_configuration=True)
    )


def _one_line_errors(compose_call: Callable[[], Any]) -> Any:
    """``compose_call()``; a value of the wrong type or an unknown key becomes the usual one-line ConfigError."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from resattn.validation.values import composition_error

    try:
        return compose_call()
    except (HydraException, OmegaConfBaseException) as exc:
        error = composition_error(exc)
        if error is None:
            raise
        raise error from exc


def compose_run(run_dir: Path, overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """Compose like ``train.py`` does, outside ``@hydra.main``, with ``run_dir`` as the run directory.

    Sets the global ``HydraConfig`` (so ``${hydra:...}`` resolves) and ``paths.output_dir``; used by tests and
    benchmarks that call :func:`resattn.training.fit.train` in-process.
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
