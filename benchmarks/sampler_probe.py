"""What a class's training crops cost: ``ClassBatches.next`` for one class of three against one class of all.

On an H200 (thirteenth session) MMSR's 16-8r class took 27.6 ms a step where the 16-8r baseline,
same model and batch, took 24.3 ms. The class's batches come from rejection sampling: about three
candidate crops cut, down-sampled and TVAT-scored for each one kept (``mmsr.data.ClassBatches``),
against one crop and no scoring for the baseline. This times that path and its parts on one device,
so the next GPU session can tell whether it is the 3.3 ms:

- ``next``: one batch as the trainer asks for it (rounds of ``prefetch`` batches, one sync each);
- ``cut``, ``downsample``, ``tvat``: the parts of one round, for as many candidates as a round of
  that class draws.

Prints a Markdown table: ``next`` as the mean over a run of calls, the parts as the median of
``--repeat`` / 5 rounds; synchronised on CUDA.

    python benchmarks/sampler_probe.py device_data/train --device cuda --batch 64 --crop 96
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import mmsr
from mmsr.data import _ROUND_BYTES, ClassBatches, CropSampler, downsample, load_folder, sample_scores
from mmsr.train.calibrate import quantile_boundaries


def _median_ms(fn, device: torch.device, repeat: int) -> float:
    fn()  # warm-up: allocations, kernels' first launch
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train_dir", help="HR training images (the folder `mmsr train` is given)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    device = torch.device(args.device)
    images = load_folder(args.train_dir, min_size=args.crop).images.to(device)
    threshold = mmsr.DEFAULT_TVAT_THRESHOLD
    scores = sample_scores(images, crop=args.crop, scale=args.scale, threshold=threshold, samples=4096)
    boundaries = quantile_boundaries(scores, args.classes)

    print(f"{args.device}, batch {args.batch}, crop {args.crop}, x{args.scale}, boundaries "
          f"{', '.join(f'{b:.4f}' for b in boundaries)}; ms")
    print()
    print("| sampler | next(batch) | candidates a round | cut | downsample | tvat | kept share |")
    print("|---|---|---|---|---|---|---|")
    cases = [("one class (the baseline)", (), 0)] + [
        (f"class {k} of {args.classes}", boundaries, k) for k in range(args.classes)
    ]
    for label, bounds, klass in cases:
        batches = ClassBatches(images, crop=args.crop, scale=args.scale, klass=klass, boundaries=bounds,
                               threshold=threshold, seed=0)  # fmt: skip
        # A round fills several batches, so next() is timed as a run of calls: the mean per batch.
        calls = max(args.repeat, 3 * batches.prefetch)
        per_batch = _median_ms(lambda: [batches.next(args.batch) for _ in range(calls)], device, 1) / calls
        share = batches.kept / batches.drawn
        # One round's parts, for the candidates a round of this class draws (prefetch batches / share,
        # capped as ClassBatches caps a round).
        n = min(round(batches.prefetch * args.batch / share), max(1, _ROUND_BYTES // (3 * args.crop * args.crop)))
        sampler = CropSampler(images, args.crop, seed=1)
        hr = sampler.sample(n)
        lr = downsample(hr, args.scale)
        cut = _median_ms(lambda: sampler.sample(n), device, max(5, args.repeat // 5))
        down = _median_ms(lambda: downsample(hr, args.scale), device, max(5, args.repeat // 5))
        score = _median_ms(lambda: mmsr.tvat(lr, threshold), device, max(5, args.repeat // 5)) if bounds else 0.0
        print(f"| {label} | {per_batch:.2f} | {n} | {cut:.2f} | {down:.2f} | {score:.2f} | {share:.2f} |")
    print()
    print("- next(batch): ms per batch over a run of calls, the rounds' cost spread over the batches they fill.")
    print("- cut / downsample / tvat: ms for one round of that class's candidates (median).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
