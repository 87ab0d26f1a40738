#!/usr/bin/env bash
# improved at the retuned scale=cpu (width 16, 26 epochs; README "Results"), one run at a time, each in
# outputs/cpu_scale/<name>/. Rerun to continue: finished runs are skipped, an interrupted one resumes.
# Then publish: python -m resattn.report outputs/cpu_scale/* --out docs/results/cpu_scale --publish
# (shorter budgets of the same recipe, the time-to-accuracy picture: ../time_to_accuracy/run.sh)
# Data: export RESATTN_DATA_DIR=<folder with cifar10.npz> (or add data.root=<folder> to each run).
set -u
cd "$(dirname "$0")/../../.."
PY=${PYTHON:-python}
OUT=${STUDY_DIR:-outputs/cpu_scale}
. docs/results/resumable_run.sh  # run <name> <overrides...>
run improved experiment=improved scale=cpu
run improved_seed1 experiment=improved scale=cpu seed=1
# The attention ablation at this scale, two seeds each (published: ../cpu_scale_ablation/, fp32 on a Zen 3; no
# attention's second seed and, on that CPU without native bf16, improved itself in fp32 are running: docs/results.md).
run improved_nal experiment=improved scale=cpu model.attention=nal
run improved_nal_seed1 experiment=improved scale=cpu model.attention=nal seed=1
run improved_none experiment=improved scale=cpu model.attention=none
run improved_none_seed1 experiment=improved scale=cpu model.attention=none seed=1
