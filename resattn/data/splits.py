"""From the raw arrays to the run's splits: the training pool, validation, test, the overlap audit, label
noise and the normalisation constants (numpy only; the DataModule turns them into tensors)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from resattn.data.noise import corrupt_labels
from resattn.data.sources import RawData, channel_stats, count_overlap, image_hashes
from resattn.errors import DataError

SPLITS = ("train", "val", "test")
ORIGINAL_STD_EPS = 1e-6  # Keras featurewise_std_normalization: x / (std + 1e-6)


@dataclass(frozen=True)
class Splits:
    """HWC uint8 images and int64 labels per split, with the audit of what the pool shares with the others."""

    x_pool: np.ndarray
    y_pool: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    overlap: dict[str, int]  # pool images also in val / test, by content hash
    labels_changed: int  # pool labels replaced by label noise


def split(
    raw: RawData, train_size: int, val_size: int, test_size: Optional[int], val_source: str, label_noise: float, num_classes: int, seed: int
) -> Splits:
    """Pool = the first ``train_size`` training images; validation = the last ``val_size`` of the training set
    (``holdout``, disjoint from the pool) or of the pool (``original_overlap``, the original's leak); test = the first
    ``test_size`` test images (all when ``None``). Label noise changes pool labels only."""
    n_train = len(raw.x_train)
    origin = raw.origin or raw.source
    if train_size > n_train:
        raise DataError(f"data.train_size={train_size} exceeds the {n_train} training images of {origin}")
    if val_source == "holdout":
        if train_size + val_size > n_train:
            raise DataError(
                f"data.train_size={train_size} + data.val_size={val_size} exceeds the {n_train} "
                f"training images of {origin}: holdout validation must not overlap the pool; lower one of them"
            )
        x_val, y_val = raw.x_train[n_train - val_size :], raw.y_train[n_train - val_size :]
    else:
        lo = train_size - val_size
        x_val, y_val = raw.x_train[lo:train_size], raw.y_train[lo:train_size]
    x_pool, y_pool = raw.x_train[:train_size], raw.y_train[:train_size]
    changed = 0
    if label_noise > 0:  # a copy: validation (original_overlap: a view of the pool) keeps its labels
        y_pool, index = corrupt_labels(y_pool, label_noise, num_classes, seed)
        changed = len(index)
    x_test, y_test = test_split(raw, test_size)
    pool_hashes = set(image_hashes(x_pool))
    overlap = {"val": count_overlap(pool_hashes, x_val), "test": count_overlap(pool_hashes, x_test)}
    return Splits(x_pool, y_pool, x_val, y_val, x_test, y_test, overlap, changed)


def test_split(raw: RawData, test_size: Optional[int]) -> tuple[np.ndarray, np.ndarray]:
    """The first ``test_size`` test images and labels (all when ``None``)."""
    n_test = len(raw.x_test)
    if test_size is not None and test_size > n_test:
        raise DataError(f"data.test_size={test_size} exceeds the {n_test} test images of {raw.origin or raw.source}")
    n_te = n_test if test_size is None else test_size
    return raw.x_test[:n_te], raw.y_test[:n_te]


def pool_affine(mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(scale, shift)`` with ``x_0_255 * scale + shift == (x_0_255 / 255 - mean) / std`` for 0-1 scale ``mean``/``std``:
    the one formula behind the data module's ``pool`` normalisation and a checkpoint's stored statistics."""
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    return 1.0 / (255.0 * std), -mean / std


def stored_normalization(mean: np.ndarray, std: np.ndarray, mode: str, x_test: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """:func:`normalization` from a checkpoint's stored training statistics (0-1 scale) instead of the pool:
    ``pool`` uses them for every split; ``original`` standardises the test split with its own statistics."""
    affine = pool_affine(mean, std)
    norm = {s: affine for s in SPLITS}
    if mode == "original":
        m, sd = channel_stats(x_test)
        scale = 1.0 / (sd + ORIGINAL_STD_EPS)
        norm["test"] = (scale, -m * scale)
    return norm


def normalization(splits: Splits, mode: str) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    """``({split: (scale, shift)}, pool mean, pool std)`` with ``x_norm = x_0_255 * scale + shift`` per channel.

    ``pool``: the training pool's mean/std (0-1 scale) for every split; ``original``: each split with its own
    statistics on the 0-255 scale and ``std + 1e-6``, as the original did (the test set with its own).
    """
    mean255, std255 = channel_stats(splits.x_pool)
    if mode == "pool":
        affine = pool_affine(mean255 / 255.0, std255 / 255.0)
        return {s: affine for s in SPLITS}, mean255, std255
    norm = {}
    for name, xs in (("train", splits.x_pool), ("val", splits.x_val), ("test", splits.x_test)):
        m, sd = (mean255, std255) if name == "train" else channel_stats(xs)
        scale = 1.0 / (sd + ORIGINAL_STD_EPS)
        norm[name] = (scale, -m * scale)
    return norm, mean255, std255
