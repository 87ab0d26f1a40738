"""``trainer.precision=auto``: bf16 autocast where the hardware does bf16 natively, else fp32.

The decision, by capability (no timing):

* CUDA (``trainer.accelerator`` ``auto``, ``gpu`` or ``cuda`` with ``torch.cuda.is_available()``):
  ``bf16-mixed`` when ``torch.cuda.is_bf16_supported(including_emulation=False)`` (compute capability >= 8.0,
  e.g. A100, H100; or a ROCm GPU with bf16), else ``32``;
* CPU: ``bf16-mixed`` when ``torch.cpu.get_capabilities()`` (PyTorch's cpuinfo probe) reports ``amx_bf16``
  (Intel AMX, Sapphire Rapids and later) or ``avx512_bf16`` (Cooper Lake, AMD Zen 4 and later), else ``32``.
  AVX2-only and plain AVX-512 CPUs emulate bf16 and run it several times slower than fp32;
* any other accelerator (e.g. ``mps``): ``32``.

An explicit ``trainer.precision`` is never changed. :func:`resolve_precision` runs once per run before the
Trainer is built and writes the chosen value into the config, so checkpoints, ``.hydra/config.yaml`` and
``metrics.json`` store the precision the run used (``eval.py`` evaluates in it). A resumed run keeps the precision
it trained in: ``auto`` is not decided again on the machine that resumes it (a preempted job may come back on
another kind of node), so the continued run matches an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

AUTO = "auto"
BF16 = "bf16-mixed"
FP32 = "32"
CPU_BF16_FEATURES = ("amx_bf16", "avx512_bf16")  # torch.cpu.get_capabilities() keys of native bf16 units
SHORT_NAMES = {"32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed", "64": "64-true"}  # Lightning's aliases


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run uses and why (the ``plan:`` line prints :meth:`describe`)."""

    value: str
    reason: str

    def describe(self) -> str:
        return f"precision {self.value} ({self.reason})"


def cpu_capabilities() -> Mapping[str, Any]:
    """PyTorch's cpuinfo view of this CPU (``torch.cpu.get_capabilities()``); the probe tests monkeypatch."""
    return torch.cpu.get_capabilities()


def native_bf16_features(caps: Mapping[str, Any] | None = None) -> list[str]:
    """This CPU's native bf16 units among :data:`CPU_BF16_FEATURES` (none: bf16 would be emulated)."""
    caps = cpu_capabilities() if caps is None else caps
    return [f for f in CPU_BF16_FEATURES if caps.get(f)]


def cuda_bf16_native() -> bool:
    """Whether the current CUDA device computes bf16 natively (not emulated)."""
    return bool(torch.cuda.is_bf16_supported(including_emulation=False))


def _device_type(accelerator: str) -> str:
    """The device type Lightning picks for ``trainer.accelerator`` (``auto``: CUDA, then MPS, then CPU)."""
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "cuda"
    if accelerator in ("auto", "gpu", "mps") and torch.backends.mps.is_available():
        return "mps"
    return "cpu" if accelerator == "auto" else accelerator


def auto_precision(accelerator: str = "auto") -> PrecisionChoice:
    """What ``trainer.precision=auto`` means on this machine for ``trainer.accelerator``."""
    device = _device_type(str(accelerator))
    if device == "cuda":
        name = torch.cuda.get_device_name()
        if cuda_bf16_native():
            return PrecisionChoice(BF16, f"auto: {name} computes bf16 natively")
        return PrecisionChoice(FP32, f"auto: {name} has no native bf16")
    if device == "cpu":
        caps = cpu_capabilities()
        found = native_bf16_features(caps)
        cpu = caps.get("cpu_name") or caps.get("architecture") or "this CPU"
        if found:
            return PrecisionChoice(BF16, f"auto: {cpu} has native bf16 ({', '.join(found)})")
        return PrecisionChoice(FP32, f"auto: {cpu} has neither {' nor '.join(CPU_BF16_FEATURES)}, so bf16 would be emulated")
    return PrecisionChoice(FP32, f"auto: bf16 autocast is not chosen automatically on {device}")


def choose_precision(setting: Any, accelerator: str = "auto") -> PrecisionChoice:
    """``setting`` itself when explicit, else :func:`auto_precision`."""
    if str(setting) == AUTO:
        return auto_precision(accelerator)
    return PrecisionChoice(str(setting), "set explicitly")


def same_precision(a: Any, b: Any) -> bool:
    """Whether two ``trainer.precision`` values mean the same (``32`` is ``32-true``, ``bf16`` is ``bf16-mixed`` ...)."""
    return SHORT_NAMES.get(str(a), str(a)) == SHORT_NAMES.get(str(b), str(b))


def resolve_precision(cfg: Any, resumed: Any = None) -> PrecisionChoice:
    """Replace ``trainer.precision=auto`` in ``cfg`` (a DictConfig) by the chosen value; return the choice.

    ``resumed``: the precision the run being resumed trained in (its checkpoint's). ``auto`` keeps it; an explicit
    other value wins, and the reason says that the continued run will not match an uninterrupted one.
    """
    setting = str(cfg.trainer.precision)
    choice = choose_precision(setting, cfg.trainer.get("accelerator", "auto"))
    if resumed is not None and str(resumed) != AUTO and not same_precision(resumed, choice.value):
        if setting == AUTO:  # the run's own precision, not the one this machine would pick for a new run
            here = choice.reason.removeprefix("auto: ")
            choice = PrecisionChoice(str(resumed), f"kept from the resumed run; auto would choose {choice.value} here: {here}")
        else:
            why = f"set explicitly; the run trained in {resumed} before, so it will not match an uninterrupted run"
            choice = PrecisionChoice(setting, why)
    if setting == AUTO:  # an explicit value stays as the user wrote it
        cfg.trainer.precision = choice.value
    return choice
