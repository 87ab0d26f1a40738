"""Throughput of the batched Keras-style augmentation vs. a per-image PIL pipeline and vs. training.

Measures, on the current machine (CPU unless --device cuda):

* ``keras_batched``: ``resattn.data.KerasAugment`` on uint8 batches of 128 images, a freshly seeded
  ``torch.Generator`` per batch, exactly as the data module runs it in training;
* ``per_image_pil``: the closest torchvision per-image pipeline, on PIL images:
  ``RandomAffine(degrees=20, translate=(0.2, 0.2), scale=(0.8, 1.2), bilinear)`` +
  ``RandomHorizontalFlip()``.  Not identical: RandomAffine has one isotropic scale (Keras draws
  independent x/y zoom factors), rounds translations to whole pixels and fills with a constant
  (Keras replicates the edge).  Only the transforms are timed (no PIL<->tensor conversion, which a
  real pipeline would add: the comparison favours PIL);
* ``model_train``: forward + backward + SGD step of the full-width ``attention56_mini`` at batch 128.

Prints ``ratio_vs_per_image: X`` and ``ratio_vs_model: Y`` (augmentation images/s divided by the
other's images/s); the floors are X >= 3 and Y >= 10 (``--strict`` exits 1 when one is missed).

Threads: by default the augmentation runs on one thread, like the PIL pipeline (a per-core comparison,
and robust on a shared machine where a second busy core stalls multi-threaded small ops), and the model
on torch's default thread count (its best case, so ``ratio_vs_model`` is not flattered).

    python benchmarks/augment_throughput.py [--aug-threads N] [--model-threads N] [--device cpu|cuda] [--strict]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resattn.data import KerasAugment  # noqa: E402

BATCH = 128
FLOOR_PER_IMAGE = 3.0
FLOOR_MODEL = 10.0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_keras(images: torch.Tensor, device: torch.device, seconds: float) -> float:
    aug = KerasAugment()
    batches = images.to(device).split(BATCH)
    batches = [b for b in batches if len(b) == BATCH]

    def step(i: int) -> None:
        g = torch.Generator(device=device)
        g.manual_seed(1000 + i)
        aug(batches[i % len(batches)], g)

    for i in range(5):
        step(i)
    sync(device)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step(n)
        n += 1
    sync(device)
    return n * BATCH / (time.perf_counter() - start)


def bench_pil(images: np.ndarray, seconds: float) -> float:
    from PIL import Image
    from torchvision import transforms as T

    pipeline = T.Compose(
        [
            T.RandomAffine(degrees=20, translate=(0.2, 0.2), scale=(0.8, 1.2), interpolation=T.InterpolationMode.BILINEAR),
            T.RandomHorizontalFlip(),
        ]
    )
    pils = [Image.fromarray(a) for a in images]
    for im in pils[:50]:
        pipeline(im)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        pipeline(pils[n % len(pils)])
        n += 1
    return n / (time.perf_counter() - start)


def build_mini() -> torch.nn.Module:
    from resattn.config.compose import compose
    from resattn.models.network import build_model

    return build_model(compose("train", ["model=attention56_mini"]))


def bench_model(device: torch.device, steps: int) -> float:
    torch.manual_seed(0)
    model = build_mini().to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(BATCH, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (BATCH,), device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    step()  # warm-up
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * BATCH / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aug-threads", type=int, default=1, help="torch threads for the batched augmentation (PIL uses one core)")
    parser.add_argument("--model-threads", type=int, default=0, help="torch threads for the model (0 = torch default)")
    parser.add_argument("--device", default="cpu", help="device of the batched augmentation and the model")
    parser.add_argument("--seconds", type=float, default=2.0, help="timing window per augmentation benchmark")
    parser.add_argument("--model-steps", type=int, default=2, help="timed training steps (after one warm-up)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a floor is missed")
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    device = torch.device(args.device)
    images = np.random.default_rng(0).integers(0, 256, size=(2048, 32, 32, 3), dtype=np.uint8)
    images_t = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()

    aug_threads = args.aug_threads if args.aug_threads > 0 else default_threads
    model_threads = args.model_threads if args.model_threads > 0 else default_threads
    print(f"device: {device}  batch: {BATCH}  threads: augmentation {aug_threads}, PIL 1, model {model_threads}")
    torch.set_num_threads(aug_threads)
    keras = bench_keras(images_t, device, args.seconds)
    print(f"keras_batched_images_per_s: {keras:.0f}")
    pil = bench_pil(images, args.seconds)
    print(f"per_image_pil_images_per_s: {pil:.0f}")
    torch.set_num_threads(model_threads)
    model = bench_model(device, args.model_steps)
    print(f"model_train_images_per_s: {model:.1f}")
    x, y = keras / pil, keras / model
    print(f"ratio_vs_per_image: {x:.2f}")
    print(f"ratio_vs_model: {y:.1f}")
    ok = x >= FLOOR_PER_IMAGE and y >= FLOOR_MODEL
    floors = f"ratio_vs_per_image >= {FLOOR_PER_IMAGE:g}, ratio_vs_model >= {FLOOR_MODEL:g}"
    print(f"floors ({floors}): {'ok' if ok else 'MISSED'}")
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
