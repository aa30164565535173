"""Where an SRResNet generator spends its inference time, per layer type, and what cheap cuts buy.

Times each part of the generator with forward hooks (the device is synchronised at every hook, so
the parts add up to the whole), for the default-style configs at width 64, on a batch of LR tiles:

    head        9x9 conv + PReLU at LR size
    body        the residual blocks (conv3-BN-PReLU-conv3-BN + skip)
    trunk       conv3 + BN after the body
    up conv     the conv3 of each upsampling stage (channels x4 before the shuffle)
    shuffle     nn.PixelShuffle (after the tail conv, on 3 * 4 channels, once the tail is fused)
    up PReLU    the PReLU after each shuffle (before it, on 4x the channels, once fused)
    tail        9x9 conv at HR size (5x5 on the un-shuffled features once fused)
    input skip  the bicubic upsample of the input added to the output ("r" configs only)

once for the plain generator and once as the Upscaler runs it (BatchNorm folded, the HR tail conv
moved before the last pixel shuffle, channels_last; see :mod:`mmsr.inference`). Then it times
whole forward passes (no hooks) of each rewrite alone and all together, interleaved.

    python benchmarks/profile_generator.py                      # CPU, 4 tiles of 32x32 per pass, x4
    python benchmarks/profile_generator.py --device cuda --batch 64 --dtype bfloat16
"""
from __future__ import annotations

import argparse
import copy
import time
from collections import defaultdict

import torch
from torch import nn

from mmsr.models import Generator, ModelConfig
from mmsr.inference import fold_batchnorm, fuse_subpixel_tail, prepare_generator

_PARTS = ("head", "body", "trunk", "up conv", "shuffle", "up PReLU", "tail", "input skip")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _labelled_modules(generator: Generator):
    """(part, module) pairs that together cover the forward pass, for a plain or rewritten generator."""
    by_type = {nn.Conv2d: "up conv", nn.PixelShuffle: "shuffle", nn.PReLU: "up PReLU"}
    yield "head", generator.head
    yield "body", generator.body
    yield "trunk", generator.trunk
    for stage in generator.upsample:
        for module in stage:
            yield by_type[type(module)], module
    if isinstance(generator.tail, nn.Sequential):  # fuse_subpixel_tail: 5x5 conv, then the shuffle
        yield "tail", generator.tail[0]
        yield "shuffle", generator.tail[1]
    else:
        yield "tail", generator.tail


def profile_parts(generator: Generator, x: torch.Tensor, repeats: int) -> dict:
    """Seconds per forward pass spent in each part, {part: seconds}: each part's fastest of ``repeats`` passes.

    The fastest pass, not the mean, because these machines are shared and a slow pass measures the
    neighbours, not the model.
    """
    passes = []
    started = {}
    handles = []
    for label, module in _labelled_modules(generator):
        def pre(module, args):
            _sync(x.device)
            started[id(module)] = time.perf_counter()

        def post(module, args, output, label=label):
            _sync(x.device)
            passes[-1][label] += time.perf_counter() - started[id(module)]

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))
    try:
        with torch.inference_mode():
            for _ in range(repeats + 1):  # the first pass warms up the allocator and algorithm choice
                passes.append(defaultdict(float))
                generator(x)
    finally:
        for handle in handles:
            handle.remove()
    if generator.input_skip:
        # Not a module (a call in forward): timed on its own, the call forward makes.
        with torch.inference_mode():
            for p in passes:
                _sync(x.device)
                start = time.perf_counter()
                generator.bicubic(x)
                _sync(x.device)
                p["input skip"] += time.perf_counter() - start
    return {label: min(p[label] for p in passes[1:]) for label in _PARTS}


def time_variants(variants, x: torch.Tensor, repeats: int) -> dict:
    """Fastest forward pass of each variant, in seconds, {label: seconds}.

    Rounds are interleaved (variant A, B, C, A, B, C, ...) so that a burst of load from other
    processes hits every variant alike instead of one variant's whole run.
    """
    prepared = []
    for label, model, memory_format, mode in variants:
        context = torch.inference_mode if mode == "inference" else torch.no_grad
        model = model.to(device=x.device, dtype=x.dtype, memory_format=memory_format)
        prepared.append((label, model, x.contiguous(memory_format=memory_format), context))
    best = {label: float("inf") for label, *_ in prepared}
    for round_ in range(repeats + 1):
        for label, model, inputs, context in prepared:
            with context():
                _sync(x.device)
                start = time.perf_counter()
                model(inputs)
                _sync(x.device)
            if round_ > 0:  # round 0 warms up the allocator and algorithm choice
                best[label] = min(best[label], time.perf_counter() - start)
    return best


def _variants(base: Generator):
    """(label, float32 CPU model, memory format, grad mode); each model is a fresh copy of ``base``."""
    folded = fold_batchnorm(copy.deepcopy(base))
    fused = fuse_subpixel_tail(copy.deepcopy(folded))
    yield "no_grad (baseline)", copy.deepcopy(base), torch.contiguous_format, "no_grad"
    yield "inference_mode", copy.deepcopy(base), torch.contiguous_format, "inference"
    yield "channels_last", copy.deepcopy(base), torch.channels_last, "inference"
    yield "BN folded", copy.deepcopy(folded), torch.contiguous_format, "inference"
    yield "sub-pixel tail + BN folded", copy.deepcopy(fused), torch.contiguous_format, "inference"
    yield "all three (the Upscaler)", fused, torch.channels_last, "inference"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="4-2,8-6,16-8", help="comma-separated X-Y configs (default 4-2,8-6,16-8)")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--tile", type=int, default=32, help="LR tile edge (default 32)")
    parser.add_argument("--batch", type=int, default=4, help="tiles per forward pass (default 4)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes; the fastest counts (default 5)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    threads = torch.get_num_threads()
    print(f"device {device}, dtype {args.dtype}, torch {torch.__version__}, {threads} threads, "
          f"batch {args.batch} tiles of {args.tile}x{args.tile} LR, x{args.scale}\n")
    for name in args.configs.split(","):
        config = ModelConfig.parse(name)
        torch.manual_seed(0)
        base = Generator.from_config(config, args.scale).eval()  # BN is folded in float32, before any cast
        generator = copy.deepcopy(base).to(device, dtype)
        x = torch.rand(args.batch, 3, args.tile, args.tile, device=device, dtype=dtype)
        fast = prepare_generator(base, device=device, dtype=dtype, channels_last=True)
        plain_parts = profile_parts(generator, x, args.repeats)
        fast_parts = profile_parts(fast, x.contiguous(memory_format=torch.channels_last), args.repeats)
        print(f"{config.name}: ms per tile by part, summing each part's fastest pass")
        print(f"  {'part':10s} {'plain':>8s} {'share':>7s} {'Upscaler':>9s} {'share':>7s}")
        for label in _PARTS:
            cells = [(parts[label] / args.batch * 1e3, parts[label] / sum(parts.values())) for parts in (plain_parts, fast_parts)]
            print(f"  {label:10s} {cells[0][0]:8.2f} {cells[0][1]:7.1%} {cells[1][0]:9.2f} {cells[1][1]:7.1%}")
        totals = [sum(parts.values()) / args.batch * 1e3 for parts in (plain_parts, fast_parts)]
        print(f"  {'total':10s} {totals[0]:8.2f} {'':7s} {totals[1]:9.2f}")
        print(f"  {'variant':28s} {'ms/tile':>8s} {'vs baseline':>11s}")
        times = time_variants(_variants(base), x, args.repeats)
        baseline = next(iter(times.values()))
        for label, seconds in times.items():
            print(f"  {label:28s} {seconds / args.batch * 1e3:8.2f} {baseline / seconds:10.2f}x")
        print()


if __name__ == "__main__":
    main()
