"""First minute on a lent GPU: check the CUDA ops against the reference, then size the training run.

1. Smoke check: every op (vsp, tvat in each dtype and layout, classify, tile, stitch in each blend)
   on CUDA against ``mmsr.reference`` on the CPU. A mismatch exits with status 1, so the training
   that follows (which scores crops with these kernels) is not started on broken kernels.
2. Step timing: one pixel-phase training step (L1, Adam, bf16 autocast, channels_last) of each
   class config at the given batch, so ``--budget`` seconds of baseline training can be turned into
   a step count. Prints a JSON line, then the per-class step count alone on the last line.

    python benchmarks/gpu_probe.py --budget 160 --configs 4-2,8-6,16-8 --baseline 16-8
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F

import mmsr
from mmsr import reference
from mmsr.models import Generator, ModelConfig


def _close(name: str, got: torch.Tensor, want: torch.Tensor, failures: list, rtol=1e-4, atol=1e-5) -> None:
    try:
        torch.testing.assert_close(got.cpu(), want.cpu(), rtol=rtol, atol=atol, check_dtype=False)
    except AssertionError as err:
        failures.append(f"{name}: {str(err).splitlines()[0]}")


def smoke(device: str) -> list[str]:
    failures: list[str] = []
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.uint8):
        for shape in ((5, 3, 64, 64), (2, 1, 17, 33), (1, 3, 1, 1), (3, 4, 2, 130)):
            x = torch.rand(shape, generator=g)
            x = (x * 255).to(torch.uint8) if dtype == torch.uint8 else x.to(dtype)
            for layout in ("contiguous", "channels_last", "view"):
                xc = x.to(memory_format=torch.channels_last) if layout == "channels_last" else x
                xd = xc.to(device)
                if layout == "view":
                    xd = torch.cat([xd, xd], dim=-1)[..., : shape[-1]]
                name = f"{dtype} {shape} {layout}"
                _close(f"vsp {name}", mmsr.vsp(xd), reference.vsp(x), failures)
                for threshold in (0.0, mmsr.DEFAULT_TVAT_THRESHOLD, 0.5):
                    _close(f"tvat {name} t={threshold}", mmsr.tvat(xd, threshold), reference.tvat(x, threshold), failures)
    big = torch.rand(64, 3, 64, 64, generator=g)
    _close("tvat 64x3x64x64", mmsr.tvat(big.to(device)), reference.tvat(big, mmsr.DEFAULT_TVAT_THRESHOLD), failures)
    image = torch.rand(1, 3, 1356, 2040, generator=g)
    _close("tvat image", mmsr.tvat(image.to(device)), reference.tvat(image, mmsr.DEFAULT_TVAT_THRESHOLD), failures)

    scores = torch.rand(1000, generator=g) * 0.3
    for bounds in ([0.05, 0.15], [], [0.1]):
        _close(f"classify {bounds}", mmsr.classify(scores.to(device), bounds), reference.classify(scores, bounds), failures)

    for (h, w, t, o) in ((100, 77, 32, 8), (5, 9, 32, 8), (64, 64, 16, 15), (300, 200, 48, 0)):
        x = torch.rand(2, 3, h, w, generator=g)
        tiles, grid = mmsr.tile(x.to(device), t, o)
        _close(f"tile {h}x{w} t{t} o{o}", tiles, reference.tile(x, grid), failures)
        for scale in (1, 4):
            sr = torch.rand(tiles.shape[0], 3, grid.tile_h * scale, grid.tile_w * scale, generator=g)
            for blend in ("mean", "linear", "cosine"):
                _close(
                    f"stitch {h}x{w} t{t} o{o} x{scale} {blend}",
                    mmsr.stitch(sr.to(device), grid, scale, blend),
                    reference.stitch(sr, grid, scale, blend),
                    failures,
                )
        for blend in ("mean", "linear", "cosine"):
            _close(f"stitch(tile(x)) {blend}", mmsr.stitch(tiles, grid, 1, blend), x, failures)
    if device != "cpu":
        torch.cuda.synchronize()
    return failures


def sync(device: str) -> None:
    """Wait for ``device``'s queued work (nothing to wait for on the CPU)."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)


def pixel_stepper(config: str, batch: int, crop: int, scale: int, device: str, *, bf16: bool = True,
                  channels_last: bool = True, compile: bool = False):
    """One pixel-phase training step of ``config`` (L1, Adam, random data), as the trainer runs it, as a callable."""
    torch.manual_seed(0)
    on_cuda = str(device).startswith("cuda")
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = Generator.from_config(ModelConfig.parse(config), scale).to(device, memory_format=layout)
    forward = torch.compile(model) if compile else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=on_cuda)
    lr = torch.rand(batch, 3, crop // scale, crop // scale, device=device).contiguous(memory_format=layout)
    hr = torch.rand(batch, 3, crop, crop, device=device).contiguous(memory_format=layout)

    def one() -> None:
        with torch.autocast("cuda" if on_cuda else "cpu", dtype=torch.bfloat16, enabled=bf16):
            sr = forward(lr)
        loss = F.l1_loss(sr.float(), hr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return one


def step_ms(config: str, batch: int, crop: int, scale: int, device: str, *, bf16: bool = True,
            channels_last: bool = True, compile: bool = False, steps: int = 30, warmup: int = 10) -> float:
    """Milliseconds per pixel-phase step, after ``warmup`` untimed steps, as the trainer runs it."""
    one = pixel_stepper(config, batch, crop, scale, device, bf16=bf16, channels_last=channels_last, compile=compile)
    for _ in range(warmup):
        one()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        one()
    sync(device)
    return (time.perf_counter() - start) / steps * 1e3


LEVERS = {  # name -> step_ms options
    "fp32 (TF32 convs), NCHW": dict(bf16=False, channels_last=False),
    "fp32 (TF32 convs) + channels_last": dict(bf16=False, channels_last=True),
    "bf16 autocast, NCHW": dict(bf16=True, channels_last=False),
    "bf16 + channels_last": dict(bf16=True, channels_last=True),
    "bf16 + channels_last + torch.compile": dict(bf16=True, channels_last=True, compile=True),
}


def levers(configs: list[str], batch: int, crop: int, scale: int, device: str) -> None:
    """One pixel step per training-speed lever, per config, printed as a Markdown table."""
    print(f"| lever (batch {batch}, {crop} HR, x{scale}, pixel step) | " + " | ".join(f"{c} ms" for c in configs) + " |")
    print("|---|" + "---|" * len(configs))
    for name, options in LEVERS.items():
        cells = []
        for config in configs:
            if options.get("compile") and config != configs[-1]:
                cells.append("—")  # compiling takes ~30 s a model: only the last (deepest) config
                continue
            start = time.perf_counter()
            cells.append(f"{step_ms(config, batch, crop, scale, device, **options):.2f}")
            if options.get("compile"):
                cells[-1] += f" (compiled in {time.perf_counter() - start:.0f} s)"
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=160.0, help="seconds of baseline compute to plan for")
    parser.add_argument("--configs", default="4-2,8-6,16-8")
    parser.add_argument("--baseline", default="16-8")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--min-steps", type=int, default=500)
    parser.add_argument("--max-steps", type=int, default=8000)
    parser.add_argument("--levers", action="store_true", help="only time the training-speed levers")
    args = parser.parse_args()
    device = "cuda"
    if args.levers:
        levers(args.configs.split(","), args.batch, args.crop, args.scale, device)
        return 0
    print(json.dumps({"build_info": mmsr.build_info(), "gpu": torch.cuda.get_device_name()}), flush=True)

    start = time.perf_counter()
    failures = smoke(device)
    print(json.dumps({"smoke_failures": failures[:40], "count": len(failures), "seconds": round(time.perf_counter() - start, 1)}), flush=True)
    if failures:
        return 1

    configs = args.configs.split(",")
    timings = {c: step_ms(c, args.batch, args.crop, args.scale, device) for c in dict.fromkeys(configs + [args.baseline])}
    # The baseline trains len(configs) x the per-class steps (the same crops), all with its model.
    per_class = int(args.budget * 1e3 / (len(configs) * timings[args.baseline]))
    per_class = max(args.min_steps, min(args.max_steps, per_class // 100 * 100))
    print(json.dumps({"step_ms": {c: round(t, 2) for c, t in timings.items()}, "batch": args.batch,
                      "budget_s": args.budget, "pixel_steps_per_class": per_class}), flush=True)
    print(per_class)
    return 0


if __name__ == "__main__":
    sys.exit(main())
