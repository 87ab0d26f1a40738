"""Your own images: a torchvision ``ImageFolder`` tree (``root/<class>/<image>``) as :class:`RawData`.

Classes are the sub-folders, sorted (as ``torchvision.datasets.ImageFolder`` numbers them); images are every
``.png``/``.jpg``/``.jpeg`` file in them, decoded as RGB with torchvision's decoders. The images are put in one
fixed order (a permutation seeded independently of the run's seed), whose first ``test_size`` images (default:
a fifth) form the test split and the rest the "training set" from which the pool and the validation holdout are
taken exactly as for CIFAR-10 (:func:`resattn.data.splits.split`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from resattn.data.sources import RawData
from resattn.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ORDER_SEED = 0x1F0  # the split of a tree never changes with the run's seed


def scan(root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """``(class names, [(file, label)])`` of an ImageFolder tree, with one-line errors for what cannot be used."""
    if not root.is_dir():
        raise DataError(f"data.root={root}: no such directory; data=imagefolder needs a folder with one sub-folder of images per class")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise DataError(f"data.root={root}: {len(classes)} class folder(s); data=imagefolder needs root/<class>/<image> with >= 2 classes")
    files = []
    for label, name in enumerate(classes):
        found = sorted(p for p in (root / name).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DataError(f"data.root={root}: class folder {name}/ holds no {'/'.join(IMAGE_SUFFIXES)} images")
        files += [(p, label) for p in found]
    return classes, files


def load_imagefolder(root: Path, image_size: Optional[int], test_size: Optional[int]) -> RawData:
    """The tree under ``root`` as uint8 HWC arrays, resized to ``image_size`` (``None``: every image must already
    have one common square size), split into test and the rest."""
    from torchvision.io import ImageReadMode, decode_image, read_file
    from torchvision.transforms.v2.functional import resize

    classes, files = scan(root)
    images, labels = [], []
    for path, label in files:
        try:
            image = decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
        except (RuntimeError, ValueError) as exc:
            raise DataError(f"{path}: unreadable image ({type(exc).__name__}); remove it or replace it with a PNG or JPEG file") from None
        if image_size is not None and tuple(image.shape[1:]) != (image_size, image_size):
            image = resize(image, [image_size, image_size], antialias=True)
        images.append(image)
        labels.append(label)
    shapes = sorted({tuple(i.shape[1:]) for i in images})
    if len(shapes) > 1 or shapes[0][0] != shapes[0][1]:
        raise DataError(
            f"data.root={root}: images of size(s) {', '.join(f'{w}x{h}' for h, w in shapes[:4])}; "
            "set data.image_size=<n> to resize them all to n x n"
        )
    x = np.stack([i.permute(1, 2, 0).numpy() for i in images])
    y = np.asarray(labels, dtype=np.int64)
    n_test = test_size if test_size is not None else max(1, len(x) // 5)
    if n_test >= len(x):
        raise DataError(f"data.test_size={n_test}: the tree under {root} has only {len(x)} images; lower data.test_size")
    order = np.random.default_rng(ORDER_SEED).permutation(len(x))
    test, rest = order[:n_test], order[n_test:]
    return RawData("imagefolder", x[rest], y[rest], x[test], y[test], origin=str(root), class_names=tuple(classes))


def write_demo_tree(root: Path, per_class: int = 40, size: int = 40, seed: int = 0) -> Path:
    """A small learnable ImageFolder tree: classes ``disc``, ``square``, ``stripes`` (inverted-colour shapes on a
    random colour, Gaussian noise), ``per_class`` PNG images of ``size`` x ``size`` each."""
    import torch
    from torchvision.io import write_png

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - size / 2
    for name in ("disc", "square", "stripes"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            r = rng.uniform(0.15, 0.35) * size
            mask = {
                "disc": yy**2 + xx**2 < r**2,
                "square": (abs(yy) < r) & (abs(xx) < r),
                "stripes": ((xx + size) // rng.integers(2, 5)) % 2 == 0,
            }[name]
            base = rng.uniform(0, 255, 3)
            image = np.where(mask[..., None], 255 - base, base) + rng.normal(0, 20, (size, size, 3))
            pixels = torch.from_numpy(np.clip(image, 0, 255).astype(np.uint8)).permute(2, 0, 1).contiguous()
            write_png(pixels, str(root / name / f"{i:03d}.png"))
    return root


if __name__ == "__main__":  # python -m resattn.data.imagefolder <dir>: write the demo tree
    import sys

    print(f"demo tree: {write_demo_tree(Path(sys.argv[1]))}")
