"""Do MMSR's class processes gain from sharing one GPU? Pixel steps alone, then all at once.

`mmsr train --concurrent` (its default with --amp bf16 when classes outnumber GPUs) trains each class
in a process of its own on the shared device. That pays only where one process leaves the GPU idle.
This probe measures it directly for each precision mode:

1. alone: each config's pixel step (L1, fused Adam, random data: `gpu_probe.step_ms`) in this
   process, nothing else on the device;
2. together: one process per config, all stepping for the same window after a shared barrier; each
   counts its steps.

The gain is the work the processes did together, priced at their alone step times, over the window:
1.0 means sharing did exactly what one process would have done in that time, above 1 it gained.

    python benchmarks/concurrency_probe.py --device cuda:0 --configs 4-2r,8-6r,16-8r --batch 64 --crop 96

On an H200 (2026-11-28): fp32 0.90x, fp32 + channels_last 0.93x, bf16 + channels_last 1.55x
(`benchmarks/README.md`), which is why `mmsr train` shares a GPU by default only in bf16.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Dict, List, Sequence

import torch
import torch.multiprocessing as mp

from gpu_probe import pixel_stepper, step_ms, sync
from mmsr.models import ModelConfig

MODES = {  # --modes key -> (title, bf16 autocast, channels_last)
    "fp32": ("fp32 (TF32 convs) + channels_last", False, True),
    "bf16": ("bf16 autocast + channels_last", True, True),
    "fp32-nchw": ("fp32 (TF32 convs), NCHW (mmsr train's defaults)", False, False),
}


def _allow_tf32(device: str) -> None:
    if device.startswith("cuda"):  # as mmsr train on a GPU: TF32 matmuls and convs in fp32
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def alone_ms(config: str, scale: int, batch: int, crop: int, device: str, bf16: bool, channels_last: bool,
             steps: int, warmup: int) -> float:
    """Milliseconds per step of ``config`` with nothing else on the device."""
    _allow_tf32(device)
    return step_ms(config, batch, crop, scale, device, bf16=bf16, channels_last=channels_last, steps=steps,
                   warmup=warmup)


def _together_worker(rank: int, config: str, settings: dict, barrier, results) -> None:
    torch.set_num_threads(settings["threads"])
    _allow_tf32(settings["device"])
    step = pixel_stepper(config, settings["batch"], settings["crop"], settings["scale"], settings["device"],
                         bf16=settings["bf16"], channels_last=settings["channels_last"])
    for _ in range(settings["warmup"]):
        step()
    sync(settings["device"])
    barrier.wait()
    start = time.perf_counter()
    done = 0
    while time.perf_counter() - start < settings["window_s"]:
        step()
        done += 1
        if done % 5 == 0:
            sync(settings["device"])  # keep the count honest: no more than a few steps queued ahead
    sync(settings["device"])
    results[rank] = (done, time.perf_counter() - start)


def together(configs: Sequence[str], settings: dict) -> List[tuple]:
    """(steps, seconds) of each config's process, all stepping at once for ``settings['window_s']``."""
    context = mp.get_context("spawn")
    barrier = context.Barrier(len(configs))
    manager = context.Manager()
    results = manager.dict()
    processes = [context.Process(target=_together_worker, args=(rank, config, settings, barrier, results))
                 for rank, config in enumerate(configs)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    failed = [c for c, p in zip(configs, processes) if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"the processes of {', '.join(failed)} failed; see their errors above")
    return [results[rank] for rank in range(len(configs))]


def probe(configs: Sequence[str], *, scale: int, batch: int, crop: int, device: str, steps: int, warmup: int,
          window_s: float, threads: int, modes: Sequence[str]) -> str:
    """The Markdown tables, one per precision mode."""
    torch.set_num_threads(threads)  # alone with as many CPU threads as each process has together
    lines = [f"{device}, batch {batch}, crop {crop}, x{scale}; alone: {steps} steps after {warmup} warm-up; "
             f"together: one process per config for {window_s:g} s after a shared barrier", ""]
    for mode in modes:
        title, bf16, channels_last = MODES[mode]
        alone: Dict[str, float] = {c: alone_ms(c, scale, batch, crop, device, bf16, channels_last, steps, warmup)
                                   for c in configs}
        settings = dict(scale=scale, batch=batch, crop=crop, device=device, bf16=bf16, channels_last=channels_last,
                        warmup=warmup, window_s=window_s, threads=threads)
        shared = together(configs, settings)
        work_s = sum(done * alone[c] / 1e3 for c, (done, _) in zip(configs, shared))
        window = max(seconds for _, seconds in shared)
        lines += [f"**{title}**", "", "| config | alone ms/step | together ms/step | steps together |", "|---|---|---|---|"]
        for config, (done, seconds) in zip(configs, shared):
            lines.append(f"| {config} | {alone[config]:.2f} | {seconds / max(done, 1) * 1e3:.2f} | {done} |")
        lines += ["", f"Work done together, at the alone step times: {work_s:.2f} s in {window:.2f} s: "
                  f"**{work_s / window:.2f}×** what one process does in that time.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Pixel steps of each config alone, then all at once in one process "
                                     "each on the same device: does sharing it gain?")
    parser.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--configs", default="4-2r,8-6r,16-8r")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--steps", type=int, default=30, help="timed steps alone (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (default: %(default)s)")
    parser.add_argument("--window", type=float, default=10.0, help="seconds the processes step together")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per process, alone and together "
                        "(default: %(default)s)")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="precision modes, comma-separated (default: %(default)s): "
                        + "; ".join(f"{key}: {title}" for key, (title, _, _) in MODES.items()))
    args = parser.parse_args(argv)
    configs = [c for c in args.configs.split(",") if c]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for mode in modes:
        if mode not in MODES:
            parser.error(f"--modes: unknown mode {mode!r}; choose from {', '.join(MODES)}")
    for config in configs:
        try:
            ModelConfig.parse(config)
        except ValueError as err:
            parser.error(f"--configs: {err}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA GPU here")
    if min(args.steps, args.warmup + 1, args.batch, args.crop, args.threads) < 1 or args.window <= 0 or args.crop % args.scale:
        parser.error("--steps, --batch, --crop and --threads must be positive, --warmup at least 0, --window above 0, "
                     "--crop a multiple of --scale")
    print(probe(configs, scale=args.scale, batch=args.batch, crop=args.crop, device=args.device, steps=args.steps,
                warmup=args.warmup, window_s=args.window, threads=args.threads, modes=modes), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
