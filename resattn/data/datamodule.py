"""CIFAR-10 LightningDataModule (config group ``data``): wires sources, splits, loaders and batch preparation.

Batch format:

* loaders yield uint8 ``N×3×32×32`` images and int64 labels -- training batches ``(x, y, seed)`` with a
  per-batch augmentation seed (0-dim int64 tensor), evaluation batches ``(x, y)``;
* :meth:`CIFAR10DataModule.on_after_batch_transfer` (Lightning hook; also :meth:`prepare_batch`
  without a trainer) turns them, on the training device, into ``(x_float32_normalised, y)``:
  augmentation (training only, seeded by the batch's seed), uint8 → float, standardisation.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from resattn.cifar import CLASS_NAMES, NUM_CLASSES
from resattn.data.batches import BatchPreparer, seed_on_host, split_of
from resattn.data.imagefolder import load_imagefolder
from resattn.data.loader import EvalLoader, TrainLoader
from resattn.data.sources import (
    RawData,
    default_root,
    download_torchvision,
    load_source,
    make_synthetic,
    resolve_source,
    torchvision_present,
)
from resattn.data.splits import ORIGINAL_STD_EPS, normalization, split, stored_normalization, test_split
from resattn.errors import ConfigError

log = logging.getLogger("resattn.data")


class CIFAR10DataModule(pl.LightningDataModule):
    """CIFAR-10 (or the synthetic stand-in) for the Residual Attention Network runs.

    Args:
        source: ``auto`` (``root/cifar10.npz`` if present, else torchvision's folder) | ``npz`` |
            ``torchvision`` | ``synthetic`` (generated data; only when selected explicitly) | ``imagefolder``
            (your own ``root/<class>/<image>`` tree, :mod:`resattn.data.imagefolder`: any number of classes,
            square images; ``test_size`` images (default a fifth) are its test split).
        root: folder holding ``cifar10.npz`` or ``cifar-10-batches-py/``; ``None`` = ``$RESATTN_DATA_DIR``
            or ``./data``.
        download: let torchvision download CIFAR-10 into ``root`` (needs internet).
        train_size: training pool = the first ``train_size`` training images.
        val_size: validation images.
        test_size: cap on the official test images (``None`` = all 10,000); synthetic: test images
            generated (``None`` = ``val_size``).
        val_source: ``holdout`` (the last ``val_size`` of the training set, disjoint from the pool) |
            ``original_overlap`` (the last ``val_size`` of the pool, as the original: leaked).
        normalization: ``pool`` (training-pool mean/std on the 0-1 scale, for every split) | ``original``
            (the original: each split standardised with its own statistics, 0-255 scale, std + 1e-6).
        batch_size: training batch size (per process); the last partial batch is dropped.
        eval_batch_size: validation/test batch size (every image is covered).
        num_workers, pin_memory, persistent_workers: DataLoader backend options.
        device_resident: ``auto`` (true on CUDA) | true (all images moved once to the training device,
            batches sliced there) | false (a DataLoader over whole-batch items).
        seed: data seed: epoch order and augmentation draws derive from it.
        synthetic_seed: seed of the synthetic dataset.
        augment: training augmentation, ``aug(x, generator) -> float 0-255`` (``None`` = none).
        image_size: ``imagefolder`` only: resize every image to ``image_size`` squared (``None``: keep their common size).
        preprocessing: a checkpoint's stored preprocessing (:meth:`describe_preprocessing` of its training run).
            With it, ``setup("test")`` and ``setup("predict")`` read the test split alone and normalise it with
            the stored training statistics: no training image is loaded.
    """

    num_classes: int = NUM_CLASSES
    class_names: tuple[str, ...] = CLASS_NAMES
    image_shape: tuple[int, int, int] = (3, 32, 32)

    def __init__(
        self,
        source: str = "auto",
        root: Optional[Union[str, Path]] = None,
        download: bool = False,
        train_size: int = 30_000,
        val_size: int = 5_000,
        test_size: Optional[int] = None,
        val_source: str = "holdout",
        normalization: str = "pool",
        batch_size: int = 128,
        eval_batch_size: int = 500,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        device_resident: Union[str, bool] = "auto",
        seed: int = 0,
        synthetic_seed: int = 0,
        label_noise: float = 0.0,
        image_size: Optional[int] = None,
        augment: Optional[Any] = None,
        preprocessing: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.root = Path(root) if root not in (None, "") else default_root()
        self.download = bool(download)
        self.train_size = train_size
        self.val_size = val_size
        self.test_size = test_size
        self.val_source = val_source
        self.normalization = normalization
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.pin_memory = bool(pin_memory)
        self.persistent_workers = bool(persistent_workers)
        self.device_resident = device_resident
        self.seed = seed
        self.synthetic_seed = synthetic_seed
        self.label_noise = float(label_noise)
        self.image_size = image_size
        self.labels_changed = 0
        self.augment = augment
        # plain containers: Hydra's instantiate hands a dict keyword over as a DictConfig
        self.stored_preprocessing = OmegaConf.to_container(OmegaConf.create(dict(preprocessing))) if preprocessing else None
        self.test_only = False  # setup() read the test split alone (stored preprocessing)

        # Filled by setup().
        self.source_used: Optional[str] = None
        self.train_x: Optional[torch.Tensor] = None  # uint8 N×3×32×32 (CPU)
        self.train_y: Optional[torch.Tensor] = None
        self.val_x: Optional[torch.Tensor] = None
        self.val_y: Optional[torch.Tensor] = None
        self.test_x: Optional[torch.Tensor] = None
        self.test_y: Optional[torch.Tensor] = None
        self.mean: Optional[tuple[float, float, float]] = None  # training-pool mean, 0-1 scale
        self.std: Optional[tuple[float, float, float]] = None  # training-pool std, 0-1 scale
        self.train_stats: Optional[tuple[tuple[float, ...], tuple[float, ...]]] = None  # training split's mean/std, 0-1
        self.overlap: dict[str, int] = {}
        self.rank = 0
        self.world_size = 1
        self._preparer: Optional[BatchPreparer] = None
        self._resident_cache: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}

    # ----------------------------------------------------------------------------------------- data

    def prepare_data(self) -> None:
        """Download torchvision's CIFAR-10 when asked and not present (Lightning runs this on one process)."""
        if self.source in ("auto", "torchvision") and self.download:
            if not ((self.root / "cifar10.npz").is_file() and self.source == "auto"):
                if not torchvision_present(self.root):
                    download_torchvision(self.root)

    def _load(self, test_only: bool = False) -> RawData:
        raw = self._load_raw(test_only)
        if raw.class_names:  # the source's own classes and image size (ImageFolder trees)
            self.class_names, self.num_classes = tuple(raw.class_names), len(raw.class_names)
            self.image_shape = (raw.x_test.shape[3], raw.x_test.shape[1], raw.x_test.shape[2])
        return raw

    def _load_raw(self, test_only: bool) -> RawData:
        if self.source == "imagefolder":
            return load_imagefolder(self.root, self.image_size, self.test_size)
        if self.source == "synthetic":
            n_train = self.train_size + (self.val_size if self.val_source == "holdout" else 0)
            n_test = self.test_size if self.test_size is not None else self.val_size
            return make_synthetic(n_train, n_test, self.synthetic_seed)
        resolved = resolve_source(self.source, self.root, self.download)
        return load_source(resolved, self.root, self.download, test_only)

    def setup(self, stage: Optional[str] = None) -> None:
        """Load, split and hash the data and compute the normalisation (once; later calls are no-ops). With stored
        preprocessing, ``test``/``predict`` read the test split alone (:meth:`_setup_test_only`)."""
        trainer = getattr(self, "trainer", None)
        if trainer is not None and getattr(trainer, "world_size", 1) > 1:
            self.rank, self.world_size = int(trainer.global_rank), int(trainer.world_size)
        if self.stored_preprocessing is not None and stage in ("test", "predict"):
            if self.test_x is None:
                self._setup_test_only(self.stored_preprocessing)
            return
        if self.train_x is not None:
            return
        raw = self._load()
        parts = split(raw, self.train_size, self.val_size, self.test_size, self.val_source, self.label_noise, self.num_classes, self.seed)
        self.overlap, self.labels_changed = parts.overlap, parts.labels_changed
        norm, mean255, std255 = normalization(parts, self.normalization)
        self.mean = tuple(float(m) for m in mean255 / 255.0)  # type: ignore[assignment]
        self.std = tuple(float(s) for s in std255 / 255.0)  # type: ignore[assignment]
        # The training split's statistics as 0-1 mean/std (pool: those above; original: its 0-255 std + 1e-6)
        eps = ORIGINAL_STD_EPS if self.normalization == "original" else 0.0
        self.train_stats = (self.mean, tuple(float(s) for s in (std255 + eps) / 255.0))
        stats = {k: (torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)) for k, (a, b) in norm.items()}
        self._preparer = BatchPreparer(stats, self.augment)

        def to_nchw(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))

        self.train_x, self.train_y = to_nchw(parts.x_pool), torch.from_numpy(np.ascontiguousarray(parts.y_pool))
        self.val_x, self.val_y = to_nchw(parts.x_val), torch.from_numpy(np.ascontiguousarray(parts.y_val))
        self.test_x, self.test_y = to_nchw(parts.x_test), torch.from_numpy(np.ascontiguousarray(parts.y_test))
        self.source_used = raw.source

        if self.val_source == "original_overlap":
            log.warning(
                "data.val_source=original_overlap: the %d validation images are the last %d of the training pool "
                "(as in the original notebook) -- validation accuracy is leaked/inflated",
                self.val_size,
                self.val_size,
            )
        log.info(
            "data: source=%s train=%d val=%d test=%d overlap(train,val)=%d overlap(train,test)=%d label_noise=%g changed=%d",
            raw.source,
            len(self.train_x),
            len(self.val_x),
            len(self.test_x),
            self.overlap["val"],
            self.overlap["test"],
            self.label_noise,
            self.labels_changed,
        )

    def _setup_test_only(self, stored: Mapping[str, Any]) -> None:
        """The test split, normalised with a checkpoint's training statistics; the protocol line comes from it."""
        raw = self._load(test_only=True)
        x_test, y_test = test_split(raw, self.test_size)
        mode = stored.get("normalization", self.normalization)
        norm = stored_normalization(np.asarray(stored["mean"]), np.asarray(stored["std"]), mode, x_test)
        self.mean, self.std = tuple(stored["mean"]), tuple(stored["std"])  # type: ignore[assignment]
        self.train_stats = (self.mean, self.std)
        self._preparer = BatchPreparer(
            {k: (torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)) for k, (a, b) in norm.items()}
        )
        self.test_x = torch.from_numpy(np.ascontiguousarray(x_test.transpose(0, 3, 1, 2)))
        self.test_y = torch.from_numpy(np.ascontiguousarray(y_test))
        self.source_used, self.test_only = raw.source, True
        protocol = stored.get("protocol") or {}
        log.info(
            "data: source=%s test=%d (test split only; normalisation=%s and protocol from the checkpoint: %s)",
            raw.source,
            len(self.test_x),
            mode,
            " ".join(f"{k}={v}" for k, v in protocol.items()),
        )

    def describe_preprocessing(self) -> dict[str, Any]:
        """What a model trained on this data needs to be used without it: the training split's normalisation
        (0-1 scale mean/std, ``x_norm = (x / 255 - mean) / std``), class names, input geometry and the protocol."""
        self._require_setup()
        if self.stored_preprocessing is not None and self.test_only:
            return dict(self.stored_preprocessing)
        mean, std = self.train_stats
        return {
            "mean": list(mean),
            "std": list(std),
            "normalization": self.normalization,
            "class_names": list(self.class_names),
            "input_size": int(self.image_shape[1]),
            "in_channels": int(self.image_shape[0]),
            "protocol": {
                "source": self.source_used,
                "train": len(self.train_x),
                "val": len(self.val_x),
                "test": len(self.test_x),
                "val_source": self.val_source,
                "overlap(train,val)": self.overlap["val"],
                "overlap(train,test)": self.overlap["test"],
                "label_noise": self.label_noise,
                "changed": self.labels_changed,
                "seed": self.seed,
            },
        }

    def _require_setup(self) -> None:
        if self._preparer is None:
            self.setup()

    # -------------------------------------------------------------------------------------- loaders

    def _device(self) -> torch.device:
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            try:
                return torch.device(trainer.strategy.root_device)
            except Exception:  # pragma: no cover - strategy not ready
                pass
        return torch.device("cpu")

    def resident_on(self, device: torch.device) -> bool:
        """Whether loaders keep the images on ``device`` (``device_resident`` resolved for it)."""
        if self.device_resident == "auto":
            return device.type == "cuda"
        return bool(self.device_resident)

    def _on_device(self, split: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = (split, str(device))
        if key not in self._resident_cache:
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            self._resident_cache[key] = (x.to(device), y.to(device))
        return self._resident_cache[key]

    def train_dataloader(self) -> TrainLoader:
        self._require_setup()
        device = self._device()
        resident = self.resident_on(device)
        steps = len(self.train_x) // (self.batch_size * self.world_size)
        if steps < 1:
            raise ConfigError(
                f"data.batch_size={self.batch_size} × {self.world_size} processes exceeds the "
                f"{len(self.train_x)} training images: an epoch would have no step"
            )
        x, y = self._on_device("train", device) if resident else (self.train_x, self.train_y)
        return TrainLoader(
            x,
            y,
            self.batch_size,
            self.seed,
            rank=self.rank,
            world_size=self.world_size,
            device_resident=resident,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and device.type == "cuda",
            persistent_workers=self.persistent_workers,
        )

    def _eval_loader(self, split: str) -> EvalLoader:
        self._require_setup()
        device = self._device()
        if self.resident_on(device):
            x, y = self._on_device(split, device)
        else:
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            if self.pin_memory and device.type == "cuda":
                key = (split, "pinned")
                if key not in self._resident_cache:
                    self._resident_cache[key] = (x.pin_memory(), y.pin_memory())
                x, y = self._resident_cache[key]
        return EvalLoader(x, y, self.eval_batch_size, rank=self.rank, world_size=self.world_size)

    def val_dataloader(self) -> EvalLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> EvalLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> EvalLoader:
        return self._eval_loader("test")

    # ------------------------------------------------------------------------------------- batches

    def normalizer(self, split: str, device: Union[str, torch.device] = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """``(scale, shift)`` of shape ``1×3×1×1`` with ``x_norm = x_0_255 * scale + shift`` for ``split``."""
        return self._batches().normalizer(split, device)

    def prepare_batch(self, batch: Sequence[Any], train: bool, split: Optional[str] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_uint8, y[, seed])`` → ``(x_float32_normalised, y)`` on the batch's device (:class:`BatchPreparer`)."""
        return self._batches()(batch, train, split)

    def _batches(self) -> BatchPreparer:
        self._require_setup()
        return self._preparer

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return seed_on_host(batch)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The prepared batch, in the dtype of a ``*-true`` precision (Lightning converts inputs before this hook,
        while they are still uint8)."""
        trainer = getattr(self, "trainer", None)
        training, split = split_of(trainer)
        x, y = self.prepare_batch(batch, train=training, split=split)
        return (trainer.precision_plugin.convert_input(x) if trainer is not None else x), y
