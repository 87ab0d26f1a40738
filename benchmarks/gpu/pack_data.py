"""Pack the CIFAR-10 images a GPU run needs into two lossless chunks that each fit one device transfer.

A run of the 30k-pool experiments (``original_adam_base``, ``improved``) reads only

* the training pool: training images ``0 .. train_size-1`` (30,000),
* the holdout validation set: the last ``val_size`` training images (45,000 .. 49,999),
* the 10,000 test images,

45,000 images, 138 MB raw: more than one 64 MiB transfer to the device machine.  This script encodes
them with ``cifar_codec`` (colour decorrelation + LOCO-I prediction + xz; ~0.54 of the raw size, see
``--compare``) in blocks of ``--block`` images and splits the blocks into two folders, ``<out>/a`` and
``<out>/b``, of about equal size, each with a ``manifest.json`` that holds the sha256 of every block
file, of every decoded block and of the final arrays.

``unpack_data.py`` (on the GPU machine) verifies and decodes them into a ``cifar10.npz`` whose
``x_train`` holds the pool followed by the holdout images (``train_size + val_size`` images) and whose
``x_test`` holds the test images.  With ``data.train_size=<train_size> data.val_size=<val_size>
data.val_source=holdout`` the data module then selects exactly the images it selects from the full
50,000 (pool = the first ``train_size``, validation = the last ``val_size``), with the same pool
statistics and the same overlap counts; no image is invented or duplicated.  Runs that need other
training images (e.g. ``original_attention56``'s 45k pool) stop with a clear DataError on this file.

    python benchmarks/gpu/pack_data.py [--src /work/shared/cifar10/cifar10.npz] [--out .gpu]
        [--train-size 30000] [--val-size 5000] [--test-size 10000] [--block 5000] [--jobs 2]
    python benchmarks/gpu/pack_data.py --compare 2000     # codec vs npz/zlib, PNG, WebP, xz on raw bytes
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import os
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cifar_codec  # noqa: E402

DEFAULT_SRC = "/work/shared/cifar10/cifar10.npz"
FORMAT = cifar_codec.FORMAT
sha256 = cifar_codec.sha256


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def select(src: Path, train_size: int, val_size: int, test_size: int) -> dict[str, np.ndarray]:
    """The needed arrays: x_train = pool + holdout, x_test; labels as int64."""
    with np.load(src, allow_pickle=False) as d:
        x_train, y_train, x_test, y_test = (d[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    n_train, n_test = len(x_train), len(x_test)
    if train_size + val_size > n_train:
        raise SystemExit(f"--train-size {train_size} + --val-size {val_size} > {n_train} training images in {src}")
    if test_size > n_test:
        raise SystemExit(f"--test-size {test_size} > {n_test} test images in {src}")
    hold = slice(n_train - val_size, n_train)
    return {
        "x_train": np.concatenate([x_train[:train_size], x_train[hold]]),
        "y_train": np.concatenate([y_train[:train_size], y_train[hold]]).astype(np.int64),
        "x_test": np.ascontiguousarray(x_test[:test_size]),
        "y_test": np.asarray(y_test[:test_size]).astype(np.int64),
    }


def _encode_block(args: tuple[np.ndarray, int, bool]) -> tuple[bytes, float, bool]:
    x, preset, verify = args
    t = time.perf_counter()
    blob = cifar_codec.encode(x, preset=preset)
    ok = bool(np.array_equal(cifar_codec.decode(blob, len(x)), x)) if verify else True
    return blob, time.perf_counter() - t, ok


def pack(args: argparse.Namespace) -> int:
    src, out = Path(args.src), Path(args.out)
    t0 = time.perf_counter()
    arrays = select(src, args.train_size, args.val_size, args.test_size)
    images = np.concatenate([arrays["x_train"], arrays["x_test"]])  # one stream: train part, then test part
    n = len(images)
    bounds = [(i, min(i + args.block, n)) for i in range(0, n, args.block)]
    print(f"packing {n} images ({images.nbytes / 1e6:.1f} MB raw) from {src} in {len(bounds)} blocks, {args.jobs} processes")
    jobs = [(images[lo:hi], args.preset, not args.no_verify) for lo, hi in bounds]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(_encode_block, jobs))
    if not all(ok for _, _, ok in results):
        raise SystemExit("round-trip check failed: a decoded block differs from its images")
    sizes = [len(b) for b, _, _ in results]
    # split into two parts of about equal size, in block order
    half, acc, split = sum(sizes) / 2, 0, len(sizes)
    for i, s in enumerate(sizes):
        if acc + s / 2 > half:
            split = i
            break
        acc += s
    split = max(1, min(split, len(sizes) - 1)) if len(sizes) > 1 else 1
    for part in ("a", "b"):
        (out / part).mkdir(parents=True, exist_ok=True)
        for old in (out / part).glob("*"):
            old.unlink()
    blocks = []
    for i, ((lo, hi), (blob, seconds, _)) in enumerate(zip(bounds, results)):
        part = "a" if i < split else "b"
        name = f"block_{i:02d}.xz"
        (out / part / name).write_bytes(blob)
        blocks.append(
            {
                "file": name,
                "part": part,
                "start": lo,
                "count": hi - lo,
                "bytes": len(blob),
                "sha256": sha256(blob),
                "decoded_sha256": sha256(images[lo:hi]),
                "encode_s": round(seconds, 1),
            }
        )
    labels = np.concatenate([arrays["y_train"], arrays["y_test"]]).astype(np.uint8)
    label_blob = lzma.compress(labels.tobytes(), preset=9)
    (out / "b" / "labels.xz").write_bytes(label_blob)
    manifest = {
        "format": FORMAT,
        "codec": "cifar_codec: planes G, R-G, B-G (signed bytes); LOCO-I/MED residuals mod 256, planar N x 3 x 32 x 32; xz",
        "source": str(src),
        "source_sha256": sha256_file(src) if not args.no_source_hash else None,
        "train_size": args.train_size,
        "val_size": args.val_size,
        "test_size": args.test_size,
        "note": (
            f"x_train = source x_train[:{args.train_size}] + source x_train[-{args.val_size}:] (pool, then holdout); "
            "use data.train_size/val_size as above with data.val_source=holdout"
        ),
        "n_images": n,
        "labels": {"file": "labels.xz", "part": "b", "sha256": sha256(label_blob), "count": len(labels)},
        "blocks": blocks,
        "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype), "sha256": sha256(v)} for k, v in arrays.items()},
    }
    for part in ("a", "b"):
        (out / part / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    raw = images.nbytes
    total = sum(sizes) + len(label_blob)
    for part in ("a", "b"):
        size = sum(f.stat().st_size for f in (out / part).iterdir())
        print(f"  {out / part}: {size / 2**20:.1f} MiB ({sum(1 for b in blocks if b['part'] == part)} blocks)")
    print(
        f"compressed {raw / 1e6:.1f} MB -> {total / 1e6:.1f} MB ({total / raw:.3f} of raw, "
        f"{8 * sum(sizes) / images.size:.2f} bits per sample) in {time.perf_counter() - t0:.0f} s; round trip "
        + ("not checked" if args.no_verify else "verified")
    )
    for k, v in manifest["arrays"].items():
        print(f"  {k}: {tuple(v['shape'])} {v['dtype']} sha256 {v['sha256']}")
    return 0


# ---------------------------------------------------------------------------------------------------------
# --compare: which lossless format is smallest


def compare(args: argparse.Namespace) -> int:
    from PIL import Image, features

    with np.load(args.src, allow_pickle=False) as d:
        x = d["x_train"][: args.compare]
    n = len(x)
    raw = x.nbytes
    cols = 100 if n % 100 == 0 else 1
    grid = x.reshape(n // cols, cols, 32, 32, 3).transpose(0, 2, 1, 3, 4).reshape(n // cols * 32, cols * 32, 3)
    rows: list[tuple[str, int, float]] = []

    def add(name: str, fn) -> None:
        t = time.perf_counter()
        size = fn()
        rows.append((name, size, time.perf_counter() - t))

    def npz() -> int:
        buf = io.BytesIO()
        np.savez_compressed(buf, x=x)
        return buf.tell()

    def pil(fmt: str, **kw) -> int:
        buf = io.BytesIO()
        Image.fromarray(grid).save(buf, format=fmt, **kw)
        buf.seek(0)
        assert np.array_equal(np.asarray(Image.open(buf).convert("RGB")), grid), f"{fmt} not lossless"
        return buf.getbuffer().nbytes

    add("np.savez_compressed (zlib)", npz)
    add("zlib -9, raw HWC bytes", lambda: len(zlib.compress(x.tobytes(), 9)))
    add("xz -9e, raw HWC bytes", lambda: len(lzma.compress(x.tobytes(), preset=cifar_codec.PRESET)))
    add("PNG sprite (optimize)", lambda: pil("PNG", optimize=True))
    if features.check("webp"):
        add("WebP lossless sprite (method 6)", lambda: pil("WEBP", lossless=True, quality=100, method=6))
    add("cifar_codec (G,R-G,B-G + MED + xz -9e)", lambda: len(cifar_codec.encode(x)))
    print(f"{n} CIFAR-10 training images, {raw / 1e6:.2f} MB raw")
    print("| format | bytes | fraction of raw | bits per sample | seconds |")
    print("|---|---|---|---|---|")
    for name, size, seconds in rows:
        print(f"| {name} | {size:,} | {size / raw:.3f} | {8 * size / x.size:.2f} | {seconds:.1f} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", default=os.environ.get("RESATTN_CIFAR_NPZ", DEFAULT_SRC), help="full cifar10.npz")
    p.add_argument("--out", default=".gpu", help="output folder (parts <out>/a and <out>/b)")
    p.add_argument("--train-size", type=int, default=30000)
    p.add_argument("--val-size", type=int, default=5000)
    p.add_argument("--test-size", type=int, default=10000)
    p.add_argument("--block", type=int, default=5000, help="images per independently compressed block")
    p.add_argument("--jobs", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    p.add_argument("--preset", type=int, default=cifar_codec.PRESET, help="xz preset (default 9 | extreme)")
    p.add_argument("--no-verify", action="store_true", help="skip decoding each block back after encoding")
    p.add_argument("--no-source-hash", action="store_true", help="skip hashing the source file")
    p.add_argument("--compare", type=int, metavar="N", help="compare lossless formats on the first N images instead")
    args = p.parse_args(argv)
    return compare(args) if args.compare else pack(args)


if __name__ == "__main__":
    sys.exit(main())
