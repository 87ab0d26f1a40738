"""CIFAR-10 facts, in one place (importable without torch or Lightning)."""

from __future__ import annotations

NUM_CLASSES = 10
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_TRAIN_COUNT = 50_000
CIFAR10_TEST_COUNT = 10_000
IMAGE_SHAPE = (32, 32, 3)  # HWC, uint8
NPZ_NAME = "cifar10.npz"  # the offline archive (keys x_train, y_train, x_test, y_test)
TORCHVISION_DIR = "cifar-10-batches-py"  # torchvision's download folder
ENV_DATA_DIR = "RESATTN_DATA_DIR"  # environment variable naming the data folder
