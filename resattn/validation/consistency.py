"""Rules across fields: run length, the optimised metric, data sizes against the dataset, the model layout."""

from __future__ import annotations

import os
from typing import Any

from omegaconf import DictConfig, OmegaConf

from resattn.cifar import CIFAR10_TEST_COUNT, CIFAR10_TRAIN_COUNT
from resattn.errors import ConfigError
from resattn.schema.model import BLOCK_KEYS
from resattn.training.metrics import RESULT_METRICS, TEST_METRICS
from resattn.validation.values import ABSENT, fmt, select


def check_epochs(cfg: DictConfig) -> None:
    max_epochs, max_steps = select(cfg, "trainer.max_epochs"), select(cfg, "trainer.max_steps")
    if max_epochs == 0 or (max_epochs == -1 and max_steps in (-1, None, ABSENT)):
        raise ConfigError(
            f"trainer.max_epochs={max_epochs}: out of range; expected an integer >= 1 (-1 only together with trainer.max_steps >= 1)"
        )
    if max_steps == 0:
        raise ConfigError("trainer.max_steps=0: out of range; expected -1 (no limit) or an integer >= 1")
    reference = select(cfg, "scale.reference_epochs")
    if max_steps not in (-1, None, ABSENT) and reference not in (None, ABSENT) and reference != max_epochs:
        raise ConfigError(
            f"scale={select(cfg, 'scale.name')}: cannot shorten a run counted in optimizer steps (trainer.max_steps={max_steps}); "
            "use scale=full and set trainer.max_steps and the scheduler's milestones yourself"
        )


GPU_ACCELERATORS = ("gpu", "cuda")


def _device_count(devices: Any) -> int | None:
    """How many devices ``trainer.devices`` asks for (None: ``auto``, ``-1`` and other "all of them" forms)."""
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if isinstance(devices, str) and devices.strip().isdigit():
        return int(devices)
    return devices if isinstance(devices, int) and not isinstance(devices, bool) and devices > 0 else None


def cpu_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_devices(cfg: DictConfig) -> None:
    """``trainer.accelerator`` exists on this machine and ``trainer.devices`` fits it (on CPU: one process per
    device, at most one per core)."""
    accelerator, devices = select(cfg, "trainer.accelerator"), select(cfg, "trainer.devices")
    if accelerator is ABSENT or devices is ABSENT:
        return
    import torch

    cuda = torch.cuda.is_available()
    count = _device_count(devices)
    if accelerator in GPU_ACCELERATORS and not cuda:
        raise ConfigError(
            f"trainer.accelerator={fmt(accelerator)}: no CUDA device is available on this machine; "
            "use trainer=cpu (or trainer.accelerator=cpu), or run on a machine with a GPU"
        )
    if accelerator in GPU_ACCELERATORS and count is not None and count > torch.cuda.device_count():
        raise ConfigError(
            f"trainer.devices={fmt(devices)}: out of range; this machine has {torch.cuda.device_count()} CUDA "
            f"device(s), so expected at most {torch.cuda.device_count()}"
        )
    if (accelerator == "cpu" or (accelerator == "auto" and not cuda)) and count is not None and count > cpu_cores():
        raise ConfigError(
            f"trainer.devices={fmt(devices)}: out of range; this machine has {cpu_cores()} CPU cores and each CPU "
            f"device is a process, so expected at most {cpu_cores()} on CPU (or trainer=gpu on a GPU machine)"
        )


def check_schedule(cfg: DictConfig) -> None:
    """The optimizer and its scheduler build with every configured argument (on a one-parameter stand-in), so
    a wrong argument fails here, not in ``configure_optimizers`` after the data has loaded."""
    if not cfg.get("optimizer") or cfg.get("scheduler") is None:
        return
    import torch
    from hydra.utils import instantiate

    from resattn.training.schedulers import lightning_scheduler

    optimizer = _built(cfg, "optimizer", lambda: instantiate(cfg.optimizer)(params=[torch.nn.Parameter(torch.zeros(1))]))
    _built(cfg, "scheduler.scheduler", lambda: lightning_scheduler(instantiate(cfg.scheduler), optimizer, total_steps=lambda: 1000))


def _built(cfg: DictConfig, group: str, build: Any) -> Any:
    """``build()``; the target's own complaint (TypeError, ValueError ..., wrapped by instantiate) as one line."""
    try:
        return build()
    except ConfigError:
        raise
    except Exception as exc:
        cause = exc.__cause__ or exc
        target = OmegaConf.select(cfg, f"{group}._target_", default="?")
        raise ConfigError(f"{group} ({target}): {' '.join(str(cause).split())}; fix or drop that argument of {group}") from None


def check_optimized_metric(cfg: DictConfig) -> None:
    name = select(cfg, "optimized_metric")
    if name in (None, ABSENT):
        return
    tested = cfg.get("test", True)
    allowed = [*RESULT_METRICS, *([*TEST_METRICS, "test/acc_<class name>"] if tested else [])]
    if not (name in allowed or (name.startswith("test/acc_") and tested)):
        hint = " (test=false: no test metrics)" if name.startswith("test/") else ""
        raise ConfigError(f"optimized_metric={fmt(name)}: not a metric this run produces{hint}; allowed: {', '.join(allowed)} or null")


def check_data_sizes(cfg: DictConfig) -> None:
    source, val_source, train, val, test, batch = (
        select(cfg, f"data.{k}") for k in ("source", "val_source", "train_size", "val_size", "test_size", "batch_size")
    )
    if any(v is ABSENT for v in (source, val_source, train, val, test, batch)):
        return
    if source not in ("synthetic", "imagefolder"):  # a tree's counts are checked when it loads
        if train > CIFAR10_TRAIN_COUNT:
            raise ConfigError(f"data.train_size={train}: out of range; CIFAR-10 has {CIFAR10_TRAIN_COUNT} training images")
        if val_source == "holdout" and train + val > CIFAR10_TRAIN_COUNT:
            raise ConfigError(
                f"data.train_size={train} + data.val_size={val}: out of range; with data.val_source=holdout they must "
                f"sum to <= {CIFAR10_TRAIN_COUNT} (validation images lie outside the pool); lower one of them"
            )
        if test is not None and test > CIFAR10_TEST_COUNT:
            raise ConfigError(f"data.test_size={test}: out of range; CIFAR-10 has {CIFAR10_TEST_COUNT} test images (null = all)")
    if val_source == "original_overlap" and val > train:
        raise ConfigError(f"data.val_size={val}: out of range; with data.val_source=original_overlap it must be <= data.train_size={train}")
    if batch > train:
        raise ConfigError(
            f"data.batch_size={batch}: out of range; expected <= data.train_size={train} (the last "
            "partial batch is dropped, so an epoch would have no step)"
        )


def check_layout(model: Any) -> None:
    """Each ``model.layout`` entry has the keys its type needs and no others, and the head's pool fits the
    final feature map (``model`` as a plain mapping)."""
    size = model["input_size"] // 2  # after the stem's 2x2 max pool
    for index, block in enumerate(model["layout"]):
        where, kind = f"model.layout[{index}]", block["type"]
        required, optional = BLOCK_KEYS[kind]
        keys = {k for k, v in block.items() if v is not None} - {"type"}
        if missing := required - keys:
            raise ConfigError(f"{where} ({kind}) lacks {', '.join(sorted(missing))}; a {kind} needs {', '.join(sorted(required))}")
        if unknown := keys - required - optional:
            raise ConfigError(
                f"{where} ({kind}) has unknown keys {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(required | optional))}"
            )
        if kind == "unit":
            for _ in range(block.get("repeat") or 1):
                size = -(-size // (block.get("stride") or 1))
    if model["pool_kernel"] > size:
        raise ConfigError(
            f"model.pool_kernel={model['pool_kernel']}: out of range; the final feature map is "
            f"{size}x{size}, so expected an integer <= {size}"
        )


def check_ema(cfg: DictConfig) -> None:
    """``ema=true`` needs its settings, ``callbacks.ema`` (never silently off)."""
    if select(cfg, "ema") is True and select(cfg, "callbacks.ema") in (None, ABSENT):
        raise ConfigError(
            "ema=true callbacks.ema=null: weight averaging is on but its callback is dropped; set ema=false or keep callbacks.ema"
        )
