#!/usr/bin/env bash
# Everything a lent GPU session does, in one command that ends inside the device's 10-minute limit:
#   1. build mmsr with its CUDA kernels (sm_90 only, to build fast; CI builds the full list);
#   2. benchmarks/gpu_probe.py: the CUDA ops against the reference, then a pixel-step timing that
#      sizes the training run to the time left;
#   3. train the x4 MMSR bundle (3 classes, concurrent on the one GPU) and the 16-8 baseline with
#      the same crops (--baseline), one after the other, nothing else on the GPU;
#   4. kernel benchmarks (TVAT, stitch), the CUDA tests, the Upscaler benchmarks, each bounded by the
#      time left and each writing its own results, so a late stage cannot cost an earlier one's.
# Results: $OUT (the device tool brings it back) or runs/gpu_session. Training images are read from
# device_data/train (git-ignored; copy ../shared/data/train there and name device_data in `carry`).
#
#   LIMIT=585 bash benchmarks/gpu_session.sh
set -uo pipefail
export PYTHONUNBUFFERED=1
start=$SECONDS
limit=${LIMIT:-585}
out="${OUT:-runs/gpu_session}"
work=device_runs
mkdir -p "$out" "$work"
exec > >(tee -a "$out/session.log") 2>&1

left() { echo $((limit - (SECONDS - start))); }
stage() { echo; echo "=== [$((SECONDS - start)) s elapsed, $(left) s left] $*"; }
bounded() {  # bounded SECONDS CMD...: run CMD for at most SECONDS (and never past the limit)
  local t=$1; shift
  local l; l=$(left)
  ((t > l - 5)) && t=$((l - 5))
  if ((t < 10)); then echo "skipped (no time left): $*"; return 124; fi
  timeout --kill-after=5 "$t" "$@"
}

stage "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

stage "build (CUDA, sm_90)"
CMAKE_ARGS="-DCMAKE_CUDA_ARCHITECTURES=90" MMSR_CUDA=ON \
  bounded 240 python -m pip install --no-build-isolation --no-deps -q . 2>&1 | tail -20
python -c "import mmsr, json; print(json.dumps(mmsr.build_info()))" | tee "$out/build_info.json"

stage "probe: CUDA ops vs reference, step timing"
# Baseline compute planned from the time left: the training stage gets what remains after ~30 s of
# probing, ~190 s for the later stages and ~40 s of start-ups; MMSR is expected to take ~0.7 of the
# baseline's time.
budget=$(( ($(left) - 30 - 190 - 40) * 10 / 17 ))
((budget > 160)) && budget=160
((budget < 40)) && budget=40
bounded 150 python benchmarks/gpu_probe.py --budget "$budget" --batch 64 | tee "$work/probe.txt"
probe_rc=${PIPESTATUS[0]}
steps=$(tail -1 "$work/probe.txt")

train_common=(device_data/train --scale 4 --crop 96 --batch 64 --pixel-steps "$steps" --gan-steps 0
  --lr 2e-4 --val-every 500 --seed 0 --devices cuda:0 --amp bf16 --channels-last
  --checkpoint-every 1000000 --no-progress)
if [[ $probe_rc == 0 && $steps =~ ^[0-9]+$ ]]; then
  stage "train MMSR (4-2, 8-6, 16-8; classes concurrent on cuda:0; $steps pixel steps each)"
  bounded 300 python -m mmsr train "${train_common[@]}" --configs 4-2,8-6,16-8 --concurrent \
    --out "$work/mmsr_x4.safetensors" --run-dir "$work/mmsr_x4.run"
  stage "train baseline (16-8, $((steps * 3)) pixel steps: the same crops)"
  bounded 300 python -m mmsr train "${train_common[@]}" --configs 4-2,8-6,16-8 --baseline \
    --out "$work/baseline_x4.safetensors" --run-dir "$work/baseline_x4.run"
  python -m mmsr report mmsr="$work/mmsr_x4.run" baseline="$work/baseline_x4.run" | tee "$work/table3.md"
else
  stage "training skipped: the probe failed (rc $probe_rc)"
fi

stage "kernel benchmarks (native vs eager; the torch.compile cases are skipped here for time)"
for b in tvat stitch; do
  MMSR_BENCH_DEVICE=cuda bounded 50 python -m pytest "benchmarks/test_bench_$b.py" --benchmark-only -q \
    -k "not compile" -p no:cacheprovider --benchmark-json="$work/bench_$b.json" 2>&1 | tail -3
  python benchmarks/summarize.py "$work/bench_$b.json" | tee -a "$work/bench.md"
done

stage "CUDA tests"
bounded 100 python -m pytest tests -q -k cuda -p no:cacheprovider -n 8 --maxfail 30 2>&1 | tail -40 \
  | tee "$work/cuda_tests.txt"

stage "Upscaler benchmarks"
MMSR_BENCH_DEVICE=cuda bounded 70 python -m pytest benchmarks/test_bench_upscale.py --benchmark-only -q \
  -p no:cacheprovider --benchmark-json="$work/bench_upscale.json" 2>&1 | tail -3
python benchmarks/summarize.py "$work/bench_upscale.json" | tee -a "$work/bench.md"

stage "pack"
cp "$work"/*.safetensors "$out"/ 2>/dev/null
tar czf "$out/results.tar.gz" --exclude='*.pt' --exclude='*.safetensors' "$work"
ls -la "$out"
stage "done"
