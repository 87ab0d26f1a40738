"""Input checks that run before any work: config values, paths, data files and checkpoints.

Two levels, both raising one-line :class:`~resattn.errors.ResattnError` subclasses
(``<key>=<value>: <problem>; <what is allowed>``):

* :func:`check_config` -- types, ranges and choices of config values, sizes against the dataset, and
  that the paths exist (data folder, ``ckpt_path``, ``resume`` run); pure OmegaConf, no torch import, so
  a bad command line fails within a second;
* :func:`check_inputs` -- checkpoint contents: ``ckpt_path`` / the ``resume`` run's ``last.ckpt`` load and
  fit the configured model (torch, no Lightning).

Data arrays (keys, shapes, dtypes, label range) are checked by the data module when it loads them.

:func:`preflight` composes the command line's config exactly as Hydra will and runs both *before* Hydra
creates or rewrites anything in a run directory (``train.py``/``eval.py`` call it first).  Schemas are
explicit rules rather than dataclass schemas in the ConfigStore: the config groups are plain YAML owned
by several people, and the rules also cover ranges, choices and paths that types alone cannot express.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from resattn.cifar import CIFAR10_TEST_COUNT, CIFAR10_TRAIN_COUNT, ENV_DATA_DIR, NPZ_NAME, TORCHVISION_DIR
from resattn.errors import CheckpointError, ConfigError, DataError
from resattn.metrics import LOGGED_METRICS, RESULT_METRICS, TEST_METRICS

# ------------------------------------------------------------------------------------------------ rules


@dataclass(frozen=True)
class Rule:
    """``ok(value)`` decides; ``expected`` says what is allowed; ``kind`` names the type for wrong-type values."""

    ok: Callable[[Any], bool]
    expected: str
    kind: Callable[[Any], bool] = lambda v: True
    nullable: bool = False

    def problem(self, value: Any) -> str | None:
        if value is None:
            return None if self.nullable else "missing value"
        if not self.kind(value):
            return f"wrong type ({type(value).__name__})"
        return None if self.ok(value) else ("not supported" if self.expected.startswith("one of") else "out of range")

    def describe(self) -> str:
        return self.expected + (" or null" if self.nullable else "")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def integer(minimum: int | None = None, maximum: int | None = None, nullable: bool = False) -> Rule:
    lo, hi = -math.inf if minimum is None else minimum, math.inf if maximum is None else maximum
    if minimum is not None and maximum is not None:
        text = f"an integer in [{minimum}, {maximum}]"
    else:
        text = "an integer" + (f" >= {minimum}" if minimum is not None else "") + (f" <= {maximum}" if maximum is not None else "")
    return Rule(lambda v: lo <= v <= hi, text, _is_int, nullable)


def number(gt: float | None = None, ge: float | None = None, lt: float | None = None, nullable: bool = False) -> Rule:
    parts = [f"> {gt}" if gt is not None else "", f">= {ge}" if ge is not None else "", f"< {lt}" if lt is not None else ""]
    text = "a finite number " + " and ".join(p for p in parts if p)

    def ok(v: float) -> bool:
        return (math.isfinite(v) and (gt is None or v > gt) and (ge is None or v >= ge) and (lt is None or v < lt))

    return Rule(ok, text.strip(), _is_num, nullable)


def choice(*allowed: Any, nullable: bool = False) -> Rule:
    return Rule(lambda v: v in allowed, "one of " + ", ".join(str(a) for a in allowed), lambda v: True, nullable)


def compile_backends() -> list[str]:
    """Registered ``torch.compile`` backends (debug backends such as ``eager`` included)."""
    import torch

    return list(torch.compiler.list_backends(exclude_tags=()))


def boolean(nullable: bool = False) -> Rule:
    return Rule(lambda v: True, "true or false", lambda v: isinstance(v, bool), nullable)


def fraction_or_count(nullable: bool = True) -> Rule:
    """Lightning's ``limit_*_batches``: a fraction in [0, 1] or a number of batches >= 0."""
    return Rule(lambda v: (0 <= v <= 1) if isinstance(v, float) else v >= 0,
                "a fraction in [0.0, 1.0] or a batch count >= 0", _is_num, nullable)


def pair_in_unit_interval() -> Rule:
    def ok(v: Any) -> bool:
        return len(v) == 2 and all(_is_num(b) and 0 <= b < 1 for b in v)

    return Rule(ok, "two numbers in [0, 1), e.g. [0.9, 0.999]", lambda v: isinstance(v, Sequence) and not isinstance(v, str))


PRECISIONS = (
    "32", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64", "64-true", "16", "bf16",
    "transformer-engine", "transformer-engine-float16",
)  # fmt: skip

TRAINER_RULES: dict[str, Rule] = {
    "trainer.max_epochs": Rule(lambda v: v >= 1 or v == -1, "an integer >= 1 (-1: no limit, with trainer.max_steps)", _is_int),
    "trainer.min_epochs": integer(0, nullable=True),
    "trainer.max_steps": integer(-1),
    "trainer.check_val_every_n_epoch": integer(1, nullable=True),
    "trainer.log_every_n_steps": integer(1, nullable=True),
    "trainer.num_sanity_val_steps": integer(-1, nullable=True),
    "trainer.precision": Rule(lambda v: str(v) in PRECISIONS, "one of " + ", ".join(PRECISIONS),
                              lambda v: isinstance(v, (int, str)) and not isinstance(v, bool)),
    "trainer.gradient_clip_val": number(ge=0, nullable=True),
    "trainer.accumulate_grad_batches": integer(1),
    "trainer.limit_train_batches": fraction_or_count(),
    "trainer.limit_val_batches": fraction_or_count(),
    "trainer.limit_test_batches": fraction_or_count(),
    "trainer.fast_dev_run": Rule(lambda v: v >= 0, "true, false or a number of batches >= 1",
                                 lambda v: isinstance(v, (bool, int))),
    "trainer.deterministic": Rule(lambda v: v in (True, False, "warn"), "true, false or warn", nullable=True),
    "trainer.benchmark": boolean(nullable=True),
}

DATA_RULES: dict[str, Rule] = {
    "data.source": choice("auto", "npz", "torchvision", "synthetic"),
    "data.download": boolean(),
    "data.train_size": integer(1),
    "data.val_size": integer(1),
    "data.test_size": integer(1, nullable=True),
    "data.val_source": choice("holdout", "seed_overlap"),
    "data.normalization": choice("pool", "seed"),
    "data.batch_size": integer(1),
    "data.eval_batch_size": integer(1),
    "data.num_workers": integer(0),
    "data.pin_memory": boolean(),
    "data.persistent_workers": boolean(),
    "data.device_resident": choice("auto", True, False),
    "data.seed": integer(0, 2**32 - 1),
    "data.synthetic_seed": integer(0, 2**32 - 1),
    "data.label_noise": Rule(lambda v: 0 <= v <= 1, "a fraction in [0, 1]", _is_num),
}

TRAIN_RULES: dict[str, Rule] = {
    "seed": integer(0, 2**32 - 1),
    **TRAINER_RULES,
    **DATA_RULES,
    "optimizer.lr": number(gt=0),
    "optimizer.weight_decay": number(ge=0),
    "optimizer.momentum": number(ge=0, lt=1),
    "optimizer.dampening": number(ge=0, lt=1),
    "optimizer.eps": number(ge=0),
    "optimizer.betas": pair_in_unit_interval(),
    "optimizer.nesterov": boolean(),
    "regularization.dropout": number(ge=0, lt=1),
    "regularization.l2": number(ge=0),
    "regularization.l2_scope": choice("head", "all"),
    "regularization.head_norm": boolean(),
    "model.width": integer(1),
    "model.num_classes": integer(2),
    "model.stem_kernel": integer(1),
    "model.stem_norm": boolean(),
    "model.attention": choice("arl", "nal", "none"),
    "model.mask_activation": choice("mixed", "channel", "spatial"),
    "model.trunk_depth": integer(1),
    "model.init": choice("keras", "torch"),
    "model.dropout": number(ge=0, lt=1),
    "model.head_norm": boolean(),
    "model.pool_kernel": integer(1),
    "model.pool_stride": integer(1),
    "model.input_size": integer(1),
    "model.in_channels": integer(1),
    "scheduler.interval": choice("step", "epoch"),
    "scheduler.frequency": integer(1),
    "scheduler.monitor": choice(*LOGGED_METRICS, nullable=True),
    "callbacks.model_checkpoint.monitor": choice(*LOGGED_METRICS, nullable=True),
    "callbacks.model_checkpoint.mode": choice("min", "max"),
    "callbacks.model_checkpoint.save_top_k": integer(-1),
    "callbacks.model_checkpoint.every_n_train_steps": integer(0, nullable=True),
    "callbacks.early_stopping.monitor": choice(*LOGGED_METRICS),
    "callbacks.early_stopping.mode": choice("min", "max"),
    "callbacks.early_stopping.patience": integer(0),
    "callbacks.early_stopping.min_delta": number(ge=0),
    "callbacks.divergence.every_n_steps": integer(0),
    "callbacks.attention_maps.every_n_epochs": integer(0),
    "callbacks.attention_maps.n": integer(1),
    "label_smoothing": number(ge=0, lt=1),
    "channels_last": choice("auto", True, False),
    "scale.width": integer(1, nullable=True),
    "scale.max_epochs": integer(1, nullable=True),
    "compile": boolean(),
    "compile_options.backend": Rule(lambda v: v in compile_backends(),
                                    "a torch.compile backend (torch.compiler.list_backends()), e.g. inductor",
                                    lambda v: isinstance(v, str)),
    "compile_options.mode": choice("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs",
                                   nullable=True),
    "compile_options.fullgraph": boolean(),
    "test": boolean(),
}

EVAL_RULES: dict[str, Rule] = {"seed": integer(0, 2**32 - 1), **TRAINER_RULES, **DATA_RULES}


_ABSENT = object()


def _fmt(value: Any) -> str:
    if isinstance(value, (DictConfig,)) or OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=False)
    return repr(value) if isinstance(value, str) else str(value)


def _select(cfg: DictConfig, key: str) -> Any:
    try:
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
    except OmegaConfBaseException as exc:
        if "hydra" in str(exc).lower() and not _hydra_initialized():
            return _ABSENT  # ${hydra:...} has a value only inside the Hydra app: checked again there
        raise ConfigError(f"{key}: cannot be resolved ({' '.join(str(exc).split()[:30])}); set it explicitly") from None
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    return value


def _hydra_initialized() -> bool:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.initialized()


def check_rules(cfg: DictConfig, rules: Mapping[str, Rule]) -> None:
    """Raise :class:`ConfigError` for the first key whose value breaks its rule (absent keys are skipped)."""
    for key, rule in rules.items():
        value = _select(cfg, key)
        if value is _ABSENT:
            continue
        problem = rule.problem(value)
        if problem:
            raise ConfigError(f"{key}={_fmt(value)}: {problem}; expected {rule.describe()}")


# ------------------------------------------------------------------------------------------ config checks


def _optimized_metric_names(cfg: DictConfig) -> list[str]:
    names = list(RESULT_METRICS)
    if cfg.get("test", True):
        names += [*TEST_METRICS, "test/acc_<class name>"]
    return names


def _check_optimized_metric(cfg: DictConfig) -> None:
    name = _select(cfg, "optimized_metric")
    if name in (None, _ABSENT):
        return
    allowed = _optimized_metric_names(cfg)
    ok = isinstance(name, str) and (name in allowed or (name.startswith("test/acc_") and cfg.get("test", True)))
    if not ok:
        hint = " (test=false: no test metrics)" if isinstance(name, str) and name.startswith("test/") else ""
        raise ConfigError(f"optimized_metric={_fmt(name)}: not a metric this run produces{hint}; "
                          f"allowed: {', '.join(allowed)} or null")


def _check_epochs(cfg: DictConfig) -> None:
    max_epochs, max_steps = _select(cfg, "trainer.max_epochs"), _select(cfg, "trainer.max_steps")
    if max_epochs == 0 or (max_epochs == -1 and max_steps in (-1, None, _ABSENT)):
        raise ConfigError(f"trainer.max_epochs={max_epochs}: out of range; expected an integer >= 1 "
                          "(-1 only together with trainer.max_steps >= 1)")
    if max_steps == 0:
        raise ConfigError("trainer.max_steps=0: out of range; expected -1 (no limit) or an integer >= 1")


def _check_data_sizes(cfg: DictConfig) -> None:
    source, val_source, train, val, test, batch = (_select(cfg, f"data.{k}") for k in (
        "source", "val_source", "train_size", "val_size", "test_size", "batch_size"))
    if any(v is _ABSENT for v in (source, val_source, train, val, test, batch)):
        return
    synthetic = source == "synthetic"
    if not synthetic:
        if train > CIFAR10_TRAIN_COUNT:
            raise ConfigError(f"data.train_size={train}: out of range; CIFAR-10 has {CIFAR10_TRAIN_COUNT} training images")
        if val_source == "holdout" and train + val > CIFAR10_TRAIN_COUNT:
            raise ConfigError(
                f"data.train_size={train} + data.val_size={val}: out of range; with data.val_source=holdout they must "
                f"sum to <= {CIFAR10_TRAIN_COUNT} (validation images lie outside the pool); lower one of them"
            )
        if test is not None and test > CIFAR10_TEST_COUNT:
            raise ConfigError(f"data.test_size={test}: out of range; CIFAR-10 has {CIFAR10_TEST_COUNT} test images (null = all)")
    if val_source == "seed_overlap" and val > train:
        raise ConfigError(f"data.val_size={val}: out of range; with data.val_source=seed_overlap it must be "
                          f"<= data.train_size={train}")
    if batch > train:
        raise ConfigError(f"data.batch_size={batch}: out of range; expected <= data.train_size={train} (the last "
                          "partial batch is dropped, so an epoch would have no step)")


def _check_data_root(cfg: DictConfig) -> None:
    """The data folder holds what ``data.source`` needs (as ``resolve_source`` decides it at load time)."""
    import os

    source, download, root_value = (_select(cfg, f"data.{k}") for k in ("source", "download", "root"))
    if source in (_ABSENT, "synthetic") or download is _ABSENT or root_value is _ABSENT:
        return  # no data config, generated data, or a value known only inside the Hydra app
    root = Path(root_value) if root_value not in (None, "") else Path(os.environ.get(ENV_DATA_DIR) or "data")
    fix = (f"put {NPZ_NAME} there (or torchvision's {TORCHVISION_DIR}/; data.download=true when online), or point "
           f"data.root / ${ENV_DATA_DIR} at the folder that holds it")
    if not download and not root.is_dir():
        raise DataError(f"data.root={root}: no such directory; {fix}")
    has_npz, has_tv = (root / NPZ_NAME).is_file(), (root / TORCHVISION_DIR).is_dir()
    if source == "npz" and not has_npz:
        raise DataError(f"data.root={root}: {NPZ_NAME} not found (data.source=npz); {fix}")
    if source == "torchvision" and not (has_tv or download):
        raise DataError(f"data.root={root}: {TORCHVISION_DIR}/ not found (data.source=torchvision); set "
                        f"data.download=true (needs internet) or use {NPZ_NAME} with data.source=npz")
    if source == "auto" and not (has_npz or has_tv or download):
        raise DataError(f"data.root={root}: no CIFAR-10 data found (neither {NPZ_NAME} nor {TORCHVISION_DIR}/); {fix}")


def check_data(cfg: DictConfig) -> None:
    """``data.*`` values, sizes against the dataset, and the data folder."""
    check_rules(cfg, DATA_RULES)
    _check_data_sizes(cfg)
    _check_data_root(cfg)


def _check_paths(cfg: DictConfig, task: str) -> None:
    ckpt = _select(cfg, "ckpt_path")
    resume = _select(cfg, "resume") if task == "train" else None
    if task == "eval" and ckpt in (None, _ABSENT, ""):
        raise ConfigError("ckpt_path=null: a checkpoint is required; pass ckpt_path=<checkpoint file or run dir>")
    if ckpt not in (None, _ABSENT, ""):
        if not isinstance(ckpt, str):
            raise ConfigError(f"ckpt_path={_fmt(ckpt)}: wrong type ({type(ckpt).__name__}); expected a file path")
        path = Path(ckpt).expanduser()
        if not path.exists():
            allowed = "a .ckpt file or a train.py run directory" if task == "eval" else "a .ckpt file"
            raise CheckpointError(f"ckpt_path={ckpt}: no such file or directory; expected {allowed}")
        if task == "train" and not path.is_file():
            raise CheckpointError(f"ckpt_path={ckpt}: not a file; expected a .ckpt file "
                                  "(to continue a run directory use resume=<run dir>)")
    if resume not in (None, _ABSENT, ""):
        if ckpt not in (None, _ABSENT, ""):
            raise ConfigError(f"resume={resume} ckpt_path={ckpt}: both given; use resume=<run dir> to continue a "
                              "run, or ckpt_path=<file> to start a new run from a checkpoint")
        from resattn.resume import resume_checkpoint

        resume_checkpoint(Path(str(resume)).expanduser())


def check_config(cfg: DictConfig, task: str = "train") -> None:
    """Types, ranges and choices of ``cfg`` (``task``: ``train`` or ``eval``); paths exist. No torch needed."""
    check_rules(cfg, TRAIN_RULES if task == "train" else EVAL_RULES)
    if task == "train":
        _check_epochs(cfg)
        _check_optimized_metric(cfg)
        _check_data_sizes(cfg)
        _check_data_root(cfg)  # eval's data comes from the checkpoint: checked in evaluate()
    _check_paths(cfg, task)


# ------------------------------------------------------------------------------------------- input checks


def check_model_fits(cfg: DictConfig, ckpt_file: Path, key: str, fix: str) -> dict[str, Any]:
    """The checkpoint at ``ckpt_file`` loads and its weights fit the model ``cfg.model`` builds; returns it."""
    from resattn.checkpoints import check_compatible, load_checkpoint
    from resattn.factory import build_model

    ckpt = load_checkpoint(ckpt_file, key=key.split("=", 1)[0])
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    net = build_model({"model": model_cfg})
    shapes = {f"net.{k}": v.shape for k, v in net.state_dict().items()}
    check_compatible(shapes, ckpt, key=key, model_cfg=model_cfg, fix=fix, prefix="net.")
    return ckpt


def check_inputs(cfg: DictConfig, task: str = "train") -> None:
    """Checkpoint contents: ``ckpt_path`` (train: fits the configured model; eval: loads) and ``resume``
    (its model fits and its schedule is unchanged)."""
    from resattn.resume import check_resume_schedule, resume_checkpoint

    ckpt = cfg.get("ckpt_path")
    if task == "eval":
        from resattn.checkpoints import best_checkpoint_of_run, load_checkpoint

        path = Path(str(ckpt)).expanduser()
        load_checkpoint(best_checkpoint_of_run(path) if path.is_dir() else path, key="ckpt_path")
    elif cfg.get("resume"):
        run_dir = Path(str(cfg.resume)).expanduser()
        stored = check_model_fits(cfg, resume_checkpoint(run_dir), f"resume={run_dir}",
                                  "a resumed run keeps its model; drop the model override, or start a new run")
        check_resume_schedule(cfg, stored["hyper_parameters"]["cfg"], run_dir)
    elif ckpt:
        check_model_fits(cfg, Path(str(ckpt)).expanduser(), f"ckpt_path={ckpt}",
                         "use a checkpoint of the same model, or set the model config it was trained with")
