#!/usr/bin/env bash
# `mmsr train --baseline --baseline-class 2` at the real CPU size, read against a recorded baseline.
#
# Trains only the class-2 model of real_size_command.sh (crop 96, batch 16, constant lr 2e-4, 1400 steps,
# 7 snapshots) and reads it at equal Set14 PSNR-Y against the 1800-step constant-rate baseline that
# ../equal_steps_cpu/constant_lr_command.sh trained for the same seed (BASE=.../const_base.run). CPU
# training is deterministic per seed (the seed-1 baseline retrained by real_size_command.sh logs the
# recorded one's losses exactly), so the baseline's quality curve is the one it would have now; its
# times are not (another session, other load): use the report's steps, not its times. Run from an empty
# folder (~60 minutes); CORE picks the core (default 1). RESUME=1 continues a run cut off part-way.
set -euo pipefail
SEED=${SEED:-2}
CORE=${CORE:-1}
BASE=${BASE:?the recorded baseline run folder (RUN/const_base.run) of this seed}
DATA=${DATA:-/work/shared/data/train/sun_hays80}
VAL=${VAL:-/work/shared/data/val/set14}
taskset -c "$CORE" mmsr train "$DATA" --scale 4 --crop 96 --batch 16 --gan-steps 0 --lr 2e-4 \
  --lr-schedule constant --val-every 250 --early-stop 0 --seed "$SEED" --devices cpu --threads 1 --no-progress \
  ${RESUME:+--resume} --configs 4-2r,8-6r,16-8r --baseline --baseline-config 16-8r --pixel-steps 150,450,1400 \
  --baseline-class 2 --snapshots 7 --out class2.safetensors >> class2.log 2>&1
mmsr report class2=class2.run baseline="$BASE" --baseline baseline --quality "$VAL" --threads 1 > report.md
