"""Raw CIFAR-10 arrays: the offline ``cifar10.npz``, torchvision's folder, or a synthetic stand-in.

Every loader returns a :class:`RawData` of four validated numpy arrays (uint8 ``N×32×32×3`` images in
HWC layout, int64 labels in ``0..9``).  User-facing problems raise :class:`~resattn.errors.DataError`
with one line naming the file, the bad value and the fix.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Mapping

import numpy as np

from resattn.cifar import ENV_DATA_DIR, IMAGE_SHAPE, NPZ_NAME, NUM_CLASSES, TORCHVISION_DIR
from resattn.errors import ConfigError, DataError

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class RawData:
    """Validated arrays of one source (``source`` is the resolved name: npz | torchvision | synthetic)."""

    source: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    origin: str = ""  # file or folder the arrays came from (for messages)
    class_names: tuple[str, ...] = ()  # the source's own classes (ImageFolder trees); empty: CIFAR-10's


def default_root() -> Path:
    """``$RESATTN_DATA_DIR`` when set, else ``./data``."""
    return Path(os.environ.get(ENV_DATA_DIR) or "data")


# --------------------------------------------------------------------------------------------------
# validation


def validate_arrays(arrays: Mapping[str, np.ndarray], origin: str, test_only: bool = False) -> RawData:
    """Check keys, shapes, dtypes, label range and counts; return the arrays as :class:`RawData` parts.

    ``test_only``: only ``x_test``/``y_test`` are needed and checked; the training arrays come back empty.
    """
    needed = NPZ_KEYS[2:] if test_only else NPZ_KEYS
    missing = [k for k in needed if k not in arrays]
    if missing:
        raise DataError(
            f"{origin}: missing key(s) {', '.join(missing)}; found {sorted(arrays)}; a CIFAR-10 npz must hold {', '.join(needed)}"
        )
    out: dict[str, np.ndarray] = {}
    if test_only:
        out["x_train"], out["y_train"] = np.zeros((0, *IMAGE_SHAPE), np.uint8), np.zeros(0, np.int64)
    for split in ("test",) if test_only else ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
            raise DataError(f"{origin}: x_{split} has shape {tuple(x.shape)}; expected (N, 32, 32, 3) (HWC RGB images)")
        if x.dtype != np.uint8:
            raise DataError(f"{origin}: x_{split} has dtype {x.dtype}; expected uint8 pixels in 0..255")
        if x.shape[0] < 1:
            raise DataError(f"{origin}: x_{split} holds no images; expected N >= 1")
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:  # Keras' load_data() gives (N, 1) labels
            y = y[:, 0]
        if y.ndim != 1:
            raise DataError(f"{origin}: y_{split} has shape {tuple(y.shape)}; expected (N,) integer labels")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{origin}: y_{split} has dtype {y.dtype}; expected integer labels 0..9")
        if y.shape[0] != x.shape[0]:
            raise DataError(f"{origin}: x_{split} holds {x.shape[0]} images but y_{split} holds {y.shape[0]} labels; the counts must match")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= NUM_CLASSES:
            raise DataError(f"{origin}: y_{split} has labels in [{lo}, {hi}]; expected class indices 0..{NUM_CLASSES - 1}")
        out[f"x_{split}"] = np.ascontiguousarray(x)
        out[f"y_{split}"] = y.astype(np.int64, copy=False)
    return out  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------------
# sources


def load_npz(path: Path, test_only: bool = False) -> RawData:
    """Load and validate a ``cifar10.npz`` (keys x_train, y_train, x_test, y_test; ``test_only``: the test keys
    alone are read)."""
    if not path.is_file():
        raise DataError(
            f"data.source=npz but {path} does not exist; put {NPZ_NAME} (keys {', '.join(NPZ_KEYS)}) "
            "under data.root or use data.source=torchvision"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files if not (test_only and k in NPZ_KEYS[:2])}
    except Exception as exc:  # zip/format errors: one line
        raise DataError(f"{path}: not a readable numpy .npz file ({type(exc).__name__}: {exc})") from exc
    parts = validate_arrays(arrays, str(path), test_only)
    return RawData(source="npz", origin=str(path), **parts)


def torchvision_present(root: Path) -> bool:
    return (root / TORCHVISION_DIR).is_dir()


def download_torchvision(root: Path) -> None:
    """Download torchvision's CIFAR-10 into ``root`` (no-op when already there and intact)."""
    try:
        from torchvision.datasets import CIFAR10

        root.mkdir(parents=True, exist_ok=True)
        CIFAR10(str(root), train=True, download=True)
        CIFAR10(str(root), train=False, download=True)
    except Exception as exc:
        raise DataError(
            f"data.download=true: downloading CIFAR-10 into {root} failed ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())}); offline, put {NPZ_NAME} under data.root (or point ${ENV_DATA_DIR} at its folder) instead"
        ) from exc


def load_torchvision(root: Path, download: bool = False, test_only: bool = False) -> RawData:
    """Load torchvision's ``cifar-10-batches-py`` folder under ``root`` (downloading it when asked; ``test_only``:
    the test batch alone is read)."""
    if download:
        download_torchvision(root)
    if not torchvision_present(root):
        raise DataError(
            f"data.source=torchvision but {root / TORCHVISION_DIR} does not exist; set data.download=true "
            f"(needs internet) or put {NPZ_NAME} under data.root and use data.source=npz"
        )
    try:
        from torchvision.datasets import CIFAR10

        if test_only:  # CIFAR10() checks every batch file; the test batch alone is read directly
            with open(root / TORCHVISION_DIR / "test_batch", "rb") as f:
                batch = pickle.load(f, encoding="latin1")
            train, test = None, SimpleNamespace(data=batch["data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), targets=batch["labels"])
        else:
            train, test = CIFAR10(str(root), train=True, download=False), CIFAR10(str(root), train=False, download=False)
    except Exception as exc:
        raise DataError(
            f"{root / TORCHVISION_DIR}: unreadable or corrupted torchvision CIFAR-10 folder "
            f"({type(exc).__name__}: {' '.join(str(exc).split())}); delete it and set data.download=true, "
            f"or use {NPZ_NAME}"
        ) from exc
    arrays = {"x_test": np.asarray(test.data), "y_test": np.asarray(test.targets)}
    if train is not None:
        arrays.update(x_train=np.asarray(train.data), y_train=np.asarray(train.targets))
    parts = validate_arrays(arrays, str(root / TORCHVISION_DIR), test_only)
    return RawData(source="torchvision", origin=str(root / TORCHVISION_DIR), **parts)


def resolve_source(source: str, root: Path, download: bool) -> str:
    """Pick the concrete source for ``auto`` (npz if present, else torchvision's folder); check the root."""
    if source == "synthetic":
        return source
    if not (source in ("torchvision", "auto") and download) and not root.is_dir():
        raise DataError(
            f"data.root={root} does not exist; create it and put {NPZ_NAME} there (or torchvision's "
            f"{TORCHVISION_DIR}/, data.download=true when online), or set {ENV_DATA_DIR} / data.root"
        )
    if source != "auto":
        return source
    if (root / NPZ_NAME).is_file():
        return "npz"
    if torchvision_present(root) or download:
        return "torchvision"
    raise DataError(
        f"no CIFAR-10 data under data.root={root}: expected either {root / NPZ_NAME} (offline file, keys "
        f"{', '.join(NPZ_KEYS)}) or torchvision's {root / TORCHVISION_DIR}/ (set data.download=true to fetch "
        f"it when online); point data.root or {ENV_DATA_DIR} at the folder holding one of them"
    )


def load_source(source: str, root: Path, download: bool, test_only: bool = False) -> RawData:
    """Load the resolved ``source`` (npz | torchvision) from ``root`` (``test_only``: the test split alone)."""
    if source == "npz":
        return load_npz(root / NPZ_NAME, test_only)
    if source == "torchvision":
        return load_torchvision(root, download, test_only)
    raise ConfigError(f"data.source={source!r} cannot be loaded from disk")  # pragma: no cover


# --------------------------------------------------------------------------------------------------
# synthetic data


def make_synthetic(n_train: int, n_test: int, seed: int = 0) -> RawData:
    """A small learnable stand-in: 10 class patterns (colour + oriented stripes), random phase, noise.

    Class ``k`` has its own mean colour and a sinusoidal grating with class-specific frequency and
    orientation; each image draws a random phase, contrast and brightness jitter and Gaussian pixel
    noise.  Labels are balanced (``i % 10`` shuffled).  Fully determined by ``seed``.
    """
    if n_train < 1 or n_test < 1:
        raise ConfigError(f"synthetic data needs >= 1 train and test image; got {n_train} and {n_test}")
    base = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EED]))
    colours = base.uniform(60.0, 196.0, size=(NUM_CLASSES, 3))
    freqs = 1.0 + np.arange(NUM_CLASSES) % 5  # cycles per image: 1..5
    angles = np.pi * (np.arange(NUM_CLASSES) * 0.37 % 1.0)
    channel_gain = base.uniform(-1.0, 1.0, size=(NUM_CLASSES, 3))

    yy, xx = np.meshgrid(np.arange(32) / 32.0, np.arange(32) / 32.0, indexing="ij")

    def draw(n: int, stream: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), stream]))
        y = np.arange(n) % NUM_CLASSES
        rng.shuffle(y)
        phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
        contrast = rng.uniform(40.0, 70.0, size=(n, 1, 1, 1))
        bright = rng.normal(0.0, 12.0, size=(n, 1, 1, 1))
        ang = angles[y][:, None, None]
        proj = np.cos(ang) * xx[None] + np.sin(ang) * yy[None]
        wave = np.sin(2 * np.pi * freqs[y][:, None, None] * proj + phase)  # (n, 32, 32)
        img = (
            colours[y][:, None, None, :]
            + contrast * wave[..., None] * channel_gain[y][:, None, None, :]
            + bright
            + rng.normal(0.0, 20.0, size=(n, 32, 32, 3))
        )
        return np.clip(np.rint(img), 0, 255).astype(np.uint8), y.astype(np.int64)

    x_train, y_train = draw(n_train, 1)
    x_test, y_test = draw(n_test, 2)
    return RawData("synthetic", x_train, y_train, x_test, y_test, origin=f"synthetic(seed={seed})")


# --------------------------------------------------------------------------------------------------
# statistics and content hashes


def image_hashes(x: np.ndarray) -> list[bytes]:
    """A 16-byte BLAKE2b digest of each image's raw bytes (content identity, independent of index)."""
    flat = np.ascontiguousarray(x).reshape(len(x), -1)
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat]


def count_overlap(pool_hashes: set[bytes], other: np.ndarray) -> int:
    """Number of images of ``other`` whose content hash appears in ``pool_hashes``."""
    return sum(1 for h in image_hashes(other) if h in pool_hashes)


def channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-channel mean and (population) std of uint8 ``N×H×W×C`` images on the 0-255 scale.

    Uses a 256-bin histogram per channel, so it needs no float copy of the images.
    """
    c = x.shape[-1]
    flat = x.reshape(-1, c)
    hist = np.zeros((c, 256), dtype=np.int64)
    chunk = 1 << 22  # pixels per chunk: bounds the int64 copy bincount makes
    for start in range(0, len(flat), chunk):
        part = flat[start : start + chunk]
        for k in range(c):
            hist[k] += np.bincount(part[:, k], minlength=256)
    values = np.arange(256, dtype=np.float64)
    n = hist.sum(axis=1).astype(np.float64)
    mean = (hist * values).sum(axis=1) / n
    std = np.sqrt((hist * (values[None, :] - mean[:, None]) ** 2).sum(axis=1) / n)
    return mean, std
