#!/usr/bin/env bash
# GPU kit for resattn: timed original_adam_base and improved runs on one H100/H200 (see benchmarks/gpu/README.md).
#
# On the GPU machine (repo root = a copy of this working tree; .whl/ and .gpu/{a,b} carried in):
#   bash benchmarks/gpu/run_kit.sh stage1   # install hydra wheels, stash data part a, env report, quick GPU benchmarks
#   bash benchmarks/gpu/run_kit.sh stage2   # unpack + verify data (part a from stage1 + part b), original_adam_base, 60 epochs
#   bash benchmarks/gpu/run_kit.sh stage3   # improved, 60 epochs (data from stage2)
# Here, on a CPU: the same commands end to end on a tiny subset, hydra taken from the .whl wheels only:
#   bash benchmarks/gpu/run_kit.sh --dry-run
#
# Environment: KIT_DIR (state kept between calls, default /tmp/resattn_kit), OUT (results, default $KIT_DIR/out),
# PYTHON (default python3), KIT_BENCH=0 (skip stage1's benchmarks), KIT_ORIGINAL_EXTRA / KIT_IMPROVED_EXTRA (extra
# Hydra overrides appended to the two runs).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT" || exit 1

DRY=0
STAGES=()
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    stage1|stage2|stage3) STAGES+=("$arg") ;;
    all) STAGES+=(stage1 stage2 stage3) ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "run_kit.sh: unknown argument $arg (stage1 | stage2 | stage3 | all | --dry-run)" >&2; exit 2 ;;
  esac
done
if [ "$DRY" = 1 ] && [ ${#STAGES[@]} -eq 0 ]; then STAGES=(stage1 stage2 stage3); fi
if [ ${#STAGES[@]} -eq 0 ]; then sed -n '2,16p' "$0"; exit 2; fi

PY="${PYTHON:-python3}"
if [ "$DRY" = 1 ]; then
  KIT_DIR="${KIT_DIR:-/tmp/resattn_kit_dry}"
  [ -x "$ROOT/.venv/bin/python" ] && PY="${PYTHON:-$ROOT/.venv/bin/python}"
else
  KIT_DIR="${KIT_DIR:-/tmp/resattn_kit}"
fi
OUT="${OUT:-$KIT_DIR/out}"
SITE="$KIT_DIR/site"
DATA="$KIT_DIR/data"
RUNS="$KIT_DIR/runs"
PART_A_SRC="$ROOT/.gpu/a"
PART_B_SRC="$ROOT/.gpu/b"
mkdir -p "$KIT_DIR" "$OUT" "$RUNS"
export PYTHONUNBUFFERED=1 PYTHONNOUSERSITE=1 HYDRA_FULL_ERROR=1 PYTHONDONTWRITEBYTECODE=1

# The two runs. original_adam_base keeps the study's fp32 (cuDNN runs fp32 convolutions as TF32 on Hopper);
# improved uses the recipe's GPU settings. trainer.benchmark=true: cuDNN picks the fastest algorithms for the
# fixed 32x32 shapes. Data stay resident on the GPU (data.device_resident=auto).
ORIGINAL_OVERRIDES=(experiment=original_adam_base trainer=gpu trainer.precision=32 trainer.benchmark=true)  # fp32 explicitly: auto means bf16 on a GPU
IMPROVED_OVERRIDES=(experiment=improved trainer=gpu trainer.precision=bf16-mixed channels_last=true trainer.benchmark=true)
DRY_OVERRIDES=()
if [ "$DRY" = 1 ]; then
  # same commands, CPU and a tiny subset: one epoch (8 steps) of a 4-channel network. optimizer.lr=0.01 as in the
  # tests: improved's one-cycle would reach its peak lr 0.2 after 2 steps and diverge (DivergenceGuard stops it).
  DRY_OVERRIDES=(trainer.accelerator=cpu model.width=4 trainer.max_epochs=1 data.batch_size=64 data.eval_batch_size=128
                 data.test_size=128 optimizer.lr=0.01)
fi

log() { echo "[kit $(date +%H:%M:%S)] $*"; }
die() { echo "[kit] ERROR: $*" >&2; exit 1; }

install_wheels() {
  # hydra-core, omegaconf and antlr4-python3-runtime (pure-python wheels in .whl/) into $SITE
  if ! ls "$ROOT"/.whl/*.whl >/dev/null 2>&1; then die ".whl/ has no wheels: carry .whl (make them with benchmarks/gpu/fetch_wheels.sh)"; fi
  if [ ! -f "$SITE/.installed" ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$ROOT"/.whl/*.whl \
      || die "pip install of .whl/*.whl failed"
    touch "$SITE/.installed"
  fi
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  # every Hydra package must come from $SITE (proves the wheel set is complete: nothing falls back elsewhere)
  "$PY" - "$SITE" <<'EOF' || die "hydra/omegaconf/antlr4 do not all import from the wheels"
import os, sys
site = os.path.realpath(sys.argv[1])
import antlr4, hydra, omegaconf
for m in (hydra, omegaconf, antlr4):
    path = os.path.realpath(m.__file__)
    if not path.startswith(site + os.sep):
        sys.exit(f"{m.__name__} imported from {path}, not from {site}")
print(f"hydra {hydra.__version__}, omegaconf {omegaconf.__version__}, antlr4 from {site}")
EOF
}

env_report() {
  {
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(hostname)  cpus: $(nproc)"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv,noheader
    "$PY" - <<'EOF'
import platform, torch, pytorch_lightning, torchmetrics, numpy
cuda = torch.cuda.is_available()
print(f"python {platform.python_version()}  torch {torch.__version__}  lightning {pytorch_lightning.__version__}  "
      f"torchmetrics {torchmetrics.__version__}  numpy {numpy.__version__}")
print(f"cuda available: {cuda}" + (f"  device: {torch.cuda.get_device_name()}  cudnn {torch.backends.cudnn.version()}  "
      f"tf32 conv {torch.backends.cudnn.allow_tf32} matmul {torch.backends.cuda.matmul.allow_tf32}" if cuda else ""))
EOF
  } 2>&1 | tee "$OUT/env.txt"
}

SMI_PID=""
gpu_monitor_start() {  # $1: csv file
  SMI_PID=""
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=timestamp,utilization.gpu,utilization.memory,memory.used,power.draw,clocks.sm \
      --format=csv,noheader,nounits -lms 500 >"$1" 2>/dev/null &
    SMI_PID=$!
  else
    log "nvidia-smi not found: no GPU utilisation samples"
  fi
}
gpu_monitor_stop() {
  if [ -n "$SMI_PID" ]; then kill "$SMI_PID" 2>/dev/null; wait "$SMI_PID" 2>/dev/null; fi
  SMI_PID=""
}

data_overrides() {
  "$PY" - "$DATA/manifest.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
print(f"data.train_size={m['train_size']} data.val_size={m['val_size']} data.val_source=holdout")
EOF
}

run_train() {  # $1: name, rest: overrides
  local name="$1"; shift
  [ -f "$DATA/cifar10.npz" ] || die "$DATA/cifar10.npz missing: run stage2 first (in the same warm machine)"
  local run_dir="$RUNS/$name" logf="$OUT/$name.log" smi="$KIT_DIR/${name}_smi.csv"
  rm -rf "$run_dir"
  local -a data_args
  read -r -a data_args <<<"$(data_overrides)"
  local -a cmd=("$PY" train.py "$@" "data.root=$DATA" "${data_args[@]}" "${DRY_OVERRIDES[@]}" "hydra.run.dir=$run_dir")
  log "run $name: ${cmd[*]}"
  gpu_monitor_start "$smi"
  local t0 t1 rc
  t0=$(date +%s.%N)
  "${cmd[@]}" >"$logf" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  gpu_monitor_stop
  local wall
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')
  log "$name finished: exit $rc, wall ${wall} s (log $logf)"
  grep -E "results:|test/acc|val/acc_best|train_time_s|data: source|Error|error:" "$logf" | grep -v "^Epoch" | tail -n 25
  local device
  device=$("$PY" -c 'import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")')
  "$PY" benchmarks/gpu/summarize.py --name "$name" --run-dir "$run_dir" --wall-s "$wall" --smi "$smi" \
    --device "$device" --json "$OUT/${name}_summary.json" --table "$KIT_DIR/summary.md" || true
  # small artefacts (no checkpoints): metrics, config, csv curves, tensorboard events, plots, smi samples
  tar -czf "$OUT/$name.tar.gz" -C "$KIT_DIR" --exclude='*.ckpt' "runs/$name" "$(basename "$smi")" 2>/dev/null || true
  cp "$KIT_DIR/summary.md" "$OUT/summary.md"
  return $rc
}

project_original_adam_base() {  # lower bound of original_adam_base's fit time from model_throughput's training img/s
  "$PY" - "$1" <<'EOF'
import sys
for row in (l for l in open(sys.argv[1]) if l.startswith("| attention56_mini |")):
    c = [x.strip() for x in row.strip().strip("|").split("|")]
    images = 60 * 234 * 128  # original_adam_base: 60 epochs x 234 steps x batch 128
    ips = float(c[6].replace(",", ""))
    print(f"projection: width {c[1]} batch {c[2]} {c[3]} channels_last={c[4]} compile={c[5]}: {ips:,.0f} train img/s "
          f"-> {images / ips:.0f} s for original_adam_base's 60 epochs of training steps alone "
          "(no augmentation, metrics, validation, checkpoints, start-up)")
EOF
}

stage1() {
  log "stage1: wheels, data part a, environment, quick benchmarks"
  install_wheels
  env_report
  [ -f "$PART_A_SRC/manifest.json" ] || die "$PART_A_SRC missing: carry .gpu/a (made by benchmarks/gpu/pack_data.py)"
  rm -rf "$KIT_DIR/a"; cp -r "$PART_A_SRC" "$KIT_DIR/a" || die "cannot stash part a"
  "$PY" benchmarks/gpu/unpack_data.py --parts "$KIT_DIR/a" --check || die "part a damaged"
  log "part a stashed in $KIT_DIR/a: it stays there while the machine is warm (next call within 30 s)"
  if [ "${KIT_BENCH:-1}" = 1 ]; then
    if [ "$DRY" = 1 ]; then
      tp_args=(--quick --device cpu --widths 4); lo_args=(--device cpu --width 4 --steps 4 --reps 1)
    else
      tp_args=(--quick --device cuda); lo_args=(--mode runs --device cuda --width 32 --batch-size 128 --steps 234 --epochs 1 --reps 3 --threads 0)
    fi
    log "model_throughput ${tp_args[*]}"
    timeout 120 "$PY" benchmarks/model_throughput.py "${tp_args[@]}" >"$OUT/model_throughput.txt" 2>&1 \
      || log "model_throughput did not finish (exit $?)"
    grep -E "^\|.*\|$|recommended" "$OUT/model_throughput.txt" | tail -n 12
    project_original_adam_base "$OUT/model_throughput.txt"
    log "loop_overhead ${lo_args[*]}"
    timeout 120 "$PY" benchmarks/loop_overhead.py "${lo_args[@]}" >"$OUT/loop_overhead.txt" 2>"$KIT_DIR/loop_overhead.err" \
      || log "loop_overhead did not finish (exit $?)"
    grep -vE "^Sanity|^Validation|\[A|^Epoch" "$OUT/loop_overhead.txt" | tail -n 12
  fi
  log "stage1 done"
}

stage2() {
  log "stage2: data (part a from stage1 + part b), original_adam_base"
  install_wheels
  [ -f "$PART_B_SRC/manifest.json" ] || die "$PART_B_SRC missing: carry .gpu/b"
  local part_a="$KIT_DIR/a"
  if [ ! -f "$part_a/manifest.json" ]; then
    if [ -f "$PART_A_SRC/manifest.json" ]; then part_a="$PART_A_SRC"
    else die "part a is gone ($KIT_DIR/a): the machine was given back after stage1; run stage1 again, then stage2 within 30 s"; fi
  fi
  "$PY" benchmarks/gpu/unpack_data.py --parts "$part_a" "$PART_B_SRC" --out "$DATA" || die "data verification failed"
  cp "$PART_B_SRC/manifest.json" "$DATA/manifest.json"
  [ -f "$OUT/env.txt" ] || env_report >/dev/null
  run_train original_adam_base "${ORIGINAL_OVERRIDES[@]}" ${KIT_ORIGINAL_EXTRA:-}
  local rc=$?
  log "stage2 done (exit $rc)"
  return $rc
}

stage3() {
  log "stage3: improved"
  install_wheels
  run_train improved "${IMPROVED_OVERRIDES[@]}" ${KIT_IMPROVED_EXTRA:-}
  local rc=$?
  log "stage3 done (exit $rc)"
  echo; cat "$KIT_DIR/summary.md"
  return $rc
}

if [ "$DRY" = 1 ]; then
  log "DRY RUN on CPU: KIT_DIR=$KIT_DIR, python $PY"
  rm -rf "$KIT_DIR"; mkdir -p "$KIT_DIR" "$OUT" "$RUNS"
  PART_A_SRC="$KIT_DIR/pack/a"; PART_B_SRC="$KIT_DIR/pack/b"
  "$PY" benchmarks/gpu/pack_data.py --out "$KIT_DIR/pack" --train-size 512 --val-size 128 --test-size 128 \
    --block 256 --jobs 2 --no-source-hash || die "pack_data failed"
fi

status=0
for stage in "${STAGES[@]}"; do
  "$stage" || status=$?
  if [ "$DRY" = 1 ] && [ "$stage" = stage1 ]; then
    rm -rf "$PART_A_SRC"  # as on the device: the call after stage1 does not carry part a, only the stash has it
  fi
done
if [ "$DRY" = 1 ]; then
  log "dry run finished with status $status; results in $OUT:"; ls -la "$OUT"
fi
exit $status
