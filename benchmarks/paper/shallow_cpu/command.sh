#!/usr/bin/env bash
# Issue 6, thirteenth session: do more pixel steps close MMSR's shallow-class gaps? Seed 1, the seventh
# session's CPU settings (benchmarks/README.md, "From scratch, steps weighted to the complex class").
# Core A: the 16-8r baseline. Core B: MMSR-d with 3x the shallow steps (450 / 1350 / 1400), then the
# original split's shallow classes alone (150 / 450, complex 1 step) for the per-class comparison.
COMMON="/work/shared/data/train/sun_hays80 --scale 4 --crop 96 --batch 16 --gan-steps 0 --lr 2e-4 --lr-schedule cosine \
  --val-every 250 --early-stop 0 --seed 1 --devices cpu --threads 1 --no-progress"
( taskset -c 0 mmsr train $COMMON --configs 4-2r,8-6r,16-8r --pixel-steps 1000 --baseline --baseline-config 16-8r \
    --snapshots 10 --out base.safetensors > base.log 2>&1 ) &
( taskset -c 1 mmsr train $COMMON --configs 4-2r,8-6r,16-8r --pixel-steps 450,1350,1400 --snapshots 4 \
    --out mmsr_more.safetensors > mmsr_more.log 2>&1
  taskset -c 1 mmsr train $COMMON --configs 4-2r,8-6r,16-8r --pixel-steps 150,450,1 \
    --out mmsr_orig_shallow.safetensors > mmsr_orig_shallow.log 2>&1 ) &
wait
