#!/usr/bin/env bash
# Time to accuracy of improved at scale=cpu (width 16) on one CPU: three budgets of the same recipe, one at a time,
# each in outputs/time_to_accuracy/<name>/ (the one-cycle schedule follows trainer.max_epochs). Rerun to continue:
# finished runs are skipped, an interrupted one resumes. Then publish (the stars: the original's point, and the
# 26-epoch bf16 run of docs/results/cpu_scale on a Zen 4):
#   python -m resattn.report outputs/time_to_accuracy/* --out docs/results/time_to_accuracy --publish --time-to-accuracy \
#     --title "improved at CPU scale: test accuracy against training time" \
#     --reference "original 56mini-Adam-Base (full width, P100, leaky val.):76.8:0.7854" \
#     --reference "improved, 26 epochs, bf16 on a 2-core Zen 4 (cpu_scale):27.6:0.8855"
# Data: export RESATTN_DATA_DIR=<folder with cifar10.npz> (or add data.root=<folder> to each run).
set -u
cd "$(dirname "$0")/../../.."
PY=${PYTHON:-python}
OUT=${STUDY_DIR:-outputs/time_to_accuracy}
. docs/results/resumable_run.sh  # run <name> <overrides...>
run improved_16ep experiment=improved scale=cpu trainer.max_epochs=16
run improved_6ep experiment=improved scale=cpu trainer.max_epochs=6
run improved_4ep experiment=improved scale=cpu trainer.max_epochs=4
