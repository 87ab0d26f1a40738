"""Symmetric label noise for robustness studies (``data.label_noise``): training-pool labels only."""

from __future__ import annotations

import math

import numpy as np

_NOISE_TAG = 0x6E6F6973  # "nois"


def noisy_count(fraction: float, n: int) -> int:
    """``round(fraction · n)``, halves rounded up."""
    return int(math.floor(fraction * n + 0.5))


def corrupt_labels(labels: np.ndarray, fraction: float, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A copy of ``labels`` with exactly ``round(fraction · N)`` of them replaced, each by a different class.

    The replaced positions (without repetition) and the new classes (uniform over the ``num_classes - 1``
    other classes) are drawn from a generator seeded by ``seed`` alone, so they are the same in every
    process and on every resume. Returns ``(noisy labels, replaced indices sorted)``.
    """
    count = noisy_count(fraction, len(labels))
    rng = np.random.default_rng([_NOISE_TAG, int(seed)])
    index = np.sort(rng.choice(len(labels), size=count, replace=False))
    noisy = np.array(labels, copy=True)
    noisy[index] = (noisy[index] + rng.integers(1, num_classes, size=count)) % num_classes
    return noisy, index
