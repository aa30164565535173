#!/usr/bin/env bash
# One prepared run for a lent GPU machine: build with CUDA, run the CUDA tests, time the kernels,
# print a short table. Usage (from the repository root): bash benchmarks/gpu_check.sh
# Results land in $OUT when it is set (the device tool brings that folder back), else in ./runs.
set -uo pipefail
out="${OUT:-runs/gpu_check}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"

# The device image has torch, nvcc, cmake, ninja, pybind11 and scikit-build-core but no internet.
MMSR_CUDA=ON python -m pip install --no-build-isolation --no-deps -q . 2>&1 | tail -5
python -c "import mmsr, json; print(json.dumps(mmsr.build_info()))" | tee "$out/build_info.json"

python -m pytest tests -q -x -p no:cacheprovider -k "cuda" 2>&1 | tail -15 | tee "$out/cuda_tests.txt"

MMSR_BENCH_DEVICE=cuda python -m pytest benchmarks --benchmark-only -q -p no:cacheprovider \
  --benchmark-json="$out/bench_cuda.json" 2>&1 | tail -3
python benchmarks/summarize.py "$out/bench_cuda.json" | tee "$out/bench_cuda.md"
python benchmarks/profile_generator.py --device cuda --batch 64 --dtype bfloat16 2>&1 | tee "$out/profile_cuda.txt"
