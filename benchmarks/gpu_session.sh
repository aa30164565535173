#!/usr/bin/env bash
# Everything a lent GPU session does, in one command that ends inside the device's 10-minute limit.
# A session has 15 minutes of device time in all, the machine's start (1-2 min) included: keep LIMIT
# at 400 or less so that one rerun fits. Stages (STAGES picks and orders them; default: build, the
# CUDA tests, kernel and Upscaler benchmarks, which check the current kernels):
#   build    build mmsr with its CUDA kernels (sm_90 only, to build fast; CI builds the full list)
#   probe    benchmarks/gpu_probe.py: the CUDA ops against the reference, then a pixel-step timing
#            that sizes the training run to the time left
#   train    the x4 MMSR bundle (3 classes, concurrent on the one GPU) and the 16-8 baseline with the
#            same crops (--baseline), one after the other, nothing else on the GPU; needs probe
#   kernels  TVAT and stitch benchmarks (native vs eager PyTorch)
#   compiled the same against the torch.compile'd references (compiling takes most of its time)
#   tests    the CUDA tests (TESTS_K narrows them with -k)
#   upscale  the Upscaler benchmarks: routed vs deepest, then batching, then inference cuts, each
#            with its own time bound and results file (pytest-benchmark writes one only at the end)
#   levers   one training step under each speed lever (fp32, bf16, channels_last, torch.compile) for
#            LEVERS_CONFIGS (default 4-2r,8-6r,16-8r)
#   sampler  benchmarks/sampler_probe.py: a class's batches (rejection-sampled crops) against the
#            baseline's, batch 64, crop 96 (is it why MMSR's 16-8r steps took 14% longer on the H200?)
#   concurrency benchmarks/concurrency_probe.py: pixel steps of 4-2r, 8-6r and 16-8r alone, then one process
#            each sharing the GPU for 10 s, in fp32 and in bf16: does `mmsr train --concurrent` gain? (~1 min)
#   cosine   the 16-8 baseline with --lr-schedule cosine for COSINE_STEPS steps (same seed, data and
#            validation crops as `train`, so its validation PSNR compares with that run's log)
#   continue MMSR and the baseline go on from the bundles of earlier sessions (mmsr train --init
#            CONTINUE_INIT/{mmsr,baseline}.safetensors, default device_data/init_r3: the residual
#            bundles after round 3 on CPU, the fifth session's), CONTINUE_STEPS pixel steps per class
#            (one number, or one per class: "400,1200,4400"; the baseline their sum), cosine lr from
#            CONTINUE_LR: training budgets add up across sessions
#   paper    benchmarks/paper/run_experiments.py --profile gpu (the paper's three experiments, ~7 min; needs
#            device_data/val): its text results come back in results.tar.gz, to unpack here (the H200
#            image of 2026-11-28 had matplotlib and drew the charts; without it, redraw with --report-only)
#   profile  benchmarks/profile_generator.py on CUDA, bf16, batch 64, the default bundle's configs (where inference time goes)
#   tiling   benchmarks/tiling_tradeoff.py on CUDA: the default bundle on Set14 routed (promote off/on) vs one model,
#            a window per tile vs blocks, and whole images (needs device_data/val)
#   curve    MMSR and the baseline from scratch (as `train`, CURVE_STEPS pixel steps per class, one
#            number or one per class, default 540,1620,5040; the baseline their sum; CURVE_CONFIGS,
#            default the residual 4-2r,8-6r,16-8r; the baseline the last of them) with --snapshots
#            CURVE_SNAPSHOTS and CURVE_SCHEDULE (default cosine; constant reads the curves without
#            either run's annealing), once per seed of CURVE_SEEDS (default "0"; e.g. "0 1 2" with a third of
#            the steps), then `mmsr report --quality` on device_data/val/set14: PSNR-Y against training
#            time, the time each needs at equal quality, and over the seeds
# Each stage is bounded by the time left (and skipped when under half its time is left, since a cut
# run yields nothing) and writes its own results, so a late stage cannot cost an earlier one's.
# Results: $OUT (the device tool brings it back: at most 8 files, 16 MiB each, 2 folders down) or
# runs/gpu_session, packed after every stage: session.log, build_info.json, results.tar.gz (every
# log, table and JSON; no weights) and bundles.tar (the final bundles, when under 15 MiB).
# Training images are read from device_data/train (git-ignored; copy ../shared/data/train there,
# `carry` it).
#
#   LIMIT=400 bash benchmarks/gpu_session.sh                       # check the current kernels (the next session)
#   LIMIT=400 STAGES="build tests upscale tiling compiled" TESTS_K="tvat or upscale or autograd or opcheck" \
#     bash benchmarks/gpu_session.sh
#   LIMIT=400 STAGES="build probe train" bash benchmarks/gpu_session.sh              # the first session's training
#   LIMIT=400 STAGES="build continue profile" CONTINUE_STEPS=2500 bash benchmarks/gpu_session.sh
#   LIMIT=400 STAGES="build curve" CURVE_SEEDS="0 1" CURVE_STEPS=180,540,1680 bash benchmarks/gpu_session.sh   # needs device_data/val
#   LIMIT=500 STAGES="build paper" bash benchmarks/gpu_session.sh     # the paper harness's gpu profile (406 s on an
#                                                                     # H200, 2026-11-28): the next session's call
#   LIMIT=120 STAGES="build sampler levers" bash benchmarks/gpu_session.sh   # why MMSR's class steps cost more
#   LIMIT=520 STAGES="build sampler curve" CURVE_SCHEDULE=constant CURVE_MMSR_MODES="concurrent sequential" \
#     CURVE_STEPS=360,1080,3360 CURVE_REPORT_S=80 bash benchmarks/gpu_session.sh   # bf16 curves, constant rate
#   LIMIT=520 STAGES="build tests curve" TESTS_K=tvat CURVE_MMSR_MODES="concurrent sequential" CURVE_STEPS=360,1080,3360 \
#     CURVE_REPORT_S=80 bash benchmarks/gpu_session.sh   # the thirteenth session's call
set -uo pipefail
export PYTHONUNBUFFERED=1
start=$SECONDS
limit=${LIMIT:-400}
stages=${STAGES:-"build tests kernels upscale"}
out="${OUT:-runs/gpu_session}"
work=device_runs
# Scratch of this call only: a rerun on a still-warm machine must not meet the last call's runs
# (mmsr train refuses to write over them).
rm -rf "$work"
mkdir -p "$out" "$work"
exec > >(tee -a "$out/session.log") 2>&1

left() { echo $((limit - (SECONDS - start))); }
total_steps() {  # total_steps "N" or "N0,N1,N2": what the --baseline run spends (3 classes)
  if [[ $1 == *,* ]]; then echo $(( ${1//,/+} )); else echo $(( $1 * 3 )); fi
}
stage() { echo; echo "=== [$((SECONDS - start)) s elapsed, $(left) s left] $*"; }
bounded() {  # bounded SECONDS CMD...: run CMD for at most SECONDS (and never past the limit)
  local t=$1; shift
  local l; l=$(($(left) - 5))
  if ((l < t / 2 || l < 10)); then echo "skipped (${l} s left of the ${t} s it needs): $*"; return 124; fi
  ((t > l)) && t=$l
  timeout --kill-after=5 "$t" "$@"
}
pack() {  # what has been made so far, in $out: text results in one archive, final bundles in another
  tar czf "$out/results.tar.gz" --exclude='*.pt' --exclude='*.safetensors' "$work" 2>/dev/null
  local bundles; bundles=$(find "$work" -maxdepth 1 -name '*.safetensors')
  if [[ -n $bundles ]]; then
    # shellcheck disable=SC2086
    tar cf "$out/bundles.tar.tmp" $bundles
    if (($(stat -c %s "$out/bundles.tar.tmp") < 15 * 1024 * 1024)); then
      mv "$out/bundles.tar.tmp" "$out/bundles.tar"
    else
      rm -f "$out/bundles.tar.tmp"; echo "bundles over 15 MiB: not brought back"
    fi
  fi
}
bench() {  # bench NAME SECONDS FILE [pytest args]: one benchmark file on CUDA, summarised
  local name=$1 seconds=$2 file=$3; shift 3
  MMSR_BENCH_DEVICE=cuda bounded "$seconds" python -m pytest "$file" --benchmark-only -q -p no:cacheprovider \
    --benchmark-json="$work/bench_$name.json" "$@" 2>&1 | tail -12
  python benchmarks/summarize.py "$work/bench_$name.json" | tee -a "$work/bench.md"
}
train_common=(device_data/train --scale 4 --crop 96 --batch 64 --gan-steps 0 --lr 2e-4 --val-every 500
  --seed 0 --devices cuda:0 --amp bf16 --channels-last --checkpoint-every 1000000 --no-progress)

stage "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

for s in $stages; do
  case $s in
  build)
    stage "build (CUDA, sm_90)"
    CMAKE_ARGS="-DCMAKE_CUDA_ARCHITECTURES=90" MMSR_CUDA=ON \
      bounded 120 python -m pip install --no-build-isolation --no-deps -q . 2>&1 | tail -20
    python -c "import mmsr, json; print(json.dumps(mmsr.build_info()))" | tee "$out/build_info.json"
    ;;
  probe)
    stage "probe: CUDA ops vs reference, step timing"
    # Baseline compute planned from the time left: training gets what remains after ~30 s of probing,
    # ~190 s for the later stages and ~40 s of start-ups; MMSR is expected to take ~0.7 of the baseline.
    budget=$((($(left) - 30 - 190 - 40) * 10 / 17))
    ((budget > 160)) && budget=160
    ((budget < 40)) && budget=40
    bounded 150 python benchmarks/gpu_probe.py --budget "$budget" --batch 64 | tee "$work/probe.txt"
    probe_rc=${PIPESTATUS[0]}
    steps=$(tail -1 "$work/probe.txt")
    ;;
  train)
    if [[ ${probe_rc:-1} == 0 && ${steps:-} =~ ^[0-9]+$ ]]; then
      stage "train MMSR (4-2, 8-6, 16-8; classes concurrent on cuda:0; $steps pixel steps each)"
      bounded 300 python -m mmsr train "${train_common[@]}" --pixel-steps "$steps" --configs 4-2,8-6,16-8 \
        --concurrent --out "$work/mmsr_x4.safetensors" --run-dir "$work/mmsr_x4.run"
      stage "train baseline (16-8, $((steps * 3)) pixel steps: the same crops)"
      bounded 300 python -m mmsr train "${train_common[@]}" --pixel-steps "$steps" --configs 4-2,8-6,16-8 \
        --baseline --out "$work/baseline_x4.safetensors" --run-dir "$work/baseline_x4.run"
      python -m mmsr report mmsr="$work/mmsr_x4.run" baseline="$work/baseline_x4.run" | tee "$work/table3.md"
    else
      stage "training skipped: the probe failed or did not run"
    fi
    ;;
  kernels)
    stage "kernel benchmarks (native vs eager; the torch.compile cases are skipped here for time)"
    bench tvat 50 benchmarks/test_bench_tvat.py -k "not compile"
    bench stitch 50 benchmarks/test_bench_stitch.py -k "not compile"
    ;;
  compiled)
    stage "kernel benchmarks against the torch.compile'd references"
    bench tvat_compiled 120 benchmarks/test_bench_tvat.py -k "compile or native"
    bench stitch_compiled 90 benchmarks/test_bench_stitch.py -k "compile or native"
    ;;
  tests)
    stage "CUDA tests"
    bounded 100 python -m pytest tests -q -k "cuda and (${TESTS_K:-cuda})" -p no:cacheprovider -n 8 --maxfail 30 \
      2>&1 | tail -40 | tee "$work/cuda_tests.txt"
    ;;
  upscale)
    stage "Upscaler benchmarks: routed vs deepest"
    bench upscale_routed 100 benchmarks/test_bench_upscale.py -k routed_vs_deepest
    stage "Upscaler benchmarks: batching"
    bench upscale_batching 120 benchmarks/test_bench_upscale.py -k batching
    stage "Upscaler benchmarks: inference cuts"
    bench upscale_cuts 50 benchmarks/test_bench_upscale.py -k inference_cuts
    ;;
  tiling)
    stage "tiling: routed vs one model, blocks vs a window per tile, default bundle on Set14"
    bounded 120 python benchmarks/tiling_tradeoff.py --device cuda --hr device_data/val/set14 --repeats 3 \
      --max-runs 1,8 --promote off,on --layouts 32/8/4,32/8/4/2 2>&1 | tail -16 | tee "$work/tiling.md"
    ;;
  levers)
    stage "training-speed levers"
    bounded 90 python benchmarks/gpu_probe.py --levers --configs "${LEVERS_CONFIGS:-4-2r,8-6r,16-8r}" --batch 64 \
      | tee "$work/levers.md"
    ;;
  sampler)
    stage "class batches: rejection-sampled crops against one class"
    bounded 60 python benchmarks/sampler_probe.py device_data/train --device cuda --batch 64 --crop 96 \
      | tee "$work/sampler.md"
    ;;
  concurrency)
    stage "MMSR's class configs alone, then sharing the GPU (fp32 and bf16)"
    bounded 150 python benchmarks/concurrency_probe.py --device cuda:0 --configs 4-2r,8-6r,16-8r --batch 64 --crop 96 \
      --window 10 | tee "$work/concurrency.md"
    ;;
  cosine)
    steps=${COSINE_STEPS:-2400}
    stage "16-8 baseline, cosine learning rate, $steps pixel steps"
    # --baseline with a third of the steps per class: exactly the `train` stage's baseline command.
    bounded 200 python -m mmsr train "${train_common[@]}" --pixel-steps $((steps / 3)) --configs 4-2,8-6,16-8 \
      --baseline --lr-schedule cosine --out "$work/cosine_16-8.safetensors" --run-dir "$work/cosine_16-8.run"
    python -c "import json, sys; [print('val', r['step'], round(r['elapsed_s'], 1), r['val_psnr']) for r in map(json.loads, open(sys.argv[1])) if r['event'] == 'val']" \
      "$work/cosine_16-8.run/logs/class0.jsonl"
    ;;
  continue)
    steps=${CONTINUE_STEPS:-3000}
    init=${CONTINUE_INIT:-device_data/init_r3}  # residual CPU bundles after round 3 (init_r, init_r2: rounds 1, 2; init: H100 plain)
    if [[ -f $init/mmsr.safetensors && -f $init/baseline.safetensors ]]; then
      common=("${train_common[@]}" --lr-schedule cosine --lr "${CONTINUE_LR:-1e-4}" --early-stop 0)
      stage "continue MMSR from $init/mmsr.safetensors ($steps pixel steps per class, concurrent)"
      bounded "${CONTINUE_SECONDS:-240}" python -m mmsr train "${common[@]}" --pixel-steps "$steps" \
        --init "$init/mmsr.safetensors" --concurrent --out "$work/mmsr_cont.safetensors" --run-dir "$work/mmsr_cont.run"
      stage "continue the baseline from $init/baseline.safetensors ($(total_steps "$steps") pixel steps: the same crops)"
      bounded "${CONTINUE_SECONDS:-240}" python -m mmsr train "${common[@]}" --pixel-steps "$steps" --baseline \
        --init "$init/baseline.safetensors" --out "$work/baseline_cont.safetensors" --run-dir "$work/baseline_cont.run"
      python -m mmsr report mmsr="$work/mmsr_cont.run" baseline="$work/baseline_cont.run" | tee "$work/table3_cont.md"
    else
      stage "continue skipped: no $init/mmsr.safetensors and $init/baseline.safetensors"
    fi
    ;;
  curve)
    steps=${CURVE_STEPS:-540,1620,5040}  # weighted to the complex class, as on CPU (benchmarks/README)
    # CURVE_SCHEDULE=constant: with cosine, the run with the shorter schedule anneals first and its
    # curve flattens where the other's still climbs, which biases the equal-quality reading.
    snaps=(--snapshots "${CURVE_SNAPSHOTS:-8}" --lr-schedule "${CURVE_SCHEDULE:-cosine}")
    configs=${CURVE_CONFIGS:-4-2r,8-6r,16-8r}
    seeds=(${CURVE_SEEDS:-0})
    specs=()
    # The snapshots are measured here (they are too big to bring back), so the report's time
    # (CURVE_REPORT_S) is kept out of the training's. Each seed gets an equal share of what is left;
    # MMSR may use 45% of it (38% each with two CURVE_MMSR_MODES; it is expected to take ~0.7 of the
    # baseline) and the baseline then gets whatever the seed's share still holds, so time MMSR does
    # not use is not lost. CURVE_MMSR_MODES="concurrent sequential" trains MMSR both ways: its classes
    # sharing the GPU (the one-device figure) and one after another (each class's time alone, from
    # which the separate-devices time is computed).
    report_s=${CURVE_REPORT_S:-100}
    modes=(${CURVE_MMSR_MODES:-concurrent})
    for i in "${!seeds[@]}"; do  # later --seed replaces train_common's --seed 0
      seed=${seeds[$i]}
      remaining=$((${#seeds[@]} - i))
      seed_s=$((($(left) - report_s) / remaining))
      seed_end=$((SECONDS - start + seed_s))
      for mode in "${modes[@]}"; do
        name=mmsr_$mode
        ((${#modes[@]} == 1)) && name=mmsr
        stage "curve: $name ($configs, classes $mode) from scratch, seed $seed, $steps pixel steps per class, ${snaps[1]} snapshots, ${snaps[3]} lr"
        bounded $((seed_s * (${#modes[@]} == 1 ? 45 : 38) / 100)) python -m mmsr train "${train_common[@]}" \
          --seed "$seed" --pixel-steps "$steps" --configs "$configs" "--${mode/sequential/no-concurrent}" "${snaps[@]}" \
          --out "$work/${name}_curve_s$seed.safetensors" --run-dir "$work/${name}_curve_s$seed.run"
        specs+=("$name=$work/${name}_curve_s$seed.run")
      done
      stage "curve: the baseline (${configs##*,}) from scratch, seed $seed, $(total_steps "$steps") pixel steps"
      bounded $((seed_end - (SECONDS - start))) python -m mmsr train "${train_common[@]}" --seed "$seed" \
        --pixel-steps "$steps" --configs "$configs" --baseline --baseline-config "${configs##*,}" "${snaps[@]}" \
        --out "$work/baseline_curve_s$seed.safetensors" --run-dir "$work/baseline_curve_s$seed.run"
      specs+=(baseline="$work/baseline_curve_s$seed.run")
    done
    stage "curve: every snapshot on Set14 (${#seeds[@]} seed(s))"
    bounded $((report_s - 10)) python -m mmsr report "${specs[@]}" --quality device_data/val/set14 --device cuda \
      --out "$work/quality_curve.md" | tail -60
    ;;
  paper)
    stage "the paper's experiments, gpu profile (benchmarks/paper/profiles.py)"
    # Leaves 10 s for packing; the harness writes report.md and results.json only at its end.
    bounded $(($(left) - 10)) python benchmarks/paper/run_experiments.py --profile gpu --data device_data/train \
      --val device_data/val --out "$work/paper_gpu" 2>&1 | grep -v "it/s\|image/s" | tail -40
    ;;
  profile)
    stage "generator profile (CUDA, bf16, batch 64)"
    bounded 60 python benchmarks/profile_generator.py --device cuda --batch 64 --dtype bfloat16 --configs 4-2r,8-6r,16-8r | tee "$work/profile.md"
    ;;
  *) echo "unknown stage $s" ;;
  esac
  pack
done

stage "done"
ls -la "$out"
