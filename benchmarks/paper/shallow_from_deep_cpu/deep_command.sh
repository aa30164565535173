#!/usr/bin/env bash
# For a seed that has no ../class_crops_cpu run: MMSR-d's 16-8r and the 16-8r baseline, side by side at
# the real CPU size (the settings of ../class_crops_cpu/command.sh). MMSR's shallow classes train only
# 7 steps here (the least --snapshots 7 allows): curve_command.sh replaces them with models cut from
# the 16-8r. Class seeds depend only on --seed and the class index, and the most textured class's crops
# are the same in every mode, so this run's 16-8r is the one MMSR-d and --class-crops and-above train.
# One 1-thread process per core (~70 minutes on the 2-core CPU machines). Run from an empty folder.
set -euo pipefail
SEED=${SEED:-2}
DATA=${DATA:-/work/shared/data/train/sun_hays80}
VAL=${VAL:-/work/shared/data/val/set14}
COMMON="$DATA --scale 4 --crop 96 --batch 16 --gan-steps 0 --lr 2e-4 --lr-schedule constant \
  --val-every 250 --early-stop 0 --seed $SEED --devices cpu --threads 1 --no-progress \
  --configs 4-2r,8-6r,16-8r"
( taskset -c 0 mmsr train $COMMON --pixel-steps 150,450,1200 --baseline --baseline-config 16-8r --snapshots 6 \
    --out base.safetensors > base.log 2>&1 ) &
( taskset -c 1 mmsr train $COMMON --pixel-steps 7,7,1400 --snapshots 7 --out deep.safetensors > deep.log 2>&1 ) &
wait
