"""The reconstruction pipeline: routed vs deepest-model inference, batched vs one-tile-at-a-time,
and what BatchNorm folding and channels_last buy, all through :class:`mmsr.Upscaler`.

Models are randomly initialised: speed does not depend on the weights. x4, 32-pixel LR tiles with
overlap 8, as the default bundle will use. On CPU the images are small (128x128 LR) so the whole
file runs in a few minutes on 2 cores; on CUDA (``MMSR_BENCH_DEVICE=cuda``) they are larger and the
models run in bfloat16 and channels_last.

Groups:
- ``routed vs deepest``: the same image through a 3-class bundle, each tile to its class's model,
  vs every tile through the deepest class's model (``force_class``); with the Upscaler's default
  blocks of same-class neighbours sharing a window, with those blocks but pure TVAT routing
  (``promote=False``: no tile moved to the deepest model where a shared block is cheaper), and
  with a window per tile (``max_run=1``). Two bundles: the paper's
  depth-only configs (4-2 / 8-6 / 16-8 at width 64) and depth + width (4-2w32 / 8-6w48 / 16-8),
  since depth alone leaves the fixed head, upsampling and tail cost in every class. The image has
  flat, mildly textured and busy regions, and the class boundaries are its tile scores' tertiles,
  so tiles split across all three classes; ``extra_info`` has the histogram and images/s.
- ``batching``: a 16-block generator on 32x32 LR tiles, each in its own window, one tile per call
  vs 2 (the CPU default) vs 4 vs 64 (every tile of the CPU image in one call).
- ``inference cuts``: the generator rewrites of :mod:`mmsr.inference` (BatchNorm folded, HR tail
  conv moved before the last pixel shuffle) and channels_last, each alone and all together, for
  4-2 and 16-8.

Ratios for benchmarks/README.md: divide the medians within a group.
"""
from __future__ import annotations

import pytest
import torch
from conftest import run_timed

from mmsr.bundle import Bundle
from mmsr.classmap import class_histogram, tile_classes
from mmsr.upscale import Upscaler

SCALE, TILE, OVERLAP = 4, 32, 8
DEPTH_ONLY = ("4-2", "8-6", "16-8")
DEPTH_AND_WIDTH = ("4-2w32", "8-6w48", "16-8")


def _size(device: str) -> int:
    return 512 if device.startswith("cuda") else 128


def _options(device: str) -> dict:
    if device.startswith("cuda"):
        return dict(device=device, dtype=torch.bfloat16, batch_size=256)
    return dict(device=device)


def _exact_options(options: dict) -> dict:
    """The same Upscaler options in float32: the equivalence checks compare arithmetic, and bf16's
    8-bit mantissa differs by more than 2 levels between cuDNN's algorithms for different batch
    sizes or layouts (seen on an H100), which says nothing about the cut being checked."""
    return {**options, "dtype": torch.float32} if "dtype" in options else options


def _max_level_difference(a: Upscaler, b: Upscaler, image: torch.Tensor) -> int:
    # Without TF32 convolutions, so that float32 really is float32 on the GPU too.
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        return int((a.upscale(image).image.int() - b.upscale(image).image.int()).abs().max())


def _three_texture_image(size: int) -> torch.Tensor:
    """uint8 [3, size, size]: a flat left third, a mildly textured middle, a busy right third,
    each with a smooth gradient so no tile is exactly constant."""
    g = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0.3, 0.7, size).view(1, size, 1).expand(3, size, size)
    x = ramp.clone()
    third = size // 3
    x[:, :, third : 2 * third] += 0.06 * (torch.rand(3, size, third, generator=g) - 0.5)
    x[:, :, 2 * third :] += 0.5 * (torch.rand(3, size, size - 2 * third, generator=g) - 0.5)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def _tertile_bundle(configs, image: torch.Tensor) -> Bundle:
    """A random bundle whose boundaries are the tertiles of ``image``'s tile scores."""
    _, scores, _ = tile_classes(image, [], threshold=0.0, tile_size=TILE, overlap=OVERLAP)
    edges = torch.quantile(scores.flatten(), torch.tensor([1 / 3, 2 / 3])).tolist()
    return Bundle.random(
        configs, scale=SCALE, threshold=0.0, boundaries=edges, tile_size=TILE, overlap=OVERLAP, seed=0
    )


@pytest.mark.parametrize("configs", [DEPTH_ONLY, DEPTH_AND_WIDTH], ids=["depth", "depth+width"])
@pytest.mark.parametrize("impl", ["routed", "routed_tvat", "deepest", "routed_per_tile", "deepest_per_tile"])
def test_routed_vs_deepest(benchmark, device, configs, impl):
    image = _three_texture_image(_size(device))
    # "per_tile": every tile through its own context window (max_run 1), as before blocks shared them.
    max_run = 1 if impl.endswith("per_tile") else None
    up = Upscaler(_tertile_bundle(configs, image), max_run=max_run, promote=impl != "routed_tvat", **_options(device))
    force = None if impl.startswith("routed") else up.deepest_class
    benchmark.group = f"routed vs deepest {'/'.join(configs)} {tuple(image.shape)} x{SCALE} {device}"

    result = up.upscale(image, force_class=force)  # correctness, outside the timed region
    histogram = class_histogram(result.classes, up.num_classes)
    assert result.image.shape == (3, image.shape[1] * SCALE, image.shape[2] * SCALE)
    if impl.startswith("routed"):
        assert sum(n > 0 for n in histogram) == 3, histogram  # every texture class gets tiles
    benchmark.extra_info.update(
        histogram=histogram, models=result.model_histogram(), promoted=result.promoted(),
        tiles=result.grid.num_tiles, configs=list(configs),
    )

    run_timed(benchmark, lambda: up.upscale(image, force_class=force), device,
              bytes_moved=image.numel() * (1 + SCALE**2), rounds=5, warmup=1)
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["images_per_s"] = 1 / benchmark.stats.stats.median


@pytest.mark.parametrize("impl", ["one_at_a_time", "batch_2", "batch_4", "batch_64"])
def test_batching(benchmark, device, impl):
    # 104 = 32 + 3 * 24: a 4 x 4 grid of 32-pixel tiles on CPU; 776 gives 32 x 32 tiles on CUDA.
    size = 776 if device.startswith("cuda") else 104
    image = _three_texture_image(size)
    bundle = Bundle.random(["16-8"], scale=SCALE, threshold=0.0, boundaries=[], tile_size=TILE, overlap=OVERLAP)
    batch = {"one_at_a_time": 1, "batch_2": 2, "batch_4": 4, "batch_64": 64}[impl]
    # One window per tile (max_run 1): with runs, a "batch" of one would still hold several tiles.
    options = {**_options(device), "batch_size": batch, "max_run": 1}
    up = Upscaler(bundle, **options)
    tiles = up.grid(size, size).num_tiles
    benchmark.group = f"batching 16-block generator, {tiles} tiles of {TILE}x{TILE} x{SCALE} {device}"

    exact = _exact_options(options)
    assert _max_level_difference(Upscaler(bundle, **exact), Upscaler(bundle, **{**exact, "batch_size": 1}), image) <= 2
    benchmark.extra_info.update(tiles=tiles, batch_size=batch)

    run_timed(benchmark, lambda: up.upscale(image), device, bytes_moved=image.numel() * (1 + SCALE**2),
              rounds=5, warmup=1)
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["tiles_per_s"] = tiles / benchmark.stats.stats.median


CUTS = {  # impl -> (fold_bn, fuse_tail, channels_last)
    "plain": (False, False, False),
    "bn_folded": (True, False, False),
    "subpixel_tail": (False, True, False),
    "channels_last": (False, False, True),
    "all_three": (True, True, True),
}


@pytest.mark.parametrize("config", ["4-2", "16-8"])
@pytest.mark.parametrize("impl", list(CUTS))
def test_inference_cuts(benchmark, device, config, impl):
    image = _three_texture_image(104)  # 16 tiles
    bundle = Bundle.random([config], scale=SCALE, threshold=0.0, boundaries=[], tile_size=TILE, overlap=OVERLAP)
    fold_bn, fuse_tail, channels_last = CUTS[impl]
    up = Upscaler(bundle, fold_bn=fold_bn, fuse_tail=fuse_tail, channels_last=channels_last, **_options(device))
    benchmark.group = f"inference cuts {config}, 16 tiles of {TILE}x{TILE} x{SCALE} {device}"

    exact = _exact_options(_options(device))
    cut = Upscaler(bundle, fold_bn=fold_bn, fuse_tail=fuse_tail, channels_last=channels_last, **exact)
    plain = Upscaler(bundle, fold_bn=False, fuse_tail=False, channels_last=False, **exact)
    assert _max_level_difference(cut, plain, image) <= 2

    run_timed(benchmark, lambda: up.upscale(image), device, bytes_moved=image.numel() * (1 + SCALE**2),
              rounds=5, warmup=1)
