#!/usr/bin/env bash
# Issue 6, fourteenth session: the seed-1 16-8r baseline with 1400 steps, as many as MMSR-d's complex class
# (150 / 450 / 1400), on a full cosine schedule of its own: equal deep-model steps, per TVAT class.
COMMON="/work/shared/data/train/sun_hays80 --scale 4 --crop 96 --batch 16 --gan-steps 0 --lr 2e-4 --lr-schedule cosine \
  --val-every 250 --early-stop 0 --seed 1 --devices cpu --threads 1 --no-progress"
taskset -c 0 mmsr train $COMMON --configs 4-2r,8-6r,16-8r --pixel-steps 150,450,800 --baseline --baseline-config 16-8r \
    --snapshots 4 --out base1400.safetensors > base1400.log 2>&1
