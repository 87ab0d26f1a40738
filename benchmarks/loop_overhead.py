"""Training-loop overhead: our LightningModule + Trainer (production callbacks and loggers) vs. a plain loop.

Both sides train the same model from the same initial weights on the same batches for the same number of
steps, with the same work per step and per epoch:

* data: one ``CIFAR10DataModule`` (``data=synthetic``, set up once).  The plain loop's batches are
  pre-generated from that module's own training loader (epoch by epoch, ``set_epoch``), so they are
  exactly the batches Lightning draws; Lightning still pays for drawing them (the production loader),
  the plain loop gets them for free;
* per training step: ``dm.prepare_batch(batch, train=True)`` (on-device augmentation + normalisation,
  what ``on_after_batch_transfer`` does), forward, ``cross_entropy`` with the config's label smoothing
  plus ``module.l2_penalty()`` (the module's Keras L2), ``zero_grad`` / ``backward`` / ``step`` of the
  optimizer and scheduler built from the same config entries (bf16 autocast when
  ``trainer.precision=bf16-mixed``), and a running loss/accuracy sum kept on the device (no host sync);
* per epoch: the validation set (``prepare_batch(train=False)``, ``inference_mode``, loss and accuracy),
  one host sync to read the epoch's numbers, and the scheduler step;
* Lightning side: the config composed exactly like ``train.py`` does (``conf/train.yaml`` + the
  experiment), ``callbacks`` and ``logger`` instantiated from ``conf/`` by
  ``resattn.training.build.instantiate_group`` and the trainer by ``resattn.training.build.build_trainer``: RunCheckpoint
  (best + last every epoch, atomic fsync'd writes), EarlyStopping, Timer, RNGStateCallback,
  WeightHistograms (every epoch), TQDMProgressBar, GracefulStop, DivergenceGuard, TensorBoard + CSV
  loggers, torchmetrics metrics.  Both sides reseed the dropout RNG at the first step, so they compute the
  same training run: the script checks that they end with the same validation accuracy.

Timed: every training step (from the end of the previous one) and the epoch end (validation and all
epoch-end work: checkpoints, histograms, logger flushes).  Lightning's one-time start-up (trainer
construction, sanity validation, run directories) is reported separately: it is paid once per run.

Two ways to interleave (a machine shared with other jobs changes speed by 10-30 % within seconds):

* ``--mode paired`` (default): one Lightning fit per repetition, and the plain loop runs its step ``i``
  inside Lightning's ``on_train_batch_end`` of step ``i`` (its own RNG state, its own model and optimizer),
  and its epoch end inside ``on_train_epoch_end``.  The two alternate step by step, so both see the same
  load; Lightning's time is the wall time between the plain loop's steps (everything Lightning does, its
  other callbacks included), the plain loop's time is measured around its own work;
* ``--mode runs``: separate whole runs, raw, lightning, lightning, raw, ... (after an untimed warm-up).
  Use it on a GPU: paired mode synchronises the device at every step, which hides the CPU/GPU overlap
  that both loops rely on; in runs mode neither side synchronises before the epoch end.

images/s = training images / (sum of step times + epoch-end time), per repetition; printed: the medians
over repetitions, and ``ratio`` = the median over repetitions of (Lightning images/s) / (raw images/s).
Floor: ``ratio >= 0.95`` (``--strict`` exits 1 below it).  ``--profile`` runs one Lightning fit under
cProfile instead and prints where the time goes.

    python benchmarks/loop_overhead.py [--mode paired|runs] [--width 8] [--batch-size 16] [--steps 120]
        [--reps 3] [--threads 1] [--device cpu|cuda] [--experiment original_regularized] [--profile] [--strict]
        [hydra overrides for both sides ...]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pytorch_lightning as pl  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import DictConfig, open_dict  # noqa: E402

from resattn.config.compose import compose_run  # noqa: E402
from resattn.training.build import build_callbacks, build_datamodule, build_trainer, instantiate_group, module_from_config  # noqa: E402
from resattn.training.module import ResAttnModule  # noqa: E402
from resattn.training.precision import resolve_precision  # noqa: E402
from resattn.training.schedulers import lightning_scheduler  # noqa: E402

FLOOR = 0.95


# ---------------------------------------------------------------------------------------------------------
# Config


def overrides_from(args: argparse.Namespace) -> list[str]:
    train_size = args.batch_size * args.steps
    return [
        f"experiment={args.experiment}",
        "data=synthetic",
        f"model.width={args.width}",
        f"trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}",
        f"trainer.max_epochs={args.epochs}",
        f"data.batch_size={args.batch_size}",
        f"data.train_size={train_size}",
        # validation : training images as in the real runs (5,000 : 30,000)
        f"data.val_size={max(args.batch_size, train_size // 6)}",
        f"data.test_size={args.batch_size}",
        f"data.eval_batch_size={args.eval_batch_size}",
        *args.override,
    ]


# ---------------------------------------------------------------------------------------------------------
# The plain loop


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fresh_module(cfg: DictConfig, seed: int) -> ResAttnModule:
    pl.seed_everything(seed, workers=True, verbose=False)
    return module_from_config(cfg)


def pregenerate(dm: Any, epochs: int, device: torch.device) -> tuple[list[list[Any]], list[Any]]:
    """The training batches of each epoch, from the data module's own loader, and the validation batches.

    Training batches are ``(x, y, seed)`` with ``x``/``y`` on ``device`` and the seed as a Python int (what
    ``on_before_batch_transfer`` hands on); validation batches ``(x, y)`` on ``device``.
    """
    loader = dm.train_dataloader()
    train = []
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        train.append([(b[0].to(device, copy=True), b[1].to(device, copy=True), int(b[2])) for b in loader])
    val = [(b[0].to(device, copy=True), b[1].to(device, copy=True)) for b in dm.val_dataloader()]
    return train, val


class RawLoop:
    """A plain PyTorch training loop doing the same work per step and per epoch as the Lightning run."""

    def __init__(self, cfg: DictConfig, dm: Any, seed: int, device: torch.device, total_steps: int) -> None:
        self.dm, self.device = dm, device
        self.module = fresh_module(cfg, seed).to(device)
        self.module.configure_model()
        precision = str(cfg.trainer.get("precision", 32))
        if precision not in ("32", "32-true", "bf16-mixed"):
            raise SystemExit(f"trainer.precision={precision}: the plain loop supports 32 and bf16-mixed")
        self.bf16 = precision == "bf16-mixed"
        self.optimizer = instantiate(cfg.optimizer)(params=self.module.net.parameters())
        sched = lightning_scheduler(
            instantiate(cfg.get("scheduler") or {"scheduler": None}), self.optimizer, total_steps=lambda: total_steps
        )
        self.scheduler = sched["scheduler"] if sched else None
        self.per_step = bool(sched and sched["interval"] == "step")
        self.smoothing = self.module.label_smoothing
        self.steps = 0
        self.val_acc = float("nan")
        self._new_epoch()

    def _new_epoch(self) -> None:
        self.module.train()
        self.loss_sum = torch.zeros((), device=self.device)
        self.correct = torch.zeros((), dtype=torch.int64, device=self.device)
        self.seen = 0

    def train_step(self, batch: Any) -> None:
        x, y = self.dm.prepare_batch(batch, train=True, split="train")
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.module(x)
            loss = F.cross_entropy(logits, y, label_smoothing=self.smoothing) + self.module.l2_penalty()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.per_step:
            self.scheduler.step()
        self.loss_sum += loss.detach() * y.numel()
        self.correct += (logits.detach().argmax(1) == y).sum()
        self.seen += y.numel()
        self.steps += 1

    def epoch_end(self, val_batches: list[Any]) -> None:
        self.module.eval()
        v_loss = torch.zeros((), device=self.device)
        v_correct = torch.zeros((), dtype=torch.int64, device=self.device)
        v_seen = 0
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            for vb in val_batches:
                x, y = self.dm.prepare_batch(vb, train=False, split="val")
                logits = self.module(x)
                v_loss += F.cross_entropy(logits, y, reduction="sum")
                v_correct += (logits.argmax(1) == y).sum()
                v_seen += y.numel()
        # the epoch's one host sync: the numbers a real loop would print or log
        _ = (float(self.loss_sum) / self.seen, int(self.correct) / self.seen, float(v_loss) / v_seen)
        self.val_acc = int(v_correct) / v_seen
        if self.scheduler is not None and not self.per_step:
            self.scheduler.step()
        self._new_epoch()


def run_raw(cfg: DictConfig, dm: Any, batches: list[list[Any]], val_batches: list[Any], seed: int, device: torch.device) -> dict[str, Any]:
    """``--mode runs``: one whole plain run."""
    loop = RawLoop(cfg, dm, seed, device, sum(len(b) for b in batches))
    torch.manual_seed(seed)
    steps: list[float] = []
    tail = 0.0
    for epoch_batches in batches:
        if device.type == "cuda":  # no sync per step: time the epoch's steps as a whole, as Lightning's
            t = time.perf_counter()
            for batch in epoch_batches:
                loop.train_step(batch)
            sync(device)
            steps += [(time.perf_counter() - t) / len(epoch_batches)] * len(epoch_batches)
        else:
            for batch in epoch_batches:
                t = time.perf_counter()
                loop.train_step(batch)
                steps.append(time.perf_counter() - t)
        t = time.perf_counter()
        loop.epoch_end(val_batches)
        tail += time.perf_counter() - t
    return {"step_s": steps, "tail_s": tail, "startup_s": 0.0, "steps": loop.steps, "val_acc": loop.val_acc}


# ---------------------------------------------------------------------------------------------------------
# The Lightning run (optionally with the plain loop interleaved step by step)


class StepClock(pl.Callback):
    """Times Lightning's steps and epoch ends; with a ``RawLoop`` twin, runs the twin's step ``i`` right after
    Lightning's step ``i`` and subtracts it from Lightning's time.

    Also reseeds the global RNG (dropout) at the start of training, as the plain loop does; the twin keeps
    its own RNG state, so neither disturbs the other's random stream.
    """

    def __init__(
        self,
        seed: int,
        device: torch.device,
        twin: RawLoop | None = None,
        batches: list[Any] | None = None,
        val_batches: list[Any] | None = None,
    ) -> None:
        self.seed, self.device = seed, device
        self.twin, self.batches, self.val_batches = twin, batches or [], val_batches or []
        self.light_steps: list[float] = []
        self.raw_steps: list[float] = []
        self.light_tail = self.raw_tail = 0.0
        self.start = self.t_prev = 0.0
        self._rng: torch.Tensor | None = None
        self._cuda_rng: torch.Tensor | None = None

    def _twin_run(self, fn: Any) -> float:
        """Run ``fn`` with the twin's own RNG state; return its wall time (synchronised)."""
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self._rng)
            if self._cuda_rng is not None:
                torch.cuda.set_rng_state(self._cuda_rng, self.device)
            t = time.perf_counter()
            fn()
            sync(self.device)
            dt = time.perf_counter() - t
            self._rng = torch.get_rng_state()
            self._cuda_rng = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return dt

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        torch.manual_seed(self.seed)
        self._rng = torch.get_rng_state()
        self._cuda_rng = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        sync(self.device)
        self.start = self.t_prev = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self.twin is not None:  # paired: each side's step must be finished before the other's starts
            sync(self.device)
        now = time.perf_counter()
        self.light_steps.append(now - self.t_prev)
        if self.twin is not None:
            batch = self.batches[len(self.raw_steps)]
            self.raw_steps.append(self._twin_run(lambda: self.twin.train_step(batch)))
        self.t_prev = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.twin is not None:
            self.raw_tail += self._twin_run(lambda: self.twin.epoch_end(self.val_batches))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        sync(self.device)
        self.light_tail = time.perf_counter() - self.t_prev - self.raw_tail


def run_lightning(
    cfg: DictConfig,
    dm: pl.LightningDataModule,
    run_dir: Path,
    seed: int,
    device: torch.device,
    twin_batches: list[list[Any]] | None = None,
    val_batches: list[Any] | None = None,
    **trainer_overrides: Any,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Exactly resattn.training.fit.train's objects: module, conf callbacks + loggers, build_trainer; ``fit`` only.

    With ``twin_batches`` (one epoch), a plain loop runs interleaved step by step (``--mode paired``).
    """
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    twin = None
    if twin_batches is not None:
        if len(twin_batches) != 1:
            raise SystemExit("--mode paired times one epoch per repetition: use --epochs 1")
        twin = RawLoop(cfg, dm, seed, device, len(twin_batches[0]))
    module = fresh_module(cfg, seed)
    callbacks = build_callbacks(cfg)
    loggers = instantiate_group(cfg.get("logger"))
    clock = StepClock(seed, device, twin, twin_batches[0] if twin_batches else None, val_batches)
    trainer = build_trainer(cfg, [*callbacks, clock], loggers, **trainer_overrides)
    trainer.fit(module, datamodule=dm)
    light = {
        "step_s": clock.light_steps,
        "tail_s": clock.light_tail,
        "startup_s": clock.start - t0,
        "steps": trainer.global_step,
        "val_acc": float(trainer.callback_metrics.get("val/acc", float("nan"))),
    }
    raw = None
    if twin is not None:
        raw = {"step_s": clock.raw_steps, "tail_s": clock.raw_tail, "startup_s": 0.0, "steps": twin.steps, "val_acc": twin.val_acc}
    return light, raw


# ---------------------------------------------------------------------------------------------------------
# Main


def quiet_lightning() -> None:
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")


def profile_lightning(cfg: DictConfig, dm: Any, work: Path, seed: int, device: torch.device, top: int) -> None:
    run_lightning(cfg, dm, work / "warmup", seed, device, max_epochs=1, limit_train_batches=5)  # warm-up
    prof = cProfile.Profile()
    prof.enable()
    res, _ = run_lightning(cfg, dm, work / "profiled", seed, device)
    prof.disable()
    print(f"profiled fit: {sum(res['step_s']) + res['tail_s']:.2f} s timed, {res['startup_s']:.2f} s start-up")
    for key in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(key).print_stats(top)
        print(out.getvalue())


def images_per_s(res: dict[str, Any], n_images: int) -> float:
    return n_images / (sum(res["step_s"]) + res["tail_s"])


def report(args: argparse.Namespace, raw: list[dict[str, Any]], light: list[dict[str, Any]], n_train: int) -> float:
    med = statistics.median
    ratios = [images_per_s(lt, n_train) / images_per_s(rw, n_train) for lt, rw in zip(light, raw)]
    print()
    print("| loop | images/s (median) | ms per step (median) | epoch end s (median) | start-up s (median) |")
    print("|---|---|---|---|---|")
    rows = {}
    for name, runs in (("plain PyTorch", raw), ("Lightning + production callbacks and loggers", light)):
        step = med(d for r in runs for d in r["step_s"])
        tail = med(r["tail_s"] for r in runs) / args.epochs
        rows[name] = (step, tail)
        print(
            f"| {name} | {med(images_per_s(r, n_train) for r in runs):.1f} | {1000 * step:.1f} | {tail:.2f} | "
            f"{med(r['startup_s'] for r in runs):.2f} |"
        )
    (rs, rt), (ls, lt) = rows.values()
    print(
        f"Lightning overhead: {1000 * (ls - rs):+.1f} ms per step ({100 * (ls / rs - 1):+.1f} %), {lt - rt:+.2f} s per "
        "epoch end (checkpoints, histograms, logger flushes, divergence check; validation is in both)"
    )
    print(f"per-repetition ratios ({args.mode}): {', '.join(f'{r:.3f}' for r in ratios)}")
    same = {round(r["val_acc"], 6) for r in raw + light}
    print("same training on both sides (equal final val acc): " + ("yes" if len(same) == 1 else f"NO {sorted(same)}"))
    ratio = med(ratios)
    print(f"floor (ratio >= {FLOOR}): {'ok' if ratio >= FLOOR else 'MISSED'}")
    print(f"ratio: {ratio:.3f}")
    return ratio


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=("paired", "runs"), default="paired", help="interleave step by step or run by run")
    p.add_argument(
        "--experiment",
        default="original_regularized",
        help="conf/experiment entry (default original_regularized: Adam, step schedule, Keras augmentation, dropout, head L2)",
    )
    p.add_argument("--width", type=int, default=8, help="model.width of attention56_mini")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--eval-batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=120, help="training steps per epoch")
    p.add_argument("--epochs", type=int, default=1, help="epochs per repetition (--mode runs only: more than 1)")
    p.add_argument("--reps", type=int, default=3, help="timed repetitions")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cuda: trainer.accelerator=gpu, data resident on the GPU")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: robust on a shared machine; 0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true", help="cProfile one Lightning fit instead of comparing")
    p.add_argument("--top", type=int, default=45, help="rows of the profile listing")
    p.add_argument("--strict", action="store_true", help=f"exit 1 when ratio < {FLOOR}")
    p.add_argument("--keep", help="keep the run directories under this folder (default: a temporary one)")
    p.add_argument("override", nargs="*", help="extra Hydra overrides for both sides, e.g. callbacks.weight_histograms=null")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    quiet_lightning()
    device = torch.device(args.device)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="loop_overhead_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        cfg = compose_run(work / "compose", overrides_from(args))
        resolve_precision(cfg)  # trainer.precision=auto -> what train.py would use on this machine
        dm = build_datamodule(cfg)
        dm.setup("fit")
        if args.profile:
            profile_lightning(cfg, dm, work, args.seed, device, args.top)
            return 0
        batches, val_batches = pregenerate(dm, args.epochs, device)
        n_train = sum(len(b) for b in batches) * args.batch_size
        print(
            f"attention56_mini width {args.width}, experiment {args.experiment}, batch {args.batch_size}, {args.steps} "
            f"steps x {args.epochs} epoch(s) per repetition, val {len(dm.val_x)} images/epoch, {args.reps} repetitions "
            f"({args.mode}); torch {torch.__version__}, lightning {pl.__version__}, {torch.get_num_threads()} "
            f"thread(s), {os.cpu_count()} CPUs, device {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}",
            flush=True,
        )
        # untimed warm-up of each (allocator, oneDNN/cuDNN kernels, lazy imports)
        warm = RawLoop(cfg, dm, args.seed, device, 5)
        for batch in batches[0][:5]:
            warm.train_step(batch)
        warm.epoch_end(val_batches[:1])
        run_lightning(cfg, dm, work / "warmup", args.seed, device, max_epochs=1, limit_train_batches=5)
        raw: list[dict[str, Any]] = []
        light: list[dict[str, Any]] = []
        for rep in range(args.reps):
            if args.mode == "paired":
                lt, rw = run_lightning(cfg, dm, work / f"rep{rep}", args.seed, device, batches, val_batches)
                assert rw is not None
                light.append(lt)
                raw.append(rw)
                done = [("raw", rw), ("lightning", lt)]
            else:
                done = []
                for which in ("raw", "lightning") if rep % 2 == 0 else ("lightning", "raw"):
                    if which == "raw":
                        res = run_raw(cfg, dm, batches, val_batches, args.seed, device)
                        raw.append(res)
                    else:
                        res, _ = run_lightning(cfg, dm, work / f"rep{rep}", args.seed, device)
                        light.append(res)
                    done.append((which, res))
            for which, res in done:
                if res["steps"] != args.steps * args.epochs:
                    raise RuntimeError(f"{which} ran {res['steps']} steps, expected {args.steps * args.epochs}")
                print(
                    f"  rep {rep} {which:9s}: {images_per_s(res, n_train):8.1f} img/s  "
                    f"({sum(res['step_s']):.2f} s in steps + {res['tail_s']:.2f} s epoch end"
                    + (f", start-up {res['startup_s']:.2f} s" if which == "lightning" else "")
                    + f", val acc {res['val_acc']:.3f})",
                    flush=True,
                )
        ratio = report(args, raw, light, n_train)
        return 0 if ratio >= FLOOR or not args.strict else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
