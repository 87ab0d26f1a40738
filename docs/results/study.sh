#!/usr/bin/env bash
# The study at the earlier CPU scale (README "Results", rows marked w8), one run at a time, each in
# outputs/study/<name>/. improved ran at width 8 for 24 epochs without TTA then: W8 below reproduces that today.
# Rerun to continue: finished runs are skipped, an interrupted one continues with resume=<run dir>.
# Then publish: python -m resattn.report outputs/study/* --out docs/results --publish
# Data: export RESATTN_DATA_DIR=<folder with cifar10.npz> (or add data.root=<folder> to each run).
set -u
W8="model.width=8 trainer.max_epochs=24 tta=none val_tta=null"
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python}
OUT=${STUDY_DIR:-outputs/study}
. docs/results/resumable_run.sh  # run <name> <overrides...>
run improved experiment=improved scale=cpu $W8
run original_sgd_base experiment=original_sgd_base scale=cpu
run original_adam_base experiment=original_adam_base scale=cpu
run improved_seed1 experiment=improved scale=cpu seed=1 $W8
run improved_nal experiment=improved scale=cpu model.attention=nal $W8
run improved_none experiment=improved scale=cpu model.attention=none $W8
run original_regularized experiment=original_regularized scale=cpu
run original_mini_paper experiment=original_mini_paper scale=cpu
run original_attention56 experiment=original_attention56 scale=cpu
# Issue 13's label-noise demonstration (arl vs none at p = 0.3, two seeds), published in docs/results/label_noise/:
run improved_noise30 experiment=improved scale=cpu data.label_noise=0.3 $W8
run improved_noise30_none experiment=improved scale=cpu data.label_noise=0.3 model.attention=none $W8
run improved_noise30_seed1 experiment=improved scale=cpu data.label_noise=0.3 seed=1 $W8
run improved_noise30_none_seed1 experiment=improved scale=cpu data.label_noise=0.3 model.attention=none seed=1 $W8
