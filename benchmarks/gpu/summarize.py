"""Summarise one kit run: wall time, images/s, GPU utilisation (nvidia-smi samples) and accuracy.

    python3 benchmarks/gpu/summarize.py --name original_adam_base --run-dir DIR --wall-s 171.3 [--smi FILE]
        [--json OUT.json] [--table OUT.md]

``--smi`` is the CSV written by ``nvidia-smi --query-gpu=timestamp,utilization.gpu,utilization.memory,
memory.used,power.draw,clocks.sm --format=csv,noheader,nounits -lms 500``.  Only standard library + PyYAML.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

HEADER = (
    "| run | device | wall s | fit s | epochs | steps | train img/s (fit) | end-to-end img/s | GPU util % mean / median "
    "| GPU mem MiB max | power W mean | val/acc_best | test/acc |"
)


def read_smi(path: Path | None) -> dict[str, float] | None:
    if path is None or not path.is_file():
        return None
    util, mem, power = [], [], []
    for line in path.read_text().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 6:
            continue
        try:
            util.append(float(parts[1]))
            mem.append(float(parts[3]))
            power.append(float(parts[4]))
        except ValueError:
            continue
    if not util:
        return None
    return {
        "samples": len(util),
        "util_mean": statistics.fmean(util),
        "util_median": statistics.median(util),
        "util_busy_mean": statistics.fmean([u for u in util if u > 0] or [0.0]),
        "mem_max_mib": max(mem),
        "power_mean_w": statistics.fmean(power),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", required=True)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--wall-s", type=float, required=True, help="wall time of the whole train.py command")
    p.add_argument("--smi", help="nvidia-smi CSV samples taken during the run")
    p.add_argument("--device", default="")
    p.add_argument("--json", help="write the summary here")
    p.add_argument("--table", help="append the markdown row here (header written when the file is new)")
    args = p.parse_args(argv)

    run = Path(args.run_dir)
    metrics_file = run / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {"status": "no metrics.json"}
    cfg = {}
    cfg_file = run / ".hydra" / "config.yaml"
    if cfg_file.is_file():
        import yaml

        cfg = yaml.safe_load(cfg_file.read_text()) or {}
    data = cfg.get("data", {})
    batch = int(data.get("batch_size", 0) or 0)
    steps = int(metrics.get("global_step") or 0)
    epochs = int(metrics.get("epochs") or 0)
    fit_s = metrics.get("train_time_s")
    train_ips = steps * batch / fit_s if fit_s else None
    # every image the run touched: training steps, validation each epoch, the test set once
    val_n, test_n = int(data.get("val_size", 0) or 0), int(data.get("test_size") or 10000)
    touched = steps * batch + epochs * val_n + (test_n if "test/acc" in metrics else 0)
    smi = read_smi(Path(args.smi)) if args.smi else None
    summary = {
        "name": args.name,
        "device": args.device,
        "status": metrics.get("status"),
        "wall_s": round(args.wall_s, 1),
        "fit_s": fit_s,
        "epochs": epochs,
        "global_step": steps,
        "batch_size": batch,
        "precision": cfg.get("trainer", {}).get("precision"),
        "channels_last": cfg.get("channels_last"),
        "compile": cfg.get("compile"),
        "train_images_per_s_fit": round(train_ips, 1) if train_ips else None,
        "images_touched_per_s_wall": round(touched / args.wall_s, 1) if args.wall_s else None,
        "val_acc_best": metrics.get("val/acc_best"),
        "test_acc": metrics.get("test/acc"),
        "gpu": smi,
    }

    def fmt(v, spec: str) -> str:
        return format(v, spec) if isinstance(v, (int, float)) else "-"

    util = f"{fmt(smi['util_mean'], '.0f')} / {fmt(smi['util_median'], '.0f')}" if smi else "-"
    row = (
        f"| {args.name} | {args.device or '-'} | {fmt(summary['wall_s'], '.1f')} | {fmt(fit_s, '.1f')} | {epochs} | {steps} "
        f"| {fmt(train_ips, ',.0f')} | {fmt(summary['images_touched_per_s_wall'], ',.0f')} | {util} "
        f"| {fmt(smi['mem_max_mib'] if smi else None, '.0f')} | {fmt(smi['power_mean_w'] if smi else None, '.0f')} "
        f"| {fmt(summary['val_acc_best'], '.4f')} | {fmt(summary['test_acc'], '.4f')} |"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    if args.table:
        table = Path(args.table)
        new = not table.is_file()
        with open(table, "a") as f:
            if new:
                f.write(HEADER + "\n|" + "---|" * (HEADER.count("|") - 1) + "\n")
            f.write(row + "\n")
    print(HEADER)
    print("|" + "---|" * (HEADER.count("|") - 1))
    print(row)
    return 0 if summary["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
