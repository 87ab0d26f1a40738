"""What a result was measured on: the device a run trained on (``metrics.json``'s ``device``) and the software and
machine a report was published with."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import torch

from resattn.training.precision import cpu_capabilities, native_bf16_features


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what the platform says."""
    try:
        names = re.findall(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        names = []
    return names[0].strip() if names else platform.processor() or platform.machine()


def device_line(accelerator: str = "auto") -> str:
    """The device a run trains on, with what decides its speed: ``NVIDIA H200 (CUDA)``, or for a CPU its model,
    cores, widest vector unit and whether it does bf16 natively (``AMD EPYC, 2 cores, AVX2, no native bf16``)."""
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (CUDA)"
    caps = cpu_capabilities()
    vector = "AVX-512" if caps.get("avx512f") else "AVX2" if caps.get("avx2") else ""
    bf16 = native_bf16_features(caps)
    parts = [cpu_name(), f"{os.cpu_count()} cores", vector, f"native bf16 ({', '.join(bf16)})" if bf16 else "no native bf16"]
    return ", ".join(p for p in parts if p)


def machine_line() -> str:
    """One line on the machine at hand: CPU model and cores, memory, GPU, Python, torch and Lightning versions."""
    import pytorch_lightning

    memory = ""
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        memory = f", {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB RAM"
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return (
        f"{cpu_name()}, {os.cpu_count()} cores{memory}{gpu}; Python {platform.python_version()}, torch {torch.__version__}, "
        f"pytorch-lightning {pytorch_lightning.__version__}"
    )
