#!/usr/bin/env bash
# Follow-up probe: can the shallow models reach the baseline on their tiles at all, given long training
# on every crop they may see? --class-crops and-above, lr 2e-4 (MMSR-d's), seed 1: the 4-2r for 1200
# steps (8x MMSR-d's 150) on one core, the 8-6r for 900 (2x its 450) on the other; the classes a run
# does not study train 1 step. assemble.py then takes class 0 from the first run, class 1 from the
# second and class 2 from ABOVE (../class_crops_cpu's bundle, MMSR-d's seed-1 16-8r), and
# compare_bins.py reads it per TVAT class against BASE. Analysis only. Run from an empty folder
# (~35 minutes on the 2-core CPU machines).
set -euo pipefail
SEED=${SEED:-1}
DATA=${DATA:-/work/shared/data/train/sun_hays80}
ABOVE=${ABOVE:?the --class-crops and-above bundle of ../class_crops_cpu/command.sh (same SEED)}
BASE=${BASE:?the baseline bundle of that run}
COMMON="$DATA --scale 4 --crop 96 --batch 16 --gan-steps 0 --lr 2e-4 --lr-schedule constant \
  --val-every 250 --early-stop 0 --seed $SEED --devices cpu --threads 1 --no-progress \
  --configs 4-2r,8-6r,16-8r --class-crops and-above"
( taskset -c 0 mmsr train $COMMON --pixel-steps 1200,1,1 --out smooth_long.safetensors > smooth_long.log 2>&1 ) &
( taskset -c 1 mmsr train $COMMON --pixel-steps 1,900,1 --out medium_long.safetensors > medium_long.log 2>&1 ) &
wait
python "$(dirname "$0")/assemble.py" long.safetensors smooth_long.safetensors medium_long.safetensors "$ABOVE"
python "$(dirname "$0")/../compare_bins.py" --bundle long=long.safetensors --bundle "above=$ABOVE" \
  --bundle "baseline=$BASE" --val /work/shared/data/val/set14 --val /work/shared/data/val/set5 > compare_bins_long.md
