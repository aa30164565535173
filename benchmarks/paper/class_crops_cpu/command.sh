#!/usr/bin/env bash
# MMSR-d with `--class-crops and-above` against the 16-8r baseline, side by side at the real CPU size.
#
# Why: read per TVAT class, MMSR's shallow classes lose to the baseline on their own tiles (seed 1:
# -0.30 dB smooth, -0.14 dB medium), and a 16-8r trained on the smooth class's crops does no better
# (../shallow_cpu/): those crops alone do not teach smooth tiles, while a 16-8r trained on the most
# textured crops matches the baseline on every kind of tile (../baseline_class_cpu/). With and-above,
# class k trains on crops of class k and every more textured class (the 4-2r on every crop, the 8-6r
# on the medium and complex two thirds, the 16-8r unchanged), still routed by TVAT at inference.
#
# The settings of ../equal_steps_cpu/constant_lr_command.sh (crop 96, batch 16, constant lr 2e-4, no GAN
# phase, MMSR-d's budgets 150 / 450 / 1400 against the baseline's 1800), with 7 snapshots for MMSR
# (its 16-8r every 200 steps) and the baseline's 6. One 1-thread process per core, both beside the same
# neighbour (~80 minutes on the 2-core CPU machines). Class seeds depend only on --seed and the class
# index, and the most textured class's crops are the same in both modes, so this run's 16-8r is the
# recorded MMSR-d's of the same seed: only the shallow classes' crops differ. Run from an empty folder;
# RESUME=1 continues runs cut off part-way (mmsr train --resume), logs appended.
set -euo pipefail
SEED=${SEED:-1}
DATA=${DATA:-/work/shared/data/train/sun_hays80}
VAL=${VAL:-/work/shared/data/val/set14}
COMMON="$DATA --scale 4 --crop 96 --batch 16 --gan-steps 0 --lr 2e-4 --lr-schedule constant \
  --val-every 250 --early-stop 0 --seed $SEED --devices cpu --threads 1 --no-progress${RESUME:+ --resume} \
  --configs 4-2r,8-6r,16-8r"
( taskset -c 0 mmsr train $COMMON --pixel-steps 150,450,1200 --baseline --baseline-config 16-8r --snapshots 6 \
    --out base.safetensors >> base.log 2>&1 ) &
( taskset -c 1 mmsr train $COMMON --pixel-steps 150,450,1400 --class-crops and-above --snapshots 7 \
    --out above.safetensors >> above.log 2>&1 ) &
wait
mmsr report above=above.run baseline=base.run --baseline baseline --quality "$VAL" --threads 2 > report.md
