#!/usr/bin/env bash
# `mmsr train --baseline --baseline-class 2` against the plain baseline, side by side, from scratch.
#
# Both train one 16-8r at the paper harness's cpu-profile settings (crop 64, batch 8, constant lr 2e-4,
# seed 0): the baseline on every crop for 1350 steps (the sum of MMSR's 101 + 304 + 945), the other on
# the most textured third of the crops (TVAT class 2 of the split MMSR calibrates) for class 2's 945.
# One 1-thread process per core, so both run beside the same neighbour; then `mmsr report --quality`
# reads them at equal Set14 PSNR-Y. Run from an empty folder (~15 minutes on the 2-core CPU machines).
set -euo pipefail
SEED=${SEED:-0}
DATA=${DATA:-/work/shared/data/train/sun_hays80}
VAL=${VAL:-/work/shared/data/val/set14}
COMMON="$DATA --classes 3 --configs 4-2r,8-6r,16-8r --pixel-steps 101,304,945 --gan-steps 0 --baseline \
  --baseline-config 16-8r --snapshots 6 --crop 64 --batch 8 --lr 2e-4 --lr-schedule constant --val-every 100 \
  --early-stop 0 --seed $SEED --devices cpu --threads 1 --no-progress"
( taskset -c 0 mmsr train $COMMON --out base.safetensors > base.log 2>&1 ) &
( taskset -c 1 mmsr train $COMMON --baseline-class 2 --out class2.safetensors > class2.log 2>&1 ) &
wait
mmsr report class2=class2.run baseline=base.run --baseline baseline --quality "$VAL" --threads 2 > report.md
