#!/usr/bin/env bash
# Probe: do MMSR's shallow classes reach the baseline on their tiles within their budgets (150 / 450
# steps) at a higher learning rate? `--lr` is per class; the complex class keeps 2e-4.
#
# The settings of ../equal_steps_cpu/constant_lr_command.sh (crop 96, batch 16, constant rate, no GAN
# phase, seed 1), paper crops (own). Only the shallow classes train (the complex class 1 step): two
# runs side by side, one 1-thread process per core (~20 minutes on the 2-core CPU machines). Then
# assemble.py gives each bundle the complex-class 16-8r of ABOVE (../class_crops_cpu's bundle of the
# same seed, whose 16-8r is MMSR-d's: the complex class's crops do not depend on --class-crops), and
# compare_bins.py reads them per TVAT class against BASE (that folder's baseline). Analysis only: these
# bundles are not trained runs and no speed is read from them. Run from an empty folder.
set -euo pipefail
SEED=${SEED:-1}
LRS=${LRS:-"6e-4 2e-3"}
DATA=${DATA:-/work/shared/data/train/sun_hays80}
ABOVE=${ABOVE:?the --class-crops and-above bundle of ../class_crops_cpu/command.sh (same SEED)}
BASE=${BASE:?the baseline bundle of that run}
COMMON="$DATA --scale 4 --crop 96 --batch 16 --gan-steps 0 --lr-schedule constant \
  --val-every 250 --early-stop 0 --seed $SEED --devices cpu --threads 1 --no-progress \
  --configs 4-2r,8-6r,16-8r --pixel-steps 150,450,1"
core=0
for lr in $LRS; do
  ( taskset -c $core mmsr train $COMMON --lr "$lr,$lr,2e-4" --out "lr$lr.safetensors" > "lr$lr.log" 2>&1 ) &
  core=$(( (core + 1) % 2 ))
done
wait
bundles=()
for lr in $LRS; do
  python "$(dirname "$0")/assemble.py" "lr${lr}_c2.safetensors" "lr$lr.safetensors" "lr$lr.safetensors" "$ABOVE"
  bundles+=(--bundle "lr$lr=lr${lr}_c2.safetensors")
done
python "$(dirname "$0")/../compare_bins.py" "${bundles[@]}" --bundle "above=$ABOVE" --bundle "baseline=$BASE" \
  --val /work/shared/data/val/set14 --val /work/shared/data/val/set5 > compare_bins.md
