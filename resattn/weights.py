"""Published weights by name, in torchvision's style: name → file or URL, sha256, metadata.

A weights file is a safetensors file of the network's state dict (``net.*`` keys without the prefix) whose
metadata key ``resattn`` holds the JSON ``{"cfg": <the run's config>, "preprocessing": <mean/std, class names,
input size, protocol>}``: everything :func:`resattn.training.from_checkpoint.module_from_checkpoint` needs.
``python -m resattn.export ckpt_path=<run> format=safetensors`` writes one and prints its registry entry.

Adding an entry: put the file under ``weights/`` of the repository (``url="weights/<file>"``) or anywhere
reachable (``https://`` or ``file://``), and add ``Weights(...)`` with its sha256 to :data:`REGISTRY` below.
Loading verifies the whole sha256 (``torch.hub.download_url_to_file(hash_prefix=...)`` for URLs, a hash of
the file for local paths and cached downloads).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from resattn.config.renames import renamed_stored
from resattn.errors import CheckpointError
from resattn.training.checkpoint_files import load_checkpoint, run_record

REPO_ROOT = Path(__file__).resolve().parent.parent
METADATA_KEY = "resattn"


@dataclass(frozen=True)
class Weights:
    """One published set of weights.

    Args:
        name: the name users pass (``weights=<name>``, ``ckpt_path=<name>``).
        url: ``https://...``, ``file:///...`` or a path relative to the repository root (``weights/<file>``).
        sha256: hex digest of the file.
        builder: the architecture (:mod:`resattn.models.builders` function name) the weights fit.
        meta: what the entry promises: ``test_acc`` (from a fresh ``eval.py``), ``protocol``, ``command``, ...
    """

    name: str
    url: str
    sha256: str
    builder: str
    meta: Mapping[str, Any] = field(default_factory=dict)


REGISTRY: dict[str, Weights] = {}  # name -> entry; shipped entries are added below


def _shipped() -> None:
    """The weights kept in the repository (``weights/``), each with its fresh ``eval.py`` accuracy."""
    register(
        Weights(
            "attention56_mini_w8_cifar10",
            url="weights/attention56_mini_w8_cifar10.safetensors",
            sha256="a78e2d41a957b5e8899cdf902b4639b1ccc6a68495e8edf878ea435b75e762a8",
            builder="attention56_mini",
            meta={
                "test_acc": 0.8319,  # eval.py ckpt_path=attention56_mini_w8_cifar10 (bf16-mixed, as trained)
                "test_acc_fp32": 0.8326,  # the same weights evaluated in float32 (torch.hub.load, no autocast)
                "width": 8,
                "dtype": "float16",
                "trained": "2026-12-04, 2-core AMD EPYC (Zen 4), bf16-mixed, 24 epochs, 2,261 s of training",
                "protocol": "honest: 30k training pool, disjoint 5k holdout, all 10,000 CIFAR-10 test images",
                # scale=cpu as it was before its retuning (2026-12-04)
                "command": "python train.py experiment=improved scale=cpu model.width=8 trainer.max_epochs=24 tta=none val_tta=null",
            },
        )
    )
    register(
        Weights(
            "attention56_mini_w16_cifar10",
            url="weights/attention56_mini_w16_cifar10.safetensors",
            sha256="b2e2f9de5e992c6830a8a54c23ea45a1dcbad8677f90e273c05b116e2e8a60f5",
            builder="attention56_mini",
            meta={
                "test_acc": 0.8856,  # eval.py ckpt_path=attention56_mini_w16_cifar10 (bf16-mixed; the run's tta=flip_translate)
                "test_acc_fp32": 0.8702,  # the same weights in float32, one plain forward (torch.hub.load: no autocast, no TTA)
                "width": 16,
                "dtype": "float16",
                "trained": "2026-12-04, 2-core AMD EPYC (Zen 4), bf16-mixed, 26 epochs, 1,655 s of training",
                "protocol": "honest: 30k training pool, disjoint 5k holdout, all 10,000 CIFAR-10 test images",
                "command": "python train.py experiment=improved scale=cpu",
            },
        )
    )


def register(entry: Weights) -> Weights:
    """Add (or replace) an entry at run time, e.g. weights kept outside the repository."""
    REGISTRY[entry.name] = entry
    return entry


def is_weights_name(value: object) -> bool:
    """Whether a ``ckpt_path`` value means registered weights: a registered name that is not an existing path."""
    return bool(value) and str(value) in REGISTRY and not Path(str(value)).expanduser().exists()


def get(name: str) -> Weights:
    if name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY)) or "none registered"
        raise CheckpointError(
            f"weights={name}: no such weights name (known: {known}); pass a registered name, a .ckpt file or a run directory"
        )
    return REGISTRY[name]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(path: Path, entry: Weights) -> Path:
    actual = sha256_of(path)
    if actual != entry.sha256:
        raise CheckpointError(
            f"weights={entry.name}: {path} has sha256 {actual[:16]}..., expected {entry.sha256[:16]}...; the file is corrupt or "
            "not these weights: delete it (a download is fetched again) or fix the registry entry"
        )
    return path


def fetch(name: str) -> Path:
    """The entry's file on disk, checksum verified: a local path as is, a URL downloaded once into torch hub's
    cache (``<torch.hub.get_dir()>/checkpoints/``)."""
    entry = get(name)
    if "://" not in entry.url:
        local = (REPO_ROOT / entry.url).resolve()
        if not local.is_file():
            raise CheckpointError(f"weights={name}: {local} does not exist; restore the file or fix the registry entry's url")
        return _verified(local, entry)
    target = Path(torch.hub.get_dir()) / "checkpoints" / Path(entry.url.split("?")[0]).name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(entry.url, str(target), hash_prefix=entry.sha256, progress=False)
        except RuntimeError as exc:  # torch raises RuntimeError for a hash mismatch (and removes the file)
            raise CheckpointError(f"weights={name}: {entry.url}: {' '.join(str(exc).split())}") from None
        except OSError as exc:
            raise CheckpointError(
                f"weights={name}: cannot download {entry.url} ({type(exc).__name__}: {exc}); check the url or the network"
            ) from None
    return _verified(target, entry)


def read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(network state dict in float32, header {"cfg", "preprocessing"})`` of a resattn safetensors file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            header = json.loads((handle.metadata() or {})[METADATA_KEY])
            state = {k: handle.get_tensor(k) for k in handle.keys()}
    except (KeyError, ValueError, OSError) as exc:
        raise CheckpointError(
            f"{path}: not a resattn weights file ({type(exc).__name__}); write one with python -m resattn.export format=safetensors"
        ) from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return state, renamed_stored(header)


def as_checkpoint(name: str) -> tuple[Path, dict[str, Any]]:
    """``(file, a checkpoint-shaped dict)`` for :func:`resattn.training.from_checkpoint.module_from_checkpoint`."""
    path = fetch(name)
    state, header = read(path)
    hyper = run_record(header["cfg"], header.get("preprocessing"))
    return path, {"state_dict": {f"net.{k}": v for k, v in state.items()}, "hyper_parameters": hyper, "network_only": True}


def save(net: torch.nn.Module, cfg: Mapping[str, Any], preprocessing: Mapping[str, Any] | None, path: Path, half: bool = False) -> str:
    """Write ``net``'s weights with ``cfg`` and ``preprocessing`` as a safetensors file; returns its sha256.
    ``half`` stores floating tensors as float16 (loading casts them back to float32)."""
    from safetensors.torch import save as to_bytes

    from resattn.artifacts.atomic import write_bytes

    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    header = json.dumps(run_record(dict(cfg), dict(preprocessing) if preprocessing else None))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, to_bytes(state, metadata={METADATA_KEY: header}))
    return sha256_of(path)


def load_checkpoint_or_weights(path: str | Path, key: str = "ckpt_path") -> dict[str, Any]:
    """:func:`resattn.training.checkpoint_files.load_checkpoint`, or a registered weights name's checkpoint-shaped
    dict."""
    if is_weights_name(path):
        return as_checkpoint(str(path))[1]
    return load_checkpoint(path, key)


_shipped()
