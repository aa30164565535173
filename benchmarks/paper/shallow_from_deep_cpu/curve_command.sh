#!/usr/bin/env bash
# Probe: MMSR's shallow classes cut from its deep class's 16-8r and fine-tuned, read along the 16-8r's
# training. For each 16-8r snapshot J of ABOVE_RUN (../class_crops_cpu's --class-crops and-above run,
# whose 16-8r is MMSR-d's), truncate.py gives the 4-2r the 16-8r's first 4 blocks and the 8-6r its
# first 8, then `mmsr train --init` fine-tunes them for STEPS steps each (--class-crops and-above,
# lr 2e-4, the run's settings); the 16-8r trains 1 step there, and assemble.py takes the uncut
# snapshot J back from the truncated bundle. Two snapshots at a time, one 1-thread process per core. Analysis only: the bundles'
# one-device time is the 16-8r's time to J (measured side by side with the baseline) plus the two
# fine-tunes' times (their summary.json), added up by curve.py.
set -euo pipefail
SEED=${SEED:-1}
DATA=${DATA:-/work/shared/data/train/sun_hays80}
ABOVE_RUN=${ABOVE_RUN:?the .run folder of ../class_crops_cpu/command.sh (same SEED)}
ABOVE=${ABOVE:?the bundle of that run}
SNAPSHOTS=${SNAPSHOTS:-"4 5 6 7"}
STEPS=${STEPS:-100}
HERE=$(dirname "$0")
COMMON="$DATA --scale 4 --crop 96 --batch 16 --gan-steps 0 --lr 2e-4 --lr-schedule constant \
  --val-every 250 --early-stop 0 --seed $SEED --devices cpu --threads 1 --no-progress --class-crops and-above"
fine_tune() {  # $1 snapshot index, $2 core
  local j=$1 tag; tag=$(printf 'j%s_s%s' "$1" "$STEPS")
  python "$HERE/truncate.py" "cut_$tag.safetensors" "$ABOVE" "$ABOVE_RUN/snapshots/class2/00$j.safetensors"
  taskset -c "$2" mmsr train $COMMON --init "cut_$tag.safetensors" --pixel-steps "$STEPS,$STEPS,1" \
    --out "ft_$tag.safetensors" > "ft_$tag.log" 2>&1
  python "$HERE/../shallow_lr_cpu/assemble.py" "mmsr_$tag.safetensors" "ft_$tag.safetensors" "ft_$tag.safetensors" \
    "cut_$tag.safetensors"
}
set -- $SNAPSHOTS
while [ $# -gt 0 ]; do
  fine_tune "$1" 0 & 
  if [ $# -gt 1 ]; then fine_tune "$2" 1 & shift; fi
  shift; wait
done
