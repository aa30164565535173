#!/usr/bin/env bash
# Issue 6, fourteenth session: MMSR-d against the 16-8r baseline with a constant learning rate, seed 1, so that
# each run's curve does not depend on its own schedule's length (with cosine, the run with the shorter
# schedule anneals first and its curve flattens where the other's still climbs).
COMMON="/work/shared/data/train/sun_hays80 --scale 4 --crop 96 --batch 16 --gan-steps 0 --lr 2e-4 --lr-schedule constant \
  --val-every 250 --early-stop 0 --seed 1 --devices cpu --threads 1 --no-progress"
( taskset -c 0 mmsr train $COMMON --configs 4-2r,8-6r,16-8r --pixel-steps 150,450,1200 --baseline --baseline-config 16-8r \
    --snapshots 6 --out const_base.safetensors > const_base.log 2>&1 ) &
( taskset -c 1 mmsr train $COMMON --configs 4-2r,8-6r,16-8r --pixel-steps 150,450,1400 --snapshots 4 \
    --out const_mmsr.safetensors > const_mmsr.log 2>&1 ) &
wait
