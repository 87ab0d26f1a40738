#!/usr/bin/env bash
# The full-scale runs (width 32, 60 epochs; README "Results"), one at a time, each in outputs/full/<name>/.
# About 7-10 h each on a 2-core CPU in fp32, about 5 h in bf16 on a 2-core Zen 4 (97 img/s): rerun this script to
# continue, finished runs are skipped and an interrupted one continues with resume=<run dir>.
# Then publish: python -m resattn.report outputs/full/* --out docs/results/full --publish
# Data: export RESATTN_DATA_DIR=<folder with cifar10.npz> (or add data.root=<folder> to each run).
set -u
cd "$(dirname "$0")/../../.."
PY=${PYTHON:-python}
OUT=${FULL_DIR:-outputs/full}
. docs/results/resumable_run.sh  # run <name> <overrides...>
# 56mini-Adam-Base exactly as the original ran it (leaky validation, per-split standardisation); its folder keeps
# the name it was started under (before the study's experiments were renamed seed_* -> original_*):
run seed_adam_base_faithful experiment=original_adam_base data.val_source=original_overlap data.normalization=original
# The headline: the improved recipe, honest protocol.
run improved experiment=improved
