"""Training and inference throughput of the Residual Attention Network variants (issue 6, item 2).

For every model variant x width x precision (fp32 | bf16 autocast) x memory format (contiguous |
channels_last) x ``torch.compile`` (off | on), measures on one device:

* training images/s: forward + backward + SGD (momentum) step, cross-entropy on random labels;
* inference images/s: ``eval()`` forward under ``torch.inference_mode``;
* achieved GFLOP/s, from FLOPs counted once per (variant, width, batch) with
  ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (training = forward + backward; the
  count does not depend on precision, memory format or compilation), and that as a fraction of a dense
  square matmul measured in the same run on the same device and dtype (``--matmul-size``; on a device
  where a dtype is very slow, e.g. bf16 on a CPU without native bf16, the size is reduced so that the
  reference stays within its time budget; the size used is printed).

Timing: warm-up iterations (which also absorb compilation and cuDNN autotuning), then timed iterations;
on CUDA with ``torch.cuda.synchronize()`` around each round of steps, on CPU per step. The reported
number is the median over rounds (robust on a shared machine, where a second busy core can stall
multi-threaded small ops for seconds). A measurement stops early after ``--max-seconds``.

Prints a markdown table, fp32 and bf16 side by side per memory format (train and inference images/s and their
ratio), a ``recommended defaults`` line chosen from the measured ratios
(training images/s, geometric mean over matching configs; a factor is recommended when it is >= 5 %
faster), mapped to the config keys ``trainer.precision``, ``channels_last`` and ``compile``, and what
``trainer.precision=auto`` picks on this machine (by capability, :mod:`resattn.training.precision`).

Models are built through the Hydra config tree (``compose("train", ["model=<v>", "model.width=<w>"])`` +
``build_model``), as train.py builds them (on a bare GPU machine the kit installs the Hydra wheels first).

Defaults: CPU: attention56_mini at widths 8 and 16, batch 16, no compile (1-3 minutes on 2 cores);
CUDA: all variants at width 32, batch 128, all four eager (precision, memory format) configs, plus
``torch.compile`` of the fastest eager one per model (``--compile-configs all`` compiles every config;
compiling costs roughly 0.5-2 minutes per config, so budget ~10 minutes for the default CUDA run).
``--quick``: a < 1 minute smoke run (CPU: width 8, batch 8; CUDA: attention56_mini and attention56, no
compile). On a shared CPU, ``--threads auto`` (default) uses only the cores other processes leave idle:
two OpenMP threads on two cores, one of them busy elsewhere, run 10-100x slower than one thread.

    python benchmarks/model_throughput.py [--quick] [--device auto|cpu|cuda] [--variants ...] [--widths ...]
        [--batch-size N] [--precisions fp32,bf16] [--channels-last both|on|off] [--compile | --no-compile]
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resattn.training.precision import auto_precision  # noqa: E402  (after the sys.path insert)
from resattn.training.speed import compile_options  # noqa: E402

ALL_VARIANTS = ("attention56_mini", "attention56_mini_paper", "attention56", "attention92")
SPEEDUP_THRESHOLD = 1.05


# ---------------------------------------------------------------------------------------------------------
# Models


def build(variant: str, width: int) -> nn.Module:
    """Build ``variant`` at ``width`` through Hydra (``compose`` + ``build_model``), as train.py does."""
    from resattn.config.compose import compose
    from resattn.models.network import build_model

    return build_model(compose("train", [f"model={variant}", f"model.width={width}"]))


def count_flops(variant: str, width: int, batch: int) -> tuple[int, int]:
    """(training fwd+bwd FLOPs, inference FLOPs) of one batch, counted on the meta device (no compute)."""
    with torch.device("meta"):
        model = build(variant, width)
        x = torch.randn(batch, 3, 32, 32)
        y = torch.randint(0, 10, (batch,))
    model.train()
    train = FlopCounterMode(display=False)
    with train:
        F.cross_entropy(model(x), y).backward()
    model.eval()
    infer = FlopCounterMode(display=False)
    with infer, torch.no_grad():
        model(x)
    return train.get_total_flops(), infer.get_total_flops()


# ---------------------------------------------------------------------------------------------------------
# Timing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    seconds_per_iter: float  # median over rounds
    iters: int
    warmup_s: float


def measure(fn, device: torch.device, warmup: int, rounds: int, per_round: int, max_seconds: float) -> Timing:
    """Warm up, then ``rounds`` rounds of ``per_round`` calls each (synchronised); median s/iter."""
    sync(device)
    t0 = time.perf_counter()
    for _ in range(warmup):
        fn()
    sync(device)
    warmup_s = time.perf_counter() - t0
    times: list[float] = []
    start = time.perf_counter()
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(per_round):
            fn()
        sync(device)
        times.append((time.perf_counter() - t) / per_round)
        if time.perf_counter() - start > max_seconds:
            break
    return Timing(statistics.median(times), len(times) * per_round, warmup_s)


def matmul_gflops(device: torch.device, dtype: torch.dtype, max_size: int, budget_s: float) -> tuple[float, int]:
    """Dense square matmul GFLOP/s (2 n^3 per product); n grows from 256 to ``max_size`` within the budget."""
    size = 256
    while True:
        a = torch.randn(size, size, device=device).to(dtype)
        b = torch.randn(size, size, device=device).to(dtype)
        for _ in range(2 if device.type == "cuda" else 1):
            a @ b
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        single = time.perf_counter() - t
        if size * 2 > max_size or single * 8 > budget_s / 4:
            break
        size *= 2
    reps, start = 0, time.perf_counter()
    while True:
        for _ in range(10 if device.type == "cuda" else 1):
            a @ b
            reps += 1
        sync(device)
        elapsed = time.perf_counter() - start
        if elapsed > budget_s or (reps >= 3 and elapsed > budget_s / 2):
            break
    return 2 * size**3 * reps / elapsed / 1e9, size


# ---------------------------------------------------------------------------------------------------------
# One configuration


@dataclass
class Config:
    variant: str
    width: int
    precision: str  # fp32 | bf16
    channels_last: bool
    compile: bool


@dataclass
class Result:
    cfg: Config
    train: Timing
    infer: Timing
    train_flops: int
    infer_flops: int
    batch: int


def run_config(cfg: Config, base: nn.Module, flops: tuple[int, int], args, device: torch.device) -> Result:
    model = copy.deepcopy(base).to(device)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, 3, 32, 32, generator=gen).to(device).contiguous(memory_format=memory_format)
    y = torch.randint(0, 10, (args.batch_size,), generator=gen).to(device)
    if cfg.compile:  # exactly as compile=true does in the LightningModule: in place, whole graph, inductor
        model.compile(**compile_options({}))
    net = model
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    bf16 = cfg.precision == "bf16"

    def train_step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def infer_step() -> None:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            net(x)

    warmup = args.warmup + (1 if cfg.compile else 0)  # compile: the first call compiles
    model.train()
    train = measure(train_step, device, warmup, args.rounds, args.per_round, args.max_seconds)
    model.eval()
    infer = measure(infer_step, device, warmup, args.rounds, args.per_round, args.max_seconds / 2)
    return Result(cfg, train, infer, flops[0], flops[1], args.batch_size)


# ---------------------------------------------------------------------------------------------------------
# Report


def _geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def factor_ratio(results: list[Result], field: str, on, off) -> float:
    """Geometric mean over matching configs of train img/s with ``field=on`` divided by ``field=off``."""
    index = {tuple(vars(r.cfg).items()): r for r in results}
    ratios = []
    for r in results:
        if getattr(r.cfg, field) != on:
            continue
        other = index.get(tuple({**vars(r.cfg), field: off}.items()))
        if other is not None:
            ratios.append(other.train.seconds_per_iter / r.train.seconds_per_iter)
    return _geomean(ratios)


def recommendation(results: list[Result], device: torch.device) -> str:
    parts = []
    prec = factor_ratio(results, "precision", "bf16", "fp32")
    if math.isnan(prec):
        parts.append("trainer.precision=(not compared)")
    else:
        choice = "bf16-mixed" if prec >= SPEEDUP_THRESHOLD else "32"
        parts.append(f"trainer.precision={choice} (bf16 autocast {prec:.2f}x {precision_label('fp32', device)})")
    cl = factor_ratio(results, "channels_last", True, False)
    if math.isnan(cl):
        parts.append("channels_last=(not compared)")
    else:
        parts.append(f"channels_last={'true' if cl >= SPEEDUP_THRESHOLD else 'false'} ({cl:.2f}x contiguous)")
    comp = factor_ratio(results, "compile", True, False)
    if math.isnan(comp):
        parts.append("compile=(not measured; pass --compile)")
    else:
        parts.append(f"compile={'true' if comp >= SPEEDUP_THRESHOLD else 'false'} ({comp:.2f}x eager)")
    return f"recommended defaults on {device.type} (training img/s, geometric mean over matching configs): " + ", ".join(parts)


def precision_label(precision: str, device: torch.device) -> str:
    if precision == "fp32" and device.type == "cuda" and torch.backends.cudnn.allow_tf32:
        return "fp32 (tf32)"
    return precision


def markdown(results: list[Result], peaks: dict[str, float], device: torch.device) -> str:
    head = (
        "| variant | width | batch | precision | channels_last | compile | train img/s | train GFLOP/s | train % matmul "
        "| infer img/s | infer GFLOP/s | infer % matmul | warm-up s |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        c = r.cfg
        tr_gf = r.train_flops / r.train.seconds_per_iter / 1e9
        in_gf = r.infer_flops / r.infer.seconds_per_iter / 1e9
        peak = peaks[c.precision]
        lines.append(
            f"| {c.variant} | {c.width} | {r.batch} | {precision_label(c.precision, device)} | "
            f"{'on' if c.channels_last else 'off'} | {'on' if c.compile else 'off'} | "
            f"{r.batch / r.train.seconds_per_iter:,.1f} | {tr_gf:,.1f} | {100 * tr_gf / peak:.1f} % | "
            f"{r.batch / r.infer.seconds_per_iter:,.1f} | {in_gf:,.1f} | {100 * in_gf / peak:.1f} % | "
            f"{r.train.warmup_s + r.infer.warmup_s:.1f} |"
        )
    return "\n".join(lines)


def precision_table(results: list[Result], device: torch.device) -> str | None:
    """fp32 and bf16 side by side for each (variant, width, memory format, compile) measured in both."""
    by_key: dict[tuple, dict[str, Result]] = {}
    for r in results:
        c = r.cfg
        by_key.setdefault((c.variant, c.width, r.batch, c.channels_last, c.compile), {})[c.precision] = r
    pairs = [(key, group) for key, group in by_key.items() if {"fp32", "bf16"} <= set(group)]
    if not pairs:
        return None
    fp32 = precision_label("fp32", device)
    head = (
        f"| variant | width | batch | channels_last | compile | train img/s {fp32} | train img/s bf16 | bf16 / {fp32} "
        f"| infer img/s {fp32} | infer img/s bf16 | bf16 / {fp32} |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for (variant, width, batch, channels_last, compiled), group in pairs:
        a, b = group["fp32"], group["bf16"]
        train_a, train_b = batch / a.train.seconds_per_iter, batch / b.train.seconds_per_iter
        infer_a, infer_b = batch / a.infer.seconds_per_iter, batch / b.infer.seconds_per_iter
        lines.append(
            f"| {variant} | {width} | {batch} | {'on' if channels_last else 'off'} | {'on' if compiled else 'off'} | "
            f"{train_a:,.1f} | {train_b:,.1f} | {train_b / train_a:.2f}x | {infer_a:,.1f} | {infer_b:,.1f} | {infer_b / infer_a:.2f}x |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--quick", action="store_true", help="< 1 minute smoke run")
    p.add_argument("--variants", nargs="+", choices=ALL_VARIANTS, help="default: cpu attention56_mini; cuda all")
    p.add_argument("--widths", nargs="+", type=int, help="default: cpu 8 16; cuda 32")
    p.add_argument("--batch-size", type=int, help="default: cpu 16 (quick 8); cuda 128")
    p.add_argument("--precisions", default="fp32,bf16", help="comma-separated subset of fp32,bf16")
    p.add_argument("--channels-last", choices=("both", "on", "off"), default="both")
    comp = p.add_mutually_exclusive_group()
    comp.add_argument("--compile", dest="compile", action="store_true", default=None, help="also measure torch.compile (default on cuda)")
    comp.add_argument("--no-compile", dest="compile", action="store_false", help="eager only")
    p.add_argument(
        "--compile-configs",
        choices=("best", "all"),
        default="best",
        help="with compile: compile only the fastest eager (precision, channels_last) per model (default) or all",
    )
    p.add_argument("--warmup", type=int, help="warm-up iterations (default: cpu 1, cuda 5)")
    p.add_argument("--rounds", type=int, help="timed rounds (default: cpu 4, cuda 5)")
    p.add_argument("--per-round", type=int, help="iterations per synchronised round (default: cpu 1, cuda 10)")
    p.add_argument("--max-seconds", type=float, help="stop a training measurement after this long (inference: half)")
    p.add_argument("--matmul-size", type=int, help="reference matmul size (default: cpu 2048, cuda 8192)")
    p.add_argument(
        "--threads",
        default="auto",
        help="torch CPU threads: a number, or auto (default): torch's choice, reduced to the cores left idle by "
        "other processes (1-minute load average) so that busy cores do not stall multi-threaded ops",
    )
    p.add_argument("--tf32", choices=("on", "off"), default="on", help="cuda fp32: TF32 matmul/conv (default on, as cuDNN does)")
    return p.parse_args(argv)


def apply_defaults(args: argparse.Namespace, device: torch.device) -> None:
    cuda = device.type == "cuda"
    q = args.quick
    if args.variants is None:
        args.variants = (["attention56_mini", "attention56"] if q else list(ALL_VARIANTS)) if cuda else ["attention56_mini"]
    if args.widths is None:
        args.widths = [32] if cuda else ([8] if q else [8, 16])
    if args.batch_size is None:
        args.batch_size = 128 if cuda else (8 if q else 16)
    if args.compile is None:
        args.compile = cuda and not q
    defaults = {
        # (warmup, rounds, per_round, max_seconds, matmul_size)
        (True, False): (5, 5, 10, 10.0, 8192),
        (True, True): (3, 3, 5, 3.0, 4096),
        (False, False): (1, 4, 1, 6.0, 2048),
        (False, True): (1, 3, 1, 1.5, 1024),
    }[(cuda, q)]
    for name, value in zip(("warmup", "rounds", "per_round", "max_seconds", "matmul_size"), defaults):
        if getattr(args, name) is None:
            setattr(args, name, value)


def run_and_report(cfg: Config, base: nn.Module, flops: tuple[int, int], args, device: torch.device) -> list[Result]:
    try:
        r = run_config(cfg, base, flops, args, device)
        if device.type == "cuda":  # the config's model and optimizer are gone with run_config's frame
            torch.cuda.empty_cache()
    except Exception as exc:  # report and go on (e.g. compiler or memory trouble in one config)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"# FAILED {cfg}: {type(exc).__name__}: {first}", flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return []
    print(
        f"#   {cfg.precision:4s} channels_last={'on ' if cfg.channels_last else 'off'} "
        f"compile={'on ' if cfg.compile else 'off'}: "
        f"train {r.batch / r.train.seconds_per_iter:,.1f} img/s ({r.train.iters} it), "
        f"infer {r.batch / r.infer.seconds_per_iter:,.1f} img/s ({r.infer.iters} it), warm-up "
        f"{r.train.warmup_s + r.infer.warmup_s:.1f} s",
        flush=True,
    )
    return [r]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            print("error: --device cuda but torch.cuda.is_available() is False", file=sys.stderr)
            return 2
    apply_defaults(args, device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    cores = os.cpu_count() or 1
    if args.threads == "auto":
        if device.type == "cpu" and load > 0.5:
            torch.set_num_threads(max(1, min(torch.get_num_threads(), cores - math.ceil(load - 0.25))))
    else:
        try:
            torch.set_num_threads(max(1, int(args.threads)))
        except ValueError:
            print(f"error: --threads must be a number or auto, got {args.threads!r}", file=sys.stderr)
            return 2
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    if not precisions or any(p not in ("fp32", "bf16") for p in precisions):
        print(f"error: --precisions must be a subset of fp32,bf16, got {args.precisions!r}", file=sys.stderr)
        return 2
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = args.tf32 == "on"
        torch.backends.cudnn.allow_tf32 = args.tf32 == "on"
        name = torch.cuda.get_device_name(device)
    else:
        name = "CPU"
    formats = {"both": [False, True], "on": [True], "off": [False]}[args.channels_last]

    print(
        f"# model throughput: {name} ({device.type}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"batch {args.batch_size}, warm-up {args.warmup}, rounds {args.rounds} x {args.per_round}, "
        f"max {args.max_seconds:g} s per measurement, compile {'off' if not args.compile else args.compile_configs}",
        flush=True,
    )
    if device.type == "cpu":
        print(f"# CPU load average (1 min) before the run: {load:.2f} on {cores} cores", flush=True)
        if load > 0.5:
            print(
                f"# WARNING: other processes are using the CPU (threads {args.threads} -> "
                f"{torch.get_num_threads()}); timings are noisy, rerun on an idle machine for reference numbers",
                flush=True,
            )
    peaks: dict[str, float] = {}
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    for p in precisions:
        gf, size = matmul_gflops(device, dtypes[p], args.matmul_size, 1.0 if args.quick else 2.0)
        peaks[p] = gf
        print(
            f"# reference dense matmul {p}{' (tf32)' if p == 'fp32' and device.type == 'cuda' and args.tf32 == 'on' else ''}: "
            f"{size}x{size}: {gf:,.1f} GFLOP/s",
            flush=True,
        )

    results: list[Result] = []
    t_start = time.perf_counter()
    for variant in args.variants:
        for width in args.widths:
            flops = count_flops(variant, width, args.batch_size)
            print(
                f"# {variant} width {width}: {flops[0] / args.batch_size / 1e9:.3f} GFLOP/image training (fwd+bwd), "
                f"{flops[1] / args.batch_size / 1e9:.3f} inference",
                flush=True,
            )
            torch.manual_seed(0)
            base = build(variant, width)
            eager = [Config(variant, width, p, cl, False) for p in precisions for cl in formats]
            group: list[Result] = []
            for cfg in eager:
                group += run_and_report(cfg, base, flops, args, device)
            if args.compile:
                # compiled: every eager config, or (default) only the fastest eager training config
                if args.compile_configs == "all":
                    pool = eager
                else:
                    pool = [min(group, key=lambda r: r.train.seconds_per_iter).cfg] if group else []
                for cfg in pool:
                    group += run_and_report(Config(**{**vars(cfg), "compile": True}), base, flops, args, device)
            results += group
    print()
    print(markdown(results, peaks, device))
    print()
    side_by_side = precision_table(results, device)
    if side_by_side:
        print(side_by_side)
        print()
    if device.type == "cpu" and "bf16" in peaks and "fp32" in peaks and peaks["bf16"] < 0.25 * peaks["fp32"]:
        print(
            "# note: bf16 matmul is far slower than fp32 on this CPU (no native bf16 path, e.g. AVX512-BF16/AMX); "
            "bf16 rows' '% matmul' is relative to that slow reference and can exceed 100 %"
        )
    print(f"# measured in {time.perf_counter() - t_start:.0f} s")
    print(recommendation(results, device) if results else "recommended defaults: (no results)")
    print(f"# trainer.precision=auto on this machine: {auto_precision(device.type).describe()}")
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
