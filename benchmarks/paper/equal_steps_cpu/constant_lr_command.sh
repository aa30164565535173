#!/usr/bin/env bash
# Issue 6, fourteenth session: MMSR-d against the 16-8r baseline with a constant learning rate, so that
# each run's curve does not depend on its own schedule's length (with cosine, the run with the shorter
# schedule anneals first and its curve flattens where the other's still climbs).
#
# Run from an empty folder. SEED picks the seed (1: constant_lr_report.md, 2: constant_lr_seed2.md,
# 3: constant_lr_seed3.md). RESUME=1 continues runs cut off part-way (mmsr train --resume), logs appended.
# BASELINE_STEPS is the baseline's budget, snapshotted every 300 steps. Keep it at 1800 for runs that
# `mmsr report` is to pool as seeds: it pools only runs with equal step budgets.
set -euo pipefail
# MMSR_STEPS and MMSR_SNAPSHOTS size MMSR-d (smooth, medium, complex); BASELINE_STEPS should stay their sum.
SEED=${SEED:-1}
BASELINE_STEPS=${BASELINE_STEPS:-1800}
MMSR_STEPS=${MMSR_STEPS:-150,450,1400}
MMSR_SNAPSHOTS=${MMSR_SNAPSHOTS:-4}
DATA=${DATA:-/work/shared/data/train/sun_hays80}
COMMON="$DATA --scale 4 --crop 96 --batch 16 --gan-steps 0 --lr 2e-4 --lr-schedule constant \
  --val-every 250 --early-stop 0 --seed $SEED --devices cpu --threads 1 --no-progress${RESUME:+ --resume}"
# --baseline trains one 16-8r for the sum of --pixel-steps.
( taskset -c 0 mmsr train $COMMON --configs 4-2r,8-6r,16-8r --pixel-steps 150,450,$((BASELINE_STEPS - 600)) \
    --baseline --baseline-config 16-8r --snapshots $((BASELINE_STEPS / 300)) \
    --out const_base.safetensors >> const_base.log 2>&1 ) &
( taskset -c 1 mmsr train $COMMON --configs 4-2r,8-6r,16-8r --pixel-steps $MMSR_STEPS --snapshots $MMSR_SNAPSHOTS \
    --out const_mmsr.safetensors >> const_mmsr.log 2>&1 ) &
wait
