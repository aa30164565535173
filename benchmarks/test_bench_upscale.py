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

Checks, outside the timed region, against references built from the parts: the bundle's plain
generators (no inference rewrites, contiguous float32), each tile's window cut here, and the
pure-PyTorch :func:`mmsr.reference.stitch`. With a window per tile (``max_run=1``) the Upscaler must
match that exactly (up to a uint8 rounding step); with blocks, whose windows are larger, it must
match each tile's model run on the whole image, closely in every tile's core (see
:func:`_check_against_whole`). On CUDA the checks run the same plan in float32 without TF32.
``extra_info`` records the texture and model histograms, the tiles promoted and those left on
shallower models: the depth-only bundle's "routed" case promotes every tile to the 16-8 (models
0 / 0 / 25 on CPU), and is then checked to equal the deepest model's run bit for bit.

Ratios for benchmarks/README.md: divide the medians within a group.
"""
from __future__ import annotations

import pytest
import torch
from conftest import run_timed

from mmsr import reference
from mmsr.bundle import Bundle
from mmsr.classmap import class_histogram, tile_classes
from mmsr.grid import make_grid
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
    """The same Upscaler options in float32: the checks compare arithmetic, and bf16's 8-bit
    mantissa differs by more than 2 levels between cuDNN's algorithms for different batch sizes or
    layouts (seen on an H100), which says nothing about the pipeline being checked."""
    return {**options, "dtype": torch.float32} if "dtype" in options else options


def _float32_convs():
    """Without TF32 convolutions, so that float32 really is float32 on the GPU too."""
    return torch.backends.cudnn.flags(enabled=True, allow_tf32=False)


def _window_start(origin: int, length: int, image_len: int, context: int) -> int:
    # Written out rather than taken from mmsr.context, so that the reference shares no code with
    # the Upscaler it checks: ``context`` pixels before the tile, shifted to stay in the image.
    return min(max(origin - context, 0), image_len - length)


@torch.inference_mode()
def _reference(bundle: Bundle, image: torch.Tensor, models: torch.Tensor, device: str, context=None) -> torch.Tensor:
    """What tiling ``image`` (uint8 [3, H, W]) must give, built from its parts: uint8 [3, H*s, W*s].

    Tile (r, c) is upscaled by the plain generator of class ``models[r, c]`` (int [rows, cols]),
    cropped to the tile, and the tiles are blended by :func:`mmsr.reference.stitch` (linear, the
    Upscaler's default; no margin, as with context). ``context=None``: each model runs once on the
    whole image (what tiling approximates); ``context=c``: on each tile's own window, the tile and
    ``c`` pixels around it (what a window per tile computes).
    """
    H, W = image.shape[1:]
    grid, s = make_grid(H, W, TILE, OVERLAP), SCALE
    generators = bundle.generators(device)
    x = image.to(device).float().div(255)[None]
    whole, tiles = {}, []
    for r, y in enumerate(grid.ys):
        for c, x0 in enumerate(grid.xs):
            k = int(models[r, c])
            if context is None:
                wy = wx = 0
                if k not in whole:
                    whole[k] = generators[k](x)
                sr = whole[k]
            else:
                h, w = min(grid.tile_h + 2 * context, H), min(grid.tile_w + 2 * context, W)
                wy, wx = _window_start(y, h, H, context), _window_start(x0, w, W, context)
                sr = generators[k](x[:, :, wy : wy + h, wx : wx + w])
            top, left = (y - wy) * s, (x0 - wx) * s
            tiles.append(sr[:, :, top : top + grid.tile_h * s, left : left + grid.tile_w * s])
    out = reference.stitch(torch.cat(tiles).clamp(0, 1), grid, s, "linear")[0]
    return (out * 255).round().clamp(0, 255).to(torch.uint8)


def _max_level_difference(a: torch.Tensor, b: torch.Tensor) -> int:
    return int((a.cpu().int() - b.cpu().int()).abs().max())


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two uint8 images (inf where equal)."""
    mse = (a.cpu().double() - b.cpu().double()).pow(2).mean()
    return float(10 * torch.log10(255**2 / mse))


def _check_against_whole(got: torch.Tensor, expected: torch.Tensor) -> None:
    """Blocks' windows are larger than a tile's but still zero-padded at their edges, so their tiles
    match neither the per-tile reference nor whole-image inference exactly; whole-image inference
    is what they approximate. Measured (CPU, 128x128, both bundles, every case): in each tile's
    core (its pixels ``OVERLAP`` or more LR pixels from its edges, where no neighbour blends in)
    >= 70 dB, over the whole image >= 44 dB (the seams). A tile on another class's model than the
    reference's: <= 13 dB in its core and <= 28 dB over the image. The bounds sit between.
    """
    grid, s = make_grid(got.shape[1] // SCALE, got.shape[2] // SCALE, TILE, OVERLAP), SCALE
    cores = {
        (y, x): (slice(None), slice((y + OVERLAP) * s, (y + grid.tile_h - OVERLAP) * s),
                 slice((x + OVERLAP) * s, (x + grid.tile_w - OVERLAP) * s))
        for y in grid.ys
        for x in grid.xs
    }
    worst, at = min((_psnr(got[core], expected[core]), origin) for origin, core in cores.items())
    assert worst >= 50, f"the core of the tile at LR {at}: {worst:.1f} dB from the whole-image reference"
    assert _psnr(got, expected) >= 35, f"{_psnr(got, expected):.1f} dB from the whole-image reference"


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
    bundle = _tertile_bundle(configs, image)
    options = dict(max_run=max_run, promote=impl != "routed_tvat", **_options(device))
    up = Upscaler(bundle, **options)
    force = None if impl.startswith("routed") else up.deepest_class
    benchmark.group = f"routed vs deepest {'/'.join(configs)} {tuple(image.shape)} x{SCALE} {device}"

    result = up.upscale(image, force_class=force)  # correctness, outside the timed region
    histogram = class_histogram(result.classes, up.num_classes)
    assert result.image.shape == (3, image.shape[1] * SCALE, image.shape[2] * SCALE)
    assert sum(n > 0 for n in histogram) == 3, histogram  # the input's tiles fall in every texture class
    deepest, models, classes = up.deepest_class, result.models, result.classes
    if force is not None:
        assert (models == deepest).all(), result.model_histogram()
    elif impl == "routed":
        # Promotion moves tiles only to the deepest model, and only from classes whose model costs less.
        moved = models != classes
        assert (models[moved] == deepest).all(), models
        assert all(up.costs[k] < up.costs[deepest] for k in classes[moved].tolist())
    else:  # pure routing (also a window per tile, where nothing is promoted): every model runs its class
        assert torch.equal(models, classes), (models, classes)
    on_deepest = int((models == deepest).sum())
    benchmark.extra_info.update(
        histogram=histogram, models=result.model_histogram(), promoted=result.promoted(),
        on_shallower_models=result.grid.num_tiles - on_deepest, tiles=result.grid.num_tiles, configs=list(configs),
    )

    with _float32_convs():
        check = up if _exact_options(options) == options else Upscaler(bundle, **_exact_options(options))
        checked = result if check is up else check.upscale(image, force_class=force)
        assert torch.equal(checked.models, models)  # the plan does not depend on the dtype
        if max_run == 1:
            # Float32 throughout: the Upscaler's rewritten generators and native stitch differ from the
            # plain ones and reference.stitch by float rounding (~1e-6), at most one uint8 rounding step.
            expected = _reference(bundle, image, models, device, context=up.context)
            assert _max_level_difference(checked.image, expected) <= 1
        else:
            _check_against_whole(checked.image, _reference(bundle, image, models, device))
        if impl == "routed" and on_deepest == result.grid.num_tiles:
            # Every tile promoted: the plan is the deepest model's own, so is the image, bit for bit.
            assert torch.equal(checked.image, check.upscale(image, force_class=deepest).image)

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

    # Against each tile through the plain generator on its own window: equal up to float rounding
    # (one uint8 step), as in test_routed_vs_deepest.
    with _float32_convs():
        check = up if _exact_options(options) == options else Upscaler(bundle, **_exact_options(options))
        checked = check.upscale(image)
        expected = _reference(bundle, image, torch.zeros_like(checked.classes), device, context=up.context)
        assert _max_level_difference(checked.image, expected) <= 1
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

    # The 4 x 4 tiles make one block (4 rows, <= 8 columns) whose window, 104 x 104 pixels, is the
    # whole image: every tile is cropped from the generator's output for the whole image, so the
    # result is the plain generator's on the whole image up to float rounding (one uint8 step).
    exact = _exact_options(_options(device))
    cuts = dict(fold_bn=fold_bn, fuse_tail=fuse_tail, channels_last=channels_last)
    check = up if exact == _options(device) else Upscaler(bundle, **cuts, **exact)
    with _float32_convs():
        got = check.upscale(image)
        expected = _reference(bundle, image, torch.zeros_like(got.classes), device)
        assert _max_level_difference(got.image, expected) <= 1

    run_timed(benchmark, lambda: up.upscale(image), device, bytes_moved=image.numel() * (1 + SCALE**2),
              rounds=5, warmup=1)
