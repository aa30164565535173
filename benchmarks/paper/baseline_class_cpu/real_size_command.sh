#!/usr/bin/env bash
# `mmsr train --baseline --baseline-class 2` against the plain baseline at the real CPU size.
#
# The settings of ../equal_steps_cpu/constant_lr_command.sh (crop 96, batch 16, constant lr 2e-4, no GAN
# phase): the baseline is that script's 16-8r of 1800 steps on every crop (6 snapshots, as there), the
# other a 16-8r of 1400 steps, MMSR-d's complex-class budget, on the most textured third of the crops
# (TVAT class 2 of the split MMSR calibrates; 7 snapshots, every 200 steps). Then `mmsr report --quality`
# reads them at equal Set14 PSNR-Y. Run from an empty folder. RESUME=1 continues runs cut off part-way
# (mmsr train --resume), logs appended.
#
# Without BASE: both train side by side, one 1-thread process per core, so both run beside the same
# neighbour (~85 minutes on the 2-core CPU machines).
# With BASE=.../const_base.run (the baseline constant_lr_command.sh recorded for the same SEED): only the
# class-2 model trains, on core CORE (default 1), and is read against that run (~60 minutes). CPU training
# is deterministic per seed (the seed-1 baseline retrained here logs the recorded one's losses exactly),
# so the recorded baseline's quality curve is the one it would have now; its times are not (another
# session, other load): use the report's steps, not its times.
set -euo pipefail
SEED=${SEED:-1}
CORE=${CORE:-1}
DATA=${DATA:-/work/shared/data/train/sun_hays80}
VAL=${VAL:-/work/shared/data/val/set14}
COMMON="$DATA --scale 4 --crop 96 --batch 16 --gan-steps 0 --lr 2e-4 --lr-schedule constant \
  --val-every 250 --early-stop 0 --seed $SEED --devices cpu --threads 1 --no-progress${RESUME:+ --resume} \
  --configs 4-2r,8-6r,16-8r --baseline --baseline-config 16-8r"
if [[ -z "${BASE:-}" ]]; then
  BASE=base.run
  ( taskset -c 0 mmsr train $COMMON --pixel-steps 150,450,1200 --snapshots 6 \
      --out base.safetensors >> base.log 2>&1 ) &
  CORE=1
fi
( taskset -c "$CORE" mmsr train $COMMON --pixel-steps 150,450,1400 --baseline-class 2 --snapshots 7 \
    --out class2.safetensors >> class2.log 2>&1 ) &
wait
mmsr report class2=class2.run baseline="$BASE" --baseline baseline --quality "$VAL" --threads 2 > report.md
