#!/usr/bin/env bash
# The full-scale runs (width 32, 60 epochs; README "Results"), one at a time, each in outputs/full/<name>/.
# About 7-10 h each on a 2-core CPU in fp32 (2.5-3 h where the CPU does bf16 natively): rerun this script to
# continue, finished runs are skipped and an interrupted one continues with resume=<run dir>.
# Then publish: python -m resattn.report outputs/full/* --out docs/results/full --publish
# Data: export RESATTN_DATA_DIR=<folder with cifar10.npz> (or add data.root=<folder> to each run).
set -u
cd "$(dirname "$0")/../../.."
PY=${PYTHON:-python}
OUT=${FULL_DIR:-outputs/full}
run() {  # run <name> <overrides...>
  local name=$1 dir=$OUT/$1; shift
  if grep -qs '"status": "ok"' "$dir/metrics.json"; then echo "done: $name"; return 0; fi
  if [ -e "$dir/checkpoints/last.ckpt" ]; then "$PY" train.py resume="$dir"; else "$PY" train.py "$@" hydra.run.dir="$dir"; fi
}
# 56mini-Adam-Base exactly as the original ran it (leaky validation, per-split standardisation); its folder keeps
# the name it was started under (before the study's experiments were renamed seed_* -> original_*):
run seed_adam_base_faithful experiment=original_adam_base data.val_source=original_overlap data.normalization=original
# The headline: the improved recipe, honest protocol.
run improved experiment=improved
