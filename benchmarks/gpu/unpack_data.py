"""Verify and decode the chunks written by ``pack_data.py`` into ``<out>/cifar10.npz`` (numpy + stdlib only).

    python3 benchmarks/gpu/unpack_data.py --parts /tmp/resattn_kit/a .gpu/b --out /tmp/resattn_kit/data

Checks, in order: the two manifests agree; every block file's sha256; every decoded block's sha256; the
sha256 of each final array (x_train = pool + holdout, y_train, x_test, y_test) against the values computed
from the original file when packing.  Writes an uncompressed ``cifar10.npz`` (fast to load) and prints the
``data.*`` overrides that select the packed images.  Exit status 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cifar_codec  # noqa: E402

FORMAT = cifar_codec.FORMAT
sha256 = cifar_codec.sha256


def fail(message: str) -> None:
    print(f"unpack_data: {message}", file=sys.stderr)
    sys.exit(1)


def _decode(args: tuple[str, int]) -> np.ndarray:
    path, count = args
    return cifar_codec.decode(Path(path).read_bytes(), count)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", nargs="+", required=True, help="folders holding the parts (a and b)")
    p.add_argument("--out", help="folder for cifar10.npz (required unless --check)")
    p.add_argument("--jobs", type=int, default=min(16, os.cpu_count() or 1))
    p.add_argument("--check", action="store_true", help="only verify the block files present in --parts (no decoding)")
    args = p.parse_args(argv)
    if not args.check and not args.out:
        p.error("--out is required")
    t0 = time.perf_counter()

    parts = [Path(d) for d in args.parts]
    manifests = []
    for d in parts:
        m = d / "manifest.json"
        if not m.is_file():
            fail(f"{m} is missing: was this part transferred (and stashed) completely?")
        manifests.append(json.loads(m.read_text()))
    manifest = manifests[0]
    if manifest.get("format") != FORMAT:
        fail(f"unknown chunk format {manifest.get('format')!r}; expected {FORMAT}")
    if any(m != manifest for m in manifests[1:]):
        fail("the parts' manifests differ: they come from different pack_data.py runs; pack and send both again")

    def locate(name: str, part: str) -> Path:
        found = [d / name for d in parts if (d / name).is_file()]
        if not found:
            fail(f"{name} (part {part}) not found in {', '.join(map(str, parts))}: send and stash both parts")
        return found[0]

    if args.check:
        present = [b for b in manifest["blocks"] if any((d / b["file"]).is_file() for d in parts)]
        for b in present:
            data = locate(b["file"], b["part"]).read_bytes()
            if len(data) != b["bytes"] or sha256(data) != b["sha256"]:
                fail(f"{b['file']}: size/sha256 differs from the manifest (transfer damaged?)")
        print(
            f"part check ok: {len(present)} of {len(manifest['blocks'])} blocks present and intact "
            f"({sum(b['bytes'] for b in present) / 2**20:.1f} MiB)"
        )
        return 0

    jobs = []
    for b in manifest["blocks"]:
        path = locate(b["file"], b["part"])
        data = path.read_bytes()
        if len(data) != b["bytes"] or sha256(data) != b["sha256"]:
            fail(f"{path}: size/sha256 differs from the manifest (transfer damaged?)")
        jobs.append((str(path), b["count"]))
    lab = manifest["labels"]
    label_bytes = locate(lab["file"], lab["part"]).read_bytes()
    if sha256(label_bytes) != lab["sha256"]:
        fail(f"{lab['file']}: sha256 differs from the manifest")
    labels = np.frombuffer(lzma.decompress(label_bytes), dtype=np.uint8).astype(np.int64)
    t_read = time.perf_counter()

    with ProcessPoolExecutor(max_workers=max(1, min(args.jobs, len(jobs)))) as pool:
        decoded = list(pool.map(_decode, jobs))
    for b, x in zip(manifest["blocks"], decoded):
        if sha256(x) != b["decoded_sha256"]:
            fail(f"{b['file']}: decoded images differ from the packed ones (sha256)")
    images = np.concatenate(decoded)
    n_train = manifest["train_size"] + manifest["val_size"]
    arrays = {
        "x_train": images[:n_train],
        "y_train": labels[:n_train],
        "x_test": images[n_train:],
        "y_test": labels[n_train:],
    }
    for k, spec in manifest["arrays"].items():
        v = arrays[k]
        if list(v.shape) != spec["shape"] or str(v.dtype) != spec["dtype"] or sha256(v) != spec["sha256"]:
            fail(f"{k}: {v.shape} {v.dtype} does not match the manifest ({spec['shape']} {spec['dtype']}, sha256)")
    t_dec = time.perf_counter()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "cifar10.npz.tmp"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, out / "cifar10.npz")
    print(
        f"data ok: {len(manifest['blocks'])} blocks verified and decoded in {t_dec - t_read:.1f} s "
        f"(read {t_read - t0:.1f} s, {args.jobs} processes), written to {out / 'cifar10.npz'} in "
        f"{time.perf_counter() - t_dec:.1f} s"
    )
    for k, v in arrays.items():
        print(f"  {k}: {tuple(v.shape)} {v.dtype} sha256 {manifest['arrays'][k]['sha256'][:16]}... ok")
    print(
        f"  select with: data.root={out} data.train_size={manifest['train_size']} "
        f"data.val_size={manifest['val_size']} data.val_source=holdout"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
